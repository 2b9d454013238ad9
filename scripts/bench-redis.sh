#!/usr/bin/env bash
# Redis-protocol benchmark, side by side on this machine in one session:
# a local 3-node cairn cluster, Debian's redis-server with appendfsync
# always and with everysec, and (for the SET target) a 3-member etcd loaded
# by ../shared/tools/kvload. Each round runs every system once, in turn:
#   redis-benchmark -t set,get,incr,mset -c 50 -n N      (and again with -P 16)
# against cairn's RESP port on the leader of the default table's range and
# on a follower, and against redis-server; then kvload puts (50 clients,
# write-only) against etcd and against cairn's RESP port.
# Prints CSV: round,system,pipeline,test,rps,p50_ms,p99_ms (redis-benchmark)
# or round,system,1,PUT(kvload),ops_per_sec,,,other_cores (kvload).
# Usage: scripts/bench-redis.sh [ROUNDS] [N] [KVLOAD_DURATION]
# CAIRN_ARGS adds server flags (default --split-qps 0: redis-benchmark
# writes and reads one key, and a load-based split would move that key's
# range, and its leader, off the node measured as the leader).
# NODE_PROCS sets GOMAXPROCS of every cairn node and etcd member (default:
# Go's own, the CPUs the process may use; 1 under PIN=1).
# PIN=1 runs every server (cairn's three nodes, redis-server, etcd's three
# members) on CPU 0 and the load generators on CPU 1 (taskset): the
# servers then get one core and the client the other, and the runs stop
# depending on where the kernel happens to place each process (unpinned,
# the same run here varies by up to 2x between 28k and 50k GET/s).
# Needs: redis-server, redis-tools, etcd-server (scripts/deps.sh + apt), Go.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; n=${2:-200000}; kvdur=${3:-10s}
tools=${TOOLS:-$(pwd)/../shared/tools}
work=$(mktemp -d /tmp/cairn-rbench.XXXXXX)
cp -r "$tools/kvload" "$work/kvload-src"
(cd "$work/kvload-src" && go build -o "$work/kvload" .)
CGO_ENABLED=0 go build -o "$work/cairn" ./cmd/cairn

procs=${NODE_PROCS:-}
srv=(); cli=()
if [ "${PIN:-0}" = 1 ]; then srv=(taskset -c 0); cli=(taskset -c 1); fi

pids=()
stop_all() {
  [ ${#pids[@]} -gt 0 ] && { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; }
  pids=()
}
trap 'stop_all; bash "$tools/etcd3.sh" stop >/dev/null 2>&1 || true' EXIT

start_cairn() {
  rm -rf "$work/c"; mkdir -p "$work/c"
  local ic="n1=127.0.0.1:17380,n2=127.0.0.1:17480,n3=127.0.0.1:17580" i p
  for i in 1 2 3; do
    p=$((17279 + 100 * i))
    "${srv[@]}" env ${procs:+GOMAXPROCS=$procs} "$work/cairn" server --name "n$i" --data-dir "$work/c/n$i" --listen "127.0.0.1:$p" \
      --listen-peer "127.0.0.1:$((p + 1))" --listen-resp "127.0.0.1:$((p + 2))" \
      --initial-cluster "$ic" ${CAIRN_ARGS---split-qps 0} >"$work/c/n$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do
    for _ in $(seq 100); do
      curl -sf "127.0.0.1:$((17279 + 100 * i))/readyz" >/dev/null && break; sleep 0.1
    done
  done
  # Node ID of the default table's range leader (1..3).
  leader=$(curl -sf 127.0.0.1:17379/v1/cluster | grep -o '"table":"default"[^}]*"leader":[0-9]' | grep -o '[0-9]$')
  follower=$(( leader % 3 + 1 ))
}

start_redis() { # $1 = always | everysec
  rm -rf "$work/r"; mkdir -p "$work/r"
  "${srv[@]}" redis-server --port 26379 --bind 127.0.0.1 --save "" --appendonly yes --appendfsync "$1" \
    --dir "$work/r" >"$work/r/log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p 26379 ping >/dev/null 2>&1 && break; sleep 0.1; done
}

# rb ROUND SYSTEM PORT: both pipeline depths, one CSV line per test.
rb() {
  local P
  for P in 1 16; do
    timeout 600 "${cli[@]}" redis-benchmark -p "$3" -t set,get,incr,mset -c 50 -n "$n" -P "$P" --csv |
      tail -n +2 | tr -d '"' | awk -F, -v r="$1" -v s="$2" -v p="$P" '{print r "," s "," p "," $1 "," $2 "," $5 "," $7}'
  done
}

# kv ROUND SYSTEM DRIVER ENDPOINTS SERVER_PIDS: write-only kvload, 50
# clients; the last column is the CPU used by other processes (noise).
kv() {
  local out
  out=$("${cli[@]}" "$work/kvload" --driver "$3" --endpoints "$4" --clients 50 --read-ratio 0 \
    --duration "$kvdur" --preload --server-pids "$5" --label "$2")
  echo "$out" >>"$work/kvload.jsonl"
  echo "$1,$2,1,PUT(kvload),$(echo "$out" | grep -o '"ops_per_sec":[0-9.]*' | head -1 | cut -d: -f2),,,$(echo "$out" | grep -o '"other_cores":[0-9.]*' | head -1 | cut -d: -f2)"
}

echo "round,system,pipeline,test,rps,p50_ms,p99_ms,other_cores"
for r in $(seq "$rounds"); do
  start_cairn
  rb "$r" cairn-leader-n$leader $((17281 + 100 * leader))
  rb "$r" cairn-follower-n$follower $((17281 + 100 * follower))
  kv "$r" cairn-resp resp "127.0.0.1:17381,127.0.0.1:17481,127.0.0.1:17581" "$(IFS=,; echo "${pids[*]}")"
  stop_all
  for fs in always everysec; do
    start_redis "$fs"
    rb "$r" "redis-$fs" 26379
    stop_all
  done
  "${srv[@]}" env ${procs:+GOMAXPROCS=$procs} bash "$tools/etcd3.sh" start >/dev/null
  kv "$r" etcd etcd "127.0.0.1:22379,127.0.0.1:22389,127.0.0.1:22399" "$(paste -sd, /tmp/etcd3.pids)"
  bash "$tools/etcd3.sh" stop >/dev/null
done
echo "kvload raw output: $work/kvload.jsonl" >&2
