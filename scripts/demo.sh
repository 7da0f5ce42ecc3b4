#!/usr/bin/env bash
# The demo: a local SecantusDB (MongoDB wire protocol) with persistent data in
# ./demo-data, seeded on first start with 10 000 chats (a few duplicated keys,
# a few documents without a key, and keys that break the invariant behind
# them: see examples/demo.toml) and a users collection whose unique email
# index is healthy but case-sensitive, a stand-in application log, and the
# uniqwatch daemon watching all of it. Ctrl-C stops everything.
# Then try: ./target/release/uniqwatch audit --config examples/demo.toml --month "$(date -u +%Y-%m)"

set -euo pipefail
cd "$(dirname "$0")/.."

PORT=27117
mkdir -p demo-data/db demo-data/state demo-data/logs demo-data/reports

# SecantusDB into .venv (and the test tools, on first run only).
scripts/setup.sh

echo "demo: building uniqwatch (release)"
cargo build --release --locked --quiet

if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
  echo "demo: port $PORT is taken (another demo running?); stop it first" >&2
  exit 1
fi
.venv/bin/secantusd-py --host 127.0.0.1 --port $PORT --storage-path demo-data/db --log-level WARNING \
  > demo-data/secantusd.log 2>&1 &
db_pid=$!
trap 'kill $db_pid 2>/dev/null; wait $db_pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.2
done

# The marker names the seed's version: demo data from before the canonical
# examples is seeded again (the collections are dropped; history is kept).
if [ "$(cat demo-data/.seeded 2>/dev/null)" != "examples" ]; then
  .venv/bin/python scripts/seed.py --uri "mongodb://127.0.0.1:$PORT/" --count 10000 --examples --drop
  echo examples > demo-data/.seeded
fi

# A stand-in for the chat backend's log: a request a second with its
# response time (8 to 30 ms; one in 50 a 503), a slow spell of a minute
# every ten (200 to 900 ms) so the latency panels move, and every 15 seconds
# a duplicate-key conflict that the code recovers from.
(
  i=0
  while sleep 1; do
    i=$((i + 1))
    now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
    ms=$((8 + RANDOM % 23))
    [ $((i % 600)) -ge 540 ] && ms=$((200 + RANDOM % 701))
    status=200
    [ $((RANDOM % 50)) -eq 0 ] && status=503
    echo "$now [INFO] POST /api/chats/create-or-get $status ${ms}ms" >> demo-data/logs/chat-backend.log
    if [ $((i % 15)) -eq 0 ]; then
      echo "$now [WARN] Duplicate key error during upsert participantsKey=user$i""_user$((i + 1))" >> demo-data/logs/chat-backend.log
      echo "$now [DEBUG] Retrieved existing chat after duplicate key error" >> demo-data/logs/chat-backend.log
    fi
  done
) &
log_pid=$!
trap 'kill $log_pid $db_pid 2>/dev/null; wait $db_pid 2>/dev/null' EXIT

echo
echo "demo: uniqwatch is starting; open http://127.0.0.1:9716/ (metrics at /metrics). Ctrl-C stops it."
echo
./target/release/uniqwatch run --config examples/demo.toml
