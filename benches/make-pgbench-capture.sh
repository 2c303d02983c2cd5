#!/usr/bin/env bash
# Make a PostgreSQL benchmark capture: pgbench (tpcb-like, several clients) against a throwaway
# PostgreSQL over loopback TCP, captured with tcpdump (-s 0 -B 65536).
#
#   benches/make-pgbench-capture.sh OUT.pcap [SECONDS]
#
# Without SECONDS the run stops after PGBENCH_TRANSACTIONS transactions in all (default 70000:
# about 130 MB and 490k statements in prepared mode, ~1.9 KB per transaction, whatever the
# machine's speed). With SECONDS it runs that long (-T) instead. The tables (scale PGBENCH_SCALE)
# are made before the capture starts. pgbench's tpcb-like transaction is 7 statements (BEGIN;
# UPDATE pgbench_accounts; SELECT abalance; UPDATE pgbench_tellers; UPDATE pgbench_branches;
# INSERT INTO pgbench_history; END), so statements = transactions x 7.
# Settings: PGBENCH_MODE (prepared: Parse once per connection, then Bind/Execute; extended: Parse
#           every time; simple: text queries), PGBENCH_CLIENTS (4), PGBENCH_JOBS (2),
#           PGBENCH_SCALE (10), PGBENCH_TRANSACTIONS (70000, in all; rounded up to a multiple of
#           the clients).
# Writes OUT.pcap, OUT.pcap.port (PORT=...), OUT.pcap.pgbench.log, OUT.pcap.pgbench.json (mode,
# transactions, statements, clients, port: read by benches/compare-tshark-pg.sh and
# tests/live/pg_compare.py --pgbench) and OUT.pcap.tcpdump.log.
# Put the output under bench-data/ (git-ignored): captures are never committed.
# Exit: 0 ok, 1 failure (also: packets dropped by the kernel), 77 skipped (component missing and
# not installable; 1 under CI=true).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PGS="$ROOT/tests/live/postgres.sh"

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
fi
OUT="$1"
SECONDS_RUN="${2:-}"
MODE="${PGBENCH_MODE:-prepared}"
CLIENTS="${PGBENCH_CLIENTS:-4}"
JOBS="${PGBENCH_JOBS:-2}"
SCALE="${PGBENCH_SCALE:-10}"
TOTAL="${PGBENCH_TRANSACTIONS:-70000}"
PER_CLIENT=$(((TOTAL + CLIENTS - 1) / CLIENTS))

mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dbtap-pgbench.XXXXXX")"
export DBTAP_PG_STATE="$WORK/server"

say() { echo "make-pgbench-capture: $*" >&2; }
cleanup() {
    "$PGS" stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

rc=0
"$PGS" deps server capture bench || rc=$?
[[ $rc -eq 0 ]] || exit "$rc"
PGBENCH="$("$PGS" bin pgbench)"
# No SSL: every byte of the benchmark must be readable.
DBTAP_PG_SSL=0 "$PGS" start >/dev/null
# shellcheck disable=SC1091
source "$DBTAP_PG_STATE/env"
PORT="$DBTAP_PG_PORT"
export PGPASSWORD="$DBTAP_PG_BENCH_PW" PGSSLMODE=disable PGGSSENCMODE=disable
PGB=("$PGBENCH" -h 127.0.0.1 -p "$PORT" -U "$DBTAP_PG_BENCH_USER")

say "pgbench -i -s $SCALE (not captured)"
"${PGB[@]}" -i -s "$SCALE" -q "$DBTAP_PG_BENCH_DB" >"$WORK/init.log" 2>&1 \
    || { tail -n 20 "$WORK/init.log" >&2; say "pgbench -i failed"; exit 1; }

if [[ -n "$SECONDS_RUN" ]]; then
    LIMIT=(-T "$SECONDS_RUN"); LIMIT_TEXT="$SECONDS_RUN s"
else
    LIMIT=(-t "$PER_CLIENT"); LIMIT_TEXT="$((PER_CLIENT * CLIENTS)) transactions ($PER_CLIENT per client)"
fi
say "capturing pgbench -M $MODE: $CLIENTS clients, $JOBS threads, $LIMIT_TEXT, scale $SCALE, port $PORT"
rc=0
DBTAP_CAPTURE_STRICT=1 "$PGS" capture "$OUT" "${PGB[@]}" -M "$MODE" -c "$CLIENTS" -j "$JOBS" \
    "${LIMIT[@]}" -P 10 "$DBTAP_PG_BENCH_DB" >"$WORK/run.log" 2>&1 || rc=$?
cat "$WORK/run.log" >&2
cp "$WORK/run.log" "$OUT.pgbench.log"
# shellcheck disable=SC1091
source "$OUT.stats"
rm -f "$OUT.stats"
if [[ $rc -ne 0 && ! ($rc -eq 3 && "${TCPDUMP_COMPLETE:-0}" == "0") ]]; then
    say "pgbench run (or the capture) failed (exit $rc)"
    exit 1
fi
TXS="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/run.log")"
FAILED="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK/run.log")"
[[ -n "$TXS" ]] || { say "no 'number of transactions actually processed' in pgbench's output"; exit 1; }
STATEMENTS=$((TXS * 7))
printf '{"mode": "%s", "transactions": %d, "statements": %d, "clients": %d, "failed": %d, "port": %d, "scale": %d}\n' \
    "$MODE" "$TXS" "$STATEMENTS" "$CLIENTS" "${FAILED:-0}" "$PORT" "$SCALE" >"$OUT.pgbench.json"
echo "PORT=$PORT" >"$OUT.port"

BYTES="$(stat -c %s "$OUT")"
PACKETS="$(capinfos -M -c "$OUT" 2>/dev/null | awk -F: '/Number of packets/ { gsub(/[^0-9]/, "", $2); print $2 }')"
echo
echo "capture:    $OUT"
echo "size:       $BYTES bytes ($(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1e6 }') MB), ${PACKETS:-?} packets"
echo "server:     PostgreSQL $DBTAP_PG_SERVER_VERSION on 127.0.0.1:$PORT (dbtap must detect PostgreSQL by content: not 5432)"
echo "workload:   pgbench tpcb-like -M $MODE, $CLIENTS clients, $JOBS threads, $LIMIT_TEXT, scale $SCALE"
grep -E '^number of transactions actually processed|^number of failed transactions|^latency average|^tps' \
    "$WORK/run.log" | sed 's/^/pgbench:    /'
echo "statements: $STATEMENTS = $TXS transactions x 7"
if [[ "${TCPDUMP_DROPPED:-}" == "0" && "${TCPDUMP_COMPLETE:-0}" == "1" ]]; then
    echo "tcpdump:    ${TCPDUMP_CAPTURED} packets captured, 0 packets dropped by kernel: the capture is complete"
else
    echo "tcpdump:    ${TCPDUMP_CAPTURED:-?} packets captured, ${TCPDUMP_DROPPED:-?} packets DROPPED by kernel (received by filter ${TCPDUMP_RECEIVED:-?}, lo counts each twice): the capture is INCOMPLETE"
fi
capinfos -c -s -d -u -x -y -i -M "$OUT" | sed 's/^/capinfos:   /'
if [[ "${TCPDUMP_DROPPED:-}" != "0" || "${TCPDUMP_COMPLETE:-0}" != "1" ]]; then
    exit 1
fi
if [[ "${FAILED:-0}" != "0" ]]; then
    say "pgbench reported $FAILED failed transactions"
    exit 1
fi
