#!/usr/bin/env bash
# dbtap replay vs tshark vs cat on the same warm TDS (SQL Server) capture file: the TDS twin of
# benches/compare-tshark-pg.sh.
#
#   benches/compare-tshark-tds.sh [FILE.pcap [PORT]]
#
# Without FILE, a synthetic capture is generated first (about MB megabytes, default 200), of one
# of two kinds (BENCH):
#   BENCH=full (default): cargo run --release -p dbtap-tds --example tds_synth -- --bench FILE MB
#     the spec-true `full_session` conversation of protocols/tds/tests/synth repeated on
#     thousands of connections (login, a multi-packet result set with every column type, errors,
#     sp_executesql with every parameter type, sp_prepexec / sp_execute, an Attention): every
#     feature at once, a worst case per byte;
#   BENCH=oltp: ... --example tds_synth -- --bench-oltp FILE MB
#     four pooled connections running sysbench oltp_read_write transactions as the JDBC driver
#     sends them (sp_prepexec once per statement, then sp_execute; TM begin/commit): the TDS
#     twin of the MySQL bench's sysbench capture.
#
# 1. cat FILE > /dev/null      once to warm the page cache, then timed RUNS times (median)
# 2. dbtap replay FILE --records OUT.jsonl --summary json       timed RUNS times (median)
# 3. tshark -r FILE -d tcp.port==PORT,tds -Y 'tds.query || tds.rpc.proc_id'
#          -T fields -e tds.query -e tds.rpc.proc_id                            timed once
# and prints seconds, MB/s, the records each found, and the ratios dbtap vs tshark and dbtap vs
# cat. dbtap's statements are its `query` + `rpc` records; tshark's are its lines with a SQL
# batch text (tds.query) or an RPC by ProcID (tds.rpc.proc_id: sp_executesql, sp_prepexec,
# sp_execute, …; tshark has no field for the text inside them, nor one line per RPC of a
# message that holds several).
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
    case "${BENCH:-full}" in
        full) KIND=--bench ;;
        oltp) KIND=--bench-oltp ;;
        *) say "BENCH must be full or oltp"; exit 1 ;;
    esac
    (cd "$ROOT" && cargo run -q --release -p dbtap-tds --example tds_synth -- "$KIND" "$FILE" "${MB:-200}") >&2 \
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
[[ $((BATCHES + RPCS)) -gt 0 ]] || { say "dbtap wrote no TDS query or rpc records"; exit 1; }

timed tshark -r "$FILE" -d "tcp.port==$PORT,tds" -Y 'tds.query || tds.rpc.proc_id' \
    -T fields -E separator=/t -e tds.query -e tds.rpc.proc_id \
    >"$WORK/tshark.out" 2>"$WORK/tshark.log" || { say "tshark failed"; tail -n 5 "$WORK/tshark.log" >&2; exit 1; }
TSHARK_S="$LAST_SECONDS"
# Field 1 is the batch text (a text may hold tabs: only the last field is certain).
TSHARK_RPC="$(awk -F'\t' '$NF != ""' "$WORK/tshark.out" | wc -l)"
TSHARK_N="$(( $(wc -l <"$WORK/tshark.out") - TSHARK_RPC ))"
say "tshark: $TSHARK_S s, $TSHARK_N tds.query + $TSHARK_RPC tds.rpc.proc_id lines"

awk -v bytes="$BYTES" -v cat_s="$CAT_S" -v dbtap_s="$DBTAP_S" -v tshark_s="$TSHARK_S" \
    -v b="$BATCHES" -v r="$RPCS" -v t="$TSHARK_N" -v tr="$TSHARK_RPC" -v file="$FILE" -v runs="$RUNS" 'BEGIN {
    printf "\n%s: %.1f MB\n\n%-8s %10s %10s %22s\n", file, bytes / 1e6, "", "seconds", "MB/s", "found"
    printf "%-8s %10.3f %10.1f\n", "cat", cat_s, bytes / 1e6 / cat_s
    printf "%-8s %10.3f %10.1f %10d query + %d rpc\n", "dbtap", dbtap_s, bytes / 1e6 / dbtap_s, b, r
    printf "%-8s %10.3f %10.1f %10d query + %d rpc\n", "tshark", tshark_s, bytes / 1e6 / tshark_s, t, tr
    printf "\n(cat and dbtap: median of %d runs on a warm file; tshark: 1 run)\n", runs
    printf "dbtap vs tshark: %.1fx faster\n", tshark_s / dbtap_s
    printf "dbtap vs cat:    %.1fx the time of reading the file\n", dbtap_s / cat_s
}'
say_paired
