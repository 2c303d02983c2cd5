#!/usr/bin/env bash
# dbtap replay vs tshark vs cat on the same warm PostgreSQL capture file (the PostgreSQL twin of
# benches/compare-tshark.sh, which stays MySQL-only).
#
#   benches/compare-tshark-pg.sh FILE.pcap [PORT]
#
# 1. cat FILE > /dev/null      once to warm the page cache, then timed RUNS times (median)
# 2. dbtap replay FILE --records OUT.jsonl --summary json       timed RUNS times (median)
# 3. tshark -r FILE -d tcp.port==PORT,pgsql -Y pgsql.query -T fields -e pgsql.query
#                                                               timed once (it is slow); its
#                                                               output lines are counted
# and prints seconds, MB/s, packets/s and statements/s, how many statements each found, and the
# ratios dbtap vs tshark and dbtap vs cat.
# Each dbtap run is paired with a cat run just before it, and the median of the per-pair ratios
# is printed as well: on a shared machine whose speed drifts, it compares like with like.
# The statements in the file come from FILE.pgbench.json (written by make-pgbench-capture.sh:
# pgbench transactions x 7); dbtap's are its `query` + `execute` records; tshark's are the lines
# of pgsql.query, i.e. the Query and Parse messages: with pgbench -M prepared a statement is
# parsed once per connection and then only bound and executed, so tshark sees only those parses.
# When FILE.pgbench.json is there, dbtap's records are also checked with
# tests/live/pg_compare.py --pgbench (exactly transactions x 1 of each statement kind).
# PORT (the PostgreSQL server port) comes from FILE.port, else from the capture (the port common
# to the most packets), unless given.
#
# Settings: DBTAP (default target/release/dbtap; build it with `cargo build --release`),
#           DBTAP_ARGS (extra replay arguments, e.g. "--workers 2"), RUNS (3),
#           KEEP=1 keeps the records and logs (their dir is printed).
# Exit: 0 ok, 1 failure (dbtap failing, or writing no PostgreSQL statement records, or its
#       records failing the pgbench check, is reported and makes the exit 1), 77 skipped (tshark
#       missing and not installable; 1 under CI=true).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PGS="$ROOT/tests/live/postgres.sh"

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
fi
FILE="$1"
PORT="${2:-}"
RUNS="${RUNS:-3}"
DBTAP="${DBTAP:-$ROOT/target/release/dbtap}"
[[ -r "$FILE" ]] || { echo "compare-tshark-pg: cannot read $FILE" >&2; exit 1; }

say() { echo "compare-tshark-pg: $*" >&2; }

