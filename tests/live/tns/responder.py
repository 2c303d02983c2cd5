#!/usr/bin/env python3
"""A scripted Oracle Net listener + server on loopback, so that a real modern Oracle client
(python-oracledb in thin mode) can be recorded: no Oracle server can run here.

It answers, in the layouts python-oracledb's thin implementation reads (learnt from its sources:
messages/connect.pyx, protocol.pyx, data_types.pyx, auth.pyx, base.pyx, execute.pyx,
crypto.pyx, constants.pxi; no code taken from them):

  CONNECT (+ its connect data in a DATA packet) -> ACCEPT version 318, SDU 8192, no OOB, no fast
  authentication, no end-of-response; then 4-byte packet lengths both ways
  protocol negotiation (01)   -> platform banner, AL32UTF8 / AL16UTF16, compile capabilities with TTC
                                 field version 13 (19.1 ext 1), runtime capabilities
  data types (02)             -> empty list
  AUTH phase one (03 76)      -> AUTH_SESSKEY, AUTH_VFR_DATA (12c verifier 0x4815), PBKDF2 salts
  AUTH phase two (03 73)      -> the 12c (O5LOGON) verifier computed for a known password:
                                 AUTH_PASSWORD decrypted and compared, AUTH_SVR_RESPONSE that
                                 the client checks; ORA-01017 for any other password
  OALL8 (03 5E) with text    -> by SQL text: `no_such_table` -> ORA-00942; SELECT -> describe
                                 (ID NUMBER, NAME VARCHAR2), two rows, ORA-01403; UPDATE -> 1 row;
                                 INSERT -> 2 rows (the client script's executemany); each new
                                 statement gets its own cursor id (1, 2, ...) in the end-of-call
                                 block
  OALL8 without text, re-execute (03 04), re-execute and fetch (03 4E)
                              -> by cursor id: the statement that cursor holds, answered the same
                                 way (a query without the describe information); close-cursor
                                 piggy-backs (11 69) forget the cursor ids they list
  commit (03 0E), logoff (03 09) -> end-of-call block without error

    responder.py PORT [CONNECTIONS] [19c|23ai]
"""
import hashlib
import os
import socket
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

PASSWORDS = {"HIS_APP": b"Hx9#k2Lp!Reg"}
# Two server profiles (constants.pxi: TNS_VERSION_*, TNS_CCAP_FIELD_VERSION_*, TNS_ACCEPT_FLAG_*):
#   19c:  ACCEPT version 318, flags 0, TTC field version 13 (19.1 ext 1)
#   23ai: ACCEPT version 319, fast authentication (0x10000000) and end of response
#         (0x02000000), TTC field version 24 (23.4): the client then sends fast authentication
#         (34), a ub8 token after every function's sequence number, and every answer must end
#         with end of response (29) and the DATA flag 0x2000
PROFILES = {
    "19c": dict(version=318, field=13, flags=0, eor=False),
    "23ai": dict(version=319, field=24, flags=0x10000000 | 0x02000000, eor=True),
}
P = PROFILES["19c"]
VGEN_COUNT = 4096
SDER_COUNT = 3


# ---- primitive encodings (python-oracledb base/buffer.pyx: read_ub2/ub4/ub8, read_bytes) ----

def ub(n):
    """Compressed unsigned integer: a length byte, then big-endian bytes (0 is one zero byte)."""
    if n == 0:
        return b"\x00"
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([len(b)]) + b


def sb(n):
    """Compressed signed integer: the sign is the length byte's high bit."""
    if n >= 0:
        return ub(n)
    b = ub(-n)
    return bytes([b[0] | 0x80]) + b[1:]


def blen(data):
    """Bytes with a one-byte length (chunked above 252: FE, ub4 chunk lengths, 0)."""
    if len(data) <= 252:
        return bytes([len(data)]) + data
    out = b"\xfe"
    for i in range(0, len(data), 32767):
        chunk = data[i:i + 32767]
        out += ub(len(chunk)) + chunk
    return out + b"\x00"


