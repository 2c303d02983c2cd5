#!/usr/bin/env python3
"""A scripted TDS 7.4 responder on loopback, so that real SQL Server clients (FreeTDS tsql,
python-tds) can be recorded: it answers PRELOGIN (no encryption), LOGIN7 (LOGINACK, or error 18456
for the user `baduser`), SQL batches (a two-column result for SELECT, error 208 for a query
naming `no_such_table`, a row count otherwise), RPCs (sp_prepare / sp_prepexec return handle 1,
everything else a row count), and Attention (DONE_ATTN). Byte layouts follow MS-TDS 2.2.6 / 2.2.7.

With MODE `bcp` (FreeTDS freebcp), SQL batches are answered as a server with the table
dbo.patient: a `select * from dbo.patient` (the client's FMTONLY metadata query) gets the table's
COLMETADATA and no rows, any other batch (`set textsize`, `insert bulk`) a DONE, and a Bulk Load message (packet type 0x07, 2.2.6.1:
COLMETADATA, ROWs, DONE) is read row by row and answered with a DONE whose row count is the
number of ROW tokens received. The user `baduser` is refused in every mode.

    responder.py PORT [CONNECTIONS [MODE]]

RESPONDER_DEBUG=1 prints every client message (packet type, length, hex) on stderr.
"""
import socket
import struct
import sys


def u16s(s):
    return s.encode("utf-16-le")


def b_varchar(s):
    return bytes([len(s)]) + u16s(s)


def us_varchar(s):
    return struct.pack("<H", len(s)) + u16s(s)


def packets(ty, msg, size=4096, spid=61):
    out = b""
    room = size - 8
    chunks = [msg[i:i + room] for i in range(0, len(msg), room)] or [b""]
    for i, c in enumerate(chunks):
        status = 1 if i == len(chunks) - 1 else 0
        out += struct.pack(">BBHHBB", ty, status, len(c) + 8, spid, (i + 1) & 0xFF, 0) + c
    return out


def prelogin():
    data = [b"\x10\x00\x10\x67\x00\x00", b"\x02", b"\x00", b"", b"\x00"]
    head, body = b"", b""
    start = len(data) * 5 + 1
    for tok, d in enumerate(data):
        head += struct.pack(">BHH", tok, start + len(body), len(d))
        body += d
    return head + b"\xff" + body


def tok16(t, body):
    return bytes([t]) + struct.pack("<H", len(body)) + body


def envchange(ty, new, old=""):
    return tok16(0xE3, bytes([ty]) + b_varchar(new) + b_varchar(old))


def done(tok, status, count):
    return bytes([tok]) + struct.pack("<HHQ", status, 0xC1, count)


def message(tok, number, state, cls, text):
    body = struct.pack("<iBB", number, state, cls) + us_varchar(text) + b_varchar("LOOPBACK") + b_varchar("") + struct.pack("<I", 1)
    return tok16(tok, body)


LATIN1 = bytes([0x09, 0x04, 0xD0, 0x00, 0x34])


def login_ok(db):
    return (envchange(1, db, "master")
            + message(0xAB, 5701, 2, 0, "Changed database context to '%s'." % db)
            + tok16(0xE3, b"\x07\x05" + LATIN1 + b"\x00")
            + envchange(2, "us_english")
            + tok16(0xAD, b"\x01" + struct.pack(">I", 0x74000004) + b_varchar("Microsoft SQL Server") + bytes([16, 0, 0x10, 0x67]))
            + envchange(4, "4096", "4096")
            + done(0xFD, 0, 0))


def result_two_rows():
    cols = (b"\x81" + struct.pack("<H", 2)
            + struct.pack("<IH", 0, 9) + b"\x26\x04" + b_varchar("id")
            + struct.pack("<IH", 0, 9) + b"\xe7" + struct.pack("<H", 200) + LATIN1 + b_varchar("name"))
    rows = b""
    for i, name in ((1, "Zhang San"), (2, "Li Si")):
        rows += b"\xd1" + b"\x04" + struct.pack("<i", i) + struct.pack("<H", len(u16s(name))) + u16s(name)
    return cols + rows + done(0xFD, 0x10, 2)


def login7_user_db(msg):
    def field(off):
        o, n = struct.unpack_from("<HH", msg, off)
        return msg[o:o + 2 * n].decode("utf-16-le", "replace")
    return field(40), field(68)


def skip_all_headers(msg):
    if len(msg) >= 4:
        total = struct.unpack_from("<I", msg, 0)[0]
        if 4 <= total <= len(msg) and total < 256:
            return msg[total:]
    return msg


