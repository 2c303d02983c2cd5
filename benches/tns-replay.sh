#!/usr/bin/env bash
# Oracle (TNS) replay throughput: one TNS capture repeated to a few hundred MB, replayed by dbtap.
#
#   benches/tns-replay.sh [FILE] [TARGET_MB]
#
# FILE defaults to the largest TNS fixture (fixtures/tns/*/*); TARGET_MB to 300. The capture is
# converted to pcap (editcap) and written again and again into one file, each copy shifted in
# time past the previous one (past the idle timeout, so every copy is new sessions on the same
# addresses). Then `dbtap replay COPY --records OUT --summary json` is timed RUNS times (median)
# and the script prints MB, records, seconds, MB/s and records/s.
#
# Settings: DBTAP (default target/release/dbtap; build it with `cargo build --release`),
#           DBTAP_ARGS (extra replay arguments, e.g. "--workers 2"), RUNS (3), KEEP=1 keeps the
#           work directory (printed).
# Needs editcap (Wireshark) and python3.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DBTAP="${DBTAP:-$ROOT/target/release/dbtap}"
RUNS="${RUNS:-3}"
FILE="${1:-$(ls -S "$ROOT"/fixtures/tns/*/*.pcap* | head -n 1)}"
TARGET_MB="${2:-300}"

command -v editcap >/dev/null || { echo "editcap (Wireshark) is needed" >&2; exit 77; }
[ -x "$DBTAP" ] || { echo "build dbtap first: cargo build --release" >&2; exit 1; }

WORK="$(mktemp -d)"
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
editcap -F pcap "$FILE" "$WORK/one.pcap"

python3 - "$WORK/one.pcap" "$WORK/big.pcap" "$TARGET_MB" <<'PY'
import struct, sys
src, dst, target = sys.argv[1], sys.argv[2], int(sys.argv[3]) * 1_000_000
data = open(src, "rb").read()
magic = data[:4]
endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
unit = 1_000_000_000 if nano else 1_000_000
recs, pos = [], 24
while pos + 16 <= len(data):
    sec, frac, incl, orig = struct.unpack(endian + "IIII", data[pos:pos + 16])
    recs.append((sec * unit + frac, data[pos + 16:pos + 16 + incl], orig))
    pos += 16 + incl
first, last = recs[0][0], recs[-1][0]
# Each copy starts 2 hours after the previous one ended: past the idle timeout (1 hour), so
# flows left open by one copy are closed before the next reuses their addresses.
step = last - first + 7200 * unit
with open(dst, "wb") as out:
    out.write(data[:24])
    written, k = 24, 0
    while written < target:
        for ts, payload, orig in recs:
            t = ts + k * step
            out.write(struct.pack(endian + "IIII", t // unit, t % unit, len(payload), orig))
            out.write(payload)
            written += 16 + len(payload)
        k += 1
print(f"{k} copies of {len(recs)} packets", file=sys.stderr)
PY

MB=$(python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1])/1e6:.1f}')" "$WORK/big.pcap")
times=()
for _ in $(seq "$RUNS"); do
    start=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$DBTAP" replay "$WORK/big.pcap" --records "$WORK/out.jsonl" --summary json \
        --summary-file "$WORK/summary.json" ${DBTAP_ARGS:-}
    end=$(date +%s.%N)
    times+=("$(python3 -c "print($end - $start)")")
done
SECS=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
RECORDS=$(wc -l < "$WORK/out.jsonl")
python3 - "$FILE" "$MB" "$RECORDS" "$SECS" <<'PY'
import sys
f, mb, rec, secs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
print(f"capture   {f.split('/')[-1]}")
print(f"replayed  {mb:.1f} MB, {rec} records, {secs:.2f} s (median)")
print(f"rate      {mb / secs:.1f} MB/s, {rec / secs:,.0f} records/s")
PY
[ "${KEEP:-}" = 1 ] && echo "work dir: $WORK"
exit 0
