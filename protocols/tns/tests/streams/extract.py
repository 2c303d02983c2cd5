#!/usr/bin/env python3
"""Extract one TCP connection of a capture into a stream file for the parser tests.

Usage: extract.py CAPTURE SERVER_PORT STREAM_INDEX NAME

Writes NAME.txt: one line per TCP segment with payload, `<µs timestamp> <dir> <hex>`, where dir is
`>` (client to server) or `<`. Retransmitted segments are left out (tshark's analysis flags).
Needs tshark.
"""
import subprocess, sys

cap, port, stream, name = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
out = subprocess.run(
    ["tshark", "-r", cap, "-d", f"tcp.port=={port},tns", "-Y",
     f"tcp.stream=={stream} && tcp.len>0 && !tcp.analysis.retransmission",
     "-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.dstport", "-e", "tcp.payload"],
    capture_output=True, text=True, check=True).stdout
with open(f"{name}.txt", "w") as f:
    f.write(f"# {cap.split('/')[-1]} tcp.stream=={stream}, server port {port}\n")
    for line in out.splitlines():
        ts, dport, payload = line.split("\t")
        us = int(round(float(ts) * 1e6))
        d = ">" if dport == port else "<"
        f.write(f"{us} {d} {payload}\n")
