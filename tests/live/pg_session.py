#!/usr/bin/env python3
"""A scripted PostgreSQL client session with psycopg 3, and its ground truth.

Runs against the throwaway cluster of tests/live/postgres.sh (host/port/roles from the environment
that `postgres.sh capture` exports) and writes TRUTH (default pg-truth.json): a JSON list, in the
order performed, of every operation this script asked for, with what the client reported back:

    {"n", "conn", "library", "client_port", "connection_id", "op", "sql", "params",
     "expect_status", "expect_error_code", "expect_rows", "user", "database", "protocol", ...}

- `op` uses the audit record's names: login, logout, query, prepare, execute, cancel. As in
  dbtap's PostgreSQL parser, Parse + Bind + Execute in one batch (up to Sync) is one `execute`;
  a Parse not bound before its Sync is a `prepare` (psycopg's prepare=True sends Parse + Sync on
  its own the first time: a `prepare`, then the `execute`; a failed Parse; PQprepare).
- `sql` is the exact statement text sent (str, before the client encoding), or null.
- `params` (execute) is a list of what each bind value was on the wire, from psycopg's own
  PostgresQuery: {"type": typname or null when psycopg sent OID 0, "oid", "format": "text" /
  "binary", "py": the Python kind, "value": the value as JSON (bytes as "hex"), "wire": the text
  sent (text format only)}.
- `expect_status` is "ok" / "error", or null where the protocol has no answer (logout, cancel,
  an encrypted login whose answer is inside TLS).
- `expect_error_code` is the SQLSTATE (psycopg's e.sqlstate; for failed logins libpq's verbose
  error text, which carries the server's SQLSTATE).
- `expect_rows` is cursor.rowcount (the CommandComplete count) where the command has one, else
  null. A multi-statement simple Query has "multi": true, its "statements" and the "results" of
  those executed, in order (a row count, null, or {"error": SQLSTATE}).
- `user` / `database` are the session's role and database.
- login entries also have "auth_method" (the pg_hba.conf method: scram-sha-256, md5, password),
  "client_program" (application_name) and "server_version"; "expect_flags" lists flags the record
  must carry (["encrypted"] for the SSL session).

Protocol features used (psycopg 3 pure-Python implementation over the system libpq; all
connections in autocommit, prepare_threshold very high so nothing is prepared behind the
script's back):
- simple Query: cursor.execute(sql) without params, incl. multi-statement texts (nextset());
  a failing multi-statement text through libpq directly (PQsendQuery/PQgetResult) so the results
  before the error are known;
- extended protocol, unnamed statement: cursor.execute(sql, params) (Parse/Bind/Describe/
  Execute/Sync in one go);
- server-side prepared statements: cursor.execute(sql, params, prepare=True) (Parse '_pg3_N' +
  Sync once, then Bind/Describe/Execute/Sync per execution), params in text (%t) and binary (%b)
  format, results in binary (binary=True); a Parse that fails; a Parse never executed
  (PQprepare); executemany() in pipeline mode (one Parse, several Bind/Execute, one Sync);
- COPY FROM STDIN and COPY TO STDOUT (cursor.copy);
- CancelRequest on a separate connection (conn.cancel() from a timer thread);
- logins: SCRAM-SHA-256, MD5, cleartext password, wrong password (28P01), unknown database
  (3D000), SSL (sslmode=require, when the server has ssl on), client_encoding GBK;
- Terminate (conn.close()).
The script checks its own scenario and fails (exit 1) when the server did not do what it
expects, so a wrong truth file is never written silently.
"""

import argparse
import ctypes
import ctypes.util
import datetime
import decimal
import importlib.metadata
import json
import os
import re
import select
import socket
import sys
import threading
import time
import traceback
import uuid

import psycopg
from psycopg import pq
from psycopg.types.json import Json, Jsonb
from psycopg.types.numeric import Float8, Int2, Int4, Int8

ENV = os.environ
LIB = f"psycopg {importlib.metadata.version('psycopg')}"
# Never prepare on psycopg's own initiative (None would also disable prepare=True).
NO_AUTO_PREPARE = 1_000_000

