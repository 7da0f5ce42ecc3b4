#!/usr/bin/env bash
# Builds the Debian package from a release build: target/debian/uniqwatch_*.deb.
# The package's contents are declared in Cargo.toml [package.metadata.deb];
# cargo-deb comes from scripts/setup.sh --tests. Extra arguments go to `cargo deb`.
# Set UNIQWATCH_REVISION when building outside a git checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
  echo "build-deb: cargo deb is missing; run scripts/setup.sh --tests" >&2
  exit 1
fi
exec cargo deb --locked "$@"
