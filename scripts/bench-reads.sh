#!/usr/bin/env bash
# Read throughput by consistency level, next to etcd and Redis, all with
# ../shared/tools/kvload (read-only, 32 closed-loop clients, 10,000
# preloaded 100-byte keys, 10 s per run), alternating the systems for
# ROUNDS rounds (default 2) in one session:
#   cairn (3 local nodes, GET over RESP):
#     lease        linearizable, through the leader of the default range
#                  (answered from its read lease, no Raft round)
#     readindex    linearizable, through the two followers (each read asks
#                  the leader for a read index)
#     all-nodes    linearizable, spread over all three nodes
#     session      the default table's consistency set to session, spread
#                  over all three nodes (followers serve)
#     stale        the default table's consistency set to stale, spread
#                  over all three nodes
#   etcd (3 members, Debian's etcd-server): linearizable and serializable
#   redis (Debian's redis-server, appendfsync always): GET
# Output: one kvload JSON line per run in /tmp/benchreads/out.jsonl, then a
# summary. Needs: etcd-server, redis-server, Go.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${TOOLS:-$(pwd)/../shared/tools}
ROUNDS=${ROUNDS:-2}
W=/tmp/benchreads; rm -rf $W; mkdir -p $W
cp -r "$tools/kvload" "$W/kvload-src"
(cd "$W/kvload-src" && go build -o "$W/kvload" .)
K=$W/kvload
CGO_ENABLED=0 go build -o $W/cairn ./cmd/cairn
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
load() { # label endpoints [extra kvload flags]
  local label=$1 eps=$2; shift 2
  $K --clients 32 --read-ratio 1 --duration 10s --preload --endpoints "$eps" "$@" --label "$label" >> $W/out.jsonl
}
for r in $(seq "$ROUNDS"); do
  rm -rf $W/c; mkdir -p $W/c; pids=()
  ic="n1=127.0.0.1:17380,n2=127.0.0.1:17480,n3=127.0.0.1:17580"
  for i in 1 2 3; do p=$((17279+100*i)); $W/cairn server --name n$i --data-dir $W/c/n$i --listen 127.0.0.1:$p --listen-peer 127.0.0.1:$((p+1)) --listen-resp 127.0.0.1:$((p+2)) --initial-cluster $ic > $W/c/n$i.log 2>&1 & pids+=($!); done
  for i in 1 2 3; do for _ in $(seq 100); do curl -sf 127.0.0.1:$((17279+100*i))/readyz >/dev/null && break; sleep 0.1; done; done
  L=$(curl -sf 127.0.0.1:17379/v1/cluster | grep -o '"table":"default"[^}]*"leader":[0-9]' | grep -o '[0-9]$')
  F=$(for i in 1 2 3; do [ "$i" = "$L" ] || printf '127.0.0.1:%d,' $((17281+100*i)); done); F=${F%,}
  ALL=127.0.0.1:17381,127.0.0.1:17481,127.0.0.1:17581
  cp=(--driver resp --server-pids "$(IFS=,; echo "${pids[*]}")")
  load "cairn-lease round=$r" 127.0.0.1:$((17281+100*L)) "${cp[@]}"
  load "cairn-readindex round=$r" "$F" "${cp[@]}"
  load "cairn-all-nodes round=$r" "$ALL" "${cp[@]}"
  curl -sf -X PATCH 127.0.0.1:17379/v1/tables/default -d '{"consistency":"session"}' >/dev/null
  load "cairn-session round=$r" "$ALL" "${cp[@]}"
  curl -sf -X PATCH 127.0.0.1:17379/v1/tables/default -d '{"consistency":"stale"}' >/dev/null
  load "cairn-stale round=$r" "$ALL" "${cp[@]}"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  bash $tools/etcd3.sh start >/dev/null
  E=127.0.0.1:22379,127.0.0.1:22389,127.0.0.1:22399
  load "etcd-linearizable round=$r" $E --driver etcd --server-pids "$(paste -sd, /tmp/etcd3.pids)"
  load "etcd-serializable round=$r" $E --driver etcd --serializable --server-pids "$(paste -sd, /tmp/etcd3.pids)"
  bash $tools/etcd3.sh stop >/dev/null
  rm -rf $W/redis; mkdir -p $W/redis
  redis-server --port 26379 --dir $W/redis --save "" --appendonly yes --appendfsync always > $W/redis.log 2>&1 & rpid=$!
  for _ in $(seq 50); do redis-cli -p 26379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  load "redis-get round=$r" 127.0.0.1:26379 --driver resp --server-pids $rpid
  kill $rpid; wait $rpid 2>/dev/null || true
done
python3 - <<'PY'
import json
for l in open('/tmp/benchreads/out.jsonl'):
    d=json.loads(l)
    r=d.get('reads',{})
    print(d['label'], d['ops_per_sec'], 'p50_us', r.get('p50_us'), 'p99_us', r.get('p99_us'), 'errors', d.get('errors'), 'other_cores', d['cpu']['other_cores'])
PY
