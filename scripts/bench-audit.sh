#!/bin/sh
# Benchmark of the history store and the monthly audit: a year of one-minute
# runs for 3 targets, then one month's report time and the store's size.
# Usage: scripts/bench-audit.sh [DIR]   (DIR keeps the store for a look afterwards)
set -eu
cd "$(dirname "$0")/.."
exec cargo run --release --example bench_audit -- "$@"
