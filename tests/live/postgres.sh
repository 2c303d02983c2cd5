#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for live-traffic tests and benchmarks, and a loopback capture
# around a client command. No systemd, no system cluster: one background postgres on 127.0.0.1 on a
# free high port (not 5432, so the sensor must detect PostgreSQL by content), with its own temp
# data directory. PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres`
# user (initdb and postgres run through runuser); as any other user it is that user's.
#
#   postgres.sh start                 initdb, start, create test roles, db dbtap_live + tables,
#                                     db dbtap_bench (for pgbench)
#   postgres.sh stop                  shut it down (fast) and remove its data dir (DBTAP_PG_KEEP=1 keeps it)
#   postgres.sh capture FILE CMD...   tcpdump -i lo 'tcp port PORT' -w FILE around CMD (its exit
#                                     code is returned), the server's settings in CMD's environment;
#                                     stopped with SIGINT + wait so FILE is flushed (as mariadb.sh)
#   postgres.sh sql 'STATEMENTS'      run SQL as superuser postgres over the unix socket (db postgres;
#                                     PGDATABASE=... for another)
#   postgres.sh env                   print the server's settings (shell syntax, for `source`)
#   postgres.sh deps WHAT...          install what is missing: server capture python pgbench tshark ssl,
#                                     bench (pgbench + capinfos)
#   postgres.sh python                print the path of the python with tests/live/requirements.txt
#   postgres.sh bin NAME              print the path of a PostgreSQL program (pgbench, psql, ...)
#
# The roles (all on 127.0.0.1 only; pg_hba.conf allows nothing else over TCP):
#   dbtap_scram  scram-sha-256 (password stored as SCRAM)     owns db dbtap_live
#   dbtap_md5    md5           (password stored as MD5)
#   dbtap_clear  password      (cleartext password exchange)
#   dbtap_bench  scram-sha-256                                 owns db dbtap_bench
# SSL: with openssl available the server has `ssl = on` and a self-signed certificate; every
# client here then must say whether it wants SSL: the environment written by `start` (and exported
# to CMD by `capture`) has PGSSLMODE=disable and PGGSSENCMODE=disable, so libpq clients stay in
# clear text unless a connection asks for sslmode=require. DBTAP_PG_SSL=0 gives `ssl = off`.
#
# Settings (environment):
#   DBTAP_PG_STATE     state dir: env file, logs (default /tmp/dbtap-pg-$UID)
#   DBTAP_PG_DATA_PARENT  where the data dir is made (default /tmp; must be reachable by the
#                      postgres user when running as root)
#   DBTAP_PG_PORT      port to try first (default: a free one in 5440..5499)
#   DBTAP_PG_SSL       1 (default when openssl is there) or 0
#   DBTAP_PG_KEEP=1    keep the data dir on stop
#   DBTAP_PG_SHARED_BUFFERS  shared_buffers (default 128MB)
#   DBTAP_LIVE_VENV    python venv for the client libraries (shared with mariadb.sh)
#   CI=true            a missing component is a failure (exit 1) instead of a skip (exit 77)
#
# Missing packages are installed with apt-get when running as root; otherwise the script prints a
# one-line reason and exits 77 (skip), or 1 under CI=true. The python venv, tcpdump and tshark
# come from mariadb.sh's `deps` (the same venv and requirements.txt).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${DBTAP_PG_STATE:-/tmp/dbtap-pg-$(id -u)}"
MDB="$HERE/mariadb.sh"
ME="postgres.sh"

# Test roles (throwaway server on loopback only).
SCRAM_USER=dbtap_scram; SCRAM_PW='scram-pw'
MD5_USER=dbtap_md5;     MD5_PW='md5-pw'
CLEAR_USER=dbtap_clear; CLEAR_PW='clear-pw'
BENCH_USER=dbtap_bench; BENCH_PW='bench-pw'
DB=dbtap_live
BENCH_DB=dbtap_bench

log() { echo "$ME: $*" >&2; }
die() { echo "$ME: ERROR: $*" >&2; exit 1; }
# shellcheck source=capture.sh
source "$HERE/capture.sh"
# A component is missing and cannot be had: skip (77), or fail under CI.
skip() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "$ME: FAIL (CI=true, component missing): $*" >&2
        exit 1
    fi
    echo "$ME: SKIP: $*" >&2
    exit 77
}

# ---------------------------------------------------------------------------------------------
# Dependencies

