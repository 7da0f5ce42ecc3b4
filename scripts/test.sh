#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need (scripts/setup.sh),
# then `cargo test`, timed so the suite's wall time shows in every run.
# Tests start their own SecantusDB, Prometheus and Alertmanager; set
# UNIQWATCH_TEST_MONGODB_URI to test against a real mongod. With CI set (as
# .ci/run does) no test may skip for a missing tool.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
# Built first, so the second figure is the tests' own wall time.
start=$(date +%s)
cargo test --locked --no-run --quiet "$@"
built=$(date +%s)
status=0
cargo test --locked "$@" || status=$?
echo "test suite: build $((built - start))s, tests $(( $(date +%s) - built ))s wall time (exit $status)"
exit $status
