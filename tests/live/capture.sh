# shellcheck shell=bash
# Shared by mariadb.sh and postgres.sh: record loopback traffic of one TCP port while a command
# runs, and say whether the capture is complete. The caller provides log, die, $TCPDUMP and
# $STATE (the server's state dir, whose env file the command gets).

# capture_port PORT OUT CMD [ARGS...]: tcpdump on lo into OUT (+ OUT.tcpdump.log, OUT.stats)
# while CMD runs; returns CMD's status (3 when DBTAP_CAPTURE_STRICT=1 and packets were lost).
capture_port() {
    local port="$1" out="$2"; shift 2
    local err="${out}.tcpdump.log"
    local zopt=()
    # Debian's tcpdump drops to user 'tcpdump' after opening the device; keep root so it can write
    # into a private temp dir.
    [[ "$(id -u)" -eq 0 ]] && zopt=(-Z root)
    rm -f "$out"
    "$TCPDUMP" -i lo -n -s 0 -B "${DBTAP_TCPDUMP_BUFFER_KIB:-65536}" "${zopt[@]}" -w "$out" \
        "tcp port $port" 2>"$err" &
    local tpid=$! i
    # shellcheck disable=SC2064
    trap "kill -INT $tpid 2>/dev/null || true" EXIT
    # shellcheck disable=SC2064
    trap "kill -INT $tpid 2>/dev/null || true; exit 130" INT TERM HUP PIPE
    for ((i = 0; i < 100; i++)); do
        grep -q 'listening on' "$err" 2>/dev/null && break
        kill -0 "$tpid" 2>/dev/null || { cat "$err" >&2; die "tcpdump failed to start"; }
        sleep 0.1
    done
    grep -q 'listening on' "$err" || { kill -INT "$tpid" 2>/dev/null; cat "$err" >&2; die "tcpdump did not start listening"; }
    log "capturing tcp port $port on lo into $out"
    local rc=0
    (
        set -a
        # shellcheck disable=SC1091
        source "$STATE/env"
        set +a
        exec "$@"
    ) || rc=$?
    # Let the last FIN/ACKs reach the capture, and let the kernel hand over the last ring block:
    # with TPACKET_V3, packets in a block not yet retired (timeout 1 s) are lost on SIGINT.
    sleep "${DBTAP_CAPTURE_SETTLE:-2}"
    kill -INT "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    trap - EXIT INT TERM HUP PIPE
    local captured received dropped complete=1
    captured="$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$err" | tail -n1)"
    received="$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$err" | tail -n1)"
    dropped="$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$err" | tail -n1)"
    log "tcpdump: ${captured:-?} packets captured, ${received:-?} received by filter," \
        "${dropped:-?} dropped by kernel -> $out ($(stat -c %s "$out" 2>/dev/null || echo 0) bytes)"
    if [[ "${dropped:-0}" != "0" ]]; then
        log "WARNING: tcpdump reported ${dropped} packets dropped by kernel: the capture is incomplete"
        complete=0
    fi
    # On lo the kernel counts every packet twice (outgoing and incoming) and libpcap keeps one.
    if [[ -n "$captured" && -n "$received" && $((captured * 2)) -lt "$received" ]]; then
        log "WARNING: tcpdump wrote $captured packets but the kernel passed $((received / 2))" \
            "(lo counts each twice): the capture is incomplete"
        complete=0
    fi
    cat >"${out}.stats" <<EOF
TCPDUMP_CAPTURED=${captured:-}
TCPDUMP_RECEIVED=${received:-}
TCPDUMP_DROPPED=${dropped:-}
TCPDUMP_COMPLETE=$complete
EOF
    if [[ $complete -eq 0 && "${DBTAP_CAPTURE_STRICT:-0}" == "1" && $rc -eq 0 ]]; then
        rc=3
    fi
    return $rc
}
