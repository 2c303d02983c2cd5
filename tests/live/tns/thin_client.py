#!/usr/bin/env python3
"""A scripted python-oracledb (thin mode, unmodified) session against tests/live/tns/responder.py:
login as his_app with program/machine/terminal/osuser set, a SELECT with binds of several types,
an UPDATE with binds, an executemany INSERT, a statement on a missing table (ORA-00942); then the
statement cache at work: a SELECT run three times with different ids (parsed once, then
re-executed by cursor id), once more with the id bound as text (the bind type changed: a full
execute by cursor id, without the text), the first UPDATE run twice more from a second cursor
(re-executed by cursor id); the cache emptied (its cursors closed on the next call); commit,
close (logoff); then a login with a wrong password (ORA-01017).

    thin_client.py PORT
"""
import datetime
import sys

import oracledb

PORT = int(sys.argv[1])
COMMON = dict(host="127.0.0.1", port=PORT, service_name="HISPDB", program="HIS.Registration",
              machine="reg-ws-07", terminal="pts/3", osuser="nurse01")

conn = oracledb.connect(user="his_app", password="Hx9#k2Lp!Reg", **COMMON)
print("connected, server version", conn.version)
cur = conn.cursor()

cur.execute(
    "select id, name from patient where id = :id and name = :name and born = :born"
    " and admitted >= :since and weight < :weight and ward = :ward",
    id=1001, name="张伟", born=datetime.date(1980, 2, 29),
    since=datetime.datetime(2024, 3, 1, 8, 30, 15, 250000), weight=72.5, ward=None)
print("rows", cur.fetchall())

cur.execute("update beds set ward = :ward, free = :free where id = :id",
            ward="内科", free=0, id=3)
print("update rowcount", cur.rowcount)

cur.executemany("insert into visits (patient_id, note, visited) values (:1, :2, :3)",
                [(1001, "复诊", datetime.datetime(2024, 3, 2, 9, 0, 0)),
                 (1002, "首诊", datetime.datetime(2024, 3, 2, 9, 15, 0))])
print("insert rowcount", cur.rowcount)

try:
    cur.execute("select * from no_such_table")
except oracledb.DatabaseError as e:
    print("error", e)

# python-oracledb keeps parsed statements in its statement cache (statement_cache.pyx, 20 by
# default) with the cursor id the server returned; running the same SQL again sends only that id
# and the binds (messages/execute.pyx `_write_reexecute_message`)
by_id = "select id, name from patient where id = :id"
for pid in (1001, 1002, 1003):
    cur.execute(by_id, id=pid)
    print("select", pid, cur.fetchall())
cur.execute(by_id, id="1004")
print("select '1004'", cur.fetchall())

cur2 = conn.cursor()
for ward, free, bed in (("外科", 1, 4), ("儿科", 0, 5)):
    cur2.execute("update beds set ward = :ward, free = :free where id = :id",
                 ward=ward, free=free, id=bed)
    print("update again rowcount", cur2.rowcount)
cur2.close()

conn.stmtcachesize = 0   # cached cursors are closed on the next round trip
conn.commit()
print("committed")
cur.close()
conn.close()
print("closed")

try:
    oracledb.connect(user="his_app", password="WrongPass1", **COMMON)
    print("UNEXPECTED: wrong password accepted")
except oracledb.DatabaseError as e:
    print("login failed", e)