def str_with_length(s):
    """read_str_with_length: ub4 length, then the length-prefixed bytes (nothing for 0)."""
    if s is None or s == b"":
        return b"\x00"
    return ub(len(s)) + blen(s)


def ora_number(n):
    """A non-negative integer as an Oracle NUMBER (base 100, exponent byte 0xC1 + n - 1)."""
    if n == 0:
        return b"\x80"
    digits = []
    while n:
        digits.insert(0, n % 100)
        n //= 100
    exp = 0xC0 + len(digits)
    while digits and digits[-1] == 0:
        digits.pop()
    return bytes([exp] + [d + 1 for d in digits])


# ---- crypto (python-oracledb thin/crypto.pyx: AES-CBC with a zero IV, PBKDF2-SHA512) ----

def aes_cbc(key, data, decrypt=False):
    c = Cipher(algorithms.AES(key), modes.CBC(bytes(16)))
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


def pbkdf2(key, salt, length, iterations):
    return PBKDF2HMAC(algorithm=hashes.SHA512(), salt=salt, length=length,
                      iterations=iterations).derive(key)


# ---- TNS packets ----

class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.large = False   # 4-byte packet lengths once ACCEPT said >= 315
        self.seq = 0

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def recv_packet(self):
        head = self.recv_exact(8)
        if self.large:
            length = struct.unpack(">I", head[:4])[0]
        else:
            length = struct.unpack(">H", head[:2])[0]
        return head[4], head[5], self.recv_exact(length - 8)

    def send_packet(self, ptype, body, flags=0):
        length = len(body) + 8
        if self.large:
            head = struct.pack(">IBBH", length, ptype, flags, 0)
        else:
            head = struct.pack(">HHBBH", length, 0, ptype, flags, 0)
        self.sock.sendall(head + body)

    def send_data(self, ttc):
        """One answer; with end of response, the 29 message and flag 0x2000 close it."""
        if P["eor"]:
            ttc += b"\x1d"
        room = 8192 - 10
        parts = [ttc[i:i + room] for i in range(0, len(ttc), room)]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = 0x2000 if P["eor"] and last else 0
            self.send_packet(6, struct.pack(">H", flags) + part)

    def recv_call(self):
        """The TTC bytes of the client's next call (DATA packets; EOF flag -> None)."""
        while True:
            ptype, _flags, body = self.recv_packet()
            if ptype == 6:
                data_flags = struct.unpack(">H", body[:2])[0]
                if data_flags & 0x0040:
                    return None
                return body[2:]
            # MARKER or anything else: ignored (the client sends none in this script)


def end_of_call(call_status=0, cursor=0, rows=0, sql_type=0, error=0, message=None):
    """Error/end-of-call block (04), layout of python-oracledb messages/base.pyx
    _process_error_info for TTC field versions below 20.1."""
    out = b"\x04"
    out += ub(call_status) + ub(0) + ub(rows) + ub(error) + ub(0) + ub(0)
    out += ub(cursor) + sb(0)
    out += bytes([sql_type, 0, 0, 0, 0, 0])          # sql type, fatal, flags, options, UPI, flags
    out += ub(0) + ub(0) + b"\x00" + ub(0) + ub(0)   # rowid
    out += ub(0)                                     # OS error
    out += b"\x00\x00" + ub(0)                       # statement number, call number, padding
    out += ub(0)                                     # success iterations
    out += ub(0)                                     # oerrdd length
    out += ub(0) + ub(0) + ub(0)                     # batch errors, offsets, messages
    out += ub(error) + ub(rows)                      # error number, row count (extended)
    if P["field"] >= 14:
        out += ub(sql_type) + ub(0)                  # sql type, server checksum (20.1+)
    if error:
        out += blen(message.encode())
    return out


