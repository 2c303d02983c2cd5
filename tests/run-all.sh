#!/usr/bin/env bash
# The whole test suite: unit, golden, property, robustness and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release