# Built-in type OIDs (fixed in PostgreSQL) -> typname, for the truth's param types.
OID_NAMES = {
    16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4",
    25: "text", 26: "oid", 114: "json", 700: "float4", 701: "float8", 1042: "bpchar",
    1043: "varchar", 1082: "date", 1083: "time", 1114: "timestamp", 1184: "timestamptz",
    1186: "interval", 1266: "timetz", 1700: "numeric", 2950: "uuid", 3802: "jsonb",
    1000: "bool[]", 1001: "bytea[]", 1005: "int2[]", 1007: "int4[]", 1016: "int8[]",
    1009: "text[]", 1015: "varchar[]", 1021: "float4[]", 1022: "float8[]", 1231: "numeric[]",
    2951: "uuid[]", 1182: "date[]", 1115: "timestamp[]", 1185: "timestamptz[]",
}


def env(name, default=None):
    v = ENV.get("DBTAP_PG_" + name, default)
    if v is None:
        sys.exit(f"pg_session.py: DBTAP_PG_{name} is not set (run under 'postgres.sh capture')")
    return v


class ScenarioError(Exception):
    """The server did not do what the scenario expects."""


def check(cond, what):
    if not cond:
        raise ScenarioError(what)


# ---------------------------------------------------------------------------------------------
# Truth

def py_value(v):
    """A Python bind value as JSON, keeping its kind."""
    if v is None:
        return "NoneType", None
    if isinstance(v, bool):
        return "bool", v
    if isinstance(v, int):
        return "int", int(v)
    if isinstance(v, float):
        return "float", float(v)
    if isinstance(v, decimal.Decimal):
        return "Decimal", str(v)
    if isinstance(v, str):
        return "str", v
    if isinstance(v, (bytes, bytearray)):
        return "bytes", bytes(v).hex()
    if isinstance(v, datetime.datetime):
        return ("datetimetz" if v.tzinfo else "datetime"), v.isoformat(sep=" ")
    if isinstance(v, datetime.date):
        return "date", v.isoformat()
    if isinstance(v, uuid.UUID):
        return "uuid", str(v)
    if isinstance(v, (Json, Jsonb)):
        return "json", v.obj
    if isinstance(v, list):
        return "array", [py_value(x)[1] for x in v]
    raise TypeError(f"no truth encoding for {type(v)}")


def param_truth(value, oid, fmt, wire, encoding):
    kind, jv = py_value(value)
    p = {"type": OID_NAMES.get(oid, f"oid:{oid}") if oid else None, "oid": oid,
         "format": "binary" if fmt == 1 else "text", "py": kind}
    if kind == "bytes":
        p["hex"] = jv
    else:
        p["value"] = jv
    if kind == "array":
        p["elements"] = [py_value(x)[0] for x in value]
    if wire is not None and fmt != 1:
        p["wire"] = bytes(wire).decode(encoding)
    return p


class Truth:
    def __init__(self):
        self.ops = []

    def add(self, conn, op, sql=None, params=None, status="ok", code=None, rows=None, **extra):
        entry = {
            "n": len(self.ops) + 1,
            "conn": conn.label,
            "library": conn.library,
            "client_port": conn.client_port,
            "connection_id": conn.connection_id,
            "op": op,
            "sql": sql,
            "params": params,
            "expect_status": status,
            "expect_error_code": code,
            "expect_rows": rows,
            "user": conn.user,
            "database": conn.database,
        }
        entry.update(extra)
        self.ops.append(entry)
        shown = (sql or "")[:70].replace("\n", " ")
        print(f"  [{entry['n']:3}] {conn.label:<14} {op:<8} {status or '-':<5} "
              f"code={code} rows={rows} {shown}", file=sys.stderr)
        return entry


TRUTH = Truth()

# libpq itself, for the verbose error text of a failed login (psycopg has no SQLSTATE there).
_LIBPQ = None


def libpq():
    global _LIBPQ
    if _LIBPQ is None:
        path = ctypes.util.find_library("pq")
        check(path, "libpq not found")
        _LIBPQ = ctypes.CDLL(path)
        _LIBPQ.PQsetErrorVerbosity.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _LIBPQ.PQsetErrorVerbosity.restype = ctypes.c_int
    return _LIBPQ


PQERRORS_VERBOSE = 2


def local_port(fd):
    s = socket.socket(fileno=os.dup(fd))
    try:
        return s.getsockname()[1]
    finally:
        s.close()


