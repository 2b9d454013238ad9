#!/usr/bin/env bash
# bench-idle.sh: CPU of a node holding many idle ranges (issue 4,
# quiescence). Starts one cairn server, creates TABLES hash tables of
# RANGES_PER_TABLE initial ranges each, writes one key per table, lets the
# node go idle for SETTLE seconds, then reads the process's CPU time
# (utime+stime from /proc/PID/stat) over WINDOW seconds and prints it as a
# percentage of one core. Extra arguments go to `cairn server` (e.g.
# --quiesce=false for the "before" number).
#
#   scripts/bench-idle.sh                      # 10 x 1000 ranges, quiesce on (the default)
#   scripts/bench-idle.sh --quiesce=false      # the same, quiesce off
#   TABLES=1 RANGES_PER_TABLE=100 scripts/bench-idle.sh
#   NODES=3 scripts/bench-idle.sh              # 3 processes, every range on each
set -euo pipefail

TABLES=${TABLES:-10}
RANGES_PER_TABLE=${RANGES_PER_TABLE:-1000}
SETTLE=${SETTLE:-20}
WINDOW=${WINDOW:-30}
BIN=${CAIRN_BIN:-./cairn}
PORT=${PORT:-17379}
DIR=$(mktemp -d /tmp/cairn-idle.XXXXXX)

NODES=${NODES:-1}
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT

EP="127.0.0.1:$PORT"
cluster=""
for i in $(seq "$NODES"); do
	cluster+="${cluster:+,}n$i=127.0.0.1:$((PORT + 100 * (i - 1) + 1))"
done
for i in $(seq "$NODES"); do
	init=()
	if ((NODES > 1)); then init=(--initial-cluster "$cluster"); fi
	"$BIN" server --name "n$i" --data-dir "$DIR/n$i" --listen "127.0.0.1:$((PORT + 100 * (i - 1)))" \
		--listen-peer "127.0.0.1:$((PORT + 100 * (i - 1) + 1))" --listen-resp "" --log-level warn \
		"${init[@]}" "$@" >"$DIR/n$i.log" 2>&1 &
	PIDS+=($!)
done
for _ in $(seq 300); do
	"$BIN" --endpoints "$EP" table ls >/dev/null 2>&1 && break
	sleep 0.1
done

start=$(date +%s.%N)
for t in $(seq "$TABLES"); do
	"$BIN" --endpoints "$EP" --timeout 300s table create "idle$t" --partitioning hash --initial-ranges "$RANGES_PER_TABLE" >/dev/null
	# The write may meet a leader change while the new ranges settle
	# (outcome unknown); it is only there to make the table non-empty.
	for _ in 1 2 3 4 5; do
		"$BIN" --endpoints "$EP" --timeout 60s put --table "idle$t" k v >/dev/null 2>&1 && break
		sleep 1
	done
done
created=$(date +%s.%N)
ranges=$(curl -s "http://$EP/v1/cluster" | grep -o '"id":' | wc -l)
echo "created $TABLES tables x $RANGES_PER_TABLE ranges on $NODES node(s) in $(echo "$created - $start" | bc) s (cluster lists $ranges ids: ranges + nodes)"

sleep "$SETTLE"
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
declare -A c0
for p in "${PIDS[@]}"; do c0[$p]=$(cpu "$p"); done
t0=$(date +%s.%N)
sleep "$WINDOW"
t1=$(date +%s.%N)
i=0
for p in "${PIDS[@]}"; do
	i=$((i + 1))
	pct=$(echo "scale=2; 100 * ($(cpu "$p") - ${c0[$p]}) / $hz / ($t1 - $t0)" | bc)
	echo "n$i idle CPU over ${WINDOW}s: ${pct}% of one core; RSS $(($(rss "$p") / 1024)) MiB; server flags: $*"
done
