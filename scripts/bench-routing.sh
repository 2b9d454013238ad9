#!/usr/bin/env bash
# Go client routing by key on vs off (issue 4): a 3-node cluster, a table
# split into 16 ranges whose leaders the coordinator spreads over the
# nodes, and cairn bench given ONE endpoint (n1), 32 clients, 8 s per run:
# writes only, then reads only (linearizable, after --preload), each with
# routing on (straight to the key's leader) and off (n1 forwards what it
# does not lead), alternating for 2 rounds.
# Output: one JSON line per run in /tmp/benchrouting/out.jsonl, then a
# summary with the on/off ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
W=/tmp/benchrouting; rm -rf $W; mkdir -p $W/c
CGO_ENABLED=0 go build -o $W/cairn ./cmd/cairn
C=$W/cairn
B=27300 # ports B+100*i (client) and B+100*i+1 (peer)
ic="n1=127.0.0.1:$((B+101)),n2=127.0.0.1:$((B+201)),n3=127.0.0.1:$((B+301))"
pids=()
for i in 1 2 3; do p=$((B+100*i)); $C server --name n$i --data-dir $W/c/n$i --listen 127.0.0.1:$p --listen-peer 127.0.0.1:$((p+1)) --listen-resp "" --initial-cluster $ic > $W/c/n$i.log 2>&1 & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
for i in 1 2 3; do for _ in $(seq 100); do curl -sf 127.0.0.1:$((B+100*i))/readyz >/dev/null && break; sleep 0.1; done; done
E=127.0.0.1:$((B+100))
$C --endpoints $E table create t16 >/dev/null
# bench keys are bench-00000000 .. bench-00009999: 15 split points.
for i in $(seq 1 15); do $C --endpoints $E range split t16 "$(printf 'bench-%08d' $((i*625)))" >/dev/null; done
sleep 8 # let the coordinator spread the leaders
curl -sf 127.0.0.1:$((B+100))/v1/cluster | python3 -c '
import json,sys
d=json.load(sys.stdin); lead={}
for r in d["ranges"]:
    if r["table"]=="t16": lead[r["leader"]]=lead.get(r["leader"],0)+1
print("leaders of t16 per node:", dict(sorted(lead.items())))'
$C --endpoints $E bench --table t16 --read-ratio 1 --clients 32 --duration 1s --preload -o json >/dev/null
for r in 1 2; do
  for wl in write read; do
    rr=0; [ $wl = read ] && rr=1
    for mode in on off; do
      flag=""; [ $mode = off ] && flag="--no-key-routing"
      $C --endpoints $E bench --table t16 --read-ratio $rr --clients 32 --duration 8s $flag -o json |
        sed "s/^{/{\"label\":\"$wl $mode\",\"round\":$r,/" >> $W/out.jsonl
    done
  done
done
python3 - <<'PY'
import json, collections
runs = collections.defaultdict(list)
for l in open('/tmp/benchrouting/out.jsonl'):
    d = json.loads(l)
    op = 'put' if d['label'].startswith('write') else 'get'
    o = d['ops'][op]
    runs[d['label']].append(d)
    print(d['label'], 'round', d['round'], 'ops/s %.0f p50 %.2fms p99 %.2fms errors %d routing %s' % (o['ops_per_sec'], o['p50_ms'], o['p99_ms'], d['errors'], d['routing']))
for wl, op in (('write', 'put'), ('read', 'get')):
    for r in (1, 2):
        on = [d for d in runs[wl + ' on'] if d['round'] == r][0]['ops'][op]['ops_per_sec']
        off = [d for d in runs[wl + ' off'] if d['round'] == r][0]['ops'][op]['ops_per_sec']
        print('%s round %d: on/off = %.2f' % (wl, r, on / off))
PY
