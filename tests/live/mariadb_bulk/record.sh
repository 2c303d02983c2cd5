#!/usr/bin/env bash
# Records MariaDB Connector/Python's executemany() — sent as COM_STMT_BULK_EXECUTE — against a
# real MariaDB server on loopback (tests/live/mariadb.sh), and writes OUT_DIR/mariadb_bulk.pcap.
# Not run by CI: the capture it made is committed as fixtures/mysql/mariadb_bulk_execute/ (its
# README says what the client did and what the records must show).
#
#   tests/live/mariadb_bulk/record.sh OUT_DIR
#
# Needs, besides what mariadb.sh installs: the `mariadb` Python package (MariaDB Connector/
# Python; `apt-get install libmariadb-dev` then `pip install mariadb`).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:?usage: record.sh OUT_DIR}"
mkdir -p "$OUT"
python3 -c 'import mariadb' 2>/dev/null || {
    echo "record.sh: the mariadb Python package is missing (apt-get install libmariadb-dev; pip install mariadb)" >&2
    exit 1
}
"$HERE/../mariadb.sh" start
trap '"$HERE/../mariadb.sh" stop' EXIT
# shellcheck disable=SC1090
source <("$HERE/../mariadb.sh" env)
"$HERE/../mariadb.sh" capture "$OUT/mariadb_bulk.pcap" \
    python3 "$HERE/bulk_client.py" "$DBTAP_LIVE_HOST" "$DBTAP_LIVE_PORT" \
    "$DBTAP_LIVE_NATIVE_USER" "$DBTAP_LIVE_NATIVE_PW" "$DBTAP_LIVE_DB"