def accept_packet():
    body = struct.pack(">HH", P["version"], 0)       # version, service options (no OOB)
    body += struct.pack(">HH", 8192, 65535)          # SDU, TDU
    body += struct.pack(">HHH", 0x0100, 0, 45)       # hardware byte order, data length, offset
    body += bytes([0x04, 0x04])                      # NSI flags: network authentication off
    body += bytes(8)
    body += struct.pack(">II", 8192, 65535)          # SDU, TDU (4-byte)
    body += bytes(1)
    body += struct.pack(">I", P["flags"])            # flags 2: fast auth, end of response
    return body


def protocol_answer():
    # compile capabilities: indices and values of python-oracledb constants.pxi (TNS_CCAP_*);
    # the client lowers its TTC field version to ours (capabilities.pyx)
    ccaps = bytearray(55)
    ccaps[0] = 6                                     # SQL version
    ccaps[4] = 0x08 | 0x02 | 0x20 | 0x40 | 0x80      # logon types: O5LOGON, O7, O8, O9
    ccaps[7] = P["field"]
    ccaps[15] = 0x20 | 0x01 | 0x08                   # TTC1: fast bvec, end of call status
    ccaps[17], ccaps[18], ccaps[19] = 3, 7, 3        # TDS, RPC versions, RPC signature
    ccaps[37] = 0x08 | 0x10                          # TTC3: LTXID, implicit results
    rcaps = bytearray(11)
    rcaps[0] = 2                                     # compatibility 8.1
    rcaps[6] = 0x01 | 0x04                           # zero copy, 32K strings
    banner = b"x86_64/Linux 2.4.xx"                 # a server's platform string, not its release
    fdo = bytes(6) + b"\x00\x00" + bytes(1) + struct.pack(">H", 2000) + bytes(4)
    out = b"\x01" + bytes([6, 0]) + banner + b"\x00"
    out += struct.pack("<H", 873) + b"\x01" + struct.pack("<H", 0)
    out += struct.pack(">H", len(fdo)) + fdo
    out += blen(bytes(ccaps)) + blen(bytes(rcaps))
    return out


def read_ub(data, pos):
    n = data[pos]
    return int.from_bytes(data[pos + 1:pos + 1 + n], "big"), pos + 1 + n


def read_blen(data, pos):
    n = data[pos]
    if n == 0xFE:
        pos += 1
        out = b""
        while True:
            k, pos = read_ub(data, pos)
            if k == 0:
                return out, pos
            out += data[pos:pos + k]
            pos += k
    return data[pos + 1:pos + 1 + n], pos + 1 + n


def auth_pairs(call, pos=0, token=False):
    """User and key/value pairs of an AUTH call (messages/auth.pyx _write_message)."""
    pos += 3                                         # 03, function, sequence
    if token:
        _token, pos = read_ub(call, pos)             # ub8 token (field version 18+)
    has_user = call[pos]
    pos += 1
    _ulen, pos = read_ub(call, pos)
    _mode, pos = read_ub(call, pos)
    pos += 1
    npairs, pos = read_ub(call, pos)
    pos += 2
    user = b""
    if has_user:
        user, pos = read_blen(call, pos)
    pairs = {}
    for _ in range(npairs):
        klen, pos = read_ub(call, pos)
        key = b""
        if klen:
            key, pos = read_blen(call, pos)
        vlen, pos = read_ub(call, pos)
        val = b""
        if vlen:
            val, pos = read_blen(call, pos)
        _flags, pos = read_ub(call, pos)
        pairs[key.decode()] = val
    return user.decode(), pairs


def return_params(pairs):
    """Return parameters (08) of an AUTH answer: ub2 count, then key, value, ub4 flags."""
    out = b"\x08" + ub(len(pairs))
    for key, value, flags in pairs:
        out += str_with_length(key.encode()) + str_with_length(value.encode()) + ub(flags)
    return out


