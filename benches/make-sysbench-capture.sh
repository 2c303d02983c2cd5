#!/usr/bin/env bash
# Make a benchmark capture: sysbench oltp_read_write against a throwaway MariaDB over loopback TCP,
# captured with tcpdump (-s 0 -B 65536).
#
#   benches/make-sysbench-capture.sh OUT.pcap [SECONDS]
#
# Without SECONDS the run stops after SYSBENCH_EVENTS transactions (default 4600: about 200 MB,
# ~43.7 KB per transaction, whatever the machine's speed; at most 120 s). With SECONDS it runs that
# long (the 2-core reference machine does 500-900 transactions/s, 20-40 MB/s, depending on load).
# The dataset (4 tables x 10 000 rows) is prepared before the capture starts.
# Settings: SYSBENCH_TEST (oltp_read_write; e.g. oltp_point_select for many tiny statements),
#           SYSBENCH_THREADS (4), SYSBENCH_TABLES (4), SYSBENCH_TABLE_SIZE (10000),
#           SYSBENCH_PS_MODE (auto: server-side prepared statements, as sysbench does by default;
#           disable: text protocol).
# Put the output under bench-data/ (git-ignored): captures are never committed.
# Exit: 0 ok, 1 failure, 77 skipped (component missing and not installable; 1 under CI=true).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
MDB="$ROOT/tests/live/mariadb.sh"

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
fi
OUT="$1"
if [[ $# -ge 2 ]]; then
    SECONDS_RUN="$2"
    EVENTS="${SYSBENCH_EVENTS:-0}"
else
    SECONDS_RUN=120
    EVENTS="${SYSBENCH_EVENTS:-4600}"
fi
TEST="${SYSBENCH_TEST:-oltp_read_write}"
THREADS="${SYSBENCH_THREADS:-4}"
TABLES="${SYSBENCH_TABLES:-4}"
TABLE_SIZE="${SYSBENCH_TABLE_SIZE:-10000}"
PS_MODE="${SYSBENCH_PS_MODE:-auto}"

mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dbtap-sysbench.XXXXXX")"
export DBTAP_LIVE_STATE="$WORK/server"
export DBTAP_LIVE_INNODB_POOL="${DBTAP_LIVE_INNODB_POOL:-512M}"

say() { echo "make-sysbench-capture: $*" >&2; }
cleanup() {
    "$MDB" stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

rc=0
"$MDB" deps server capture bench || rc=$?
[[ $rc -eq 0 ]] || exit "$rc"
"$MDB" start >/dev/null
# shellcheck disable=SC1091
source "$DBTAP_LIVE_STATE/env"
PORT="$DBTAP_LIVE_PORT"

"$MDB" sql "CREATE DATABASE sbtest; CREATE USER 'sbtest'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('sbtest'); GRANT ALL PRIVILEGES ON sbtest.* TO 'sbtest'@'%';"

SB=(sysbench "$TEST" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PORT"
    --mysql-user=sbtest --mysql-password=sbtest --mysql-db=sbtest --mysql-ssl=off
    --tables="$TABLES" --table-size="$TABLE_SIZE" --db-ps-mode="$PS_MODE")

say "preparing $TABLES tables x $TABLE_SIZE rows (not captured)"
"${SB[@]}" --threads="$THREADS" prepare >"$WORK/prepare.log" 2>&1 \
    || { tail -n 20 "$WORK/prepare.log" >&2; say "sysbench prepare failed"; exit 1; }

LIMIT="$SECONDS_RUN s"
[[ "$EVENTS" != "0" ]] && LIMIT="$EVENTS transactions (at most $SECONDS_RUN s)"
say "capturing sysbench $TEST: $THREADS threads, $LIMIT, ps-mode $PS_MODE, port $PORT"
rc=0
"$MDB" capture "$OUT" "${SB[@]}" --threads="$THREADS" --time="$SECONDS_RUN" --events="$EVENTS" \
    --report-interval=10 run >"$WORK/run.log" 2>&1 || rc=$?
cat "$WORK/run.log" >&2
cp "$WORK/run.log" "$OUT.sysbench.log"
[[ $rc -eq 0 ]] || { say "sysbench run (or the capture) failed (exit $rc)"; exit 1; }

# shellcheck disable=SC1091
source "$OUT.stats"
echo
echo "capture:   $OUT"
echo "server:    MariaDB $DBTAP_LIVE_SERVER_VERSION on 127.0.0.1:$PORT (use --port mysql=$PORT or detection by content)"
echo "workload:  sysbench $TEST, $THREADS threads, $LIMIT, $TABLES x $TABLE_SIZE rows, ps-mode $PS_MODE"
grep -E 'transactions:|queries:' "$WORK/run.log" | sed 's/^ */sysbench:  /'
if [[ "${TCPDUMP_DROPPED:-}" == "0" && "${TCPDUMP_COMPLETE:-0}" == "1" ]]; then
    echo "tcpdump:   ${TCPDUMP_CAPTURED} packets captured, 0 packets dropped by kernel: the capture is complete"
else
    echo "tcpdump:   ${TCPDUMP_CAPTURED:-?} packets captured, ${TCPDUMP_DROPPED:-?} packets DROPPED by kernel (received by filter ${TCPDUMP_RECEIVED:-?}, lo counts each twice): the capture is INCOMPLETE"
fi
echo "PORT=$PORT" >"$OUT.port"
capinfos -c -s -d -u -x -y -i -M "$OUT" | sed 's/^/capinfos:  /'
rm -f "$OUT.stats"
if [[ "${TCPDUMP_DROPPED:-}" != "0" || "${TCPDUMP_COMPLETE:-0}" != "1" ]]; then
    exit 1
fi
