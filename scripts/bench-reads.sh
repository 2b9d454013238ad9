#!/usr/bin/env bash
# Read throughput: cairn's lease reads (GET over RESP on the leader of the
# default table's range), cairn's reads spread over all 3 nodes (followers
# ask the leader for a read index), and a 3-member etcd's linearizable and
# serializable reads, all with ../shared/tools/kvload, read-only, 32
# clients, 10 s, alternating the systems for 2 rounds. Output: one kvload
# JSON line per run in /tmp/benchreads/out.jsonl, then a summary.
# Needs: etcd-server, Go.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${TOOLS:-$(pwd)/../shared/tools}
W=/tmp/benchreads; rm -rf $W; mkdir -p $W
cp -r "$tools/kvload" "$W/kvload-src"
(cd "$W/kvload-src" && go build -o "$W/kvload" .)
K=$W/kvload
CGO_ENABLED=0 go build -o $W/cairn ./cmd/cairn
for r in 1 2; do
  rm -rf $W/c; mkdir -p $W/c; pids=()
  ic="n1=127.0.0.1:17380,n2=127.0.0.1:17480,n3=127.0.0.1:17580"
  for i in 1 2 3; do p=$((17279+100*i)); $W/cairn server --name n$i --data-dir $W/c/n$i --listen 127.0.0.1:$p --listen-peer 127.0.0.1:$((p+1)) --listen-resp 127.0.0.1:$((p+2)) --initial-cluster $ic > $W/c/n$i.log 2>&1 & pids+=($!); done
  for i in 1 2 3; do for _ in $(seq 100); do curl -sf 127.0.0.1:$((17279+100*i))/readyz >/dev/null && break; sleep 0.1; done; done
  L=$(curl -sf 127.0.0.1:17379/v1/cluster | grep -o '"table":"default"[^}]*"leader":[0-9]' | grep -o '[0-9]$')
  $K --driver resp --endpoints 127.0.0.1:$((17281+100*L)) --clients 32 --read-ratio 1 --duration 10s --preload --server-pids "$(IFS=,; echo "${pids[*]}")" --label "cairn-lease round=$r" >> $W/out.jsonl
  $K --driver resp --endpoints 127.0.0.1:17381,127.0.0.1:17481,127.0.0.1:17581 --clients 32 --read-ratio 1 --duration 10s --preload --server-pids "$(IFS=,; echo "${pids[*]}")" --label "cairn-all-nodes round=$r" >> $W/out.jsonl
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  bash $tools/etcd3.sh start >/dev/null
  E=127.0.0.1:22379,127.0.0.1:22389,127.0.0.1:22399
  $K --driver etcd --endpoints $E --clients 32 --read-ratio 1 --duration 10s --preload --server-pids "$(paste -sd, /tmp/etcd3.pids)" --label "etcd-linearizable round=$r" >> $W/out.jsonl
  $K --driver etcd --endpoints $E --clients 32 --read-ratio 1 --duration 10s --preload --serializable --server-pids "$(paste -sd, /tmp/etcd3.pids)" --label "etcd-serializable round=$r" >> $W/out.jsonl
  bash $tools/etcd3.sh stop >/dev/null
done
python3 - <<'PY'
import json
for l in open('/tmp/benchreads/out.jsonl'):
    d=json.loads(l)
    r=d.get('reads',{})
    print(d['label'], d['ops_per_sec'], 'p50_us', r.get('p50_us'), 'p99_us', r.get('p99_us'), 'other_cores', d['cpu']['other_cores'])
PY