def describe_and_rows(cursor, rows):
    """Describe information (10) of two columns, a row header (06), rows (07), then ORA-01403."""
    def column(name, ora_type, size, precision, scale, csfrm, charset):
        c = bytes([ora_type, 0, precision, scale & 0xFF])
        c += ub(size) + ub(0) + ub(0)                # buffer size, max elements, cont flags
        c += ub(0)                                   # OID
        c += ub(0) + ub(charset) + bytes([csfrm])    # version, charset, charset form
        c += ub(size) + ub(0)                        # max size, oaccolid (field version >= 8)
        c += b"\x01\x00"                             # nulls allowed, v7 name length
        c += str_with_length(name) + str_with_length(b"") + str_with_length(b"")
        c += ub(0) + ub(0)                           # position, UDS flags
        if P["field"] >= 17:
            c += ub(0) + ub(0)                       # domain schema, domain name (23.1)
        if P["field"] >= 20:
            c += ub(0)                               # annotations (23.1 ext 3)
        if P["field"] >= 24:
            c += ub(0) + b"\x00\x00"                 # vector dimensions, format, flags (23.4)
        return c
    out = b"\x10" + blen(b"") + ub(200) + ub(2) + b"\x00"
    out += column(b"ID", 2, 22, 10, 0, 0, 0)
    out += column(b"NAME", 1, 400, 0, 0, 1, 873)
    out += ub(0) + ub(0) + ub(0) + ub(0) + ub(0) + ub(0)
    out += b"\x06" + b"\x00" + ub(1) + ub(0) + ub(len(rows)) + ub(0) + ub(0) + ub(0)
    for rid, name in rows:
        out += b"\x07" + blen(ora_number(rid)) + blen(name.encode())
    out += end_of_call(cursor=cursor, rows=len(rows), sql_type=3, error=1403,
                       message="ORA-01403: no data found")
    return out


def read_call_head(call, token):
    """Skip the piggy-backs in front of a client call and read the main call's header.

    Piggy-backs (messages/base.pyx `_write_piggyback_code`, `_write_close_cursors_piggyback`;
    statement_cache.pyx `write_cursors_to_close`): 11, function, sequence, [ub8 token], pointer,
    then for close cursors (105) a ub4 count and that many ub4 cursor ids. Returns (function,
    position after the main call's sequence/token, cursor ids closed by piggy-backs)."""
    pos = 0
    closed = []
    while call[pos] == 0x11:
        func = call[pos + 1]
        pos += 3
        if token:
            _tok, pos = read_ub(call, pos)
        if func != 105:
            raise ValueError("piggy-back %d not scripted" % func)
        pos += 1                                     # pointer
        count, pos = read_ub(call, pos)
        for _ in range(count):
            cid, pos = read_ub(call, pos)
            closed.append(cid)
    assert call[pos] == 3, call[pos:pos + 4]
    func = call[pos + 1]
    pos += 3
    if token:
        _tok, pos = read_ub(call, pos)
    return func, pos, closed


def rows_only(cursor, rows):
    """A re-executed query's rows: row header (06), rows (07), ORA-01403; the client still holds
    the describe information of the first execution (statement.pyx keeps the fetch variables)."""
    out = b"\x06" + b"\x00" + ub(1) + ub(0) + ub(len(rows)) + ub(0) + ub(0) + ub(0)
    for rid, name in rows:
        out += b"\x07" + blen(ora_number(rid)) + blen(name.encode())
    out += end_of_call(cursor=cursor, rows=len(rows), sql_type=3, error=1403,
                       message="ORA-01403: no data found")
    return out


def statement_answer(kind, cursor, state, described):
    if kind == "select":
        rows = [(1001, "张伟"), (1002, "李娜")]
        return describe_and_rows(cursor, rows) if not described else rows_only(cursor, rows)
    if kind == "update":
        state["txn"] = True
        return end_of_call(call_status=2, cursor=cursor, rows=1, sql_type=6)
    if kind == "insert":
        state["txn"] = True
        # the script's only INSERT is an executemany of two rows
        return end_of_call(call_status=2, cursor=cursor, rows=2, sql_type=2)
    return end_of_call(cursor=cursor)