class Conn:
    """One client connection and the session state the truth needs."""

    def __init__(self, label, user, database, auth_method, app=None, encoding=None):
        self.label = label
        self.library = LIB
        self.user = user
        self.database = database
        self.auth_method = auth_method
        self.app = app
        self.encoding = encoding  # client_encoding asked for at login (None: the server's)
        self.client_port = None
        self.connection_id = None
        self.db = None

    def conninfo(self, password, sslmode="disable"):
        kw = dict(host=HOST, port=PORT, user=self.user, password=password, dbname=self.database,
                  sslmode=sslmode, gssencmode="disable", connect_timeout=10)
        if self.app:
            kw["application_name"] = self.app
        if self.encoding:
            kw["client_encoding"] = self.encoding
        return psycopg.conninfo.make_conninfo(**kw)

    # ---- logins ------------------------------------------------------------------------------

    def login(self, password, sslmode="disable"):
        conn = psycopg.connect(self.conninfo(password, sslmode), autocommit=True,
                               prepare_threshold=NO_AUTO_PREPARE)
        self.db = conn
        self.client_port = local_port(conn.pgconn.socket)
        self.connection_id = conn.info.backend_pid
        ssl = bool(conn.pgconn.ssl_in_use)
        check(ssl == (sslmode == "require"), f"{self.label}: ssl_in_use {ssl} with sslmode {sslmode}")
        if self.encoding:
            got = conn.info.parameter_status("client_encoding")
            check(got and got.upper() == self.encoding.upper(),
                  f"{self.label}: client_encoding {got}, expected {self.encoding}")
        server_version = conn.info.parameter_status("server_version")
        if ssl:
            # The startup message and the whole exchange are inside TLS.
            TRUTH.add(self, "login", status=None, expect_flags=["encrypted"], encrypted=True,
                      user=None, database=None, note="sslmode=require: all of it is inside TLS",
                      secrets=[password])
        else:
            TRUTH.add(self, "login", status="ok", auth_method=self.auth_method,
                      client_program=self.app, server_version=server_version,
                      client_encoding=self.encoding, secrets=[password])
        return conn

    def failed_login(self, password, expect_error):
        """The same connection start as psycopg's (PQconnectStart + PQconnectPoll), by hand so
        that the client port is known and libpq's error text is verbose (it has the SQLSTATE)."""
        pg = pq.PGconn.connect_start(self.conninfo(password).encode())
        check(pg.status != pq.ConnStatus.BAD or pg.socket >= 0, f"{self.label}: connect_start failed")
        libpq().PQsetErrorVerbosity(pg.pgconn_ptr, PQERRORS_VERBOSE)
        state = pq.PollingStatus.WRITING
        deadline = 20.0
        while state not in (pq.PollingStatus.OK, pq.PollingStatus.FAILED):
            if pg.socket >= 0:
                self.client_port = local_port(pg.socket)
            if state == pq.PollingStatus.READING:
                r, _, _ = select.select([pg.socket], [], [], deadline)
            else:
                _, r, _ = select.select([], [pg.socket], [], deadline)
            check(r, f"{self.label}: login timed out")
            state = pq.PollingStatus(pg.connect_poll())
        msg = pg.error_message.decode("utf-8", "replace")
        pg.finish()
        check(state == pq.PollingStatus.FAILED, f"{self.label}: login succeeded, expected {expect_error}")
        m = re.search(r"\b(?:FATAL|ERROR):\s+([0-9A-Z]{5}):", msg)
        code = m.group(1) if m else None
        TRUTH.add(self, "login", status="error", code=code, auth_method=self.auth_method,
                  client_program=self.app, error_message=msg.strip().splitlines()[0],
                  secrets=[password])
        check(code == expect_error, f"{self.label}: login error {code} ({msg.strip()}), expected {expect_error}")

    def close(self):
        self.db.close()  # Terminate, no answer
        TRUTH.add(self, "logout", status=None)
        self.db = None

    # ---- simple Query ------------------------------------------------------------------------

    def query(self, sql, rows=None, error=None, multi=False, record_sql=None, **extra):
        """A simple Query through a cursor (no params: psycopg sends the text as is).
        `rows`/`error`: what the scenario expects; `multi`: several statements in one Query;
        `record_sql`: the text the record must show when it differs (a redacted password)."""
        cur = self.db.cursor()
        status, code, results = "ok", None, []
        try:
            cur.execute(sql)
            check(cur._query.params is None, f"{self.label}: not a simple Query")
            results.append(self._result(cur))
            while multi and cur.nextset():
                results.append(self._result(cur))
        except psycopg.Error as e:
            status, code = "error", e.sqlstate
            results.append({"error": code})
        finally:
            cur.close()
        self._add_query(record_sql or sql, status, code, results, multi, extra)
        check(code == error, f"{self.label}: {sql[:60]!r}: error {code}, expected {error}")
        if rows is not None:
            got = results if multi else results[0]
            check(got == rows, f"{self.label}: {sql[:60]!r}: {got} rows, expected {rows}")
        return results

    def _add_query(self, sql, status, code, results, multi, extra):
        if not multi:
            TRUTH.add(self, "query", sql=sql, status=status, code=code,
                      rows=results[0] if status == "ok" else None, protocol="simple", **extra)
        else:
            # The scenario's multi-statement texts have no ';' inside literals: a plain split.
            TRUTH.add(self, "query", sql=sql, status=status, code=code, rows=None, multi=True,
                      results=results, statements=[x.strip() for x in sql.split(";") if x.strip()],
                      protocol="simple", **extra)

    @staticmethod
    def _result(cur):
        n = cur.rowcount
        if cur.description is not None:
            fetched = len(cur.fetchall())
            check(fetched == n, f"rowcount {n} but {fetched} rows fetched")
        return None if n < 0 else n

    def raw_multi(self, sql, rows):
        """A multi-statement Query whose later statement fails: psycopg raises on the error and
        drops the results before it, so this one goes through libpq directly (PQsendQuery, then
        PQgetResult until the end), still on the psycopg connection."""
        pg = self.db.pgconn
        check(pg.transaction_status == pq.TransactionStatus.IDLE, f"{self.label}: not idle")
        pg.send_query(sql.encode(self._pyenc()))
        while pg.flush() == 1:
            select.select([], [pg.socket], [], 10)
        results, status, code = [], "ok", None
        while True:
            r = pg.get_result()
            if r is None:
                break
            if r.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
                tuples = r.command_tuples
                results.append(int(tuples) if tuples is not None else None)
            elif r.status == pq.ExecStatus.FATAL_ERROR:
                code = (r.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode() or None
                status = "error"
                results.append({"error": code})
            else:
                raise ScenarioError(f"{self.label}: unexpected result status {r.status}")
        self._add_query(sql, status, code, results, True, {})
        check(results == rows, f"{self.label}: {sql[:60]!r}: results {results}, expected {rows}")

    def _pyenc(self):
        return self.db.info.encoding

    # ---- extended protocol -------------------------------------------------------------------

    def execute(self, sql, params, rows=None, error=None, prepare=None, binary=None, where=None):
        """cursor.execute with params: an unnamed statement (prepare=None), or a named prepared
        statement (prepare=True: Parse + Sync the first time, then Bind/Execute). Writes a
        `prepare` entry for a Parse that failed, else one `execute` entry."""
        cur = self.db.cursor()
        names = self.db._prepared._names
        before = set(names.keys())
        status, code, got_rows, pgq = "ok", None, None, None
        try:
            cur.execute(sql, params, prepare=prepare, binary=binary)
            got_rows = self._result(cur)
        except psycopg.Error as e:
            status, code = "error", e.sqlstate
        # What psycopg sent: the same conversion (query text, OIDs, formats, dumped values) that
        # execute() made (the prepared path does not keep it in cursor._query).
        pgq = cur._convert_query(sql, params)
        cur.close()
        check(pgq.params is not None, f"{self.label}: {sql[:60]!r}: no params sent")
        key = (pgq.query, pgq.types)
        newly_prepared = key in names and key not in before
        already = key in before
        wire_sql = pgq.query.decode(self._pyenc())
        tparams = [param_truth(v, oid, fmt, w, self._pyenc())
                   for v, oid, fmt, w in zip(params, pgq.types, pgq.formats, pgq.params)]
        kind = "prepared" if prepare else "unnamed"
        failed_at = "execute"
        if prepare and not already:
            # psycopg's first prepare=True execution sends Parse + Sync on its own (PQsendPrepare)
            # and the Bind/Describe/Execute/Sync after the answer: a `prepare` (a Parse not bound
            # before its Sync), then the `execute`. If the statement is not in psycopg's cache
            # now, the Parse failed and nothing followed it.
            if newly_prepared:
                TRUTH.add(self, "prepare", sql=wire_sql, protocol="extended", statement=kind,
                          note="Parse + Sync on its own; Bind/Execute in the next batch")
            else:
                failed_at = "prepare"
                TRUTH.add(self, "prepare", sql=wire_sql, status=status, code=code,
                          protocol="extended", statement=kind,
                          note="Parse failed: no Bind/Execute followed")
        if failed_at == "execute":
            TRUTH.add(self, "execute", sql=wire_sql, params=tparams, status=status, code=code,
                      rows=got_rows, protocol="extended", statement=kind,
                      result_format="binary" if binary else "text")
        check(code == error, f"{self.label}: {sql[:60]!r}: error {code}, expected {error}")
        if where is not None:
            check(where == failed_at, f"{self.label}: {sql[:60]!r}: failed at {failed_at}, expected {where}")
        if rows is not None:
            check(got_rows == rows, f"{self.label}: {sql[:60]!r}: {got_rows} rows, expected {rows}")

    def executemany_returning(self, sql, seq):
        """executemany in pipeline mode: one Parse, a Bind/Describe/Execute per params, one Sync."""
        cur = self.db.cursor()
        cur.executemany(sql, seq, returning=True)
        pgq = cur._convert_query(sql, seq[0])
        wire_sql = pgq.query.decode(self._pyenc())
        counts = []
        while True:
            counts.append(self._result(cur))
            if not cur.nextset():
                break
        check(counts == [1] * len(seq), f"{self.label}: executemany results {counts}")
        for params, n in zip(seq, counts):
            # The types are the same for every row of the batch (psycopg checks it).
            one = cur._convert_query(sql, params)
            check(one.types == pgq.types, f"{self.label}: executemany: types differ between rows")
            tparams = [param_truth(v, oid, fmt, w, self._pyenc())
                       for v, oid, fmt, w in zip(params, one.types, one.formats, one.params)]
            TRUTH.add(self, "execute", sql=wire_sql, params=tparams, rows=n, protocol="extended",
                      statement="prepared", pipeline=True)
        cur.close()

    def parse_only(self, name, sql, types):
        """PQprepare: Parse + Sync, never executed (a `prepare` record)."""
        res = self.db.pgconn.prepare(name.encode(), sql.encode(self._pyenc()), types)
        status = res.status
        check(status == pq.ExecStatus.COMMAND_OK, f"{self.label}: PQprepare {name}: {status}")
        TRUTH.add(self, "prepare", sql=sql, protocol="extended", statement=name,
                  note="Parse never executed")

    # ---- COPY --------------------------------------------------------------------------------

    def copy_in(self, sql, rows_iter, expect):
        cur = self.db.cursor()
        with cur.copy(sql) as cp:
            for row in rows_iter:
                cp.write_row(row)
        n = cur.rowcount
        cur.close()
        TRUTH.add(self, "query", sql=sql, rows=n, protocol="copy")
        check(n == expect, f"{self.label}: {sql!r}: {n} rows, expected {expect}")

    def copy_out(self, sql, expect):
        cur = self.db.cursor()
        with cur.copy(sql) as cp:
            got = sum(1 for _ in cp)
        n = cur.rowcount
        cur.close()
        check(got > 0, f"{self.label}: {sql!r}: no data")
        TRUTH.add(self, "query", sql=sql, rows=n, protocol="copy")
        check(n == expect, f"{self.label}: {sql!r}: {n} rows, expected {expect}")

    # ---- cancel ------------------------------------------------------------------------------

    def cancelled(self, sql, delay=0.7):
        """A long query cancelled by conn.cancel() from another thread: a CancelRequest on a new
        connection (no answer), and 57014 on the query."""
        cur = self.db.cursor()
        timer = threading.Timer(delay, self.db.cancel)
        status, code = "ok", None
        timer.start()
        try:
            cur.execute(sql)
        except psycopg.Error as e:
            status, code = "error", e.sqlstate
        finally:
            timer.join()
            cur.close()
        TRUTH.add(self, "query", sql=sql, status=status, code=code, protocol="simple")
        # The CancelRequest: its own TCP connection, carrying this session's pid and secret key.
        canceller = Conn(self.label + "-cancel", None, None, None)
        canceller.library = f"{LIB} (libpq PQcancel)"
        canceller.connection_id = self.connection_id
        TRUTH.add(canceller, "cancel", status=None, target_pid=self.connection_id,
                  note="CancelRequest on a separate connection; the server never answers it")
        check(code == "57014", f"{self.label}: cancelled query: error {code}, expected 57014")


# ---------------------------------------------------------------------------------------------
# The scenario

def scenario():
    db = env("DB", "dbtap_live")
    scram_user, scram_pw = env("SCRAM_USER", "dbtap_scram"), env("SCRAM_PW", "scram-pw")
    md5_user, md5_pw = env("MD5_USER", "dbtap_md5"), env("MD5_PW", "md5-pw")
    clear_user, clear_pw = env("CLEAR_USER", "dbtap_clear"), env("CLEAR_PW", "clear-pw")

    # 1. SCRAM-SHA-256 login; the simple Query protocol.
    c = Conn("c1-scram", scram_user, db, "scram-sha-256", app="dbtap-live-c1")
    c.login(scram_pw)
    c.query("DROP TABLE IF EXISTS items")
    c.query("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, "
            "qty int NOT NULL DEFAULT 0, price numeric(10,2))")
    c.query("INSERT INTO items (id, name, qty, price) VALUES (1, 'apple', 10, 1.50), "
            "(2, 'banana', 20, 0.25), (3, 'cherry', 30, 12.00), (4, 'date', 40, 7.75), "
            "(5, 'elderberry', 50, 3.10)", rows=5)
    c.query("UPDATE items SET qty = qty + 1 WHERE id <= 3", rows=3)
    c.query("DELETE FROM items WHERE id = 5", rows=1)
    c.query("SELECT id, name, qty, price FROM items ORDER BY id", rows=4)
    c.query("SELECT count(*) FROM items WHERE qty > 100", rows=1)
    c.query("SELECT id FROM items WHERE id > 1000", rows=0)
    c.query("SELECT g, repeat('x', 40) AS pad FROM generate_series(1, 5000) AS g", rows=5000)
    # A large statement (~70 KB): the request spans many TCP segments.
    values = ", ".join(f"({i}, 'bulk-{i:05d}', {i % 97}, {i}.{i % 100:02d})"
                       for i in range(1000, 3000))
    c.query(f"INSERT INTO items (id, name, qty, price) VALUES {values}", rows=2000)
    c.query("INSERT INTO items (id, name, qty) VALUES (10, 'fig', 1), (11, 'grape', 2); "
            "SELECT id FROM items WHERE id < 100; UPDATE items SET qty = 5 WHERE id IN (10, 11)",
            multi=True, rows=[2, 6, 2])
    c.raw_multi("SELECT 1; SELECT * FROM no_such_table; SELECT 2", rows=[1, {"error": "42P01"}])
    c.query("SELECT * FROM no_such_table", error="42P01")
    # A password written in SQL: the record shows it as '***' (the statement fails, the user
    # may not create roles: 42501).
    c.query("CREATE ROLE dbtap_tmp LOGIN PASSWORD 'Tmp-S3cret-in-pg'", error="42501",
            record_sql="CREATE ROLE dbtap_tmp LOGIN PASSWORD '***'", secrets=["Tmp-S3cret-in-pg"])
    c.query("SELEC 1", error="42601")
    c.query("INSERT INTO items (id, name) VALUES (1, 'duplicate')", error="23505")
    c.query("UPDATE items SET qty = -1 WHERE id > 2000", rows=999)
    # An error inside a transaction: the statements after it fail (25P02) until ROLLBACK.
    c.query("BEGIN")
    c.query("UPDATE items SET qty = qty + 100 WHERE id = 1", rows=1)
    c.query("SELECT * FROM no_such_table WHERE id = 1", error="42P01")
    c.query("SELECT 1", error="25P02")
    c.query("UPDATE items SET qty = 0 WHERE id = 2", error="25P02")
    c.query("ROLLBACK")
    c.query("BEGIN")
    c.query("DELETE FROM items WHERE id IN (10, 11)", rows=2)
    c.query("COMMIT")
    c.query("SELECT qty FROM items WHERE id = 1", rows=1)
    c.close()

    # 2. Failed logins: wrong password (28P01), unknown database (3D000), MD5 wrong password.
    Conn("c2-badpass", scram_user, db, "scram-sha-256").failed_login("not-the-password", "28P01")
    Conn("c3-nodb", scram_user, "no_such_db", "scram-sha-256").failed_login(scram_pw, "3D000")
    Conn("c4-md5-badpass", md5_user, db, "md5").failed_login("wrong-md5", "28P01")

    # 3. MD5 and cleartext-password logins.
    c = Conn("c5-md5", md5_user, db, "md5", app="dbtap-live-md5")
    c.login(md5_pw)
    c.query("SELECT id, name FROM seed ORDER BY id", rows=10)
    c.execute("SELECT name FROM seed WHERE id = %s", (Int4(3),), rows=1)
    c.close()
    c = Conn("c6-clear", clear_user, db, "password")
    c.login(clear_pw)
    c.query("SELECT current_user, current_database()", rows=1)
    c.close()

    # 4. The extended protocol: typed params, text and binary, prepared and unnamed statements.
    c = Conn("c7-extended", scram_user, db, "scram-sha-256", app="dbtap-live-extended")
    c.login(scram_pw)
    c.query("DROP TABLE IF EXISTS typed")
    c.query("CREATE TABLE typed (id int4 PRIMARY KEY, i2 int2, i4 int4, i8 int8, f8 float8, "
            "n numeric(20,6), t text, b bool, ba bytea, d date, ts timestamp, tstz timestamptz, "
            "u uuid, j json, jb jsonb, ai int4[], at text[])")
    cols = "id, i2, i4, i8, f8, n, t, b, ba, d, ts, tstz, u, j, jb, ai, at"
    utc = datetime.timezone.utc
    row1 = (Int4(1), Int2(-2), Int4(42), Int8(2**40 + 1), Float8(2.5), decimal.Decimal("3.141593"),
            "hello", True, b"\x00\x01\xfe\xff", datetime.date(2024, 2, 29),
            datetime.datetime(2024, 2, 29, 13, 14, 15, 123456),
            datetime.datetime(2024, 2, 29, 13, 14, 15, 500000, tzinfo=utc),
            uuid.UUID("12345678-9abc-def0-1234-56789abcdef0"), Json({"k": "v", "n": [1, 2]}),
            Jsonb({"a": True}), [Int4(1), Int4(2), Int4(3)], ["x", "y z", "ü"])
    row2 = (Int4(2), Int2(32767), Int4(-2147483648), Int8(-(2**62)), Float8(-0.125),
            decimal.Decimal("-99.5"), "wörld ✓ 'quoted'", False, b"",
            datetime.date(1999, 12, 31), datetime.datetime(2000, 1, 1, 0, 0, 0),
            datetime.datetime(2000, 1, 1, 0, 0, 0, tzinfo=utc), uuid.UUID(int=0),
            Json([1, "two", None]), Jsonb([]), [Int4(-1)], ["only"])
    row_null = (Int4(3),) + (None,) * 16
    # Text-format params (%t), a named prepared statement: Parse once, then Bind/Execute.
    ins_t = f"INSERT INTO typed ({cols}) VALUES ({', '.join(['%t'] * 17)})"
    c.execute(ins_t, row1, rows=1, prepare=True)
    c.execute(ins_t, row2, rows=1, prepare=True)
    c.execute(ins_t, row_null, rows=1, prepare=True)
    # Binary-format params (%b) and binary results.
    ins_b = f"INSERT INTO typed ({cols}) VALUES ({', '.join(['%b'] * 17)})"
    c.execute(ins_b, (Int4(4),) + row1[1:], rows=1, prepare=True, binary=True)
    c.execute(ins_b, (Int4(5),) + row2[1:], rows=1, prepare=True, binary=True)
    c.execute(ins_b, (Int4(6),) + row_null[1:], rows=1, prepare=True, binary=True)
    # Duplicate key: the error comes at Execute.
    c.execute(ins_b, row1, error="23505", prepare=True, binary=True, where="execute")
    sel = "SELECT id, t, ai FROM typed WHERE id >= %b ORDER BY id"
    c.execute(sel, (Int4(1),), rows=6, prepare=True, binary=True)
    c.execute(sel, (Int4(5),), rows=2, prepare=True, binary=True)
    c.execute(sel, (Int4(100),), rows=0, prepare=True, binary=True)
    upd = "UPDATE typed SET t = %t WHERE id <= %t"
    c.execute(upd, ("updated", Int4(2)), rows=2, prepare=True)
    c.execute(upd, (None, Int4(6)), rows=6, prepare=True)
    # A Parse that fails (unknown table): no Bind/Execute follows.
    c.execute("SELECT * FROM no_such_table WHERE id = %b", (Int4(1),), error="42P01",
              prepare=True, where="prepare")
    # The unnamed statement (no prepare): Parse/Bind/Describe/Execute/Sync each time.
    c.execute("SELECT id, i8, f8 FROM typed WHERE i8 > %s OR f8 < %s", (Int8(0), Float8(0.0)),
              rows=4)
    c.execute("SELECT %s::int4 / %s::int4", (Int4(1), Int4(0)), error="22012", where="execute")
    c.execute("SELECT count(*) FROM typed WHERE u = %b AND jb @> %b",
              (uuid.UUID("12345678-9abc-def0-1234-56789abcdef0"), Jsonb({"a": True})), rows=1)
    # A statement prepared and never executed.
    c.parse_only("dbtap_never_run", "SELECT $1::int4 + 1", [23])
    # executemany: pipeline mode.
    c.executemany_returning("INSERT INTO typed (id, t) VALUES (%s, %s) RETURNING id",
                            [(Int4(100 + i), f"many-{i}") for i in range(5)])
    # COPY in both directions.
    c.query("CREATE TEMP TABLE copied (id int, name text, at timestamptz)")
    c.copy_in("COPY copied (id, name, at) FROM STDIN",
              ((i, f"copy-{i}\twith tab", datetime.datetime(2024, 1, 1, tzinfo=utc))
               for i in range(1000)), expect=1000)
    c.copy_out("COPY (SELECT id, name FROM copied WHERE id < 600) TO STDOUT", expect=600)
    c.copy_out("COPY copied TO STDOUT (FORMAT binary)", expect=1000)
    # A query cancelled from another thread (CancelRequest on its own connection).
    c.cancelled("SELECT pg_sleep(10)")
    c.query("SELECT 1", rows=1)
    c.close()

    # 5. client_encoding GBK: Chinese text travels GBK-encoded (query text and text params).
    c = Conn("c8-gbk", md5_user, db, "md5", encoding="GBK")
    c.login(md5_pw)
    c.query("DELETE FROM gbk_text")
    c.query("INSERT INTO gbk_text (id, name) VALUES (1, '患者'), (2, '医生'), (3, '患者家属')",
            rows=3)
    c.query("SELECT id, name FROM gbk_text WHERE name = '患者'", rows=1)
    c.execute("UPDATE gbk_text SET name = %t WHERE name LIKE %t", ("病人", "患者%"), rows=2)
    c.query("SELECT id FROM gbk_text WHERE name = '病人'", rows=2)
    c.close()

    # 6. A session the server ends while it waits for nothing: pg_terminate_backend from another
    #    session of the same role (FATAL 57P01 "terminating connection due to administrator
    #    command") is a `terminated` record of the session that was cut off.
    victim = Conn("c10-terminated", scram_user, db, "scram-sha-256", app="dbtap-live-victim")
    victim.login(scram_pw)
    victim.query("SELECT 1", rows=1)
    killer = Conn("c11-killer", scram_user, db, "scram-sha-256")
    killer.login(scram_pw)
    killer.query(f"SELECT pg_terminate_backend({victim.connection_id})", rows=1)
    killer.close()
    # The server sends its FATAL at once (the capture sees it whether or not the client reads).
    time.sleep(0.5)
    TRUTH.add(victim, "terminated", status="error", code="57P01",
              note="pg_terminate_backend from c11-killer while the session was idle")
    victim.db.close()

    # 7. SSL (sslmode=require), when the server has it: recorded as an encrypted session.
    if env("SSL", "0") == "1":
        c = Conn("c9-ssl", scram_user, db, "scram-sha-256")
        c.login(scram_pw, sslmode="require")
        cur = c.db.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        cur.close()
        c.db.close()
    elif os.environ.get("CI") == "true" and os.environ.get("DBTAP_PG_SSL") != "0":
        # postgres.sh installs openssl and turns SSL on unless told DBTAP_PG_SSL=0: a server
        # without it under CI is a missing component, and the part must not pass unnoticed.
        sys.exit("pg_session.py: the server has ssl = off (CI=true: a failure, not a skip)")
    else:
        print("pg_session.py: the server has ssl = off: SSL part skipped", file=sys.stderr)


def main():
    global HOST, PORT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--truth", default="pg-truth.json", help="where to write the truth (JSON list)")
    ap.add_argument("--host", default=ENV.get("DBTAP_PG_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(ENV.get("DBTAP_PG_PORT", "0")))
    args = ap.parse_args()
    if not args.port:
        sys.exit("pg_session.py: no port (--port or DBTAP_PG_PORT)")
    HOST, PORT = args.host, args.port
    print(f"pg_session.py: {LIB} ({psycopg.pq.__impl__} implementation, libpq "
          f"{pq.version()}) against {HOST}:{PORT}", file=sys.stderr)
    rc = 0
    try:
        check(psycopg.pq.__impl__ == "python", f"psycopg uses the {psycopg.pq.__impl__} "
              "implementation, not the pure-Python one over the system libpq")
        scenario()
    except Exception:  # the truth so far is still written, for the post-mortem
        traceback.print_exc()
        rc = 1
    with open(args.truth, "w", encoding="utf-8") as f:
        json.dump(TRUTH.ops, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"pg_session.py: {len(TRUTH.ops)} operations -> {args.truth}"
          + (" (INCOMPLETE: the scenario failed)" if rc else ""), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
