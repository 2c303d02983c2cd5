#!/usr/bin/env bash
# Live-traffic end-to-end test for PostgreSQL: psycopg 3 and pgbench against a real PostgreSQL,
# captured on loopback, replayed through dbtap, and every operation checked against the client's
# own account of it.
#
#   tests/live/run-pg.sh     start server -> capture pg_session.py -> pgbench -i (not captured)
#                            -> capture pgbench -M simple / extended / prepared -> stop
#                            -> dbtap replay each capture -> pg_compare.py each
#
# Environment:
#   DBTAP=PATH        the dbtap binary to use (default: cargo build --release --bin dbtap, then
#                     target/release/dbtap)
#   DBTAP_REPLAY_ARGS extra arguments for `dbtap replay` (e.g. "--workers 2")
#   PGBENCH_CLIENTS   pgbench clients per run (default 2)
#   PGBENCH_TRANSACTIONS  transactions per client per run (default 200)
#   PGBENCH_MODES     the -M modes to run (default "simple extended prepared")
#   KEEP=1            keep the artefacts (captures, truth, records, logs) on success
#   VERBOSE=1         pg_compare.py -v (list every match and the ignored records)
#   CI=true           a missing component (package, network to PyPI, root) fails instead of skipping
#
# Exit: 0 pass, 1 fail, 77 skipped (a component is missing and cannot be installed; not under CI).
# The artefacts' temp dir is printed on failure and kept.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dbtap-live-pg.XXXXXX")"
export DBTAP_PG_STATE="$WORK/server"
PGS="$HERE/postgres.sh"
SESSION_TIMEOUT="${DBTAP_LIVE_SESSION_TIMEOUT:-300}"
CLIENTS="${PGBENCH_CLIENTS:-2}"
TXS="${PGBENCH_TRANSACTIONS:-200}"
MODES="${PGBENCH_MODES:-simple extended prepared}"

say() { echo "live-pg: $*" >&2; }
finish() {
    local rc=$1
    "$PGS" stop >/dev/null 2>&1 || true
    if [[ $rc -eq 0 && "${KEEP:-0}" != "1" ]]; then
        rm -rf "$WORK"
    elif [[ $rc -eq 77 ]]; then
        rm -rf "$WORK"
    else
        say "artefacts kept in $WORK (*.pcap, truth.json, records-*.jsonl, *.log, server/)"
    fi
    exit "$rc"
}
fail() { say "FAIL: $*"; finish 1; }
# Runs a postgres.sh step; its 77 (skip) and 1 (fail, also "missing under CI") are passed on.
step() {
    "$PGS" "$@"
    local rc=$?
    if [[ $rc -eq 77 ]]; then say "SKIP: see the reason above"; finish 77; fi
    [[ $rc -eq 0 ]] || fail "postgres.sh $1 failed (exit $rc)"
}
trap 'finish 130' INT TERM

say "work dir $WORK"
step deps server capture python pgbench ssl
PY="$("$PGS" python)" || fail "no python venv"
PGBENCH="$("$PGS" bin pgbench)" || fail "no pgbench"

# The dbtap binary: $DBTAP, else build with cargo (before the server starts: a build takes time).
if [[ -n "${DBTAP:-}" ]]; then
    [[ -x "$DBTAP" ]] || fail "DBTAP=$DBTAP is not an executable"
else
    if ! command -v cargo >/dev/null 2>&1; then
        if [[ "${CI:-}" == "true" ]]; then fail "no cargo and no DBTAP binary"; fi
        say "SKIP: no cargo and no DBTAP binary"; finish 77
    fi
    say "building dbtap (cargo build --release --bin dbtap)"
    (cd "$ROOT" && cargo build --release -q --bin dbtap) >"$WORK/build.log" 2>&1 \
        || { tail -n 30 "$WORK/build.log" >&2; fail "cargo build --release failed"; }
    DBTAP="$ROOT/target/release/dbtap"
fi

step start >/dev/null
# shellcheck disable=SC1091
source "$DBTAP_PG_STATE/env"
PORT="$DBTAP_PG_PORT"

# A capture must be complete (no kernel drops) to be compared.
check_capture() {
    local f="$1"
    # shellcheck disable=SC1090
    source "$f.stats"
    [[ "${TCPDUMP_COMPLETE:-0}" == "1" ]] || fail "the capture $(basename "$f") is incomplete (tcpdump: $(tr '\n' ' ' <"$f.stats"))"
    CAPTURES+=("$f")
}
CAPTURES=()

# 1. The scripted psycopg session.
say "capturing the psycopg session on 127.0.0.1:$PORT"
"$PGS" capture "$WORK/session.pcap" timeout "$SESSION_TIMEOUT" "$PY" "$HERE/pg_session.py" \
    --truth "$WORK/truth.json" 2>"$WORK/session.log"
