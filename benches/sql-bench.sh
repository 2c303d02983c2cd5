#!/usr/bin/env bash
# SQL analysis + default rules, one core, every statement analysed from scratch (the pipeline
# caches analyses per distinct text; this measures the uncached worst case).
#
# Statement streams measured:
#   - each bench capture present in bench-data/ (made by benches/make-sysbench-capture.sh and
#     benches/make-pgbench-capture.sh): the `sql` of every record dbtap writes for it, in
#     capture order (real application workloads);
#   - the golden fixtures' statements (all four protocols; long PL/SQL, T-SQL and catalog
#     queries weigh much more there than in applications).
#
# Usage: benches/sql-bench.sh [STATEMENTS]   (analyses per stream, default 3,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-3000000}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cargo build --release --bin dbtap >/dev/null
cargo bench --bench sql --no-run 2>&1 | grep -q Executable
BENCH="$(ls -t target/release/deps/sql-* | grep -v '\.d$' | head -1)"

for cap in bench-data/*.pcap; do
  [ -e "$cap" ] || continue
  target/release/dbtap replay --summary none --rules none "$cap" > "$WORK/records.jsonl"
  printf '%-40s ' "$(basename "$cap")"
  DBTAP_BENCH_RECORDS="$WORK/records.jsonl" DBTAP_BENCH_STATEMENTS="$N" "$BENCH"
done
printf '%-40s ' "golden fixtures"
DBTAP_BENCH_STATEMENTS="$N" "$BENCH"
printf '%-40s ' "golden fixtures, analysis only"
DBTAP_BENCH_RULES=none DBTAP_BENCH_STATEMENTS="$N" "$BENCH"