APT_UPDATED=0
apt_install() {
    local why="$1"; shift
    if [[ "$(id -u)" -ne 0 ]]; then
        skip "$why is missing and this is not root: cannot apt-get install $*"
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        skip "$why is missing and there is no apt-get to install $*"
    fi
    log "installing $* (apt-get) for $why"
    # Do not let the package scripts start the system cluster (postgresql@15-main) while
    # installing: the test runs its own.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    fi
    local rc=0
    if [[ $APT_UPDATED -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || rc=$?
        APT_UPDATED=1
    fi
    if [[ $rc -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 || rc=$?
    fi
    [[ $made_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    [[ $rc -eq 0 ]] || skip "apt-get install $* failed (exit $rc) for $why"
}

# The newest PostgreSQL's bin dir (Debian: /usr/lib/postgresql/N/bin; else whatever is in PATH).
pg_bindir() {
    local d best="" bestv=-1 v
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/postgres" && -x "$d/initdb" ]] || continue
        v="$(basename "$(dirname "$d")")"
        [[ "$v" =~ ^[0-9]+$ ]] || continue
        if ((v > bestv)); then best="$d"; bestv=$v; fi
    done
    if [[ -z "$best" ]] && command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
        best="$(dirname "$(command -v initdb)")"
    fi
    [[ -n "$best" ]] && echo "$best"
}

pg_prog() {
    # A client program: from the server's bin dir first, then PATH.
    local p="$1"
    if [[ -n "${PGBIN:-}" && -x "$PGBIN/$p" ]]; then echo "$PGBIN/$p"; return 0; fi
    command -v "$p" 2>/dev/null
}

deps_server() {
    PGBIN="$(pg_bindir || true)"
    if [[ -z "$PGBIN" ]] || [[ ! -x "$PGBIN/psql" && -z "$(command -v psql || true)" ]]; then
        apt_install "the PostgreSQL server/client and pgbench" postgresql postgresql-client postgresql-contrib
        PGBIN="$(pg_bindir || true)"
    fi
    [[ -n "$PGBIN" ]] || skip "no PostgreSQL server (initdb, postgres) after install"
    PSQL="$(pg_prog psql)" || skip "no psql after install"
    if [[ "$(id -u)" -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || skip "running as root and there is no 'postgres' user to run the server as"
        RUNUSER="$(command -v runuser || true)"
        [[ -n "$RUNUSER" ]] || for d in /usr/sbin /sbin; do [[ -x "$d/runuser" ]] && RUNUSER="$d/runuser"; done
        [[ -n "$RUNUSER" ]] || skip "no runuser (util-linux) to run the server as 'postgres'"
    fi
}

deps_pgbench() {
    deps_server
    if ! pg_prog pgbench >/dev/null; then
        # Debian 12: pgbench is in postgresql-15 (with the server); older: postgresql-contrib.
        apt_install "pgbench" postgresql-contrib
    fi
    PGBENCH="$(pg_prog pgbench)" || skip "no pgbench after install"
}

deps_bench() {
    deps_pgbench
    command -v capinfos >/dev/null 2>&1 || apt_install "capinfos" wireshark-common
}

deps_ssl() {
    command -v openssl >/dev/null 2>&1 || apt_install "openssl (self-signed certificate)" openssl
}

deps() {
    local w mdb=()
    for w in "$@"; do
        case "$w" in
            server) deps_server ;;
            pgbench) deps_pgbench ;;
            bench) deps_bench ;;
            ssl) deps_ssl ;;
            capture | python | tshark) mdb+=("$w") ;;
            *) die "deps: unknown component '$w' (server capture python pgbench bench tshark ssl)" ;;
        esac
    done
    if [[ ${#mdb[@]} -gt 0 ]]; then
        # The same installs and venv as the MariaDB test; its 77/1 are passed on.
        local rc=0
        "$MDB" deps "${mdb[@]}" || rc=$?
        [[ $rc -eq 0 ]] || exit "$rc"
    fi
}

# ---------------------------------------------------------------------------------------------
# Server

# Run a PostgreSQL server program as the cluster's owner (cwd /: postgres may not enter ours).
as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        (cd / && "$RUNUSER" -u postgres -- "$@")
    else
        "$@"
    fi
}

load_env() {
    [[ -f "$STATE/env" ]] || die "no server state in $STATE (run '$ME start' first, same DBTAP_PG_STATE)"
    # shellcheck disable=SC1091
    source "$STATE/env"
}

server_alive() {
    [[ -f "$STATE/env" ]] || return 1
    local pid
    pid="$(sed -n 's/^DBTAP_PG_PID=//p' "$STATE/env")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# psql as superuser over the unix socket in the data dir (never over TCP: nothing of it is captured).
super_sql() {
    PGSSLMODE=disable PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" \
        -U postgres -d "${PGDATABASE:-postgres}" -At "$@"
}

write_hba() {
    cat >"$1" <<EOF
# dbtap live test: unix socket for the superuser (setup only), TCP on 127.0.0.1 for the test roles.
local   all          all                           trust
host    all          $SCRAM_USER    127.0.0.1/32   scram-sha-256
host    all          $MD5_USER      127.0.0.1/32   md5
host    all          $CLEAR_USER    127.0.0.1/32   password
host    all          $BENCH_USER    127.0.0.1/32   scram-sha-256
EOF
}

make_cert() {
    # A self-signed certificate for CN=127.0.0.1 (nothing verifies it: sslmode=require only).
    local dir="$1"
    openssl req -new -x509 -days 2 -nodes -newkey rsa:2048 -subj "/CN=127.0.0.1" \
        -keyout "$dir/server.key" -out "$dir/server.crt" >/dev/null 2>&1 || return 1
    chmod 600 "$dir/server.key"
}

cmd_start() {
    deps_server
    if server_alive; then
        die "a server from $STATE is already running ($(grep DBTAP_PG_PORT= "$STATE/env")); '$ME stop' first"
    fi
    mkdir -p "$STATE"
    rm -f "$STATE/env"
    local ssl="${DBTAP_PG_SSL:-}"
    if [[ -z "$ssl" ]]; then
        if command -v openssl >/dev/null 2>&1; then ssl=1; else ssl=0; log "no openssl: ssl = off"; fi
    fi
    [[ "$ssl" == 1 ]] && deps_ssl

    local parent="${DBTAP_PG_DATA_PARENT:-/tmp}" datadir
    datadir="$(mktemp -d "$parent/dbtap-pgdata.XXXXXX")"
    # A file, so that 'stop' can remove the data dir even if the setup below fails.
    echo "$datadir" >"$STATE/datadir"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown postgres: "$datadir"
        as_owner test -w "$datadir" || die "the postgres user cannot write to $datadir (set DBTAP_PG_DATA_PARENT)"
    fi
    chmod 700 "$datadir"
    local pgdata="$datadir/data"
    SOCKDIR="$datadir"
    if [[ $((${#SOCKDIR} + 20)) -gt 100 ]]; then die "data dir path too long for a unix socket: $SOCKDIR"; fi

    log "initdb $pgdata"
    # The log is written by this shell (not the postgres user): it may live in a private dir.
    as_owner "$PGBIN/initdb" -D "$pgdata" -U postgres --auth-local=trust --auth-host=reject \
        -E UTF8 --no-locale >"$STATE/initdb.log" 2>&1 \
        || { tail -n 20 "$STATE/initdb.log" >&2; die "initdb failed (log: $STATE/initdb.log)"; }
    write_hba "$STATE/pg_hba.conf"
    as_owner tee "$pgdata/pg_hba.conf" <"$STATE/pg_hba.conf" >/dev/null
    local ssl_conf="ssl = off"
    if [[ "$ssl" == 1 ]]; then
        make_cert "$STATE" || die "openssl could not make a self-signed certificate"
        # The key must belong to the server's user, mode 0600.
        as_owner tee "$pgdata/server.crt" <"$STATE/server.crt" >/dev/null
        as_owner tee "$pgdata/server.key" <"$STATE/server.key" >/dev/null
        as_owner chmod 600 "$pgdata/server.key"
        rm -f "$STATE/server.key"
        ssl_conf="ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'"
    fi
    as_owner tee -a "$pgdata/postgresql.conf" >/dev/null <<EOF

# ---- dbtap live test ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCKDIR'
max_connections = 100
shared_buffers = ${DBTAP_PG_SHARED_BUFFERS:-128MB}
$ssl_conf
password_encryption = 'scram-sha-256'
# A throwaway cluster: durability is not the point, speed of pgbench is.
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 1GB
autovacuum = off
log_line_prefix = '%m [%p] %e %q%u@%d '
log_connections = on
log_disconnections = on
lc_messages = 'C'
EOF

    local port="${DBTAP_PG_PORT:-$((5440 + RANDOM % 60))}" tries=0 pid="" i up
    while :; do
        tries=$((tries + 1))
        [[ $tries -le 20 ]] || die "no free port found for postgres"
        if [[ "$port" == 5432 ]] || port_in_use "$port"; then
            port=$((port + 1)); [[ $port -le 5499 ]] || port=5440; continue
        fi
        PORT="$port"
        # setsid: the server must not get the SIGINT a caller sends to its own process group.
        # The log file is opened by this shell, so it may be in a dir the postgres user cannot enter.
        (cd / && exec setsid ${RUNUSER:+"$RUNUSER" -u postgres --} "$PGBIN/postgres" -D "$pgdata" -p "$port") \
            </dev/null >"$STATE/postgres.log" 2>&1 &
        up=0
        for ((i = 0; i < 120; i++)); do
            pid="$(head -n1 "$pgdata/postmaster.pid" 2>/dev/null || true)"
            if [[ -z "$(jobs -rp)" ]]; then break; fi
            if super_sql -c 'SELECT 1' >/dev/null 2>&1 && port_in_use "$port"; then up=1; break; fi
            sleep 0.25
        done
        if [[ $up -eq 1 ]]; then break; fi
        if [[ -n "$(jobs -rp)" ]]; then
            [[ -n "$pid" ]] && kill -INT "$pid" 2>/dev/null
            wait 2>/dev/null || true
            tail -n 20 "$STATE/postgres.log" >&2 || true
            die "postgres did not accept connections within 30 s (log: $STATE/postgres.log)"
        fi
        wait 2>/dev/null || true
        if grep -qi 'could not bind\|address already in use' "$STATE/postgres.log" 2>/dev/null; then
            log "port $port taken, trying another"
            port=$((port + 1)); [[ $port -le 5499 ]] || port=5440
            continue
        fi
        tail -n 20 "$STATE/postgres.log" >&2 || true
        die "postgres exited during startup (log: $STATE/postgres.log)"
    done
    [[ "$pid" =~ ^[0-9]+$ ]] || die "no postmaster pid in $pgdata/postmaster.pid"

    # Written now so that 'stop' finds the server even if the setup below fails.
    cat >"$STATE/env" <<EOF
DBTAP_PG_STATE='$STATE'
DBTAP_PG_HOST=127.0.0.1
DBTAP_PG_PORT=$port
DBTAP_PG_PID=$pid
DBTAP_PG_DATADIR='$pgdata'
DBTAP_PG_SOCKET_DIR='$SOCKDIR'
DBTAP_PG_BIN='$PGBIN'
EOF
    local version
    version="$(super_sql -c 'SHOW server_version')"
    # Roles: the password is stored in the format its pg_hba method needs.
    super_sql <<SQL || { cmd_stop; die "creating the test roles and databases failed"; }
SET password_encryption = 'scram-sha-256';
CREATE ROLE $SCRAM_USER LOGIN PASSWORD '$SCRAM_PW';
CREATE ROLE $CLEAR_USER LOGIN PASSWORD '$CLEAR_PW';
CREATE ROLE $BENCH_USER LOGIN PASSWORD '$BENCH_PW';
SET password_encryption = 'md5';
CREATE ROLE $MD5_USER LOGIN PASSWORD '$MD5_PW';
CREATE DATABASE $DB OWNER $SCRAM_USER ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE $BENCH_DB OWNER $BENCH_USER ENCODING 'UTF8' TEMPLATE template0;
SQL
    PGDATABASE=$DB super_sql <<SQL || { cmd_stop; die "creating the test tables failed"; }
GRANT ALL ON SCHEMA public TO $SCRAM_USER, $MD5_USER, $CLEAR_USER;
CREATE TABLE seed (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO seed SELECT g, 'seed-' || g FROM generate_series(1, 10) g;
ALTER TABLE seed OWNER TO $SCRAM_USER;
GRANT ALL ON seed TO $MD5_USER, $CLEAR_USER;
CREATE TABLE gbk_text (id int PRIMARY KEY, name text);
ALTER TABLE gbk_text OWNER TO $SCRAM_USER;
GRANT ALL ON gbk_text TO $MD5_USER, $CLEAR_USER;
ALTER DEFAULT PRIVILEGES FOR ROLE $SCRAM_USER IN SCHEMA public GRANT ALL ON TABLES TO $MD5_USER, $CLEAR_USER;
SQL
    local scram_stored md5_stored
    scram_stored="$(super_sql -c "SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = '$SCRAM_USER'")"
    md5_stored="$(super_sql -c "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = '$MD5_USER'")"
    [[ "$scram_stored" == "SCRAM-SHA-256" && "$md5_stored" == "md5" ]] \
        || { cmd_stop; die "role passwords not stored as expected (scram: '$scram_stored', md5: '$md5_stored')"; }

    cat >>"$STATE/env" <<EOF
DBTAP_PG_SERVER_VERSION='$version'
DBTAP_PG_SSL=$ssl
DBTAP_PG_DB=$DB
DBTAP_PG_BENCH_DB=$BENCH_DB
DBTAP_PG_SCRAM_USER=$SCRAM_USER
DBTAP_PG_SCRAM_PW='$SCRAM_PW'
DBTAP_PG_MD5_USER=$MD5_USER
DBTAP_PG_MD5_PW='$MD5_PW'
DBTAP_PG_CLEAR_USER=$CLEAR_USER
DBTAP_PG_CLEAR_PW='$CLEAR_PW'
DBTAP_PG_BENCH_USER=$BENCH_USER
DBTAP_PG_BENCH_PW='$BENCH_PW'
PGSSLMODE=disable
PGGSSENCMODE=disable
EOF
    log "PostgreSQL $version up: pid $pid, 127.0.0.1:$port, socket dir $SOCKDIR, ssl $([[ $ssl == 1 ]] && echo on || echo off), data $pgdata"
    echo "DBTAP_PG_PORT=$port"
}

cmd_stop() {
    local datadir=""
    [[ -f "$STATE/datadir" ]] && datadir="$(cat "$STATE/datadir")"
    if [[ ! -f "$STATE/env" ]]; then
        if [[ -n "$datadir" && -d "$datadir" ]]; then
            # A start that failed before writing env: its server may still be running.
            local pid
            pid="$(head -n1 "$datadir/data/postmaster.pid" 2>/dev/null || true)"
            [[ "$pid" =~ ^[0-9]+$ ]] && kill -INT "$pid" 2>/dev/null && sleep 2
            [[ "${DBTAP_PG_KEEP:-0}" == 1 ]] || rm -rf "$datadir"
            rm -f "$STATE/datadir"
        else
            log "no server state in $STATE: nothing to stop"
        fi
        return 0
    fi
    load_env
    local pid="$DBTAP_PG_PID" i
    if kill -0 "$pid" 2>/dev/null; then
        # SIGINT: fast shutdown (sessions are ended, the server stops cleanly).
        kill -INT "$pid" 2>/dev/null || true
        for ((i = 0; i < 120; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then
            log "postgres $pid still running after a fast shutdown: SIGQUIT"
            kill -QUIT "$pid" 2>/dev/null || true
            for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        fi
        if kill -0 "$pid" 2>/dev/null; then
            log "postgres $pid still running: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "PostgreSQL on port $DBTAP_PG_PORT stopped"
    else
        log "postgres pid $pid was not running"
    fi
    rm -f "$STATE/env"
    if [[ "${DBTAP_PG_KEEP:-0}" != "1" && -n "$datadir" ]]; then
        rm -rf "$datadir"
        rm -f "$STATE/datadir"
    elif [[ -n "$datadir" ]]; then
        log "data dir kept: $datadir"
    fi
}

# The same capture as mariadb.sh's (tcpdump -s 0 -B 64 MiB, SIGINT + settle so the last ring
# block is flushed, drop/completeness check in FILE.stats), for this server's port.
cmd_capture() {
    [[ $# -ge 2 ]] || die "usage: $ME capture FILE CMD [ARGS...]"
    local out="$1"; shift
    deps capture
    TCPDUMP="$(command -v tcpdump || true)"
    [[ -n "$TCPDUMP" ]] || for d in /usr/sbin /sbin /usr/local/sbin; do [[ -x "$d/tcpdump" ]] && TCPDUMP="$d/tcpdump"; done
    [[ -n "$TCPDUMP" ]] || skip "no tcpdump"
    load_env
    server_alive || die "the server from $STATE is not running"
    capture_port "$DBTAP_PG_PORT" "$out" "$@"
}

cmd_sql() {
    deps_server
    load_env
    PORT="$DBTAP_PG_PORT"; SOCKDIR="$DBTAP_PG_SOCKET_DIR"
    super_sql "$@"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        capture) cmd_capture "$@" ;;
        sql) if [[ $# -gt 0 ]]; then cmd_sql -c "$*"; else cmd_sql; fi ;;
        env) load_env; cat "$STATE/env" ;;
        deps) deps "$@" ;;
        python) exec "$MDB" python ;;
        bin) [[ $# -eq 1 ]] || die "usage: $ME bin NAME"; deps_server; pg_prog "$1" || die "no $1" ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
