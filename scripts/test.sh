#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need (scripts/setup.sh),
# then `cargo test`. Tests start their own SecantusDB, Prometheus and
# Alertmanager; set UNIQWATCH_TEST_MONGODB_URI to test against a real mongod.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo test --locked "$@"
