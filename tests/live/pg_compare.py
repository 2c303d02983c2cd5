#!/usr/bin/env python3
"""Check dbtap's PostgreSQL audit records against pg_session.py's truth, or against a pgbench run.

    pg_compare.py TRUTH RECORDS [-v]              the scripted session (pg_session.py's truth)
    pg_compare.py --pgbench RUN.json RECORDS [-v] a pgbench run: per statement kind

RECORDS is dbtap's JSON Lines output ('-' for stdin); only `protocol: "postgresql"` records count.

Session: every truth entry must appear in the records, in order within its connection. The truth's
connection is found among the record sessions by client port (then by connection id = backend
pid, which is how the CancelRequest's own connection is found, then best match), and its entries
are matched in order on op + sql. A matched record must have the expected status, SQLSTATE
(`error.code` and `error.sqlstate`), row count, typed params (execute), user, database, and for
logins the auth method, connection id and application name; a multi-statement simple Query must
be one record per executed statement. Records the truth does not list (library housekeeping) are
ignored; -v lists them.

pgbench: RUN.json is {"mode": "simple"|"extended"|"prepared", "transactions": T, "clients": C,
"failed": 0}. pgbench's tpcb-like transaction is BEGIN; UPDATE pgbench_accounts; SELECT abalance;
UPDATE pgbench_tellers; UPDATE pgbench_branches; INSERT INTO pgbench_history; END: the records
must hold exactly T of each kind (op `query` in simple mode, `execute` with one bind value per
placeholder otherwise), all `ok`, `rows` 1 for the UPDATEs, the SELECT and the INSERT. -M prepared
sends each statement's Parse + Sync once per connection, before its first Bind: exactly one `ok`
`prepare` record per kind and connection; the other modes none (their Parse, unnamed, is bound in
the same batch: part of the `execute`).

Prints one line per problem and a closing 'pg_compare: N passed, N failed' line; exit 0 when
everything matched, 1 otherwise, 2 on unreadable input.
"""

import argparse
import datetime
import decimal
import json
import math
import os
import re
import sys
import uuid
from collections import Counter, OrderedDict, defaultdict

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the import below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The MariaDB comparison's protocol-neutral helpers (reading, SQL matching, printing).
from compare import (check_secrets, describe_rec, find_next, load_records, load_truth, norm_sql,  # noqa: E402
                     short, sql_match)

PROTOCOL = "postgresql"
OP_ALIASES = {"logout": {"logout", "terminate", "quit"}}
# Auth method names accepted for a pg_hba.conf method.
AUTH_ALIASES = {
    "scram-sha-256": {"scram-sha-256", "SCRAM-SHA-256", "scram_sha_256"},
    "md5": {"md5", "MD5"},
    "password": {"password", "cleartext", "cleartext_password", "plaintext"},
}
# Type names accepted for a typname.
TYPE_ALIASES = {
    "int2": {"smallint"}, "int4": {"integer", "int"}, "int8": {"bigint"},
    "float4": {"real"}, "float8": {"double precision", "double"}, "bool": {"boolean"},
    "numeric": {"decimal"}, "timestamp": {"timestamp without time zone"},
    "timestamptz": {"timestamp with time zone"}, "varchar": {"character varying"},
}


def type_names(t):
    names = {t} | TYPE_ALIASES.get(t, set())
    if t.endswith("[]"):
        base = t[:-2]
        for b in {base} | TYPE_ALIASES.get(base, set()):
            names |= {b + "[]", "_" + b}
    return names


# ---- matching -------------------------------------------------------------------------------

def op_match(truth_op, rec):
    return rec.get("op") in OP_ALIASES.get(truth_op, {truth_op})


def entry_matches(t, rec):
    if not op_match(t["op"], rec):
        return None
    if t["op"] in ("login", "logout", "cancel", "terminated"):
        return "exact"
    return sql_match(t.get("sql"), rec)


