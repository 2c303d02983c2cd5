#!/usr/bin/env python3
"""A scripted MySQL/MariaDB client session with real client libraries, and its ground truth.

Runs against the throwaway server of tests/live/mariadb.sh (host/port/users from the environment
that `mariadb.sh capture` exports) and writes TRUTH (default truth.json): a JSON list, in the order
performed, of every operation this script asked for, with what the libraries reported back:

    {"n", "conn", "library", "client_port", "connection_id", "compressed",
     "op", "sql", "params", "expect_status", "expect_error_code", "expect_rows",
     "user", "database", "note", ...}

- `op` uses the audit record's names: login, logout, query, prepare, execute, init_db, ping,
  change_user, reset_connection.
- `sql` is the exact statement text sent (str, before the connection charset's encoding), or null.
- `params` (execute) is a list of {"py": TYPE, "value": ...} ({"py": "bytes", "hex": ...}), or null.
- `expect_status` is "ok" / "error", or null where the protocol has no answer (logout).
- `expect_rows` is cursor.rowcount for DML, the number of rows fetched for result sets, or null
  where it is not one number: a multi-statement query has "multi": true, its "statements" and the
  "results" of those executed, in order (a row count, or {"error": code}).
- `user` / `database` are the session's user and default database once the operation is done.

Operations the libraries send on their own (SET NAMES, SET autocommit, COM_STMT_RESET,
COM_STMT_CLOSE, ...) are not listed. Truth comes from cursor.rowcount, fetched row counts and caught
exceptions' errno, never from guesses; the script also checks its own scenario and fails (exit 1) if
the server did not do what it expected, so a wrong truth file is never written silently.

Libraries: PyMySQL (text protocol, multi-statements, GBK, COM_PING, COM_INIT_DB, ed25519 auth) and
mysql-connector-python with use_pure=True (server-side prepared statements with typed params,
COM_CHANGE_USER, COM_RESET_CONNECTION, compressed protocol).
"""

import argparse
import datetime
import decimal
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import traceback

import pymysql
import pymysql.constants.CLIENT as PYMYSQL_CLIENT
import mysql.connector

ENV = os.environ
LIB_VERSIONS = {name: importlib.metadata.version(name)
                for name in ("PyMySQL", "mysql-connector-python")}


def env(name, default=None):
    v = ENV.get("DBTAP_LIVE_" + name, default)
    if v is None:
        sys.exit(f"session.py: DBTAP_LIVE_{name} is not set (run under 'mariadb.sh capture')")
    return v


class ScenarioError(Exception):
    """The server did not do what the scenario expects."""


def py_value(v):
    """A Python bind value as JSON, keeping its type."""
    if v is None:
        return {"py": "NoneType", "value": None}
    if isinstance(v, bool):
        return {"py": "bool", "value": v}
    if isinstance(v, int):
        return {"py": "int", "value": v}
    if isinstance(v, float):
        return {"py": "float", "value": v}
    if isinstance(v, decimal.Decimal):
        return {"py": "Decimal", "value": str(v)}
    if isinstance(v, str):
        return {"py": "str", "value": v}
    if isinstance(v, (bytes, bytearray)):
        return {"py": "bytes", "hex": bytes(v).hex()}
    if isinstance(v, datetime.datetime):
        return {"py": "datetime", "value": v.isoformat(sep=" ")}
    if isinstance(v, datetime.date):
        return {"py": "date", "value": v.isoformat()}
    if isinstance(v, datetime.time):
        return {"py": "time", "value": v.isoformat()}
    if isinstance(v, datetime.timedelta):
        return {"py": "timedelta", "value": v.total_seconds()}
    raise TypeError(f"no truth encoding for {type(v)}")


