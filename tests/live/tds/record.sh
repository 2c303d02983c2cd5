#!/usr/bin/env bash
# Records real SQL Server client bytes against the scripted responder on loopback:
#   python-tds (pytds): SQL batches, sp_executesql with typed parameters, an error, a procedure call
#   FreeTDS tsql: SQL batches (one with Chinese text), an error; a refused login (user baduser)
# and writes OUT_DIR/live_pytds.pcap, OUT_DIR/live_tsql.pcap. Not run by CI: the captures it made
# are committed under fixtures/tds/ (their READMEs say how they were checked).
#
#   tests/live/tds/record.sh OUT_DIR
# Needs: tcpdump, python3 with python-tds (pip install python-tds), FreeTDS tsql (freetds-bin).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: record.sh OUT_DIR}"
mkdir -p "$OUT"

record() { # name port command...
    local name="$1" port="$2"; shift 2
    tcpdump -i lo -U -s 0 -w "$OUT/$name.pcap" "tcp port $port" >/dev/null 2>&1 &
    local dump=$!
    sleep 1
    "$@"
    sleep 1
    kill "$dump"
    wait "$dump" 2>/dev/null || true
}

pytds_session() {
    python3 "$HERE/responder.py" 14330 1 &
    local srv=$!
    sleep 0.5
    python3 "$HERE/pytds_client.py" 14330
    wait "$srv"
}

tsql_session() {
    python3 "$HERE/responder.py" 14331 2 &
    local srv=$!
    sleep 0.5
    printf 'select id, name from dbo.patient where ward = N%s\ngo\nupdate dbo.beds set free = 1 where id = 3\ngo\nselect * from no_such_table\ngo\nexit\n' "'内科'" \
        | TDSVER=7.4 tsql -H 127.0.0.1 -p 14331 -U his_user -P 'Sup3r$ecret' -D EMR
    printf 'exit\n' | TDSVER=7.4 tsql -H 127.0.0.1 -p 14331 -U baduser -P 'wrong' -D EMR || true
    wait "$srv"
}

record live_pytds 14330 pytds_session
record live_tsql 14331 tsql_session
ls -l "$OUT"
