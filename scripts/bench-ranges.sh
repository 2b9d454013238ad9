#!/usr/bin/env bash
# Write throughput on one range against the same table split into 16
# ranges, on a 3-node cluster: cairn bench, writes only, 64 clients spread
# over the nodes, 10 s, alternating the two tables for 2 rounds. With 16
# ranges the coordinator spreads their leaders over the nodes, so every
# node leads (and fsyncs, and applies) a share of the writes.
# Output: one JSON line per run in /tmp/benchranges/out.jsonl, then a
# summary.
set -euo pipefail
cd "$(dirname "$0")/.."
W=/tmp/benchranges; rm -rf $W; mkdir -p $W/c
CGO_ENABLED=0 go build -o $W/cairn ./cmd/cairn
C=$W/cairn
ic="n1=127.0.0.1:18380,n2=127.0.0.1:18480,n3=127.0.0.1:18580"
pids=()
for i in 1 2 3; do p=$((18279+100*i)); $C server --name n$i --data-dir $W/c/n$i --listen 127.0.0.1:$p --listen-peer 127.0.0.1:$((p+1)) --listen-resp "" --initial-cluster $ic > $W/c/n$i.log 2>&1 & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
for i in 1 2 3; do for _ in $(seq 100); do curl -sf 127.0.0.1:$((18279+100*i))/readyz >/dev/null && break; sleep 0.1; done; done
E=127.0.0.1:18379,127.0.0.1:18479,127.0.0.1:18579
$C --endpoints $E table create one >/dev/null
$C --endpoints $E table create sixteen >/dev/null
# bench keys are bench-00000000 .. bench-00009999: 15 split points.
for i in $(seq 1 15); do $C --endpoints $E range split sixteen "$(printf 'bench-%08d' $((i*625)))" >/dev/null; done
# Let the coordinator spread the leaders (it moves a few per second).
sleep 8
curl -sf 127.0.0.1:18379/v1/cluster | python3 -c '
import json,sys
d=json.load(sys.stdin); lead={}
for r in d["ranges"]:
    if r["table"]=="sixteen": lead[r["leader"]]=lead.get(r["leader"],0)+1
print("leaders of sixteen per node:", dict(sorted(lead.items())))'
for r in 1 2; do
  for t in one sixteen; do
    $C --endpoints $E bench --table $t --read-ratio 0 --clients 64 --duration 10s --spread -o json | sed "s/^{/{\"label\":\"$t round=$r\",/" >> $W/out.jsonl
  done
done
python3 - <<'PY'
import json
for l in open('/tmp/benchranges/out.jsonl'):
    d=json.loads(l)
    print(d['label'], {k: d[k] for k in d if k in ('ops_per_sec','errors','p50_ms','p99_ms','put_p50_ms','put_p99_ms')})
PY