def rpc_proc(msg):
    body = skip_all_headers(msg)
    n = struct.unpack_from("<H", body, 0)[0]
    if n == 0xFFFF:
        return struct.unpack_from("<H", body, 2)[0]
    return body[2:2 + 2 * n].decode("utf-16-le", "replace")


def returnvalue_handle(h):
    return (b"\xac" + struct.pack("<H", 0) + b_varchar("@handle") + b"\x01" + struct.pack("<IH", 0, 9)
            + b"\x26\x04\x04" + struct.pack("<i", h))


# dbo.patient, as SQL Server describes it in COLMETADATA (2.2.7.4, TDS 7.2+ layout): UserType,
# Flags (0x0008 as the columns of result_two_rows, 0x0009 with fNullable), TYPE_INFO,
# ColName. NOT NULL columns have fixed-length types (INT4TYPE), nullable ones the N types.
PATIENT_TABLE = ["dbo", "patient"]


def patient_colmetadata():
    cols = [
        (0x08, b"\x38", "id"),                                          # int NOT NULL
        (0x08, b"\xe7" + struct.pack("<H", 128) + LATIN1, "name"),      # nvarchar(64) NOT NULL
        (0x09, b"\xe7" + struct.pack("<H", 64) + LATIN1, "ward"),       # nvarchar(32) NULL
        (0x09, b"\x6f\x08", "admitted"),                                # datetime NULL (DATETIMN)
        # text NULL: LONGLEN TYPE_INFO with collation, then TableName (NumParts + US_VARCHAR parts)
        (0x09, b"\x23" + struct.pack("<i", 0x7FFFFFFF) + LATIN1
         + bytes([len(PATIENT_TABLE)]) + b"".join(us_varchar(p) for p in PATIENT_TABLE), "note"),
    ]
    body = b"\x81" + struct.pack("<H", len(cols))
    for flags, ti, name in cols:
        body += struct.pack("<IH", 0, flags) + ti + b_varchar(name)
    return body


FIXED_LEN = {0x1F: 0, 0x30: 1, 0x32: 1, 0x34: 2, 0x38: 4, 0x3A: 4, 0x3B: 4, 0x3C: 8, 0x3D: 8,
             0x3E: 8, 0x7A: 4, 0x7F: 8}
BYTELEN = {0x24, 0x26, 0x68, 0x6A, 0x6C, 0x6D, 0x6E, 0x6F, 0x28, 0x29, 0x2A, 0x2B}
USHORTLEN_COLL = {0xA7, 0xAF, 0xE7, 0xEF}
USHORTLEN = {0xA5, 0xAD} | USHORTLEN_COLL
LONGLEN = {0x22, 0x23, 0x63}


def bulk_rows(m):
    """Counts the ROW tokens of a Bulk Load message (2.2.6.1): COLMETADATA (2.2.7.4), ROWs
    (2.2.7.20) whose values are framed by each column's TYPE_INFO (2.2.5.6), then DONE."""
    if m[0] != 0x81:
        raise ValueError("bulk load without COLMETADATA")
    ncols = struct.unpack_from("<H", m, 1)[0]
    o = 3
    kinds = []
    for _ in range(ncols):
        o += 6  # UserType, Flags
        ty = m[o]
        o += 1
        if ty in FIXED_LEN:
            kinds.append(("fixed", FIXED_LEN[ty]))
        elif ty in BYTELEN:
            if ty in (0x6A, 0x6C):
                o += 3  # length, precision, scale
            elif ty in (0x29, 0x2A, 0x2B):
                o += 1  # scale
            elif ty != 0x28:
                o += 1  # length
            kinds.append(("byte", 0))
        elif ty in USHORTLEN:
            o += 2 + (5 if ty in USHORTLEN_COLL else 0)
            kinds.append(("ushort", 0))
        elif ty in LONGLEN:
            o += 4 + (5 if ty != 0x22 else 0)
            kinds.append(("text", 0))
            o = skip_table_name(m, o)
        else:
            raise ValueError("type 0x%02x not handled" % ty)
        o += 1 + 2 * m[o]  # ColName
    rows = 0
    while o < len(m) and m[o] == 0xD1:
        o += 1
        for kind, n in kinds:
            if kind == "fixed":
                o += n
            elif kind == "byte":
                o += 1 + m[o]
            elif kind == "ushort":
                n = struct.unpack_from("<H", m, o)[0]
                o += 2 + (0 if n == 0xFFFF else n)
            else:
                n = m[o]  # TextPointer length: 0 is NULL (2.2.7.20 TEXTPTR / TextPointer)
                o += 1
                if n:
                    o += n + 8  # TextPointer, Timestamp
                    o += 4 + struct.unpack_from("<i", m, o)[0]
        rows += 1
    # 2.2.6.1 ends the stream with a DONE token; FreeTDS 1.3 ends the message after the last
    # ROW (the packet's EOM), which SQL Server accepts: both are taken.
    if o < len(m) and m[o] != 0xFD:
        raise ValueError("bulk load rows not followed by DONE (token 0x%02x)" % m[o])
    return rows