rc=$?
grep -v '^  \[' "$WORK/session.log" >&2
[[ $rc -eq 0 ]] || { tail -n 40 "$WORK/session.log" >&2; fail "the client session failed (exit $rc; log $WORK/session.log)"; }
check_capture "$WORK/session.pcap"

# 2. pgbench: the tables (not captured), then one captured run per query mode.
export PGPASSWORD="$DBTAP_PG_BENCH_PW" PGSSLMODE=disable PGGSSENCMODE=disable
PGB=("$PGBENCH" -h 127.0.0.1 -p "$PORT" -U "$DBTAP_PG_BENCH_USER")
say "pgbench -i -s 1 (not captured)"
timeout "$SESSION_TIMEOUT" "${PGB[@]}" -i -s 1 -q "$DBTAP_PG_BENCH_DB" >"$WORK/pgbench-init.log" 2>&1 \
    || { tail -n 20 "$WORK/pgbench-init.log" >&2; fail "pgbench -i failed"; }
for mode in $MODES; do
    say "capturing pgbench -M $mode -c $CLIENTS -t $TXS"
    "$PGS" capture "$WORK/pgbench-$mode.pcap" timeout "$SESSION_TIMEOUT" "${PGB[@]}" -M "$mode" \
        -c "$CLIENTS" -t "$TXS" "$DBTAP_PG_BENCH_DB" >"$WORK/pgbench-$mode.log" 2>&1
    rc=$?
    grep -E 'postgres.sh: tcpdump|transactions actually processed|failed transactions|^tps' \
        "$WORK/pgbench-$mode.log" | sed 's/^/  /' >&2
    [[ $rc -eq 0 ]] || { tail -n 20 "$WORK/pgbench-$mode.log" >&2; fail "pgbench -M $mode failed (exit $rc)"; }
    processed="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench-$mode.log")"
    failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/pgbench-$mode.log")"
    [[ -n "$processed" ]] || fail "pgbench -M $mode: no 'transactions actually processed' line"
    [[ "$processed" -eq $((CLIENTS * TXS)) && "${failed:-0}" -eq 0 ]] \
        || fail "pgbench -M $mode processed $processed of $((CLIENTS * TXS)) transactions, ${failed:-?} failed"
    printf '{"mode": "%s", "transactions": %d, "clients": %d, "failed": %d, "port": %d}\n' \
        "$mode" "$processed" "$CLIENTS" "${failed:-0}" "$PORT" >"$WORK/pgbench-$mode.json"
    check_capture "$WORK/pgbench-$mode.pcap"
done
"$PGS" stop >/dev/null 2>&1 || true

# 3. Replay each capture (no --port: PostgreSQL on a non-standard port must be detected by
# content) and compare.
overall=0
for pcap in "${CAPTURES[@]}"; do
    name="$(basename "$pcap" .pcap)"
    say "replaying $name.pcap: $DBTAP replay $name.pcap --records records-$name.jsonl ${DBTAP_REPLAY_ARGS:-}"
    # shellcheck disable=SC2086
    "$DBTAP" replay "$pcap" --records "$WORK/records-$name.jsonl" --summary text --progress never \
        --alerts "$WORK/alerts-$name.jsonl" ${DBTAP_REPLAY_ARGS:-} >"$WORK/dbtap-$name.log" 2>&1
    rc=$?
    sed 's/^/  /' "$WORK/dbtap-$name.log" >&2
    if [[ $rc -ne 0 ]]; then say "FAIL: dbtap replay of $name.pcap failed (exit $rc)"; overall=1; continue; fi
    if [[ "$name" == session ]]; then
        "$PY" "$HERE/pg_compare.py" "$WORK/truth.json" "$WORK/records-$name.jsonl" ${VERBOSE:+-v} \
            | tee "$WORK/compare-$name.log"
    else
        "$PY" "$HERE/pg_compare.py" --pgbench "$WORK/$name.json" "$WORK/records-$name.jsonl" \
            ${VERBOSE:+-v} | tee "$WORK/compare-$name.log"
    fi
    rc=${PIPESTATUS[0]}
    if [[ $rc -ne 0 ]]; then
        say "FAIL: the records of $name.pcap do not match (see above; $WORK/compare-$name.log)"
        overall=1
    fi
    if [[ "$name" != session ]]; then
        # A benign workload raises no high or critical alert with the default rules.
        serious="$("$PY" -c 'import json, sys
print(sum(json.loads(l)["rule"]["severity"] in ("high", "critical") for l in open(sys.argv[1])))' \
            "$WORK/alerts-$name.jsonl")"
        if [[ "$serious" != 0 ]]; then
            say "FAIL: $name.pcap (a benign pgbench run) raised $serious high or critical alerts:"
            head -n 3 "$WORK/alerts-$name.jsonl" >&2
            overall=1
        else
            say "$name.pcap: no high or critical alert (default rules)"
        fi
    fi
done
[[ $overall -eq 0 ]] || fail "the records do not match the truth"
say "PASS"
finish 0
