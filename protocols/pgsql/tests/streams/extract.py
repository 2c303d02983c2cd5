#!/usr/bin/env python3
"""Extract the TCP payload of one connection of a capture into a dbtap stream file.

Usage: extract.py CAPTURE STREAM_INDEX SERVER_PORT NAME > NAME.txt

The first line written is the capture's provenance row from shared/captures/SOURCES.md (looked
up by file name next to the capture directory). Per-segment payloads come from
  tshark -r CAPTURE -Y 'tcp.stream==N && tcp.len>0' -T fields \
         -e frame.time_epoch -e tcp.srcport -e tcp.seq -e tcp.len -e tcp.payload
(tcp.seq is tshark's relative sequence number). Out-of-order segments are reordered,
retransmitted bytes dropped (first copy wins, as the dbtap reassembler does) and each segment
written as one line:  `<capture time ns> > <hex>` (client -> server) or `<ns> < <hex>`
(server -> client); a hole that was never filled becomes `<ns> > gap <len>`.
"""
import os, subprocess, sys

cap, stream, sport, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base = os.path.basename(cap)
sources = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cap))), "SOURCES.md")
row = next((l.strip() for l in open(sources) if f"`pgsql/{base}`" in l), "(no SOURCES.md row)")
cmd = ["tshark", "-r", cap, "-Y", f"tcp.stream=={stream} && tcp.len>0", "-T", "fields",
       "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.seq", "-e", "tcp.len",
       "-e", "tcp.payload"]
rows = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
state = {}  # dir -> [next_seq, {seq: (ts, bytes)}]
out = []

def emit(d, ts, data):
    out.append(f"{ts} {d} {data.hex()}")

def drain(d):
    nxt, ooo = state[d]
    while True:
        hit = [s for s in ooo if s <= nxt]
        if not hit:
            break
        for s in sorted(hit):
            ts, data = ooo.pop(s)
            if s + len(data) > nxt:
                emit(d, ts, data[nxt - s:])
                nxt = s + len(data)
    state[d][0] = nxt

for r in rows:
    f = r.split("\t")
    if len(f) < 5 or not f[4]:
        continue
    secs, frac = f[0].split(".")
    ts = int(secs) * 1_000_000_000 + int((frac + "000000000")[:9])
    d = ">" if int(f[1]) != sport else "<"
    seq, data = int(f[2]), bytes.fromhex(f[4].replace(":", ""))
    if d not in state:
        state[d] = [seq, {}]
    st = state[d]
    if seq + len(data) <= st[0]:
        continue  # pure retransmission
    if seq not in st[1] or len(st[1][seq][1]) < len(data):
        st[1][seq] = (ts, data)
    drain(d)

for d, (nxt, ooo) in state.items():
    for s in sorted(ooo):
        ts, data = ooo[s]
        if s + len(data) <= nxt:
            continue
        if s > nxt:
            out.append(f"{ts} {d} gap {s - nxt}")
            nxt = s
        emit(d, ts, data[nxt - s:])
        nxt = s + len(data)

print(f"# provenance (shared/captures/SOURCES.md): {row}")
print(f"# {name}: TCP stream {stream} of {base}, server port {sport}")
print(f"# extracted with protocols/pgsql/tests/streams/extract.py (tshark -T fields -e frame.time_epoch"
      f" -e tcp.srcport -e tcp.seq -e tcp.len -e tcp.payload -Y 'tcp.stream=={stream} && tcp.len>0')")
print("# format: <capture ns> <'>' client->server | '<' server->client> <hex payload | gap LEN>")
for l in out:
    print(l)
