#!/usr/bin/env bash
# The server's resident memory while it idles after opening a store
# (BENCHMARKS.md, issue 14): starts `BIN --data DATA serve` on a free port,
# waits for /healthz, and prints VmRSS (MiB) at 1, 2, 5, 10, 20 and 30 s.
#   scripts/rss-after-start.sh target/release/gridsync-server /path/to/kept/store
set -euo pipefail
BIN=$1
DATA=$2
PORT=$((20000 + RANDOM % 20000))
"$BIN" --data "$DATA" serve --listen "127.0.0.1:$PORT" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
START=$(date +%s.%N)
until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do
  kill -0 $PID 2>/dev/null || { echo "the server exited" >&2; exit 1; }
  sleep 0.05
done
OUT="answered after $(echo "$(date +%s.%N) - $START" | bc) s; RSS MiB:"
LAST=0
for T in 1 2 5 10 20 30; do
  sleep $((T - LAST))
  LAST=$T
  OUT="$OUT ${T}s=$(($(awk '/VmRSS/{print $2}' /proc/$PID/status) / 1024))"
done
echo "$OUT"
