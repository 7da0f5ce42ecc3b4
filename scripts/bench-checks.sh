#!/usr/bin/env bash
# Benchmark of one `uniqwatch check` pass on a 100 000-document collection:
# collection scans counted from the server's profiler and query plans, wall
# time against the seed's hand-run aggregation, peak RSS, and /metrics latency
# under wrk; then the semantic pass of [target.canonical] on chats that break
# the invariant behind a healthy unique index (scans, wall time against an
# operator's aggregation, peak RSS at two sizes). Prints a report (also
# written to bench/results-checks.txt); it asserts no timing. Extra arguments
# go to bench/bench_checks.py (--rounds N, --count N, --wrk-duration 10s,
# --sections checks|semantic, --semantic-small N, --breakage SHARE).
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/secantusd-py ] && command -v wrk >/dev/null 2>&1 || scripts/setup.sh
cargo build --release --locked --quiet
exec .venv/bin/python bench/bench_checks.py "$@"