def match_entry(t, recs, pos, taken):
    """The records that carry truth entry `t`, searching from `pos`: [(index, how, expectation)],
    or None. A multi-statement Query must be one record per executed statement, in order; a
    single record with the whole text is returned with expectation None (wrong)."""
    if not t.get("multi"):
        j, how = find_next(lambda r: entry_matches(t, r), recs, pos, taken)
        return None if j is None else [(j, how, t)]
    out, p, seen = [], pos, set(taken)
    for stmt, res in zip(t["statements"], t.get("results") or []):
        err = isinstance(res, dict)
        sub = dict(t, sql=stmt, multi=False, statements=None, results=None,
                   expect_rows=None if err else res,
                   expect_status="error" if err else "ok",
                   expect_error_code=res.get("error") if err else None)
        j, how = find_next(lambda r, sub=sub: entry_matches(sub, r), recs, p, seen)
        if j is None:
            out = None
            break
        out.append((j, how, sub))
        seen.add(j)
        p = j + 1
    if out:
        return out
    j, how = find_next(lambda r: entry_matches(dict(t, multi=False), r), recs, pos, taken)
    return None if j is None else [(j, how, None)]


# ---- params ---------------------------------------------------------------------------------

def _num(v):
    if isinstance(v, bool):
        raise ValueError
    return v


def _dt(s, aware):
    if not isinstance(s, str):
        return None
    s = s.strip().replace("T", " ")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    s = re.sub(r"([+-]\d\d)$", r"\1:00", s)  # PostgreSQL's "+00"
    try:
        d = datetime.datetime.fromisoformat(s)
    except ValueError:
        return None
    if aware and d.tzinfo is None:
        return None
    return d


def value_ok(kind, tv, v, rp=None):
    """Does record value `v` carry truth value `tv` of Python kind `kind`?"""
    try:
        if kind == "NoneType":
            return v is None and (rp is None or "hex" not in rp)
        if v is None:
            return False
        if kind == "int":
            v = _num(v)
            return int(v) == tv and not (isinstance(v, float) and not v.is_integer())
        if kind == "float":
            fv = float(_num(v))
            return fv == tv or math.isclose(fv, tv, rel_tol=1e-12)
        if kind == "Decimal":
            return decimal.Decimal(str(_num(v))) == decimal.Decimal(tv)
        if kind == "str":
            return v == tv
        if kind == "bool":
            if isinstance(v, bool):
                return v == tv
            return str(v).lower() in (("t", "true", "1", "on", "yes") if tv else
                                      ("f", "false", "0", "off", "no"))
        if kind == "date":
            return str(v).strip() == tv
        if kind in ("datetime", "datetimetz"):
            a, b = _dt(v, kind == "datetimetz"), _dt(tv, kind == "datetimetz")
            return a is not None and a == b
        if kind == "uuid":
            return uuid.UUID(str(v)) == uuid.UUID(tv)
        if kind == "json":
            return (json.loads(v) if isinstance(v, str) else v) == tv
    except (TypeError, ValueError, ArithmeticError):
        return False
    return False


def param_problem(tp, rp):
    """None if record param `rp` carries truth param `tp`, else what is wrong."""
    if not isinstance(rp, dict):
        return "no param object"
    if tp["type"] is not None:
        if rp.get("type") not in type_names(tp["type"]):
            return f"type {rp.get('type')!r}, expected {tp['type']}"
    kind = tp["py"]
    has_value = "value" in rp
    v = rp.get("value")
    if kind == "NoneType":
        return None if has_value and v is None and "hex" not in rp else "expected NULL"
    # A text-format value kept exactly as sent is always right.
    if "wire" in tp and has_value and v == tp["wire"]:
        return None
    if kind == "bytes":
        if "hex" in rp:
            return None if str(rp["hex"]).lower() == tp["hex"] else "other bytes"
        if isinstance(v, str) and v.lower() in ("\\x" + tp["hex"],):
            return None
        return "other bytes"
    if kind == "array":
        if not isinstance(v, list):
            return "expected a list"
        if len(v) != len(tp["value"]):
            return f"{len(v)} elements, expected {len(tp['value'])}"
        for k, (ek, tv, rv) in enumerate(zip(tp["elements"], tp["value"], v)):
            if not value_ok(ek, tv, rv):
                return f"element {k + 1}: {json.dumps(rv, ensure_ascii=False)}, expected {tv!r}"
        return None
    if not has_value:
        return "no value"
    return None if value_ok(kind, tp.get("value"), v, rp) else "other value"


def show_param(p):
    if p is None:
        return "?"
    t = p.get("type") or f"(oid 0, {p.get('py')})"
    if "hex" in p:
        return f"{t}:0x{p['hex']}"
    return f"{t}:{json.dumps(p.get('value'), ensure_ascii=False)}"


