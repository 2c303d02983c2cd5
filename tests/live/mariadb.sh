#!/usr/bin/env bash
# A throwaway MariaDB server for live-traffic tests and benchmarks, and a loopback capture around
# a client command. No systemd, no system datadir: one background mariadbd on 127.0.0.1 on a free
# high port (not 3306, so the sensor must detect MySQL by content), with its own temp datadir.
#
#   mariadb.sh start                  start the server, create test users, db dbtap_live, tables
#   mariadb.sh stop                   shut it down and remove its datadir (DBTAP_LIVE_KEEP=1 keeps it)
#   mariadb.sh capture FILE CMD...    tcpdump -i lo 'tcp port PORT' -w FILE around CMD (its exit
#                                     code is returned); stopped with SIGINT + wait so FILE is flushed
#   mariadb.sh sql 'STATEMENTS'       run SQL as root over the unix socket
#   mariadb.sh env                    print the server's settings (shell syntax, for `source`)
#   mariadb.sh deps WHAT...           install what is missing: server capture python bench tshark
#   mariadb.sh python                 print the path of the python with tests/live/requirements.txt
#
# Settings (environment):
#   DBTAP_LIVE_STATE   state dir: env file, datadir, socket, logs   (default /tmp/dbtap-live-$UID)
#   DBTAP_LIVE_PORT    port to try first (default: a free one in 3310..3399)
#   DBTAP_LIVE_VENV    python venv for the client libraries (default ~/.cache/dbtap/live-venv)
#   DBTAP_LIVE_KEEP=1  keep the datadir on stop
#   DBTAP_LIVE_INNODB_POOL  innodb buffer pool size (default 256M)
#   CI=true            a missing component is a failure (exit 1) instead of a skip (exit 77)
#
# Missing packages are installed with apt-get when running as root; otherwise the script prints a
# one-line reason and exits 77 (skip), or 1 under CI=true.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${DBTAP_LIVE_STATE:-/tmp/dbtap-live-$(id -u)}"
VENV="${DBTAP_LIVE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dbtap/live-venv}"
ME="mariadb.sh"

# Test accounts (throwaway server on loopback only).
NATIVE_USER=dbtap_native;   NATIVE_PW='native-pw'
DEFAULT_USER=dbtap_default; DEFAULT_PW='default-pw'
GBK_USER=dbtap_gbk;         GBK_PW='gbk-pw'
ED_USER=dbtap_ed;           ED_PW='ed-pw'
DB=dbtap_live

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
    # Do not let the package scripts start a system mysqld/tcpdump service while installing.
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

# Find a program also in the sbin dirs (not in a non-root PATH).
find_prog() {
    local p
    for p in "$@"; do
        if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return 0; fi
        for d in /usr/sbin /sbin /usr/local/sbin; do
            [[ -x "$d/$p" ]] && { echo "$d/$p"; return 0; }
        done
    done
    return 1
}

deps_server() {
    if ! find_prog mariadbd mysqld >/dev/null || ! find_prog mariadb-install-db mysql_install_db >/dev/null \
        || ! find_prog mariadb mysql >/dev/null; then
        apt_install "the MariaDB server/client" mariadb-server mariadb-client
    fi
    MARIADBD="$(find_prog mariadbd mysqld)" || skip "no mariadbd after install"
    INSTALL_DB="$(find_prog mariadb-install-db mysql_install_db)" || skip "no mariadb-install-db after install"
    CLIENT="$(find_prog mariadb mysql)" || skip "no mariadb client after install"
}

deps_capture() {
    find_prog tcpdump >/dev/null || apt_install "tcpdump" tcpdump
    TCPDUMP="$(find_prog tcpdump)" || skip "no tcpdump after install"
    if [[ "$(id -u)" -ne 0 ]]; then
        # Capturing on lo needs CAP_NET_RAW; try it rather than guess.
        local rc=0
        timeout 2 "$TCPDUMP" -i lo -c 1 -w /dev/null 'tcp port 1' >/dev/null 2>&1 || rc=$?
        # 124: still capturing when the timeout hit, i.e. it could open lo.
        if [[ $rc -ne 0 && $rc -ne 124 ]]; then
            skip "tcpdump cannot capture on lo as $(id -un) (needs root or CAP_NET_RAW)"
        fi
    fi
}

deps_python() {
    local req="$HERE/requirements.txt" py
    py="$(command -v python3 || true)"
    if [[ -z "$py" ]] || ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        apt_install "python3 with venv" python3 python3-venv python3-pip
        py="$(command -v python3)" || skip "no python3 after install"
    fi
    local stamp="$VENV/.requirements.sha256" want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
        log "creating python venv $VENV with $(basename "$req")"
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        "$py" -m venv "$VENV" >&2 || skip "python3 -m venv failed (install python3-venv)"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2 \
            || { rm -rf "$VENV"; skip "pip install -r $req failed (no access to PyPI?)"; }
        echo "$want" >"$stamp"
    fi
    PYTHON="$VENV/bin/python"
}

