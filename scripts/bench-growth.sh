#!/usr/bin/env bash
# Write and read throughput while the data grows 100x (issue 4: "should
# stay flat"). A 3-node cluster with --split-size 1MiB, so the table
# splits as it grows; cairn bench fills the table to 1,000, then 10,000,
# then 100,000 keys of 1 KiB (--preload: ~1 MB, 10 MB, 100 MB of values)
# and after each fill measures 8 s of writes (random overwrites of the
# keys present) and 8 s of linearizable reads, 32 clients spread over the
# nodes. Reports per step the data size and range count (from
# /v1/cluster), put and get ops/s, and the ratio of the last step to the
# first. Runtime: about 6 minutes on 2 cores.
# PRESPLIT=N splits the table by hand into N ranges over the first step's
# keys before the fill, so that every step has at least N ranges: it
# separates the cost of more ranges from the cost of more data.
# Output: one JSON line per run in /tmp/benchgrowth/out.jsonl, then a
# summary.
set -euo pipefail
cd "$(dirname "$0")/.."
W=/tmp/benchgrowth; rm -rf $W; mkdir -p $W/c
CGO_ENABLED=0 go build -o $W/cairn ./cmd/cairn
C=$W/cairn
B=27600 # ports B+100*i (client) and B+100*i+1 (peer)
ic="n1=127.0.0.1:$((B+101)),n2=127.0.0.1:$((B+201)),n3=127.0.0.1:$((B+301))"
pids=()
for i in 1 2 3; do p=$((B+100*i)); $C server --name n$i --data-dir $W/c/n$i --listen 127.0.0.1:$p --listen-peer 127.0.0.1:$((p+1)) --listen-resp "" --initial-cluster $ic --split-size 1MiB > $W/c/n$i.log 2>&1 & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
for i in 1 2 3; do for _ in $(seq 100); do curl -sf 127.0.0.1:$((B+100*i))/readyz >/dev/null && break; sleep 0.1; done; done
E=127.0.0.1:$((B+100)),127.0.0.1:$((B+200)),127.0.0.1:$((B+300))
$C --endpoints $E table create grow >/dev/null
for k in $(seq 1 $(( ${PRESPLIT:-1} - 1 ))); do
  $C --endpoints $E range split grow "$(printf 'bench-%08d' $(( k * 1000 / PRESPLIT )))" >/dev/null
done
# shape prints the table's range count and logical size as JSON fields.
shape() {
  curl -sf 127.0.0.1:$((B+100))/v1/cluster | python3 -c '
import json,sys
d=json.load(sys.stdin); rs=[r for r in d["ranges"] if r["table"]=="grow"]
print("\"ranges\":%d,\"bytes\":%d" % (len(rs), sum(r["size_bytes"] for r in rs)))'
}
for keys in 1000 10000 100000; do
  t0=$(date +%s)
  $C --endpoints $E bench --table grow --keys $keys --value-size 1024 --clients 32 --duration 1s --read-ratio 1 --preload -o json >/dev/null
  fill=$(( $(date +%s) - t0 ))
  sleep 15 # let the splits and compactions the fill caused settle
  s=$(shape)
  for wl in write read; do
    rr=0; [ $wl = read ] && rr=1
    $C --endpoints $E bench --table grow --keys $keys --value-size 1024 --clients 32 --duration 8s --read-ratio $rr --spread -o json |
      sed "s/^{/{\"label\":\"$wl\",\"step_keys\":$keys,\"fill_seconds\":$fill,$s,/" >> $W/out.jsonl
  done
done
python3 - <<'PY'
import json
rows = {}
for l in open('/tmp/benchgrowth/out.jsonl'):
    d = json.loads(l)
    op = 'put' if d['label'] == 'write' else 'get'
    o = d['ops'][op]
    rows.setdefault(d['step_keys'], {})[op] = o['ops_per_sec']
    rows[d['step_keys']].update(ranges=d['ranges'], bytes=d['bytes'], fill=d['fill_seconds'], errors=rows[d['step_keys']].get('errors', 0) + d['errors'])
    print(d['label'], d['step_keys'], 'keys: ops/s %.0f p50 %.2fms p99 %.2fms errors %d ranges %d bytes %d' % (o['ops_per_sec'], o['p50_ms'], o['p99_ms'], d['errors'], d['ranges'], d['bytes']))
steps = sorted(rows)
b0 = rows[steps[0]]['bytes'] or 1
print('| keys | data | growth | ranges | fill s | put ops/s | get ops/s | errors |')
print('|---|---|---|---|---|---|---|---|')
for k in steps:
    r = rows[k]
    print('| %d | %.1f MB | %.0fx | %d | %d | %.0f | %.0f | %d |' % (k, r['bytes'] / 1e6, r['bytes'] / b0, r['ranges'], r['fill'], r['put'], r['get'], r['errors']))
first, last = rows[steps[0]], rows[steps[-1]]
print('last/first: put %.2f, get %.2f' % (last['put'] / first['put'], last['get'] / first['get']))
PY
