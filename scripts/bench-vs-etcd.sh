#!/usr/bin/env bash
# Side-by-side load test: a local 3-node cairn cluster vs Debian's 3-member
# etcd, on this machine, in one session, alternating the systems ROUNDS
# times, with ../shared/tools/kvload driving both. Prints one JSON line per
# run (kvload's output, labelled). Usage:
#   scripts/bench-vs-etcd.sh [ROUNDS] [DURATION] [CLIENTS]
# Needs: etcd-server (apt-get install -y etcd-server), Go.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; duration=${2:-10s}; clients=${3:-64}
tools=${TOOLS:-../shared/tools}
work=$(mktemp -d /tmp/cairn-bench.XXXXXX)
cp -r "$tools/kvload" "$work/kvload-src"
(cd "$work/kvload-src" && go build -o "$work/kvload" .)
CGO_ENABLED=0 go build -o "$work/cairn" ./cmd/cairn

cairn_pids=()
start_cairn() {
  rm -rf "$work/c"; mkdir -p "$work/c"
  local ic="n1=127.0.0.1:17380,n2=127.0.0.1:17480,n3=127.0.0.1:17580"
  cairn_pids=()
  for i in 1 2 3; do
    p=$((17279 + 100 * i))
    "$work/cairn" server --name "n$i" --data-dir "$work/c/n$i" --listen "127.0.0.1:$p" \
      --listen-peer "127.0.0.1:$((p + 1))" --listen-resp "" --initial-cluster "$ic" \
      >"$work/c/n$i.log" 2>&1 &
    cairn_pids+=($!)
  done
  for i in 1 2 3; do
    for _ in $(seq 100); do
      curl -sf "127.0.0.1:$((17279 + 100 * i))/readyz" >/dev/null && break; sleep 0.1
    done
  done
}
stop_cairn() { kill "${cairn_pids[@]}" 2>/dev/null || true; wait "${cairn_pids[@]}" 2>/dev/null || true; }
trap 'stop_cairn; bash "$tools/etcd3.sh" stop >/dev/null 2>&1 || true' EXIT

cairn_eps=127.0.0.1:17379,127.0.0.1:17479,127.0.0.1:17579
etcd_eps=127.0.0.1:22379,127.0.0.1:22389,127.0.0.1:22399
for r in $(seq "$rounds"); do
  for ratio in 0 0.95; do
    start_cairn
    "$work/kvload" --driver http --endpoints "$cairn_eps" \
      --put-url 'http://{endpoint}/v1/kv/default/{key}' --get-url 'http://{endpoint}/v1/kv/default/{key}' \
      --clients "$clients" --read-ratio "$ratio" --duration "$duration" --preload \
      --server-pids "$(IFS=,; echo "${cairn_pids[*]}")" --label "cairn round=$r read_ratio=$ratio"
    stop_cairn
    bash "$tools/etcd3.sh" start >/dev/null
    "$work/kvload" --driver etcd --endpoints "$etcd_eps" \
      --clients "$clients" --read-ratio "$ratio" --duration "$duration" --preload \
      --server-pids "$(paste -sd, /tmp/etcd3.pids)" --label "etcd round=$r read_ratio=$ratio"
    bash "$tools/etcd3.sh" stop >/dev/null
  done
done
