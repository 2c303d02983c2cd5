#!/usr/bin/env bash
# dbtap replay vs tshark vs cat on the same warm TDS (SQL Server) capture file: the TDS twin of
# benches/compare-tshark-pg.sh.
#
#   benches/compare-tshark-tds.sh [FILE.pcap [PORT]]
#
# Without FILE, a synthetic capture is generated first (about MB megabytes, default 200) with
#   cargo run --release -p dbtap-tds --example tds_synth -- --bench FILE MB
# i.e. the spec-true `full_session` conversation of protocols/tds/tests/synth repeated on
# thousands of connections (login, a multi-packet result set with every column type, errors,
# sp_executesql with every parameter type, sp_prepexec / sp_execute, an Attention).
#
# 1. cat FILE > /dev/null      once to warm the page cache, then timed RUNS times (median)
# 2. dbtap replay FILE --records OUT.jsonl --summary json       timed RUNS times (median)
# 3. tshark -r FILE -d tcp.port==PORT,tds -Y tds.query -T fields -e tds.query   timed once
# and prints seconds, MB/s, the records each found, and the ratios dbtap vs tshark and dbtap vs
# cat. dbtap's statements are its `query` + `rpc` records; tshark's are the lines of tds.query
# (SQL batches only: tshark has no field for the text inside sp_executesql).
# Each dbtap run is paired with a cat run just before it, and the median of the per-pair ratios
# is printed as well: on a shared machine whose speed drifts, it compares like with like.
#
# Settings: DBTAP (default target/release/dbtap), DBTAP_ARGS (extra replay arguments), RUNS (3),
#           MB (200, for the generated file), KEEP=1 keeps the records and logs.
# Exit: 0 ok, 1 failure, 77 tshark missing.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RUNS="${RUNS:-3}"
DBTAP="${DBTAP:-$ROOT/target/release/dbtap}"
say() { echo "compare-tshark-tds: $*" >&2; }
command -v tshark >/dev/null 2>&1 || { say "tshark is not installed"; exit 77; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/dbtap-bench-tds.XXXXXX")"
cleanup() {
    if [[ "${KEEP:-0}" == "1" ]]; then say "records and logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

FILE="${1:-}"
PORT="${2:-1433}"
if [[ -z "$FILE" ]]; then
    FILE="$WORK/tds-bench.pcap"
    (cd "$ROOT" && cargo run -q --release -p dbtap-tds --example tds_synth -- --bench "$FILE" "${MB:-200}") >&2 \
        || { say "could not generate the capture"; exit 1; }
fi
[[ -r "$FILE" ]] || { say "cannot read $FILE"; exit 1; }

timed() {
    local t0=$EPOCHREALTIME rc
    "$@"
    rc=$?
    local t1=$EPOCHREALTIME
    LAST_SECONDS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
    return $rc
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# Each dbtap run over the cat run just before it. On a shared machine whose speed drifts from
# one minute to the next, the separate medians above can come from different minutes; the
# pairs cannot.
PAIRED=()
say_paired() {
    printf 'dbtap vs cat:    %sx, median of %d paired runs (each dbtap run over a cat run just before it: %s)\n' \
        "$(median "${PAIRED[@]}")" "${#PAIRED[@]}" "${PAIRED[*]}"
}

BYTES="$(stat -L -c %s "$FILE")"
cat "$FILE" >/dev/null
CAT_T=()
for ((i = 1; i <= RUNS; i++)); do timed cat "$FILE" >/dev/null; CAT_T+=("$LAST_SECONDS"); done
CAT_S="$(median "${CAT_T[@]}")"
say "cat:    ${CAT_T[*]} s -> median $CAT_S s"

[[ -x "$DBTAP" ]] || { say "no dbtap binary at $DBTAP (cargo build --release)"; exit 1; }
DBTAP_T=()
for ((i = 1; i <= RUNS; i++)); do
    rm -f "$WORK/records.jsonl"
    # The previous run's records (hundreds of MB) must not be written back to disk during
    # this run: that is the machine's work, not this run's.
    sync
    # A cat run just before: the pair sees the machine in the same state (see say_paired).
    timed cat "$FILE" >/dev/null
    PAIR_CAT="$LAST_SECONDS"
    # shellcheck disable=SC2086
    timed "$DBTAP" replay "$FILE" --records "$WORK/records.jsonl" --summary json \
        --summary-file "$WORK/summary.json" --progress never ${DBTAP_ARGS:-} >"$WORK/dbtap.log" 2>&1 \
        || { say "dbtap failed:"; tail -n 20 "$WORK/dbtap.log" >&2; exit 1; }
    DBTAP_T+=("$LAST_SECONDS")
    PAIRED+=("$(awk -v d="$LAST_SECONDS" -v c="$PAIR_CAT" 'BEGIN { printf "%.2f", (c > 0) ? d / c : 0 }')")
done
DBTAP_S="$(median "${DBTAP_T[@]}")"
RECORDS="$(wc -l <"$WORK/records.jsonl")"
BATCHES="$(grep -c '"protocol":"tds",.*"op":"query"' "$WORK/records.jsonl")"
RPCS="$(grep -c '"protocol":"tds",.*"op":"rpc"' "$WORK/records.jsonl")"
say "dbtap:  ${DBTAP_T[*]} s -> median $DBTAP_S s, $RECORDS records ($BATCHES query, $RPCS rpc)"
[[ "$BATCHES" -gt 0 ]] || { say "dbtap wrote no TDS query records"; exit 1; }

timed tshark -r "$FILE" -d "tcp.port==$PORT,tds" -Y tds.query -T fields -e tds.query \
    >"$WORK/tshark.out" 2>"$WORK/tshark.log" || { say "tshark failed"; tail -n 5 "$WORK/tshark.log" >&2; exit 1; }
TSHARK_S="$LAST_SECONDS"
TSHARK_N="$(wc -l <"$WORK/tshark.out")"
say "tshark: $TSHARK_S s, $TSHARK_N tds.query lines"

awk -v bytes="$BYTES" -v cat_s="$CAT_S" -v dbtap_s="$DBTAP_S" -v tshark_s="$TSHARK_S" \
    -v b="$BATCHES" -v r="$RPCS" -v t="$TSHARK_N" -v file="$FILE" -v runs="$RUNS" 'BEGIN {
    printf "\n%s: %.1f MB\n\n%-8s %10s %10s %22s\n", file, bytes / 1e6, "", "seconds", "MB/s", "found"
    printf "%-8s %10.3f %10.1f\n", "cat", cat_s, bytes / 1e6 / cat_s
    printf "%-8s %10.3f %10.1f %10d query + %d rpc\n", "dbtap", dbtap_s, bytes / 1e6 / dbtap_s, b, r
    printf "%-8s %10.3f %10.1f %10d tds.query\n", "tshark", tshark_s, bytes / 1e6 / tshark_s, t
    printf "\n(cat and dbtap: median of %d runs on a warm file; tshark: 1 run)\n", runs
    printf "dbtap vs tshark: %.1fx faster\n", tshark_s / dbtap_s
    printf "dbtap vs cat:    %.1fx the time of reading the file\n", dbtap_s / cat_s
}'
say_paired