def params_problems(tparams, rparams):
    if tparams is None:
        return []
    if not isinstance(rparams, list):
        return [f"params: expected {len(tparams)} values, record has {json.dumps(rparams)}"]
    probs = []
    if len(rparams) != len(tparams):
        probs.append(f"params: expected {len(tparams)} values, record has {len(rparams)}")
    for i, tp in enumerate(tparams):
        rp = rparams[i] if i < len(rparams) else None
        why = param_problem(tp, rp) if rp is not None else "missing"
        if why:
            probs.append(f"param {i + 1} ({tp['format']}): expected {show_param(tp)}, record has "
                         f"{json.dumps(rp, ensure_ascii=False) if rp is not None else 'nothing'}"
                         f" [{why}]")
    return probs


# ---- one matched pair -----------------------------------------------------------------------

def check_pair(t, rec, how):
    """(problems, notes) of a matched truth entry and record."""
    probs, notes = [], []
    if how == "loose":
        notes.append(f"sql differs in whitespace/';': record {short(rec.get('sql'))}")
    elif how == "prefix":
        notes.append("record sql truncated (flag 'truncated')")
    want = t.get("expect_status")
    if want is not None and rec.get("status") != want:
        probs.append(f"status: expected {want}, record has {rec.get('status')}")
    err = rec.get("error") if isinstance(rec.get("error"), dict) else {}
    code = t.get("expect_error_code")
    if code is not None:
        if err.get("code") != code:
            probs.append(f"error.code: expected {code!r}, record has {err.get('code')!r} "
                         f"({short(json.dumps(rec.get('error'), ensure_ascii=False), 60)})")
        if err.get("sqlstate") != code:
            probs.append(f"error.sqlstate: expected {code!r}, record has {err.get('sqlstate')!r}")
    if want == "ok" and rec.get("error") not in (None, {}):
        probs.append(f"error: expected none, record has {short(json.dumps(rec['error']), 60)}")
    rows = t.get("expect_rows")
    if rows is not None and rec.get("rows") != rows:
        probs.append(f"rows: expected {rows}, record has {rec.get('rows')}")
    if t["op"] == "execute":
        probs += params_problems(t.get("params"), rec.get("params"))
    if t.get("user") is not None and rec.get("user") != t["user"]:
        probs.append(f"user: expected {t['user']}, record has {rec.get('user')}")
    if t.get("database") is not None and rec.get("database") != t["database"]:
        probs.append(f"database: expected {t['database']}, record has {rec.get('database')}")
    if t["op"] == "login":
        login = rec.get("login") if isinstance(rec.get("login"), dict) else {}
        am = t.get("auth_method")
        if am is not None and login.get("auth_method") not in AUTH_ALIASES.get(am, {am}):
            probs.append(f"login.auth_method: expected {am}, record has {login.get('auth_method')!r}")
        app = t.get("client_program")
        if app is not None:
            if rec.get("client_program") is None:
                notes.append(f"client_program not recorded (application_name {app!r})")
            elif rec.get("client_program") != app:
                probs.append(f"client_program: expected {app!r}, record has {rec.get('client_program')!r}")
        sv = t.get("server_version")
        if sv and rec.get("server_version") not in (sv, None) and rec.get("status") == "ok":
            probs.append(f"server_version: expected {sv!r}, record has {rec.get('server_version')!r}")
    cid = t.get("connection_id")
    if cid is not None and t.get("expect_status") == "ok" and t["op"] == "login" \
            and rec.get("connection_id") != cid:
        probs.append(f"connection_id: expected {cid} (backend pid), record has {rec.get('connection_id')}")
    if t["op"] == "cancel" and cancel_target(rec) != cid:
        probs.append(f"cancel: expected the cancelled backend's pid {cid} (connection_id or "
                     f"attributes.target_backend_pid), record has connection_id "
                     f"{rec.get('connection_id')}, attributes {rec.get('attributes')}")
    flags = rec.get("flags") or []
    for f in t.get("expect_flags") or []:
        if f not in flags:
            probs.append(f"flags: expected {f!r}, record has {flags}")
    if t.get("expect_status") == "ok":
        bad = [f for f in flags if f in ("partial", "midstream", "no_response", "encrypted")]
        if bad:
            probs.append(f"flags: {bad} on a fully captured operation")
    return probs, notes


def cancel_target(rec):
    """The backend pid a CancelRequest record names: connection_id, or the attribute."""
    if rec.get("connection_id") is not None:
        return rec["connection_id"]
    v = (rec.get("attributes") or {}).get("target_backend_pid")
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


