#!/usr/bin/env python3
"""Check dbtap's audit records against the truth written by tests/live/session.py.

    compare.py TRUTH RECORDS [-v]

TRUTH is session.py's JSON list; RECORDS is dbtap's JSON Lines output ('-' for stdin).

Every truth entry must appear in the records, in order within its connection: the truth's
connection is found among the record sessions by client port (then server connection id, then best
match), and its entries are matched in order on op + sql (for prepared statements: a `prepare`
record and then `execute` records whose `sql` is the prepared text and whose `params` carry the typed
values). A matched record must have the expected status, error code, row count, params, user and
database. Records for operations the libraries send on their own (SET NAMES, SET autocommit,
COM_STMT_RESET, COM_STMT_CLOSE, ...) are ignored; -v lists them.

Prints one line per problem and a closing 'compare: N passed, N failed' line; exit 0 when every
truth entry matched, 1 otherwise, 2 on unreadable input.
"""

import argparse
import datetime
import decimal
import json
import math
import re
import sys
from collections import OrderedDict, defaultdict

# Truth op -> record op names accepted for it.
OP_ALIASES = {
    "reset_connection": {"reset_connection", "reset"},
    "logout": {"logout", "quit"},
}
# Ops after which the session's database may legitimately be the old or the new one on the record.
DB_CHANGING = {"init_db", "change_user"}


def load_truth(path):
    with open(path, encoding="utf-8") as f:
        truth = json.load(f)
    if not isinstance(truth, list):
        raise ValueError(f"{path}: not a JSON list")
    return truth


def load_records(path):
    f = sys.stdin if path == "-" else open(path, encoding="utf-8")
    records = []
    with f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not JSON: {e}") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{lineno}: not a JSON object")
            rec["_line"] = lineno
            records.append(rec)
    return records


def short(s, n=90):
    if s is None:
        return "null"
    s = str(s).replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 3] + "..."


def norm_sql(s):
    return re.sub(r"\s+", " ", s).strip().rstrip(";").strip()


def sql_match(truth_sql, rec):
    """'exact', 'loose' (whitespace / trailing ';'), 'prefix' (record truncated) or None."""
    rsql = rec.get("sql")
    if truth_sql is None:
        return "exact"
    if rsql is None:
        return None
    if rsql == truth_sql:
        return "exact"
    if norm_sql(rsql) == norm_sql(truth_sql):
        return "loose"
    if "truncated" in (rec.get("flags") or []) and truth_sql.startswith(rsql) and rsql:
        return "prefix"
    return None


def op_match(truth_op, rec):
    return rec.get("op") in OP_ALIASES.get(truth_op, {truth_op})


def entry_matches(t, rec):
    if not op_match(t["op"], rec):
        return None
    if t["op"] in ("login", "change_user", "logout", "ping", "reset_connection", "init_db"):
        if t["op"] == "init_db" and t.get("schema") and rec.get("sql") not in (None, t["schema"]):
            return None
        return "exact"
    return sql_match(t.get("sql"), rec)


# ---- params ---------------------------------------------------------------------------------