deps_bench() {
    find_prog sysbench >/dev/null || apt_install "sysbench" sysbench
    find_prog capinfos >/dev/null || apt_install "capinfos" wireshark-common
}

deps_tshark() {
    find_prog tshark >/dev/null || apt_install "tshark" tshark
}

deps() {
    local w
    for w in "$@"; do
        case "$w" in
            server) deps_server ;;
            capture) deps_capture ;;
            python) deps_python ;;
            bench) deps_bench ;;
            tshark) deps_tshark ;;
            *) die "deps: unknown component '$w' (server capture python bench tshark)" ;;
        esac
    done
}

# ---------------------------------------------------------------------------------------------
# Server

load_env() {
    [[ -f "$STATE/env" ]] || die "no server state in $STATE (run '$ME start' first, same DBTAP_LIVE_STATE)"
    # shellcheck disable=SC1091
    source "$STATE/env"
}

server_alive() {
    [[ -f "$STATE/env" ]] || return 1
    local pid
    pid="$(sed -n 's/^DBTAP_LIVE_PID=//p' "$STATE/env")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

port_in_use() {
    # A connect that succeeds means something listens there.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

root_sql() {
    "$CLIENT" --no-defaults --protocol=socket -S "$STATE/mysqld.sock" -uroot --batch --skip-column-names "$@"
}

cmd_start() {
    deps_server
    if server_alive; then
        die "a server from $STATE is already running ($(grep DBTAP_LIVE_PORT= "$STATE/env")); '$ME stop' first"
    fi
    rm -rf "$STATE/data" "$STATE/tmp" "$STATE/env"
    mkdir -p "$STATE/data" "$STATE/tmp"
    local datadir="$STATE/data"
    if [[ ${#STATE} -gt 80 ]]; then die "state dir path too long for a unix socket: $STATE"; fi

    local user_opt=()
    [[ "$(id -u)" -eq 0 ]] && user_opt=(--user=root)
    log "initialising datadir $datadir"
    "$INSTALL_DB" --no-defaults --datadir="$datadir" --auth-root-authentication-method=normal \
        --skip-test-db "${user_opt[@]}" >"$STATE/install-db.log" 2>&1 \
        || { tail -n 20 "$STATE/install-db.log" >&2; die "mariadb-install-db failed (log: $STATE/install-db.log)"; }

    local ed_opt=() plugin_dir
    plugin_dir="$("$MARIADBD" --no-defaults --verbose --help 2>/dev/null | awk '$1=="plugin-dir"{print $2}')"
    if [[ -n "$plugin_dir" && -f "$plugin_dir/auth_ed25519.so" ]]; then
        ed_opt=(--plugin-load-add=auth_ed25519)
    fi

    local port="${DBTAP_LIVE_PORT:-$((3310 + RANDOM % 90))}" tries=0 pid=""
    while :; do
        tries=$((tries + 1))
        [[ $tries -le 20 ]] || die "no free port found for mariadbd"
        if port_in_use "$port"; then port=$((port + 1)); [[ $port -le 3399 ]] || port=3310; continue; fi
        rm -f "$STATE/mariadbd.err"
        # setsid: the server must not get the SIGINT a caller sends to its own process group.
        setsid "$MARIADBD" --no-defaults "${user_opt[@]}" \
            --datadir="$datadir" --tmpdir="$STATE/tmp" \
            --socket="$STATE/mysqld.sock" --pid-file="$STATE/mariadbd.pid" \
            --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
            --log-error="$STATE/mariadbd.err" \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
            --max-connections=200 --max-allowed-packet=64M \
            --innodb-buffer-pool-size="${DBTAP_LIVE_INNODB_POOL:-256M}" \
            --innodb-log-file-size=256M --innodb-flush-log-at-trx-commit=2 \
            --innodb-doublewrite=0 --skip-log-bin \
            "${ed_opt[@]}" \
            </dev/null >"$STATE/mariadbd.out" 2>&1 &
        pid=$!
        # Wait until it accepts connections (or dies).
        local i up=0
        for ((i = 0; i < 120; i++)); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if root_sql -e 'SELECT 1' >/dev/null 2>&1 && port_in_use "$port"; then up=1; break; fi
            sleep 0.5
        done
        if [[ $up -eq 1 ]]; then break; fi
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
            tail -n 20 "$STATE/mariadbd.err" >&2 || true
            die "mariadbd did not accept connections within 60 s (log: $STATE/mariadbd.err)"
        fi
        wait "$pid" 2>/dev/null || true
        if grep -qi 'address already in use' "$STATE/mariadbd.err" 2>/dev/null; then
            log "port $port taken, trying another"
            port=$((port + 1)); [[ $port -le 3399 ]] || port=3310
            continue
        fi
        tail -n 20 "$STATE/mariadbd.err" >&2 || true
        die "mariadbd exited during startup (log: $STATE/mariadbd.err)"
    done

    # Written now so that 'stop' finds the server even if the setup below fails.
    cat >"$STATE/env" <<EOF
DBTAP_LIVE_STATE='$STATE'
DBTAP_LIVE_HOST=127.0.0.1
DBTAP_LIVE_PORT=$port
DBTAP_LIVE_PID=$pid
DBTAP_LIVE_SOCKET='$STATE/mysqld.sock'
DBTAP_LIVE_DATADIR='$datadir'
EOF
    local version ed=0
    version="$(root_sql -e 'SELECT VERSION()')"
    root_sql <<SQL || { cmd_stop; die "creating the test users and tables failed"; }
CREATE DATABASE $DB CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE $DB;
CREATE USER '$NATIVE_USER'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('$NATIVE_PW');
CREATE USER '$DEFAULT_USER'@'%' IDENTIFIED BY '$DEFAULT_PW';
CREATE USER '$GBK_USER'@'%' IDENTIFIED BY '$GBK_PW';
GRANT ALL PRIVILEGES ON $DB.* TO '$NATIVE_USER'@'%', '$DEFAULT_USER'@'%', '$GBK_USER'@'%';
CREATE TABLE $DB.seed (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL) ENGINE=InnoDB;
INSERT INTO $DB.seed SELECT seq, CONCAT('seed-', seq) FROM seq_1_to_10;
CREATE TABLE $DB.gbk_text (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4) ENGINE=InnoDB;
SQL
    if [[ ${#ed_opt[@]} -gt 0 ]] && root_sql -e "CREATE USER '$ED_USER'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('$ED_PW'); GRANT ALL PRIVILEGES ON $DB.* TO '$ED_USER'@'%';" 2>/dev/null; then
        ed=1
    fi
    local default_plugin
    default_plugin="$(root_sql -e "SELECT JSON_VALUE(Priv, '\$.plugin') FROM mysql.global_priv WHERE User='$DEFAULT_USER'" 2>/dev/null || true)"

    cat >>"$STATE/env" <<EOF
DBTAP_LIVE_SERVER_VERSION='$version'
DBTAP_LIVE_DB=$DB
DBTAP_LIVE_NATIVE_USER=$NATIVE_USER
DBTAP_LIVE_NATIVE_PW='$NATIVE_PW'
DBTAP_LIVE_DEFAULT_USER=$DEFAULT_USER
DBTAP_LIVE_DEFAULT_PW='$DEFAULT_PW'
DBTAP_LIVE_DEFAULT_PLUGIN='$default_plugin'
DBTAP_LIVE_GBK_USER=$GBK_USER
DBTAP_LIVE_GBK_PW='$GBK_PW'
DBTAP_LIVE_ED25519=$ed
DBTAP_LIVE_ED_USER=$ED_USER
DBTAP_LIVE_ED_PW='$ED_PW'
EOF
    log "MariaDB $version up: pid $pid, 127.0.0.1:$port, socket $STATE/mysqld.sock, datadir $datadir"
    echo "DBTAP_LIVE_PORT=$port"
}

cmd_stop() {
    if [[ ! -f "$STATE/env" ]]; then
        log "no server state in $STATE: nothing to stop"
        return 0
    fi
    load_env
    local pid="$DBTAP_LIVE_PID" i
    if kill -0 "$pid" 2>/dev/null; then
        CLIENT="$(find_prog mariadb mysql || true)"
        local admin
        admin="$(find_prog mariadb-admin mysqladmin || true)"
        if [[ -n "$admin" ]]; then
            "$admin" --no-defaults --protocol=socket -S "$DBTAP_LIVE_SOCKET" -uroot shutdown >/dev/null 2>&1 || true
        fi
        for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            log "mariadbd $pid still running after shutdown: SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        fi
        if kill -0 "$pid" 2>/dev/null; then
            log "mariadbd $pid still running: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "MariaDB on port $DBTAP_LIVE_PORT stopped"
    else
        log "MariaDB pid $pid was not running"
    fi
    rm -f "$STATE/env"
    if [[ "${DBTAP_LIVE_KEEP:-0}" != "1" ]]; then
        rm -rf "$STATE/data" "$STATE/tmp"
    fi
}

cmd_capture() {
    [[ $# -ge 2 ]] || die "usage: $ME capture FILE CMD [ARGS...]"
    local out="$1"; shift
    deps_capture
    load_env
    server_alive || die "the server from $STATE is not running"
    capture_port "$DBTAP_LIVE_PORT" "$out" "$@"
}

cmd_sql() {
    deps_server
    load_env
    root_sql "$@"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        capture) cmd_capture "$@" ;;
        sql) if [[ $# -gt 0 ]]; then cmd_sql -e "$*"; else cmd_sql; fi ;;
        env) load_env; cat "$STATE/env" ;;
        deps) deps "$@" ;;
        python) deps_python; echo "$PYTHON" ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
}

main "$@"