# ---- sessions -------------------------------------------------------------------------------

def group_records(records):
    sessions = OrderedDict()
    for r in records:
        if r.get("protocol") != PROTOCOL:
            continue
        sessions.setdefault(r.get("session_id"), []).append(r)
    for recs in sessions.values():
        recs.sort(key=lambda r: (r.get("seq") or 0, r["_line"]))
    return sessions


def subseq_score(entries, recs):
    i = score = 0
    for t in entries:
        j = i
        while j < len(recs) and not entry_matches(dict(t, multi=False), recs[j]):
            j += 1
        if j < len(recs):
            score += 1
            i = j + 1
    return score


def assign_sessions(conns, sessions):
    """truth conn label -> (session id or None, how found)."""
    out, used = {}, set()

    def client_port(recs):
        return (recs[0].get("client") or {}).get("port")

    for label, entries in conns.items():
        port = entries[0].get("client_port")
        if port is None:
            continue
        found = [s for s, recs in sessions.items() if s not in used and client_port(recs) == port]
        if found:
            sid = max(found, key=lambda s: subseq_score(entries, sessions[s]))
            out[label] = (sid, f"client port {port}")
            used.add(sid)
    for label, entries in conns.items():
        cid = entries[0].get("connection_id")
        if label in out or cid is None:
            continue
        found = [s for s, recs in sessions.items() if s not in used
                 and any(r.get("connection_id") == cid
                         or (r.get("op") == "cancel" and cancel_target(r) == cid) for r in recs)]
        if found:
            sid = max(found, key=lambda s: subseq_score(entries, sessions[s]))
            out[label] = (sid, f"connection id {cid}")
            used.add(sid)
    for label, entries in sorted(conns.items(), key=lambda kv: -len(kv[1])):
        if label in out:
            continue
        best, best_key = None, None
        for sid, recs in sessions.items():
            if sid in used:
                continue
            sc = subseq_score(entries, recs)
            key = (sc, recs[0].get("user") == entries[0].get("user"), -abs(len(recs) - len(entries)))
            if sc and (best_key is None or key > best_key):
                best, best_key = sid, key
        if best is not None and best_key[0] * 2 >= len(entries):
            out[label] = (best, f"best match ({best_key[0]}/{len(entries)} operations)")
            used.add(best)
        else:
            out[label] = (None, "no session found")
    return out, used


def describe(t):
    bits = [f"#{t['n']}", t["conn"], t["op"]]
    if t.get("sql") is not None:
        bits.append(repr(short(t["sql"], 70)))
    if t.get("params") is not None:
        bits.append("(" + ", ".join(show_param(p) for p in t["params"]) + ")")
    return " ".join(bits)