def execute_answer(call, state, token):
    """OALL8 (94) with text: a new cursor id, returned in the end-of-call block (python-oracledb
    messages/base.pyx `_process_error_info` reads it and keeps it as the statement's cursor id);
    OALL8 without text (cursor id set, e.g. after the binds changed type) and the re-execute
    calls 4 (REEXECUTE) and 78 (REEXECUTE_AND_FETCH: ub4 cursor id, ub4 iterations, two ub4
    option words, then the row-data messages of the binds: messages/execute.pyx
    `_write_reexecute_message`) run the statement that cursor holds."""
    func, pos, closed = read_call_head(call, token)
    for cid in closed:
        state["cursors"].pop(cid, None)
    if func == 94:
        _options, pos = read_ub(call, pos)
        cursor, pos = read_ub(call, pos)
    elif func in (4, 78):
        cursor, pos = read_ub(call, pos)
    else:
        return None
    text = call.upper()
    if func == 94 and cursor == 0:
        if b"NO_SUCH_TABLE" in text:
            return end_of_call(cursor=0, sql_type=3, error=942,
                               message="ORA-00942: table or view does not exist")
        kind = ("select" if b"SELECT" in text else "update" if b"UPDATE" in text
                else "insert" if b"INSERT" in text else "other")
        state["next_cursor"] += 1
        cursor = state["next_cursor"]
        state["cursors"][cursor] = kind
        return statement_answer(kind, cursor, state, described=False)
    kind = state["cursors"].get(cursor)
    if kind is None:
        return end_of_call(cursor=0, error=1001, message="ORA-01001: invalid cursor")
    return statement_answer(kind, cursor, state, described=True)


