#!/usr/bin/env bash
# Records real Oracle client bytes against the scripted responder on loopback:
#   python-oracledb (thin mode, pure Python, unmodified): login with program/machine/terminal,
#   a SELECT with binds of several types, an UPDATE, an executemany INSERT, ORA-00942, a
#   SELECT and the UPDATE re-executed by cursor id (statement cache), close-cursor piggy-backs,
#   commit, logoff; then a login with a wrong password (ORA-01017); the same script twice: against a
#   19c-like server (TNS 318, TTC field version 13), then a 23ai-like one (TNS 319, fast
#   authentication, end-of-response, field version 24)
# and writes OUT_DIR/live_thin.pcap. Not run by CI: the capture it made is committed under
# fixtures/tns/live_thin_session/ (its README says how it was checked).
#
#   tests/live/tns/record.sh OUT_DIR
# Needs: tcpdump, python3 with oracledb and cryptography (pip install oracledb cryptography).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: record.sh OUT_DIR}"
PY="${PYTHON:-python3}"
PORT=1521
mkdir -p "$OUT"

tcpdump -i lo -U -s 0 -w "$OUT/live_thin.pcap" "tcp port $PORT" >/dev/null 2>&1 &
dump=$!
sleep 1
for profile in 19c 23ai; do
    "$PY" "$HERE/responder.py" "$PORT" 2 "$profile" &
    srv=$!
    sleep 0.5
    "$PY" "$HERE/thin_client.py" "$PORT"
    wait "$srv"
done
sleep 1
kill "$dump"
wait "$dump" 2>/dev/null || true
ls -l "$OUT"
