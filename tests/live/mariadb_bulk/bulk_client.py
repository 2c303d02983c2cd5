"""A MariaDB Connector/Python session whose executemany() goes out as COM_STMT_BULK_EXECUTE
(MariaDB 10.2.7+, the server announces MARIADB_CLIENT_STMT_BULK_OPERATIONS).

    python3 bulk_client.py HOST PORT USER PASSWORD DB

What it does, in order (the fixture README repeats it as the truth the records must show):
  1. CREATE TABLE rx (id INT PRIMARY KEY, patient VARCHAR(40), drug VARCHAR(40), dose DOUBLE,
     given DATE NULL)
  2. executemany INSERT of 3 rows, one with a NULL date            -> 3 rows affected
  3. executemany UPDATE rx SET dose = ? WHERE id = ? on 2 rows      -> 2 rows affected
  4. executemany INSERT of 2 rows whose second id is a duplicate   -> error 1062
  5. SELECT COUNT(*) FROM rx                                        -> 1 row (count 3)
  6. DROP TABLE rx
"""
import datetime
import sys

import mariadb

host, port, user, password, db = sys.argv[1:6]
conn = mariadb.connect(host=host, port=int(port), user=user, password=password, database=db,
                       autocommit=True)
cur = conn.cursor()
cur.execute("DROP TABLE IF EXISTS rx")
cur.execute("CREATE TABLE rx (id INT PRIMARY KEY, patient VARCHAR(40), drug VARCHAR(40), "
            "dose DOUBLE, given DATE NULL)")
cur.executemany("INSERT INTO rx (id, patient, drug, dose, given) VALUES (?, ?, ?, ?, ?)", [
    (1, "张伟", "amoxicillin", 500.0, datetime.date(2026, 11, 20)),
    (2, "Ann Lee", "ibuprofen", 400.0, None),
    (3, "José Núñez", "metformin", 850.5, datetime.date(2026, 11, 21)),
])
print("insert", cur.rowcount)
cur.executemany("UPDATE rx SET dose = ? WHERE id = ?", [(250.0, 1), (1000.0, 3)])
print("update", cur.rowcount)
try:
    cur.executemany("INSERT INTO rx (id, patient, drug, dose, given) VALUES (?, ?, ?, ?, ?)", [
        (4, "Li Na", "aspirin", 100.0, None),
        (1, "dup", "dup", 1.0, None),
    ])
except mariadb.Error as e:
    print("error", e.errno)
cur.execute("SELECT COUNT(*) FROM rx")
print("count", cur.fetchone()[0])
cur.execute("DROP TABLE rx")
conn.close()
