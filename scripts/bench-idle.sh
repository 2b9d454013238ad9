#!/usr/bin/env bash
# bench-idle.sh: CPU of a node holding many idle ranges (issue 4,
# quiescence). Starts one cairn server, creates TABLES hash tables of
# RANGES_PER_TABLE initial ranges each, writes one key per table, lets the
# node go idle for SETTLE seconds, then reads the process's CPU time
# (utime+stime from /proc/PID/stat) over WINDOW seconds and prints it as a
# percentage of one core. Extra arguments go to `cairn server` (e.g.
# --quiesce=false for the "before" number).
#
#   scripts/bench-idle.sh                      # 10 x 1000 ranges, quiesce on
#   scripts/bench-idle.sh --quiesce=false      # the same, quiesce off
#   TABLES=1 RANGES_PER_TABLE=100 scripts/bench-idle.sh
set -euo pipefail

TABLES=${TABLES:-10}
RANGES_PER_TABLE=${RANGES_PER_TABLE:-1000}
SETTLE=${SETTLE:-20}
WINDOW=${WINDOW:-30}
BIN=${CAIRN_BIN:-./cairn}
PORT=${PORT:-17379}
DIR=$(mktemp -d /tmp/cairn-idle.XXXXXX)

cleanup() {
	if [[ -n "${PID:-}" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	rm -rf "$DIR"
}
trap cleanup EXIT

EP="127.0.0.1:$PORT"
"$BIN" server --data-dir "$DIR/data" --listen "$EP" --listen-peer "127.0.0.1:$((PORT + 1))" \
	--listen-resp "" --log-level warn "$@" >"$DIR/log" 2>&1 &
PID=$!
for _ in $(seq 100); do
	"$BIN" --endpoints "$EP" table ls >/dev/null 2>&1 && break
	sleep 0.1
done

start=$(date +%s.%N)
for t in $(seq "$TABLES"); do
	"$BIN" --endpoints "$EP" --timeout 120s table create "idle$t" --partitioning hash --initial-ranges "$RANGES_PER_TABLE" >/dev/null
	"$BIN" --endpoints "$EP" --timeout 30s put --table "idle$t" k v >/dev/null
done
created=$(date +%s.%N)
ranges=$(curl -s "http://$EP/v1/cluster" | grep -o '"id":' | wc -l)
echo "created $TABLES tables x $RANGES_PER_TABLE ranges in $(echo "$created - $start" | bc) s (cluster lists $ranges ids: ranges + nodes)"

sleep "$SETTLE"
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
c0=$(cpu); t0=$(date +%s.%N)
sleep "$WINDOW"
c1=$(cpu); t1=$(date +%s.%N)
pct=$(echo "scale=2; 100 * ($c1 - $c0) / $hz / ($t1 - $t0)" | bc)
echo "idle CPU over ${WINDOW}s: ${pct}% of one core; RSS $(($(rss) / 1024)) MiB; server flags: $*"
