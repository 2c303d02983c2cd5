#!/usr/bin/env bash
# dbtap replay vs tshark vs cat on the same warm capture file.
#
#   benches/compare-tshark.sh FILE.pcap [PORT]
#
# 1. cat FILE > /dev/null      once to warm the page cache, then timed 3x (median)
# 2. dbtap replay FILE --records OUT.jsonl --summary json       timed 3x (median)
# 3. tshark -r FILE -d tcp.port==PORT,mysql -Y mysql.query -T fields -e mysql.query > /dev/null
#                                                               timed once (it is slow)
# and prints seconds, MB/s, packets/s and records/s, with the ratios dbtap vs tshark and dbtap vs cat.
# Each dbtap run is paired with a cat run just before it, and the median of the per-pair ratios
# is printed as well: on a shared machine whose speed drifts, it compares like with like.
# PORT (the MySQL server port) is detected from the capture (the port common to the most packets)
# unless given.
#
# Settings: DBTAP (default target/release/dbtap; build it with `cargo build --release`),
#           DBTAP_ARGS (extra replay arguments, e.g. "--workers 2"), RUNS (3),
#           KEEP=1 keeps the records and logs (their dir is printed).
# Exit: 0 ok, 1 failure (dbtap failing is reported in the table and makes the exit 1),
#       77 skipped (tshark missing and not installable; 1 under CI=true).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
MDB="$ROOT/tests/live/mariadb.sh"

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
fi
FILE="$1"
PORT="${2:-}"
RUNS="${RUNS:-3}"
DBTAP="${DBTAP:-$ROOT/target/release/dbtap}"
[[ -r "$FILE" ]] || { echo "compare-tshark: cannot read $FILE" >&2; exit 1; }

say() { echo "compare-tshark: $*" >&2; }

