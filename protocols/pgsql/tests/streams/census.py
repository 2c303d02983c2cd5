#!/usr/bin/env python3
"""Cross-check the stream fixtures against tshark: per file, the number of Query and Parse
messages and the SQLSTATEs tshark decodes, next to the records this parser writes.

Usage (from the worktree root):
  SUMMARY=1 cargo test --release -q -p dbtap-pgsql --test dump -- --ignored --nocapture > /tmp/pg.txt
  python3 protocols/pgsql/tests/streams/census.py /tmp/pg.txt shared/captures/pgsql

Differences are expected where an operation has no text of its own on the wire (an execute of
a statement prepared earlier) and for NoticeResponse codes (00000), which are warnings here.
"""
import glob, os, re, subprocess, sys

summary, captures = sys.argv[1], sys.argv[2]
ours, cur = {}, None
for line in open(summary):
    m = re.match(r"=== (\S+)", line)
    if m:
        cur = m.group(1)
        ours[cur] = {"ops": 0, "err": []}
        continue
    if cur and re.match(r"\s+\d+ (query|execute|prepare|function_call) ", line):
        ours[cur]["ops"] += 1
    if cur:
        ours[cur]["err"] += re.findall(r'err=Text\(\\?"(\w+)\\?"\)', line)

here = os.path.dirname(os.path.abspath(__file__))
for f in sorted(glob.glob(os.path.join(here, "*.txt"))):
    name = os.path.basename(f)[:-4]
    m = re.match(r"# \S+: TCP stream (\d+) of (\S+), server port", open(f).readlines()[1])
    stream, cap = m.group(1), m.group(2)
    out = subprocess.run(
        ["tshark", "-r", os.path.join(captures, cap), "-Y", f"tcp.stream=={stream} && pgsql",
         "-T", "fields", "-e", "pgsql.type", "-e", "pgsql.code"],
        capture_output=True, text=True).stdout
    queries, errors = 0, []
    for row in out.splitlines():
        cols = row.split("\t")
        queries += sum(1 for t in cols[0].split(",") if t in ("Simple query", "Parse"))
        if len(cols) > 1 and cols[1]:
            errors += [c for c in cols[1].split(",") if c != "00000"]
    o = ours.get(name, {"ops": 0, "err": []})
    same = queries == o["ops"] and sorted(errors) == sorted(o["err"])
    print(f"{name:30} tshark: {queries:3} queries {errors}  dbtap: {o['ops']:3} ops {o['err']}"
          + ("" if same else "   <- differs"))