def _parse_dt(s):
    s = s.strip().replace("T", " ").rstrip("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(s, fmt)
        except ValueError:
            pass
    return None


def unescape_text(v):
    out = bytearray()
    for part in re.split(r"(\\x[0-9a-fA-F]{2})", v):
        if re.fullmatch(r"\\x[0-9a-fA-F]{2}", part):
            out.append(int(part[2:], 16))
        else:
            out += part.encode("utf-8")
    return bytes(out)


def param_ok(tp, rp):
    """Does record param `rp` ({type, value} / {type, hex}) carry truth param `tp`?"""
    if not isinstance(rp, dict):
        return False
    py = tp["py"]
    has_value = "value" in rp
    v = rp.get("value")
    if py == "NoneType":
        return has_value and v is None and "hex" not in rp
    if py == "bytes":
        if "hex" in rp:
            return str(rp["hex"]).lower() == tp["hex"]
        if isinstance(v, str):
            raw = bytes.fromhex(tp["hex"])
            try:
                if raw.decode("utf-8") == v:
                    return True
            except UnicodeDecodeError:
                pass
            # Text with the non-UTF-8 bytes written as \xNN: lossless, accepted with a note.
            if unescape_text(v) == raw:
                return "escaped"
        return False
    if not has_value or v is None:
        return False
    tv = tp["value"]
    if py == "bool":
        return v in (tv, int(tv), str(int(tv)))
    if py == "int":
        try:
            return int(v) == tv and not (isinstance(v, float) and not v.is_integer())
        except (TypeError, ValueError):
            return False
    if py == "float":
        try:
            fv = float(v)
        except (TypeError, ValueError):
            return False
        return math.isclose(fv, tv, rel_tol=1e-12, abs_tol=0.0) or fv == tv
    if py == "Decimal":
        try:
            return decimal.Decimal(str(v)) == decimal.Decimal(tv)
        except decimal.InvalidOperation:
            return False
    if py == "str":
        return v == tv
    if py in ("date", "datetime"):
        if not isinstance(v, str):
            return False
        a, b = _parse_dt(v), _parse_dt(tv)
        return a is not None and a == b
    if py in ("time", "timedelta"):
        return str(v) == str(tv)
    return False


def show_param(p):
    if p is None:
        return "?"
    if "hex" in p:
        return f"{p.get('py') or p.get('type')}:0x{p['hex']}"
    return f"{p.get('py') or p.get('type')}:{json.dumps(p.get('value'), ensure_ascii=False)}"


def params_problems(tparams, rparams):
    """(problems, notes)."""
    if tparams is None:
        return [], []
    if not isinstance(rparams, list):
        return [f"params: expected {len(tparams)} values, record has {json.dumps(rparams)}"], []
    probs, notes = [], []
    if len(rparams) != len(tparams):
        probs.append(f"params: expected {len(tparams)} values, record has {len(rparams)}")
    for i, tp in enumerate(tparams):
        rp = rparams[i] if i < len(rparams) else None
        ok = param_ok(tp, rp)
        if not ok:
            probs.append(f"param {i + 1}: expected {show_param(tp)}, record has "
                         f"{json.dumps(rp, ensure_ascii=False) if rp is not None else 'nothing'}")
        elif ok == "escaped":
            notes.append(f"param {i + 1}: bytes 0x{tp['hex']} as escaped text "
                         f"{json.dumps(rp.get('value'))} (type {rp.get('type')})")
    return probs, notes


# ---- one matched pair -----------------------------------------------------------------------

def error_code(rec):
    err = rec.get("error")
    if isinstance(err, dict):
        return err.get("code")
    return None


def check_pair(t, rec, how):
    """(problems, notes) of a matched truth entry and record."""
    probs, notes = [], []
    if how == "loose":
        notes.append(f"sql differs in whitespace/';': record {short(rec.get('sql'))!s}")
    elif how == "prefix":
        notes.append("record sql truncated (flag 'truncated')")
    want = t.get("expect_status")
    if want is not None and rec.get("status") != want:
        probs.append(f"status: expected {want}, record has {rec.get('status')}")
    want_code = t.get("expect_error_code")
    if want_code is not None and error_code(rec) != want_code:
        probs.append(f"error code: expected {want_code}, record has {error_code(rec)} "
                     f"({short(json.dumps(rec.get('error'), ensure_ascii=False), 60)})")
    if want == "ok" and rec.get("error") not in (None, {}):
        probs.append(f"error: expected none, record has {short(json.dumps(rec['error']), 60)}")
    want_rows = t.get("expect_rows")
    if want_rows is not None and rec.get("rows") != want_rows:
        probs.append(f"rows: expected {want_rows}, record has {rec.get('rows')}")
    if t["op"] == "execute" or t.get("params") is not None:
        p, n = params_problems(t.get("params"), rec.get("params"))
        probs += p
        notes += n
    if t.get("user") is not None and rec.get("user") != t["user"] and t["op"] != "change_user":
        probs.append(f"user: expected {t['user']}, record has {rec.get('user')}")
    if (t.get("database") is not None and t["op"] not in DB_CHANGING
            and not (t["op"] == "query" and norm_sql(t.get("sql") or "").upper().startswith("USE "))
            and rec.get("database") != t["database"]):
        probs.append(f"database: expected {t['database']}, record has {rec.get('database')}")
    if t.get("expect_status") == "ok" and rec.get("flags"):
        bad = [f for f in rec["flags"] if f in ("partial", "midstream", "no_response")]
        if bad:
            probs.append(f"flags: {bad} on a fully captured operation")
    return probs, notes


def find_next(pred, recs, pos, taken):
    for j in range(pos, len(recs)):
        if j not in taken:
            how = pred(recs[j])
            if how:
                return j, how
    return None, None


def match_entry(t, recs, pos, taken):
    """The records that carry truth entry `t`, searching from `pos`: [(index, how, expectation)],
    or None. A multi-statement query is one record with the whole text, or one record per executed
    statement (with that statement's result), in order."""
    j, how = find_next(lambda r: entry_matches(t, r), recs, pos, taken)
    if j is not None:
        return [(j, how, t)]
    if not t.get("statements"):
        return None
    out, p, taken = [], pos, set(taken)
    for stmt, res in zip(t["statements"], t.get("results") or []):
        err = isinstance(res, dict)
        sub = dict(t, sql=stmt, statements=None, results=None,
                   expect_rows=None if err else res,
                   expect_status="error" if err else "ok",
                   expect_error_code=res.get("error") if err else None)
        j, how = find_next(lambda r, sub=sub: entry_matches(sub, r), recs, p, taken)
        if j is None:
            return None
        out.append((j, how, sub))
        taken.add(j)
        p = j + 1
    return out or None


# ---- sessions -------------------------------------------------------------------------------

def group_records(records):
    sessions = OrderedDict()
    for r in records:
        if r.get("protocol", "mysql") != "mysql":
            continue
        sessions.setdefault(r.get("session_id"), []).append(r)
    for recs in sessions.values():
        recs.sort(key=lambda r: (r.get("seq") or 0, r["_line"]))
    return sessions


def subseq_score(entries, recs):
    i = 0
    score = 0
    for t in entries:
        j = i
        while j < len(recs) and not entry_matches(t, recs[j]):
            j += 1
        if j < len(recs):
            score += 1
            i = j + 1
    return score


def assign_sessions(conns, sessions):
    """truth conn label -> session id (or None), and how it was found."""
    out, used = {}, set()

    def client_port(recs):
        c = recs[0].get("client") or {}
        return c.get("port")

    def conn_ids(recs):
        return {r.get("connection_id") for r in recs if r.get("connection_id") is not None}

    for label, entries in conns.items():
        port = entries[0].get("client_port")
        if port is None:
            continue
        found = [sid for sid, recs in sessions.items() if sid not in used and client_port(recs) == port]
        if found:
            # Several sessions from one client port (port reuse): the best-matching one.
            sid = max(found, key=lambda s: subseq_score(entries, sessions[s]))
            out[label] = (sid, f"client port {port}")
            used.add(sid)
    for label, entries in conns.items():
        if label in out:
            continue
        cid = entries[0].get("connection_id")
        if cid is None:
            continue
        found = [sid for sid, recs in sessions.items() if sid not in used and cid in conn_ids(recs)]
        if found:
            sid = max(found, key=lambda s: subseq_score(entries, sessions[s]))
            out[label] = (sid, f"connection id {cid}")
            used.add(sid)
    # No port, no connection id: the best-matching session, the longest connections first (a
    # connection of one login matches almost any session); ties go to the same user, then to the
    # closest number of records.
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


def describe_rec(r):
    return (f"line {r['_line']} seq {r.get('seq')} {r.get('op')} {r.get('status')} "
            f"rows={r.get('rows')} {short(r.get('sql'), 70)}")


def check_secrets(truth, records):
    """Secrets the session used (login passwords, passwords written in SQL: the truth entries'
    "secrets") must appear in no record at all. Returns (passed, failed)."""
    secrets = sorted({x for t in truth for x in t.get("secrets") or [] if x})
    text = json.dumps(records, ensure_ascii=False)
    leaked = [x for x in secrets if x in text]
    for x in leaked:
        print(f"  LEAK     a secret of the session ({len(x)} characters) appears in the records")
    if secrets and not leaked:
        print(f"  ok       none of the session's {len(secrets)} secrets appears in the records")
        return 1, 0
    return 0, len(leaked)


def main():
    ap = argparse.ArgumentParser(description="Check dbtap records against session.py's truth.")
    ap.add_argument("truth")
    ap.add_argument("records")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also list matches and the extra records (library housekeeping)")
    args = ap.parse_args()
    try:
        truth = load_truth(args.truth)
        records = load_records(args.records)
    except (OSError, ValueError) as e:
        print(f"compare: cannot read input: {e}", file=sys.stderr)
        return 2

    sessions = group_records(records)
    conns = OrderedDict()
    for t in truth:
        conns.setdefault(t["conn"], []).append(t)
    assigned, used = assign_sessions(conns, sessions)

    passed = failed = 0
    lines = []
    extras = defaultdict(list)
    print(f"compare: {len(truth)} truth operations in {len(conns)} connections; "
          f"{len(records)} records in {len(sessions)} sessions")
    for label, entries in conns.items():
        sid, how = assigned[label]
        lib = entries[0].get("library", "")
        if sid is None:
            print(f"\n[{label}] {lib}: NO SESSION in the records (client port "
                  f"{entries[0].get('client_port')}, connection id {entries[0].get('connection_id')})")
            for t in entries:
                print(f"  MISSING  {describe(t)}")
                failed += 1
            continue
        recs = sessions[sid]
        print(f"\n[{label}] {lib} -> session {sid} ({how}), {len(recs)} records")
        pos = 0
        matched_idx = set()
        for t in entries:
            pairs = match_entry(t, recs, pos, matched_idx)
            if pairs is None:
                earlier = [k for k in range(pos) if k not in matched_idx and entry_matches(t, recs[k])]
                if earlier:
                    print(f"  ORDER    {describe(t)}: found only before the previous match, at "
                          f"{describe_rec(recs[earlier[0]])}")
                else:
                    print(f"  MISSING  {describe(t)}")
                    near = [r for r in recs if op_match(t["op"], r)][:3]
                    for r in near:
                        print(f"             (record with that op: {describe_rec(r)})")
                failed += 1
                continue
            last = max(j for j, _, _ in pairs)
            for j, _, _ in pairs:
                matched_idx.add(j)
            for k in range(pos, last):
                if k not in matched_idx:
                    extras[label].append(recs[k])
            pos = last + 1
            probs, notes = [], []
            for j, how_m, sub in pairs:
                p, n = check_pair(sub, recs[j], how_m)
                if len(pairs) > 1:
                    p = [f"statement {short(sub['sql'], 40)!r}: {x}" for x in p]
                probs += p
                notes += n
            if len(pairs) > 1:
                notes.append(f"multi-statement query as {len(pairs)} records, one per statement")
            if probs:
                failed += 1
                print(f"  WRONG    {describe(t)}")
                for j, _, _ in pairs:
                    print(f"           record: {describe_rec(recs[j])}")
                for p in probs + notes:
                    print(f"           - {p}")
            else:
                passed += 1
                if args.verbose or notes:
                    print(f"  ok       {describe(t)}" + (f"  [{'; '.join(notes)}]" if notes else ""))
        extras[label].extend(r for k, r in enumerate(recs[pos:], pos) if k not in matched_idx)
        if extras[label]:
            ops = defaultdict(int)
            for r in extras[label]:
                ops[r.get("op")] += 1
            print(f"  ({len(extras[label])} extra records ignored: "
                  + ", ".join(f"{k}×{v}" for k, v in sorted(ops.items(), key=str)) + ")")
            if args.verbose:
                for r in extras[label]:
                    print(f"    extra  {describe_rec(r)}")

    other = [sid for sid in sessions if sid not in used]
    if other:
        print(f"\n{len(other)} record sessions matched no truth connection"
              + ("" if args.verbose else " (-v lists them)"))
        if args.verbose:
            for sid in other:
                r0 = sessions[sid][0]
                print(f"  session {sid} client {r0.get('client')} user {r0.get('user')}: "
                      f"{len(sessions[sid])} records, first {describe_rec(r0)}")
    p, f = check_secrets(truth, records)
    passed, failed = passed + p, failed + f
    print(f"\ncompare: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
