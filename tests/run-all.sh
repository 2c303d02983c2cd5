#!/usr/bin/env bash
# The whole test suite: unit, golden, property and robustness tests of every crate, then the
# live-traffic tests against real MariaDB and PostgreSQL servers (installed when missing and run
# as root; a plain SKIP otherwise, and a failure under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

# The `checked` profile is release with overflow checks and debug assertions on (Cargo.toml):
# the random-input, truncation and bit-flip tests then fail on a wire length or count that
# would overflow, where a plain release build would wrap silently. The live tests use the same
# binary, so real client traffic runs with the checks too.
echo "== cargo test (unit, golden, property, robustness; profile checked)"
cargo test --workspace --profile checked

cargo build --profile checked --bin dbtap
skipped=()

# Run one live test script; 77 means it could not run here (a failure under CI=true).
live() {
  local name="$1" script="$2" rc
  echo "== live $name test"
  set +e
  DBTAP="$PWD/target/checked/dbtap" "$script"
  rc=$?
  set -e
  case "$rc" in
    0) echo "== live $name test passed" ;;
    77)
      if [ "${CI:-}" = "true" ]; then
        echo "live $name test could not run under CI=true: failing" >&2
        exit 1
      fi
      skipped+=("$name") ;;
    *) echo "live $name test FAILED (exit $rc)" >&2; exit "$rc" ;;
  esac
}

live MariaDB tests/live/run.sh
live PostgreSQL tests/live/run-pg.sh

if [ ${#skipped[@]} -gt 0 ]; then
  echo "== all tests passed; SKIPPED (reasons above): ${skipped[*]}"
else
  echo "== all tests passed"
fi