def compare_session(truth, records, verbose):
    sessions = group_records(records)
    conns = OrderedDict()
    for t in truth:
        conns.setdefault(t["conn"], []).append(t)
    assigned, used = assign_sessions(conns, sessions)
    passed = failed = 0
    print(f"pg_compare: {len(truth)} truth operations in {len(conns)} connections; "
          f"{sum(len(s) for s in sessions.values())} {PROTOCOL} records in {len(sessions)} sessions"
          f" ({len(records)} records in all)")
    for label, entries in conns.items():
        sid, how = assigned[label]
        if sid is None:
            print(f"\n[{label}] {entries[0].get('library', '')}: NO SESSION in the records (client "
                  f"port {entries[0].get('client_port')}, connection id {entries[0].get('connection_id')})")
            for t in entries:
                print(f"  MISSING  {describe(t)}")
                failed += 1
            continue
        recs = sessions[sid]
        print(f"\n[{label}] {entries[0].get('library', '')} -> session {sid} ({how}), {len(recs)} records")
        pos, matched, extras = 0, set(), []
        for t in entries:
            pairs = match_entry(t, recs, pos, matched)
            if pairs is None:
                earlier = [k for k in range(pos) if k not in matched
                           and entry_matches(dict(t, multi=False), recs[k])]
                if earlier:
                    print(f"  ORDER    {describe(t)}: found only before the previous match, at "
                          f"{describe_rec(recs[earlier[0]])}")
                else:
                    print(f"  MISSING  {describe(t)}")
                    for r in [r for r in recs if op_match(t["op"], r)][:3]:
                        print(f"             (record with that op: {describe_rec(r)})")
                failed += 1
                continue
            last = max(j for j, _, _ in pairs)
            matched.update(j for j, _, _ in pairs)
            extras += [recs[k] for k in range(pos, last) if k not in matched]
            pos = last + 1
            probs, notes = [], []
            if len(pairs) == 1 and pairs[0][2] is None:
                probs.append("a multi-statement Query as one record: expected one record per "
                             f"statement ({len(t['statements'])} statements, "
                             f"{len(t.get('results') or [])} executed)")
            else:
                for j, how_m, sub in pairs:
                    p, n = check_pair(sub, recs[j], how_m)
                    if t.get("multi"):
                        p = [f"statement {short(sub['sql'], 40)!r}: {x}" for x in p]
                    probs += p
                    notes += n
            if t.get("multi") and not probs:
                notes.append(f"multi-statement Query as {len(pairs)} records")
            if probs:
                failed += 1
                print(f"  WRONG    {describe(t)}")
                for j, _, _ in pairs:
                    print(f"           record: {describe_rec(recs[j])}")
                for p in probs + notes:
                    print(f"           - {p}")
            else:
                passed += 1
                if verbose or (notes and not all("multi-statement" in n for n in notes)):
                    print(f"  ok       {describe(t)}" + (f"  [{'; '.join(notes)}]" if notes else ""))
        extras += [r for k, r in enumerate(recs[pos:], pos) if k not in matched]
        if extras:
            ops = Counter(r.get("op") for r in extras)
            print(f"  ({len(extras)} extra records ignored: "
                  + ", ".join(f"{k}×{v}" for k, v in sorted(ops.items(), key=str)) + ")")
            if verbose:
                for r in extras:
                    print(f"    extra  {describe_rec(r)}")
    other = [sid for sid in sessions if sid not in used]
    if other:
        print(f"\n{len(other)} record sessions matched no truth connection"
              + ("" if verbose else " (-v lists them)"))
        if verbose:
            for sid in other:
                r0 = sessions[sid][0]
                print(f"  session {sid} client {r0.get('client')} user {r0.get('user')}: "
                      f"{len(sessions[sid])} records, first {describe_rec(r0)}")
    return passed, failed


# ---- pgbench --------------------------------------------------------------------------------

PGBENCH_KINDS = [
    ("BEGIN", re.compile(r"^BEGIN\b", re.I), None),
    ("UPDATE pgbench_accounts", re.compile(r"^UPDATE\s+pgbench_accounts\b", re.I), 1),
    ("SELECT abalance", re.compile(r"^SELECT\s+abalance\s+FROM\s+pgbench_accounts\b", re.I), 1),
    ("UPDATE pgbench_tellers", re.compile(r"^UPDATE\s+pgbench_tellers\b", re.I), 1),
    ("UPDATE pgbench_branches", re.compile(r"^UPDATE\s+pgbench_branches\b", re.I), 1),
    ("INSERT INTO pgbench_history", re.compile(r"^INSERT\s+INTO\s+pgbench_history\b", re.I), 1),
    ("END", re.compile(r"^END\b", re.I), None),
]


def kind_of(sql):
    s = norm_sql(sql or "")
    for name, rx, _ in PGBENCH_KINDS:
        if rx.match(s):
            return name
    return None


