#!/usr/bin/env bash
# Instructions per record of a whole replay, counted by callgrind: the stable measure on a
# shared machine whose wall times vary. Runs `dbtap replay --workers 1` on the first PACKETS
# packets of each bench capture present in bench-data/ (made by benches/make-*-capture.sh) and
# prints instructions, records and instructions per record — after subtracting the fixed cost of
# a run (start-up, compiling the default rules), measured on the capture's first packet alone.
#
#   benches/instructions.sh [PACKETS]     (default 40000)
#
# Needs valgrind and editcap (Wireshark); builds dbtap in release mode first.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKETS="${1:-40000}"
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 77; }
command -v editcap >/dev/null || { echo "editcap (Wireshark) is needed" >&2; exit 77; }
cargo build --release --bin dbtap >/dev/null
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

instructions() {
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    target/release/dbtap replay --workers 1 --records /dev/null --summary none "$1" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

printf '%-28s %14s %12s %9s %12s\n' capture instructions "fixed cost" records "per record"
for cap in bench-data/*.pcap; do
  [ -e "$cap" ] || continue
  slice="$WORK/$(basename "$cap")"
  editcap -r "$cap" "$slice" "1-$PACKETS" 2>/dev/null
  editcap -r "$cap" "$WORK/one.pcap" 1 2>/dev/null
  records="$(target/release/dbtap replay --summary none --workers 1 "$slice" | wc -l)"
  ir="$(instructions "$slice")"
  fixed="$(instructions "$WORK/one.pcap")"
  printf '%-28s %14s %12s %9s %12s\n' "$(basename "$cap")" "$ir" "$fixed" "$records" \
    "$(((ir - fixed) / (records > 0 ? records : 1)))"
done
