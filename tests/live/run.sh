#!/usr/bin/env bash
# Live-traffic end-to-end test: real client libraries against a real MariaDB, captured on loopback,
# replayed through dbtap, and every operation checked against the client's own account of it.
#
#   tests/live/run.sh            start server -> capture session.py -> stop -> dbtap replay -> compare
#
# Environment:
#   DBTAP=PATH        the dbtap binary to use (default: `cargo run --release -q --`)
#   DBTAP_REPLAY_ARGS extra arguments for `dbtap replay` (e.g. "--workers 2")
#   KEEP=1            keep the artefacts (capture.pcap, truth.json, records.jsonl, logs) on success
#   CI=true           a missing component (package, network to PyPI, root) fails instead of skipping
#
# Exit: 0 pass, 1 fail, 77 skipped (a component is missing and cannot be installed; not under CI).
# The artefacts' temp dir is printed on failure and kept.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dbtap-live.XXXXXX")"
export DBTAP_LIVE_STATE="$WORK/server"
MDB="$HERE/mariadb.sh"
SESSION_TIMEOUT="${DBTAP_LIVE_SESSION_TIMEOUT:-300}"

say() { echo "live: $*" >&2; }
finish() {
    local rc=$1
    "$MDB" stop >/dev/null 2>&1 || true
    if [[ $rc -eq 0 && "${KEEP:-0}" != "1" ]]; then
        rm -rf "$WORK"
    elif [[ $rc -eq 77 ]]; then
        rm -rf "$WORK"
    else
        say "artefacts kept in $WORK (capture.pcap, truth.json, records.jsonl, *.log, server/)"
    fi
    exit "$rc"
}
fail() { say "FAIL: $*"; finish 1; }
# Runs a mariadb.sh step; its 77 (skip) and 1 (fail, also "missing under CI") are passed on.
step() {
    "$MDB" "$@"
    local rc=$?
    if [[ $rc -eq 77 ]]; then say "SKIP: see the reason above"; finish 77; fi
    [[ $rc -eq 0 ]] || fail "mariadb.sh $1 failed (exit $rc)"
}
trap 'finish 130' INT TERM

say "work dir $WORK"
step deps server capture python
PY="$("$MDB" python)" || fail "no python venv"

# The dbtap binary: $DBTAP, else build with cargo (before the server starts: a build takes time).
if [[ -n "${DBTAP:-}" ]]; then
    [[ -x "$DBTAP" ]] || fail "DBTAP=$DBTAP is not an executable"
    DBTAP_CMD=("$DBTAP")
else
    if ! command -v cargo >/dev/null 2>&1; then
        if [[ "${CI:-}" == "true" ]]; then fail "no cargo and no DBTAP binary"; fi
        say "SKIP: no cargo and no DBTAP binary"; finish 77
    fi
    say "building dbtap (cargo build --release)"
    (cd "$ROOT" && cargo build --release -q --bin dbtap) >"$WORK/build.log" 2>&1 \
        || { tail -n 30 "$WORK/build.log" >&2; fail "cargo build --release failed"; }
    DBTAP_CMD=(cargo run --manifest-path "$ROOT/Cargo.toml" --release -q --bin dbtap --)
fi

step start >/dev/null
# shellcheck disable=SC1091
source "$DBTAP_LIVE_STATE/env"
say "capturing the client session on 127.0.0.1:$DBTAP_LIVE_PORT"
"$MDB" capture "$WORK/capture.pcap" timeout "$SESSION_TIMEOUT" "$PY" "$HERE/session.py" \
    --truth "$WORK/truth.json" 2>"$WORK/session.log"
rc=$?
cp "$WORK/capture.pcap.tcpdump.log" "$WORK/tcpdump.log" 2>/dev/null || true
grep -v '^  \[' "$WORK/session.log" >&2
[[ $rc -eq 0 ]] || { tail -n 40 "$WORK/session.log" >&2; fail "the client session failed (exit $rc; log $WORK/session.log)"; }
# shellcheck disable=SC1091
source "$WORK/capture.pcap.stats"
[[ "${TCPDUMP_COMPLETE:-0}" == "1" ]] || fail "the capture is incomplete (tcpdump: $(tr '\n' ' ' <"$WORK/capture.pcap.stats"))"
"$MDB" stop >/dev/null 2>&1 || true

say "replaying with: ${DBTAP_CMD[*]} replay capture.pcap --records records.jsonl ${DBTAP_REPLAY_ARGS:-}"
# No --port: the server is on a non-standard port, so dbtap must detect MySQL by content.
# shellcheck disable=SC2086
(cd "$ROOT" && "${DBTAP_CMD[@]}" replay "$WORK/capture.pcap" --records "$WORK/records.jsonl" \
    --summary text ${DBTAP_REPLAY_ARGS:-}) >"$WORK/dbtap.log" 2>&1
rc=$?
cat "$WORK/dbtap.log" >&2
[[ $rc -eq 0 ]] || fail "dbtap replay failed (exit $rc)"
[[ -s "$WORK/records.jsonl" ]] || fail "dbtap wrote no records"

"$PY" "$HERE/compare.py" "$WORK/truth.json" "$WORK/records.jsonl" ${VERBOSE:+-v} | tee "$WORK/compare.log"
rc=${PIPESTATUS[0]}
[[ $rc -eq 0 ]] || fail "the records do not match the truth (see above; $WORK/compare.log)"
say "PASS"
finish 0
