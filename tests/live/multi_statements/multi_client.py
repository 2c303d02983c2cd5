"""A PyMySQL session with CLIENT_MULTI_STATEMENTS: several statements in one COM_QUERY, each
answered by its own result (OK or result set) with SERVER_MORE_RESULTS_EXISTS on all but the last;
the server stops at the first error, so statements after it are not executed.

    python3 multi_client.py HOST PORT USER PASSWORD DB

What it does, in order (the fixture README repeats it as the truth the records must show); it
prints what the server answered to each statement:
  1. DROP TABLE IF EXISTS ward; CREATE TABLE ward (...); INSERT INTO ward VALUES (...) x3
  2. SELECT id, name FROM ward ORDER BY id; SELECT COUNT(*) FROM ward
  3. UPDATE ward SET name = 'CCU' WHERE id = 1; SELECT * FROM no_such_table; SELECT 1
  4. SELECT name FROM ward WHERE id = 1   (a single statement: the UPDATE was done)
  5. DROP TABLE ward
"""
import sys

import pymysql
from pymysql.constants import CLIENT

host, port, user, password, db = sys.argv[1:6]
conn = pymysql.connect(host=host, port=int(port), user=user, password=password, database=db,
                       autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS)
cur = conn.cursor()


def run(sql):
    print(f"> {sql}")
    try:
        n = cur.execute(sql)
        while True:
            rows = cur.fetchall() if cur.description else None
            print(f"  rows {len(rows)}" if rows is not None else f"  ok, {n} affected")
            if not cur.nextset():
                break
            n = cur.rowcount
    except pymysql.MySQLError as e:
        print(f"  error {e.args[0]}: {e.args[1]}")


run("DROP TABLE IF EXISTS ward; "
    "CREATE TABLE ward (id INT PRIMARY KEY, name VARCHAR(20)); "
    "INSERT INTO ward VALUES (1, 'ICU'), (2, 'ER'), (3, 'Ortho')")
run("SELECT id, name FROM ward ORDER BY id; SELECT COUNT(*) FROM ward")
run("UPDATE ward SET name = 'CCU' WHERE id = 1; SELECT * FROM no_such_table; SELECT 1")
run("SELECT name FROM ward WHERE id = 1")
run("DROP TABLE ward")
conn.close()