def compare_pgbench(run, records, verbose):
    mode, txs = run["mode"], int(run["transactions"])
    want_op = "query" if mode == "simple" else "execute"
    recs = [r for r in records if r.get("protocol") == PROTOCOL]
    print(f"pg_compare: pgbench -M {mode}, {run.get('clients')} clients, {txs} transactions "
          f"({txs * len(PGBENCH_KINDS)} statements); {len(recs)} {PROTOCOL} records "
          f"({len(records)} in all) in {len({r.get('session_id') for r in recs})} sessions")
    passed = failed = 0
    if int(run.get("failed") or 0):
        print(f"  NOTE     pgbench reported {run['failed']} failed transactions")
    by_kind = defaultdict(list)
    others = Counter()
    for r in recs:
        k = kind_of(r.get("sql"))
        if k is None:
            others[(r.get("op"), short(norm_sql(r.get("sql") or ""), 50) if r.get("sql") else None)] += 1
        else:
            by_kind[k].append(r)
    for name, _, rows in PGBENCH_KINDS:
        rs = by_kind.get(name, [])
        ops = Counter(r.get("op") for r in rs)
        main = [r for r in rs if r.get("op") == want_op]
        probs = []
        if len(main) != txs:
            probs.append(f"{len(main)} `{want_op}` records, expected {txs} (one per transaction)")
        wrong_ops = {k: v for k, v in ops.items() if k not in (want_op, "prepare")}
        if wrong_ops:
            probs.append("records with other ops: " + ", ".join(f"{k}×{v}" for k, v in wrong_ops.items()))
        prepares = [r for r in rs if r.get("op") == "prepare"]
        conns = {r.get("session_id") for r in main}
        if mode == "prepared":
            per_conn = Counter(r.get("session_id") for r in prepares)
            if set(per_conn) != conns or set(per_conn.values()) != {1}:
                probs.append(f"{len(prepares)} `prepare` records in {len(per_conn)} sessions; expected "
                             f"one per connection ({len(conns)} connections executed it)")
            pst = Counter(r.get("status") for r in prepares)
            if set(pst) - {"ok"}:
                probs.append("prepare status: " + ", ".join(f"{k}×{v}" for k, v in pst.items()))
        elif prepares:
            probs.append(f"{len(prepares)} `prepare` records (-M {mode}: every Parse is bound in "
                         "its batch, none expected)")
        st = Counter(r.get("status") for r in main)
        if set(st) - {"ok"}:
            probs.append("status: " + ", ".join(f"{k}×{v}" for k, v in st.items()) + " (all ok expected)")
        if rows is not None:
            rc = Counter(r.get("rows") for r in main)
            if set(rc) - {rows}:
                probs.append(f"rows: " + ", ".join(f"{k}×{v}" for k, v in rc.most_common(4))
                             + f" ({rows} expected)")
        if mode != "simple":
            bad = 0
            for r in main:
                want = len(set(re.findall(r"\$(\d+)", r.get("sql") or "")))
                ps = r.get("params")
                if not isinstance(ps, list) or len(ps) != want or any(
                        not isinstance(p, dict) or p.get("value") is None for p in ps):
                    bad += 1
                    if bad == 1:
                        probs.append(f"params: e.g. {describe_rec(r)} has "
                                     f"{short(json.dumps(ps), 80)}, expected {want} values")
            if bad > 1:
                probs.append(f"params wrong on {bad} records")
        flagged = Counter(f for r in main for f in (r.get("flags") or []))
        if flagged:
            probs.append("flags: " + ", ".join(f"{k}×{v}" for k, v in flagged.items()))
        if probs:
            failed += 1
            print(f"  WRONG    {name}: {len(rs)} records")
            for p in probs:
                print(f"           - {p}")
        else:
            passed += 1
            print(f"  ok       {name}: {len(main)} `{want_op}` records, all ok"
                  + (f", rows {rows}" if rows is not None else "")
                  + (f"; {len(prepares)} `prepare` (one per connection)" if prepares else ""))
    if others:
        print(f"  ({sum(others.values())} other records ignored: "
              + ", ".join(f"{op}×{n}" for op, n in
                          sorted(Counter(op for (op, _) in others.elements()).items(), key=str)) + ")")
        if verbose:
            for (op, sql), n in others.most_common():
                print(f"    extra  {n:6} × {op} {sql or ''}")
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description="Check dbtap PostgreSQL records against the truth.")
    ap.add_argument("truth", nargs="?", help="pg_session.py's truth (JSON list)")
    ap.add_argument("records")
    ap.add_argument("--pgbench", metavar="RUN.json", help="check a pgbench run instead")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also list matches and the extra records (library housekeeping)")
    args = ap.parse_args()
    if (args.truth is None) == (args.pgbench is None):
        ap.error("give either TRUTH or --pgbench RUN.json")
    try:
        records = load_records(args.records)
        if args.pgbench:
            with open(args.pgbench, encoding="utf-8") as f:
                run = json.load(f)
        else:
            truth = load_truth(args.truth)
    except (OSError, ValueError, KeyError) as e:
        print(f"pg_compare: cannot read input: {e}", file=sys.stderr)
        return 2
    if args.pgbench:
        passed, failed = compare_pgbench(run, records, args.verbose)
    else:
        passed, failed = compare_session(truth, records, args.verbose)
        p, f = check_secrets(truth, records)
        passed, failed = passed + p, failed + f
    print(f"\npg_compare: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
