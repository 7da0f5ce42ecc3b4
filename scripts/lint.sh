#!/usr/bin/env bash
# Lints every target (library, binary, tests, examples) with clippy, any
# warning an error. Installs the clippy component when rustup lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add clippy
fi
exec cargo clippy --locked --all-targets -- -D warnings
