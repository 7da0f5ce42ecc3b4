#!/usr/bin/env bash
# Benchmarks the log tailer against `grep -c E11000` and mtail on the same
# generated application log (400 MB by default), then with one duration
# event on every request line (a histogram by status class) against
# `grep -c` of its prefilter and mtail computing the same histogram
# (bench/log-durations.mtail), then measures idle CPU with 10 quiet files.
# Prints figures; it is not a timed test.
#
#   scripts/bench-logs.sh            # 400 MB in a temp directory
#   SIZE_MB=100 WORK=/tmp/b scripts/bench-logs.sh
#
# Needs /usr/bin/time (GNU time) and, for the comparison, mtail (Debian
# package `mtail`). Every reader runs on a warm page cache.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-400}
IDLE_SECONDS=${IDLE_SECONDS:-10}
WORK=${WORK:-$(mktemp -d)}
LOG=$WORK/app.log
BIN=target/release/examples/bench_logs

cargo build --quiet --release --example bench_logs
if [[ ! -s $LOG ]]; then
    "$BIN" gen "$LOG" "$SIZE_MB"
fi
cat "$LOG" > /dev/null # warm the page cache for every reader alike

# Runs a command under GNU time; prints its output then wall, CPU and peak RSS.
measure() {
    local name=$1
    shift
    local out
    out=$( { /usr/bin/time -f "TIME %e %U %S %M" "$@" 2>&1 1>&3 3>&-; } 3>&1 )
    local stats
    stats=$(grep '^TIME ' <<<"$out" | tail -n1)
    grep -v '^TIME ' <<<"$out" | sed "s/^/  $name: /" || true
    awk -v name="$name" '{ printf "%-10s wall %6.2fs  cpu %6.2fs (user %.2f sys %.2f)  peak RSS %7.1f MiB\n", name, $2, $3 + $4, $3, $4, $5 / 1024 }' <<<"$stats"
}

echo "== $(du -m "$LOG" | cut -f1) MB, $(wc -l < "$LOG") lines: $LOG"
measure grep grep -c E11000 "$LOG"
measure uniqwatch "$BIN" read "$LOG"

if command -v mtail > /dev/null; then
    PROGS=$WORK/mtail-progs
    mkdir -p "$PROGS"
    # The same counts the tailer makes: lines, errors, recoveries, one event.
    cat > "$PROGS/dupkey.mtail" <<'MTAIL'
counter log_lines_total
counter duplicate_key_errors_total
counter duplicate_key_recoveries_total
counter create_or_get_total

// {
  log_lines_total++
}
/Retrieved existing chat after duplicate key error/ {
  duplicate_key_recoveries_total++
} else {
  /E11000|Duplicate key error/ {
    duplicate_key_errors_total++
  }
}
/POST \/api\/chats\/create-or-get/ {
  create_or_get_total++
}
MTAIL
    measure mtail sh -c "mtail --progs '$PROGS' --logs '$LOG' --one_shot --one_shot_format=prometheus --logtostderr=false 2>/dev/null | grep -E '^(log_lines_total|duplicate_key|create_or_get)' | sed 's/{.*}//' | tr '\n' ' '; echo"
else
    echo "mtail not installed (apt-get install mtail); skipped"
fi

echo "== the contract's duration event on the create-or-get route (one request line in six)"
measure grep grep -c E11000 "$LOG"
measure grep-route grep -c 'POST /api/chats/create-or-get' "$LOG"
measure uniqwatch "$BIN" read "$LOG" route-durations

echo "== one duration event on every request line (histogram by status class)"
measure grep-req grep -c '\[INFO\] req=' "$LOG"
measure grep-regex grep -cE '[0-9]{3} [0-9]+(\.[0-9]+)?(ms|s|us)\b' "$LOG"
measure uniqwatch "$BIN" read "$LOG" durations
if command -v mtail > /dev/null; then
    PROGS=$WORK/mtail-durations
    mkdir -p "$PROGS"
    cp bench/log-durations.mtail "$PROGS/"
    measure mtail sh -c "mtail --progs '$PROGS' --logs '$LOG' --one_shot --one_shot_format=prometheus --logtostderr=false 2>/dev/null | grep -E '^log_event_(duration_seconds_count|unparsed)' | sed 's/{prog=[^,}]*,\\?/{/' | tr '\n' ' '; echo"
fi

echo "== idle: 10 quiet files for ${IDLE_SECONDS}s"
measure idle "$BIN" idle "$WORK/idle" "$IDLE_SECONDS"
