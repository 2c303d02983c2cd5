#!/usr/bin/env bash
# Records real SQL Server client bytes against the scripted responder on loopback:
#   python-tds (pytds): SQL batches, sp_executesql with typed parameters, an error, a procedure call
#   FreeTDS tsql: SQL batches (one with Chinese text), an error; a refused login (user baduser)
#   FreeTDS freebcp: a 3-row character-mode load into dbo.patient (metadata queries, INSERT BULK,
#   Bulk Load message); a refused login (user baduser)
# and writes OUT_DIR/live_pytds.pcap, OUT_DIR/live_tsql.pcap, OUT_DIR/live_freebcp.pcap. Not run
# by CI: the captures it made are committed under fixtures/tds/ (their READMEs say how they were
# checked).
#
#   tests/live/tds/record.sh OUT_DIR [pytds] [tsql] [freebcp]    (no name: all three)
# Needs: tcpdump, python3 with python-tds (pip install python-tds), FreeTDS tsql and freebcp
# (freetds-bin), a UTF-8 locale (freebcp converts the data file from the client charset).
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

freebcp_session() {
    python3 "$HERE/responder.py" 14332 2 bcp &
    local srv=$!
    local data
    data="$(mktemp)"
    # freebcp -c: tab-separated fields, one row a line; an empty field is NULL
    printf '1\t张三\t内科\t2024-03-01 08:00:00\tallergic to penicillin\n2\tJosé Pérez\t外科\t\t\n3\t李四\t\t2024-03-02 09:30:00\t\n' >"$data"
    sleep 0.5
    TDSVER=7.4 freebcp dbo.patient in "$data" -c -S 127.0.0.1:14332 -U his_etl -P 'Bcp$ecret9' -D EMR
    TDSVER=7.4 freebcp dbo.patient in "$data" -c -S 127.0.0.1:14332 -U baduser -P 'N0tTheP@ss' -D EMR || true
    rm -f "$data"
    wait "$srv"
}

shift
SESSIONS=("$@")
want() { [ "${#SESSIONS[@]}" -eq 0 ] || [[ " ${SESSIONS[*]} " == *" $1 "* ]]; }
if want pytds; then record live_pytds 14330 pytds_session; fi
if want tsql; then record live_tsql 14331 tsql_session; fi
if want freebcp; then record live_freebcp 14332 freebcp_session; fi
ls -l "$OUT"
