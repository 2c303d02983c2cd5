#!/usr/bin/env bash
# The whole test suite: unit, golden, property and robustness tests of every crate, then the
# live-traffic test against a real MariaDB server (installed when missing and run as root; a
# plain SKIP otherwise, and a failure under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (unit, golden, property, robustness)"
cargo test --workspace --release

echo "== live MariaDB test"
cargo build --release --bin dbtap
set +e
DBTAP="$PWD/target/release/dbtap" tests/live/run.sh
rc=$?
set -e
case "$rc" in
  0) echo "== all tests passed" ;;
  77)
    if [ "${CI:-}" = "true" ]; then
      echo "live MariaDB test could not run under CI=true: failing" >&2
      exit 1
    fi
    echo "== all tests passed; live MariaDB test SKIPPED (reason above)" ;;
  *) echo "live MariaDB test FAILED (exit $rc)" >&2; exit "$rc" ;;
esac