class Truth:
    def __init__(self):
        self.ops = []

    def add(self, conn, op, sql=None, params=None, status="ok", code=None, rows=None, **extra):
        entry = {
            "n": len(self.ops) + 1,
            "conn": conn.label,
            "library": f"{conn.library} {LIB_VERSIONS.get(conn.library, '')}".strip(),
            "client_port": conn.client_port,
            "connection_id": conn.connection_id,
            "compressed": conn.compressed,
            "op": op,
            "sql": sql,
            "params": None if params is None else [py_value(p) for p in params],
            "expect_status": status,
            "expect_error_code": code,
            "expect_rows": rows,
            "user": conn.user,
            "database": conn.database,
        }
        entry.update(extra)
        self.ops.append(entry)
        shown = (sql or "")[:70].replace("\n", " ")
        print(f"  [{entry['n']:3}] {conn.label:<14} {op:<16} {status or '-':<5} "
              f"code={code} rows={rows} {shown}", file=sys.stderr)
        return entry


TRUTH = Truth()


def check(cond, what):
    if not cond:
        raise ScenarioError(what)


class Conn:
    """One client connection and the session state the truth needs."""

    def __init__(self, label, library, user, database=None, compressed=False):
        self.label = label
        self.library = library
        self.user = user
        self.database = database
        self.compressed = compressed
        self.client_port = None
        self.connection_id = None
        self.db = None
        self.calls = {}

    # ---- PyMySQL (text protocol) ------------------------------------------------------------

    def pymysql_login(self, password, expect_error=None, **kw):
        """Connect through a socket of our own, so the client port is known even on failure."""
        sock = socket.create_connection((HOST, PORT))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_port = sock.getsockname()[1]
        conn = pymysql.connect(host=HOST, port=PORT, user=self.user, password=password,
                               database=self.database, defer_connect=True, autocommit=True, **kw)
        try:
            conn.connect(sock)
        except pymysql.MySQLError as e:
            code = e.args[0]
            TRUTH.add(self, "login", status="error", code=code, secrets=[password])
            check(code == expect_error, f"{self.label}: login error {code}, expected {expect_error}")
            sock.close()
            return False
        self.db = conn
        self.connection_id = conn.thread_id()
        TRUTH.add(self, "login", status="ok", auth_plugin=conn._auth_plugin_name or None,
                  secrets=[password])
        check(expect_error is None, f"{self.label}: login succeeded, expected error {expect_error}")
        return True

    def query(self, sql, rows=None, error=None, multi=False, record_sql=None, **extra):
        """COM_QUERY through a text cursor (either library). `rows`/`error`: what the scenario
        expects; `multi`: a multi-statement query, whose results are listed; `record_sql`: the
        text the record must show when it differs from what is sent (a redacted password)."""
        errors = pymysql.MySQLError if self.library == "PyMySQL" else mysql.connector.Error
        cur = self.db.cursor()
        status, code, got_rows, results = "ok", None, None, []
        try:
            cur.execute(sql)  # no args: the text is sent as is
            results.append(self._result(cur))
            while multi and cur.nextset():
                results.append(self._result(cur))
        except errors as e:
            status, code = "error", e.args[0] if self.library == "PyMySQL" else e.errno
            results.append({"error": code})
        finally:
            try:
                cur.close()
            except errors:
                pass
        if not multi:
            got_rows = results[0] if status == "ok" else None
            extra_fields = dict(extra)
        else:
            # The scenario's multi-statement texts have no ';' inside literals: a plain split.
            extra_fields = dict(extra, multi=True, results=results,
                                statements=[x.strip() for x in sql.split(";") if x.strip()])
        TRUTH.add(self, "query", sql=record_sql or sql, status=status, code=code, rows=got_rows,
                  **extra_fields)
        check(code == error, f"{self.label}: {sql[:60]!r}: error {code}, expected {error}")
        if rows is not None and not multi:
            check(got_rows == rows, f"{self.label}: {sql[:60]!r}: {got_rows} rows, expected {rows}")
        if multi and rows is not None:
            check(results == rows, f"{self.label}: {sql[:60]!r}: results {results}, expected {rows}")
        return results

    @staticmethod
    def _result(cur):
        if cur.description is not None:
            return len(cur.fetchall())
        return cur.rowcount

    def select_db(self, name):
        self.db.select_db(name)  # COM_INIT_DB
        self.database = name
        TRUTH.add(self, "init_db", sql=None, schema=name)

    def ping(self):
        if self.library == "PyMySQL":
            self.db.ping(reconnect=False)
        else:
            self.db.cmd_ping()
        TRUTH.add(self, "ping")

    def quit(self):
        self.db.close()  # COM_QUIT, no answer
        TRUTH.add(self, "logout", status=None)
        self.db = None

    # ---- mysql-connector-python, pure Python (prepared statements) --------------------------

    def connector_login(self, password, **kw):
        conn = mysql.connector.connect(host=HOST, port=PORT, user=self.user, password=password,
                                       database=self.database, use_pure=True, autocommit=True,
                                       compress=self.compressed, **kw)
        check(type(conn).__module__ == "mysql.connector.connection",
              f"{self.label}: not the pure-Python connection: {type(conn)}")
        self.db = conn
        self.client_port = conn._socket.sock.getsockname()[1]
        self.connection_id = conn.connection_id
        TRUTH.add(self, "login", status="ok", secrets=[password])
        # Count the wire commands the prepared cursor really sends.
        for name in ("cmd_stmt_prepare", "cmd_stmt_execute"):
            self._hook(name)

    def _hook(self, name):
        orig = getattr(self.db, name)
        self.calls[name] = 0

        def hooked(*a, **kw):
            self.calls[name] += 1
            res = orig(*a, **kw)
            self.calls[name + ":result"] = res
            return res

        setattr(self.db, name, hooked)

    def prepared(self, cur, sql, params, rows=None, error=None, where=None):
        """cursor(prepared=True).execute: a prepare when the library prepares, then an execute."""
        before = dict(self.calls)
        status, code, got_rows = "ok", None, None
        try:
            cur.execute(sql, params)
            # The prepared cursor keeps a stale description after a result set: ask the execute's
            # own answer (an OK packet is a dict; a result set is a column count and columns).
            if isinstance(self.calls.get("cmd_stmt_execute:result"), dict):
                got_rows = cur.rowcount
            else:
                got_rows = len(cur.fetchall())
        except mysql.connector.Error as e:
            status, code = "error", e.errno
        prepared = self.calls["cmd_stmt_prepare"] > before["cmd_stmt_prepare"]
        executed = self.calls["cmd_stmt_execute"] > before["cmd_stmt_execute"]
        if prepared:
            failed_here = status == "error" and not executed
            TRUTH.add(self, "prepare", sql=sql, status="error" if failed_here else "ok",
                      code=code if failed_here else None)
        if executed:
            TRUTH.add(self, "execute", sql=sql, params=list(params), status=status, code=code,
                      rows=got_rows)
        check(code == error, f"{self.label}: {sql[:60]!r} {params}: error {code}, expected {error}")
        if where is not None:
            check(where == ("prepare" if not executed else "execute"),
                  f"{self.label}: {sql[:60]!r}: failed at the wrong step")
        if rows is not None:
            check(got_rows == rows, f"{self.label}: {sql[:60]!r}: {got_rows} rows, expected {rows}")

    def change_user(self, user, password, database):
        self.db.cmd_change_user(username=user, password=password, database=database)
        self.user, self.database = user, database
        TRUTH.add(self, "change_user")

    def reset_connection(self):
        ok = self.db.cmd_reset_connection()
        check(ok, f"{self.label}: COM_RESET_CONNECTION failed")
        TRUTH.add(self, "reset_connection")