"$PGS" deps tshark || exit $?
command -v capinfos >/dev/null 2>&1 || { "$PGS" deps bench || exit $?; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/dbtap-bench-pg.XXXXXX")"
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
if [[ -z "$PORT" && -f "$FILE.port" ]]; then
    PORT="$(sed -n 's/^PORT=\([0-9]*\)$/\1/p' "$FILE.port")"
    [[ -n "$PORT" ]] && say "server port from $FILE.port: $PORT"
fi
if [[ -z "$PORT" ]]; then
    # The server port is the one end that all the capture's flows share.
    PORT="$(tshark -r "$FILE" -c 5000 -T fields -e tcp.srcport -e tcp.dstport 2>/dev/null \
        | tr '\t' '\n' | grep -E '^[0-9]+$' | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')"
    [[ -n "$PORT" ]] || { say "could not detect the server port: give it as the second argument"; exit 1; }
    say "server port detected from the capture: $PORT"
fi
STATEMENTS="" TRANSACTIONS="" MODE=""
if [[ -f "$FILE.pgbench.json" ]]; then
    STATEMENTS="$(sed -n 's/.*"statements": *\([0-9]*\).*/\1/p' "$FILE.pgbench.json")"
    TRANSACTIONS="$(sed -n 's/.*"transactions": *\([0-9]*\).*/\1/p' "$FILE.pgbench.json")"
    MODE="$(sed -n 's/.*"mode": *"\([a-z]*\)".*/\1/p' "$FILE.pgbench.json")"
fi
say "$FILE: $BYTES bytes, $PACKETS packets${STATEMENTS:+, $STATEMENTS statements (pgbench -M $MODE: $TRANSACTIONS transactions x 7)}"

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
DBTAP_S="" DBTAP_STMTS="" RECORDS="" DBTAP_OK=1 CHECK=""
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
        # A cat run just before: the pair sees the machine in the same state (see say_paired).
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
        # Compact JSON, fixed field order: protocol comes before op, op before sql.
        DBTAP_STMTS="$(grep -cE '"protocol":"postgresql",.*"op":"(query|execute)","sql"' "$WORK/records.jsonl")"
        say "dbtap:  ${DBTAP_T[*]} s -> median $DBTAP_S s, $RECORDS records, $DBTAP_STMTS PostgreSQL query/execute records"
        if [[ "$DBTAP_STMTS" -eq 0 ]]; then
            say "dbtap wrote no PostgreSQL statement records (is the PostgreSQL parser registered?)"
            DBTAP_OK=0
        elif [[ -f "$FILE.pgbench.json" ]]; then
            PY="$(command -v python3 || true)"
            if [[ -n "$PY" ]]; then
                "$PY" "$ROOT/tests/live/pg_compare.py" --pgbench "$FILE.pgbench.json" \
                    "$WORK/records.jsonl" >"$WORK/check.log" 2>&1
                rc=$?
                CHECK="$(tail -n 1 "$WORK/check.log")"
                if [[ $rc -ne 0 ]]; then
                    sed 's/^/  /' "$WORK/check.log" >&2
                    DBTAP_OK=0
                fi
            fi
        fi
    fi
fi

# 3. tshark, once.
TSHARK_S="" TSHARK_STMTS=""
timed tshark -r "$FILE" -d "tcp.port==$PORT,pgsql" -Y pgsql.query -T fields -e pgsql.query \
    >"$WORK/tshark.out" 2>"$WORK/tshark.log"
rc=$?
if [[ $rc -ne 0 ]]; then
    say "tshark failed (exit $rc):"; tail -n 5 "$WORK/tshark.log" >&2
else
    TSHARK_S="$LAST_SECONDS"
    TSHARK_STMTS="$(wc -l <"$WORK/tshark.out")"
    say "tshark: $TSHARK_S s, $TSHARK_STMTS pgsql.query lines"
fi
rm -f "$WORK/tshark.out"

# The table.
awk -v bytes="$BYTES" -v packets="${PACKETS:-0}" -v stmts="${STATEMENTS:-}" \
    -v dbtap_n="${DBTAP_STMTS:-}" -v tshark_n="${TSHARK_STMTS:-}" -v records="${RECORDS:-}" \
    -v cat_s="$CAT_S" -v dbtap_s="$DBTAP_S" -v tshark_s="$TSHARK_S" -v runs="$RUNS" \
    -v file="$FILE" -v port="$PORT" -v mode="${MODE:-?}" -v txs="${TRANSACTIONS:-}" \
    -v workers="${DBTAP_ARGS:-default workers}" -v dbtap_valid="$DBTAP_OK" '
function row(name, s, n,   mbs, pps, sps, found) {
    if (s == "") { printf "%-8s %10s\n", name, "n/a"; return }
    mbs = (s > 0) ? bytes / 1e6 / s : 0
    pps = (s > 0) ? packets / s : 0
    sps = (n != "" && s > 0) ? sprintf("%14.0f", n / s) : sprintf("%14s", "")
    found = ""
    if (n != "") {
        found = sprintf("%12d", n)
        if (stmts != "" && stmts > 0) found = found sprintf(" (%5.1f%%)", 100 * n / stmts)
    }
    printf "%-8s %10.3f %10.1f %14.0f %s %s\n", name, s, mbs, pps, sps, found
}
BEGIN {
    printf "\n%s: %.1f MB, %d packets, server port %s", file, bytes / 1e6, packets, port
    if (stmts != "") printf ", %d statements (pgbench -M %s: %d transactions x 7)", stmts, mode, txs
    printf "\n\n%-8s %10s %10s %14s %14s %12s\n", "", "seconds", "MB/s", "packets/s", "statements/s", "statements"
    row("cat", cat_s, "")
    row("dbtap", dbtap_s, dbtap_n)
    row("tshark", tshark_s, tshark_n)
    printf "\n(cat and dbtap: median of %d runs on a warm file; tshark: 1 run; dbtap: %s", runs, workers
    if (records != "") printf ", %d records in all", records
    printf ")\n(dbtap statements: its query + execute records; tshark statements: lines of pgsql.query, i.e. Query and Parse messages)\n"
    if (dbtap_s != "" && dbtap_n == 0)
        printf "dbtap wrote no PostgreSQL statement records: its time is not comparable (no ratios)\n"
    else if (dbtap_s != "" && dbtap_s > 0) {
        if (!dbtap_valid) printf "(dbtap records failed the check below: the ratios are indicative only)\n"
        if (tshark_s != "") printf "dbtap vs tshark: %.1fx faster\n", tshark_s / dbtap_s
        if (cat_s > 0) printf "dbtap vs cat:    %.1fx the time of reading the file\n", dbtap_s / cat_s
    }
    if (tshark_n != "" && dbtap_n != "" && tshark_n > 0)
        printf "statements found: dbtap %d, tshark %d (%.1fx)\n", dbtap_n, tshark_n, dbtap_n / tshark_n
}'
[[ $DBTAP_OK -eq 1 ]] && say_paired
[[ -n "$CHECK" ]] && echo "pgbench check (tests/live/pg_compare.py --pgbench): $CHECK"
if [[ -f "$WORK/summary.json" ]]; then
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