"$MDB" deps tshark || exit $?
command -v capinfos >/dev/null 2>&1 || { "$MDB" deps bench || exit $?; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/dbtap-bench.XXXXXX")"
cleanup() {
    if [[ "${KEEP:-0}" == "1" ]]; then say "records and logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Wall time of a command, in seconds (bash's microsecond clock; no /usr/bin/time needed).
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
PACKETS="$(capinfos -M -c "$FILE" 2>/dev/null | awk -F: '/Number of packets/ { gsub(/[^0-9]/, "", $2); print $2 }')"
if [[ -z "$PORT" ]]; then
    # The server port is the one end that all the capture's flows share.
    PORT="$(tshark -r "$FILE" -c 5000 -T fields -e tcp.srcport -e tcp.dstport 2>/dev/null \
        | tr '\t' '\n' | grep -E '^[0-9]+$' | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')"
    [[ -n "$PORT" ]] || { say "could not detect the server port: give it as the second argument"; exit 1; }
    say "server port detected from the capture: $PORT"
fi
say "$FILE: $BYTES bytes, $PACKETS packets"

# 1. cat: warm-up, then timed.
cat "$FILE" >/dev/null
CAT_T=()
for ((i = 1; i <= RUNS; i++)); do
    timed cat "$FILE" >/dev/null
    CAT_T+=("$LAST_SECONDS")
done
CAT_S="$(median "${CAT_T[@]}")"
say "cat:    ${CAT_T[*]} s -> median $CAT_S s"

# 2. dbtap.
DBTAP_S="" RECORDS="" DBTAP_OK=1
if [[ ! -x "$DBTAP" ]]; then
    say "no dbtap binary at $DBTAP (build it: cargo build --release): dbtap not measured"
    DBTAP_OK=0
else
    DBTAP_T=()
    for ((i = 1; i <= RUNS; i++)); do
        rm -f "$WORK/records.jsonl"
        # The previous run's records (hundreds of MB) must not be written back to disk during
        # this run: that is the machine's work, not this run's.
        sync
        # A cat run just before: the pair sees the machine in the same state (see PAIRED below).
        timed cat "$FILE" >/dev/null
        PAIR_CAT="$LAST_SECONDS"
        # shellcheck disable=SC2086
        timed "$DBTAP" replay "$FILE" --records "$WORK/records.jsonl" --summary json \
            --summary-file "$WORK/summary.json" --progress never ${DBTAP_ARGS:-} \
            >"$WORK/dbtap.log" 2>&1
        rc=$?
        if [[ $rc -ne 0 ]]; then
            say "dbtap replay failed (exit $rc):"
            tail -n 20 "$WORK/dbtap.log" >&2
            DBTAP_OK=0
            break
        fi
        DBTAP_T+=("$LAST_SECONDS")
        PAIRED+=("$(awk -v d="$LAST_SECONDS" -v c="$PAIR_CAT" 'BEGIN { printf "%.2f", (c > 0) ? d / c : 0 }')")
    done
    if [[ $DBTAP_OK -eq 1 ]]; then
        DBTAP_S="$(median "${DBTAP_T[@]}")"
        RECORDS="$(wc -l <"$WORK/records.jsonl")"
        say "dbtap:  ${DBTAP_T[*]} s -> median $DBTAP_S s, $RECORDS records"
    fi
fi

# 3. tshark, once.
TSHARK_S=""
timed tshark -r "$FILE" -d "tcp.port==$PORT,mysql" -Y mysql.query -T fields -e mysql.query \
    >/dev/null 2>"$WORK/tshark.log"
rc=$?
if [[ $rc -ne 0 ]]; then
    say "tshark failed (exit $rc):"; tail -n 5 "$WORK/tshark.log" >&2
else
    TSHARK_S="$LAST_SECONDS"
    say "tshark: $TSHARK_S s"
fi

# The table.
awk -v bytes="$BYTES" -v packets="${PACKETS:-0}" -v records="${RECORDS:-}" \
    -v cat_s="$CAT_S" -v dbtap_s="$DBTAP_S" -v tshark_s="$TSHARK_S" -v runs="$RUNS" \
    -v file="$FILE" -v port="$PORT" -v workers="${DBTAP_ARGS:-default workers}" '
function row(name, s, rec,   mbs, pps, rps) {
    if (s == "") { printf "%-8s %10s %10s %14s %14s\n", name, "n/a", "", "", ""; return }
    mbs = (s > 0) ? bytes / 1e6 / s : 0
    pps = (s > 0) ? packets / s : 0
    rps = (rec != "" && s > 0) ? sprintf("%14.0f", rec / s) : sprintf("%14s", "")
    printf "%-8s %10.3f %10.1f %14.0f %s\n", name, s, mbs, pps, rps
}
BEGIN {
    printf "\n%s: %.1f MB, %d packets, server port %s\n\n", file, bytes / 1e6, packets, port
    printf "%-8s %10s %10s %14s %14s\n", "", "seconds", "MB/s", "packets/s", "records/s"
    row("cat", cat_s, "")
    row("dbtap", dbtap_s, records)
    row("tshark", tshark_s, "")
    printf "\n(cat and dbtap: median of %d runs on a warm file; tshark: 1 run; dbtap: %s", runs, workers
    if (records != "") printf ", %d records", records
    printf ")\n"
    if (dbtap_s != "" && dbtap_s > 0) {
        if (tshark_s != "") printf "dbtap vs tshark: %.1fx faster\n", tshark_s / dbtap_s
        if (cat_s > 0) printf "dbtap vs cat:    %.1fx the time of reading the file\n", dbtap_s / cat_s
    }
}'
[[ $DBTAP_OK -eq 1 ]] && say_paired
if [[ $DBTAP_OK -eq 1 && -f "$WORK/summary.json" ]]; then
    echo
    echo "dbtap summary (last run): $WORK/summary.json$([[ "${KEEP:-0}" == 1 ]] || echo ' (removed; KEEP=1 keeps it)')"
    python3 - "$WORK/summary.json" <<'PY' 2>/dev/null || true
import json, sys
s = json.load(open(sys.argv[1]))
keys = ["frames", "records", "flows", "sessions", "workers", "elapsed_s", "mb_per_s", "parse_errors"]
print("  " + ", ".join(f"{k}={json.dumps(s[k])}" for k in keys if k in s))
anom = (s.get("engine") or {}).get("anomalies")
if anom:
    print(f"  anomalies: {json.dumps(anom)}")
PY
fi
[[ $DBTAP_OK -eq 1 && -n "$TSHARK_S" ]]