# ---------------------------------------------------------------------------------------------
# The scenario

def scenario(args):
    db = env("DB", "dbtap_live")
    native_user, native_pw = env("NATIVE_USER", "dbtap_native"), env("NATIVE_PW", "native-pw")
    default_user, default_pw = env("DEFAULT_USER", "dbtap_default"), env("DEFAULT_PW", "default-pw")
    gbk_user, gbk_pw = env("GBK_USER", "dbtap_gbk"), env("GBK_PW", "gbk-pw")

    # 1. PyMySQL, mysql_native_password user, no database at login: the text protocol basics.
    c = Conn("c1-pymysql", "PyMySQL", native_user)
    c.pymysql_login(native_pw)
    c.select_db(db)  # COM_INIT_DB
    c.query("DROP TABLE IF EXISTS items", rows=0)
    c.query("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, "
            "qty INT NOT NULL DEFAULT 0, price DECIMAL(10,2)) ENGINE=InnoDB", rows=0)
    c.query("INSERT INTO items (id, name, qty, price) VALUES (1, 'apple', 10, 1.50), "
            "(2, 'banana', 20, 0.25), (3, 'cherry', 30, 12.00), (4, 'date', 40, 7.75), "
            "(5, 'elderberry', 50, 3.10)", rows=5)
    c.query("UPDATE items SET qty = qty + 1 WHERE id <= 3", rows=3)
    c.query("DELETE FROM items WHERE id = 5", rows=1)
    c.query("SELECT id, name, qty, price FROM items ORDER BY id", rows=4)
    c.query("SELECT COUNT(*) FROM items WHERE qty > 100", rows=1)
    c.query("SELECT seq, REPEAT('x', 40) AS pad FROM seq_1_to_5000", rows=5000)
    # A large statement (~70 KB): the request spans many TCP segments.
    values = ", ".join(f"({i}, 'bulk-{i:05d}', {i % 97}, {i}.{i % 100:02d})"
                       for i in range(1000, 3000))
    c.query(f"INSERT INTO items (id, name, qty, price) VALUES {values}", rows=2000)
    c.query("SELECT * FROM no_such_table", error=1146)
    c.query("SELEC 1", error=1064)
    c.query("INSERT INTO items (id, name) VALUES (1, 'duplicate')", error=1062)
    c.query("UPDATE items SET qty = -1 WHERE id > 2000", rows=999)
    c.ping()
    c.query("USE " + db, rows=0)
    c.query("SELECT id FROM items WHERE id BETWEEN 1 AND 4", rows=4)
    # A password written in SQL: the record shows it as '***' (the statement itself fails, the
    # user has no CREATE USER privilege: 1227).
    c.query("CREATE USER 'dbtap_tmp'@'%' IDENTIFIED BY 'Tmp-S3cret-in-sql'", error=1227,
            record_sql="CREATE USER 'dbtap_tmp'@'%' IDENTIFIED BY '***'",
            secrets=["Tmp-S3cret-in-sql"])
    c.quit()

    # 2. A failed login: wrong password (1045).
    c = Conn("c2-badpass", "PyMySQL", native_user, database=db)
    c.pymysql_login("not-the-password", expect_error=1045)

    # 3. PyMySQL with CLIENT_MULTI_STATEMENTS, server default plugin user, database at login.
    c = Conn("c3-multi", "PyMySQL", default_user, database=db)
    c.pymysql_login(default_pw, client_flag=PYMYSQL_CLIENT.MULTI_STATEMENTS)
    c.query("INSERT INTO items (id, name, qty) VALUES (10, 'fig', 1), (11, 'grape', 2); "
            "SELECT id FROM items WHERE id < 100; UPDATE items SET qty = 5 WHERE id IN (10, 11)",
            multi=True, rows=[2, 6, 2])
    c.query("SELECT 1; SELECT * FROM no_such_table", multi=True, error=1146)
    c.query("DELETE FROM items WHERE id IN (10, 11)", rows=2)
    c.quit()

    # 4. PyMySQL with a GBK connection charset: Chinese text travels GBK-encoded.
    c = Conn("c4-gbk", "PyMySQL", gbk_user, database=db)
    c.pymysql_login(gbk_pw, charset="gbk")
    c.query("DELETE FROM gbk_text", rows=None)
    c.query("INSERT INTO gbk_text (id, name) VALUES (1, '患者'), (2, '医生'), (3, '患者家属')",
            rows=3)
    c.query("SELECT id, name FROM gbk_text WHERE name = '患者'", rows=1)
    c.query("UPDATE gbk_text SET name = '病人' WHERE name LIKE '患者%'", rows=2)
    c.query("SELECT id FROM gbk_text WHERE name = '病人'", rows=2)
    c.quit()

    # 5. mysql-connector-python (pure): server-side prepared statements with typed params.
    c = Conn("c5-prepared", "mysql-connector-python", default_user, database=db)
    c.connector_login(default_pw)
    c.query("DROP TABLE IF EXISTS typed", rows=0)
    c.query("CREATE TABLE typed (id INT PRIMARY KEY, i BIGINT, f DOUBLE, d DECIMAL(12,4), "
            "s VARCHAR(100), b VARBINARY(100), dt DATE, ts DATETIME(6))", rows=0)
    pcur = c.db.cursor(prepared=True)
    ins = "INSERT INTO typed (id, i, f, d, s, b, dt, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    c.prepared(pcur, ins, (1, 42, 2.5, decimal.Decimal("3.1415"), "hello", b"\x00\x01\xfe\xff",
                           datetime.date(2024, 2, 29),
                           datetime.datetime(2024, 2, 29, 13, 14, 15, 123456)), rows=1)
    c.prepared(pcur, ins, (2, -7, -0.125, decimal.Decimal("-99.5000"), "wörld ✓", b"",
                           datetime.date(1999, 12, 31), datetime.datetime(2000, 1, 1, 0, 0, 0)),
               rows=1)
    c.prepared(pcur, ins, (3, None, None, None, None, None, None, None), rows=1)
    c.prepared(pcur, ins, (4, 2**62, 1e100, decimal.Decimal("0.0001"), "O'Reilly \"quoted\"",
                           bytes(range(32)), datetime.date(1970, 1, 1),
                           datetime.datetime(2038, 1, 19, 3, 14, 7, 999999)), rows=1)
    # Duplicate key: the error comes at execute.
    c.prepared(pcur, ins, (1, 0, 0.0, decimal.Decimal("0"), "dup", b"x", datetime.date(2000, 1, 1),
                           datetime.datetime(2000, 1, 1)), error=1062, where="execute")
    sel = "SELECT id, s FROM typed WHERE id >= ? ORDER BY id"
    c.prepared(pcur, sel, (1,), rows=4)
    c.prepared(pcur, sel, (3,), rows=2)
    c.prepared(pcur, sel, (100,), rows=0)
    upd = "UPDATE typed SET s = ? WHERE id <= ?"
    c.prepared(pcur, upd, ("updated", 2), rows=2)
    # Affected = changed rows (no CLIENT_FOUND_ROWS): id 3 is NULL already.
    c.prepared(pcur, upd, (None, 4), rows=3)
    # A prepare that fails (unknown table): no execute follows.
    c.prepared(pcur, "SELECT * FROM no_such_table WHERE id = ?", (1,), error=1146, where="prepare")
    pcur.close()
    c.ping()
    c.change_user(native_user, native_pw, db)  # COM_CHANGE_USER
    c.query("SELECT CURRENT_USER() AS who, DATABASE() AS db", rows=1)
    c.reset_connection()  # COM_RESET_CONNECTION
    pcur = c.db.cursor(prepared=True)
    c.prepared(pcur, "SELECT COUNT(*) FROM typed WHERE i IS NULL OR i > ?", (0,), rows=1)
    pcur.close()
    c.quit()

    # 6. mysql-connector-python (pure) with the compressed protocol.
    c = Conn("c6-compressed", "mysql-connector-python", native_user, database=db, compressed=True)
    try:
        c.connector_login(native_pw)
    except mysql.connector.Error as e:
        skip_part(f"compressed protocol not usable here ({e})")
        c = None
    if c is not None:
        # mysql-connector's pure reader breaks when a packet header straddles two compressed
        # packets (MariaDB fills them to 16 KB): keep its results under one compressed packet.
        # The large compressed result set comes from the mariadb command-line client below.
        c.query("SELECT seq, REPEAT('z', 20) FROM seq_1_to_200", rows=200)
        c.query("SELECT id, name FROM items WHERE id < 10 ORDER BY id", rows=4)
        c.query("SELECT * FROM no_such_table", error=1146)
        c.query("INSERT INTO gbk_text (id, name) VALUES (10, 'compressed')", rows=1)
        pcur = c.db.cursor(prepared=True)
        c.prepared(pcur, "SELECT id, s, b FROM typed WHERE id = ?", (1,), rows=1)
        pcur.close()
        c.quit()

    # 7. PyMySQL with a MariaDB ed25519 user: the server switches authentication method.
    if env("ED25519", "0") == "1":
        c = Conn("c7-ed25519", "PyMySQL", env("ED_USER", "dbtap_ed"), database=db)
        c.pymysql_login(env("ED_PW", "ed-pw"))
        c.query("SELECT 1", rows=1)
        c.quit()

    # 8. The mariadb command-line client with the compressed protocol.
    mariadb_cli_compressed(db, native_user, native_pw)


