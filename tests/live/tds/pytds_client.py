import sys
import pytds, datetime, decimal, uuid
with pytds.connect('127.0.0.1', database='EMR', user='his_app', password='Sup3r$ecret', port=int(sys.argv[1]), appname='HIS.Registration', autocommit=True, login_timeout=5, timeout=5) as conn:
    with conn.cursor() as cur:
        cur.execute("select id, name from dbo.patient")
        print(cur.fetchall())
        cur.execute("select id, name from dbo.patient where id = %s and name = %s and born = %s and balance = %s and ward = %s and ok = %s and ratio = %s and ref = %s",
                    (1001, '患者 José', datetime.date(1980, 2, 29), decimal.Decimal('12.50'), None, True, 0.25, uuid.UUID('6F9619FF-8B86-D011-B42D-00C04FC964FF')))
        print(cur.fetchall())
        cur.execute("update dbo.beds set free = 0 where id = %s", (7,))
        try:
            cur.execute("select * from no_such_table")
        except Exception as e:
            print("error", e)
        cur.callproc("dbo.usp_discharge", (42, 'P-0042'))
