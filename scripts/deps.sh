#!/usr/bin/env bash
# Installs the Debian packages the test suite needs when they are missing:
# iptables and iproute2 (network faults in tests/robustness), redis-tools
# and redis-server (the Redis-protocol compatibility tests), chromium (the
# web console test). Runs as root on
# the project's machines; elsewhere it prints the command to run.
set -euo pipefail
need=()
command -v iptables >/dev/null || need+=(iptables)
command -v tc >/dev/null || need+=(iproute2)
command -v ip >/dev/null || need+=(iproute2)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v git >/dev/null || need+=(git)
# tests/e2e drives the web console in headless Chromium (chromedp).
[ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null || need+=(chromium)
# tests/docker runs the compose cluster wherever a Docker engine is.
if command -v docker >/dev/null; then command -v docker-compose >/dev/null || need+=(docker-compose); fi
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's redis-server package may start a system instance on 6379;
  # the tests start their own on other ports and never use it.
  exit 0
fi
echo "missing packages: ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
exit 1