def skip_table_name(m, o):
    """TableName of a text/ntext/image column. MS-TDS 2.2.7.4 (TDS 7.2+): NumParts (BYTE) then
    NumParts US_VARCHAR parts; FreeTDS (1.3) sends in a Bulk Load one US_VARCHAR, the TDS 7.0/7.1
    layout, whatever the version. A name has at most 4 parts: a first byte outside 1..4, or parts
    running past the message, means the one-US_VARCHAR layout."""
    parts = m[o]
    if 1 <= parts <= 4:
        p = o + 1
        for _ in range(parts):
            if p + 2 > len(m):
                break
            p += 2 + 2 * struct.unpack_from("<H", m, p)[0]
        else:
            if p < len(m):
                return p
    return o + 2 + 2 * struct.unpack_from("<H", m, o)[0]


def serve(conn):
    buf = b""
    msg, mty = b"", None

    def recv_packet():
        nonlocal buf
        while len(buf) < 8 or len(buf) < struct.unpack_from(">H", buf, 2)[0]:
            d = conn.recv(65536)
            if not d:
                return None
            buf += d
        n = struct.unpack_from(">H", buf, 2)[0]
        p, buf = buf[:n], buf[n:]
        return p

    while True:
        p = recv_packet()
        if p is None:
            return
        ty, status = p[0], p[1]
        msg += p[8:]
        if not status & 1:
            continue
        m, msg = msg, b""
        if DEBUG:
            print("client 0x%02x %d: %s" % (ty, len(m), m.hex()), file=sys.stderr)
        if ty == 0x12:
            conn.sendall(packets(0x04, prelogin(), spid=0))
        elif ty == 0x10:
            user, db = login7_user_db(m)
            if user == "baduser":
                conn.sendall(packets(0x04, message(0xAA, 18456, 1, 14, "Login failed for user '%s'." % user) + done(0xFD, 2, 0)))
                return
            conn.sendall(packets(0x04, login_ok(db or "master")))
        elif ty == 0x01:
            text = skip_all_headers(m).decode("utf-16-le", "replace")
            low = text.lower()
            if MODE == "bcp":
                if "select * from dbo.patient" in low:
                    conn.sendall(packets(0x04, patient_colmetadata() + done(0xFD, 0x10, 0)))
                else:
                    conn.sendall(packets(0x04, done(0xFD, 0, 0)))
            elif "no_such_table" in low:
                conn.sendall(packets(0x04, message(0xAA, 208, 1, 16, "Invalid object name 'no_such_table'.") + done(0xFD, 2, 0)))
            elif low.lstrip().startswith("select"):
                conn.sendall(packets(0x04, result_two_rows()))
            else:
                conn.sendall(packets(0x04, done(0xFD, 0x10 if low.lstrip().startswith(("insert", "update", "delete")) else 0, 1)))
        elif ty == 0x03:
            proc = rpc_proc(m)
            if proc in (11, 13, "sp_prepare", "sp_prepexec"):
                body = returnvalue_handle(1)
            else:
                body = b""
            body += result_two_rows()[:-13] + done(0xFF, 0x11, 2) + b"\x79" + struct.pack("<i", 0) + done(0xFE, 0, 0)
            conn.sendall(packets(0x04, body))
        elif ty == 0x07 and MODE == "bcp":
            n = bulk_rows(m)
            conn.sendall(packets(0x04, done(0xFD, 0x10, n)))
        elif ty == 0x06:
            conn.sendall(packets(0x04, done(0xFD, 0x20, 0)))
        elif ty == 0x0E:
            conn.sendall(packets(0x04, done(0xFD, 0, 0)))


MODE = None
DEBUG = __import__("os").environ.get("RESPONDER_DEBUG")


def main():
    global MODE
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    MODE = sys.argv[3] if len(sys.argv) > 3 else None
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4)
    for _ in range(n):
        c, _ = s.accept()
        try:
            serve(c)
        except (ConnectionError, struct.error):
            pass
        finally:
            c.close()


if __name__ == "__main__":
    main()
