#!/usr/bin/env bash
# Records a PyMySQL session with CLIENT_MULTI_STATEMENTS (several statements per COM_QUERY, an
# error in the middle of one) against a real MariaDB server on loopback (tests/live/mariadb.sh),
# and writes OUT_DIR/multi_statements.pcap. Not run by CI: the capture it made is committed as
# fixtures/mysql/multi_statements/ (its README says what the client did and what the records must
# show; the client prints what the server answered).
#
#   tests/live/multi_statements/record.sh OUT_DIR
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: record.sh OUT_DIR}"
mkdir -p "$OUT"
PY="$("$HERE/../mariadb.sh" python)"
"$HERE/../mariadb.sh" start
trap '"$HERE/../mariadb.sh" stop' EXIT
# shellcheck disable=SC1090
source <("$HERE/../mariadb.sh" env)
"$HERE/../mariadb.sh" capture "$OUT/multi_statements.pcap" \
    "$PY" "$HERE/multi_client.py" "$DBTAP_LIVE_HOST" "$DBTAP_LIVE_PORT" \
    "$DBTAP_LIVE_NATIVE_USER" "$DBTAP_LIVE_NATIVE_PW" "$DBTAP_LIVE_DB"