def serve(conn):
    ptype, _flags, body = conn.recv_packet()
    assert ptype == 1, "expected CONNECT"
    cd_len, cd_off = struct.unpack(">HH", body[16:20])
    if cd_off + cd_len > len(body) + 8:
        conn.recv_packet()                           # connect data in the next DATA packet
    conn.send_packet(2, accept_packet())
    conn.large = True

    call = conn.recv_call()
    if call[0] == 34:
        # fast authentication (messages/fast_auth.pyx): 34, version, two flags, the protocol
        # message (01 06 00 driver-name 00), charset ub2 BE, flag, ncharset ub2 BE, field
        # version, the data types message, then AUTH phase one; one answer for all three
        pos = call.index(b"\x00", 7) + 1 + 6
        pos += 6                                     # 02, charsets, encoding flags
        for _ in range(2):                           # compile and runtime capabilities
            pos += 1 + call[pos]
        while call[pos:pos + 2] != b"\x00\x00":     # data type entries of 8 bytes
            pos += 8
        pos += 2
        assert call[pos:pos + 2] == b"\x03\x76", call[pos:pos + 4]
        user, _pairs = auth_pairs(call, pos)
        first = protocol_answer() + b"\x02\x00\x00"
    else:
        assert call[0] == 1                          # protocol negotiation (01)
        conn.send_data(protocol_answer())
        call = conn.recv_call()                      # data types (02)
        assert call[0] == 2
        conn.send_data(b"\x02\x00\x00")
        call = conn.recv_call()                      # AUTH phase one
        assert call[:2] == b"\x03\x76", call[:4]
        user, _pairs = auth_pairs(call)
        first = b""
    password = PASSWORDS.get(user.upper(), os.urandom(12))
    vfr = os.urandom(16)
    part_a = os.urandom(32)
    csk_salt = os.urandom(16)
    password_key = pbkdf2(password, vfr + b"AUTH_PBKDF2_SPEEDY_KEY", 64, VGEN_COUNT)
    password_hash = hashlib.sha512(password_key + vfr).digest()[:32]
    sesskey = aes_cbc(password_hash, part_a)         # 32 bytes, no padding: the 12c length
    conn.send_data(first + return_params([
        ("AUTH_SESSKEY", sesskey.hex().upper(), 1),
        ("AUTH_VFR_DATA", vfr.hex().upper(), 0x4815),
        ("AUTH_PBKDF2_CSK_SALT", csk_salt.hex().upper(), 0),
        ("AUTH_PBKDF2_VGEN_COUNT", str(VGEN_COUNT), 0),
        ("AUTH_PBKDF2_SDER_COUNT", str(SDER_COUNT), 0),
        ("AUTH_GLOBALLY_UNIQUE_DBID\x00", "6F1B3C9E8D2A4B5C", 0),
    ]) + end_of_call())

    # AUTH phase two
    call = conn.recv_call()
    assert call[:2] == b"\x03\x73", call[:4]
    _user, pairs = auth_pairs(call, token=P["field"] >= 18)
    part_b = aes_cbc(password_hash, bytes.fromhex(pairs["AUTH_SESSKEY"].decode()), decrypt=True)
    temp = (part_b[:32] + part_a[:32]).hex().upper().encode()
    combo = pbkdf2(temp, csk_salt, 32, SDER_COUNT)
    sent = aes_cbc(combo, bytes.fromhex(pairs["AUTH_PASSWORD"].decode()), decrypt=True)
    pad = sent[-1] if sent and 0 < sent[-1] <= 16 else 0
    if sent[16:len(sent) - pad] != password:
        conn.send_data(end_of_call(error=1017,
                                   message="ORA-01017: invalid username/password; logon denied"))
        conn.recv_call()                             # the client closes (EOF)
        return
    response = aes_cbc(combo, os.urandom(16) + b"SERVER_TO_CLIENT" + bytes([16]) * 16)
    conn.send_data(return_params([
        ("AUTH_VERSION_NO", str((23 << 24) | (9 << 16) if P["field"] >= 18
                                else (19 << 24) | (22 << 16)), 0),
        ("AUTH_VERSION_STRING", "- Production", 0),
        ("AUTH_VERSION_SQL", "13", 0),
        ("AUTH_SESSION_ID", "281", 0),
        ("AUTH_SERIAL_NUM", "40517", 0),
        ("AUTH_DB_NAME", "HISDB", 0),
        ("AUTH_SC_SERVICE_NAME", "HISPDB", 0),
        ("AUTH_SC_DB_DOMAIN", "", 0),
        ("AUTH_INSTANCENAME", "his1", 0),
        ("AUTH_SC_INSTANCE_NAME", "his1", 0),
        ("AUTH_MAX_OPEN_CURSORS", "300", 0),
        ("AUTH_MAX_IDEN_LENGTH", "128", 0),
        ("AUTH_SVR_RESPONSE", response.hex().upper(), 0),
    ]) + end_of_call())

    state = {"next_cursor": 0, "cursors": {}, "txn": False}
    token = P["field"] >= 18
    while True:
        call = conn.recv_call()
        if call is None:
            return
        answer = execute_answer(call, state, token)
        if answer is not None:
            conn.send_data(answer)
            continue
        func, _pos, _closed = read_call_head(call, token)
        if func == 0x0E:                             # commit
            state["txn"] = False
            conn.send_data(end_of_call())
        elif func == 0x09:                           # logoff
            conn.send_data(end_of_call())
        else:
            conn.send_data(end_of_call(call_status=2 if state["txn"] else 0))


def main():
    global P
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    P = PROFILES[sys.argv[3] if len(sys.argv) > 3 else "19c"]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    for _ in range(count):
        sock, _addr = srv.accept()
        try:
            serve(Conn(sock))
        except EOFError:
            pass
        finally:
            sock.close()
    srv.close()


if __name__ == "__main__":
    main()