def skip_part(why):
    """A part of the session that cannot run here: said plainly, and a failure under CI=true
    (where everything the test needs is installed, a skipped part would pass unnoticed)."""
    if os.environ.get("CI") == "true":
        sys.exit(f"session.py: {why} (CI=true: a failure, not a skip)")
    print(f"session.py: {why}: skipped", file=sys.stderr)


def mariadb_cli_compressed(db, user, password):
    """The MariaDB command-line client (libmariadb, C) with --compress: a large compressed result
    set. Skipped when the client is not installed (it comes with mariadb.sh's packages)."""
    cli = shutil.which("mariadb") or shutil.which("mysql")
    if not cli:
        skip_part("no mariadb command-line client: compressed CLI part")
        return
    c = Conn("c8-cli-compress", "mariadb-cli", user, database=db, compressed=True)
    stmts = ["SELECT CONNECTION_ID()",
             "SELECT seq, REPEAT('w', 100) AS pad FROM seq_1_to_5000",
             "SELECT name FROM gbk_text ORDER BY id"]
    out = subprocess.run(
        [cli, "--no-defaults", "--protocol=tcp", "-h", HOST, "-P", str(PORT), "-u", user,
         f"-p{password}", "--compress", "--batch", "--skip-column-names",
         "--default-character-set=utf8mb4", "-D", db, "-e", ";".join(stmts)],
        check=True, capture_output=True, text=True, timeout=60).stdout.splitlines()
    c.connection_id = int(out[0])
    TRUTH.add(c, "login", status="ok")
    TRUTH.add(c, "query", sql=stmts[0], rows=1)
    check(len(out) >= 5001, f"{c.label}: {len(out)} lines of output")
    TRUTH.add(c, "query", sql=stmts[1], rows=5000)
    TRUTH.add(c, "query", sql=stmts[2], rows=len(out) - 5001)
    TRUTH.add(c, "logout", status=None)


def main():
    global HOST, PORT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--truth", default="truth.json", help="where to write the truth (JSON list)")
    ap.add_argument("--host", default=ENV.get("DBTAP_LIVE_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(ENV.get("DBTAP_LIVE_PORT", "0")))
    args = ap.parse_args()
    if not args.port:
        sys.exit("session.py: no port (--port or DBTAP_LIVE_PORT)")
    HOST, PORT = args.host, args.port
    print(f"session.py: PyMySQL {LIB_VERSIONS['PyMySQL']}, mysql-connector-python "
          f"{LIB_VERSIONS['mysql-connector-python']} against {HOST}:{PORT}", file=sys.stderr)
    rc = 0
    try:
        scenario(args)
    except Exception:  # the truth so far is still written, for the post-mortem
        traceback.print_exc()
        rc = 1
    with open(args.truth, "w", encoding="utf-8") as f:
        json.dump(TRUTH.ops, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"session.py: {len(TRUTH.ops)} operations -> {args.truth}"
          + (" (INCOMPLETE: the scenario failed)" if rc else ""), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
