#!/usr/bin/env bash
# Local 3-node cairn cluster for development.
#
#   scripts/cluster.sh start    build ./cmd/cairn into ./bin/cairn, start n1..n3
#                               in the background, wait until they are ready
#   scripts/cluster.sh stop     SIGTERM the processes recorded in .cluster/*.pid
#   scripts/cluster.sh status   GET /v1/cluster of each node
#
# Data lives in .cluster/nN, logs in .cluster/nN.log, PIDs in .cluster/nN.pid.
# Client API (HTTP + gRPC): 127.0.0.1:7379, :7479, :7579; peers on :7380,
# :7480, :7580; the Redis protocol is disabled.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIR="$ROOT/.cluster"
BIN="$ROOT/bin/cairn"
NAMES=(n1 n2 n3)
CLIENT=(127.0.0.1:7379 127.0.0.1:7479 127.0.0.1:7579)
PEER=(127.0.0.1:7380 127.0.0.1:7480 127.0.0.1:7580)
READY_TIMEOUT=${READY_TIMEOUT:-30}   # seconds
STOP_TIMEOUT=${STOP_TIMEOUT:-15}     # seconds

initial_cluster() {
	local out="" i
	for i in "${!NAMES[@]}"; do
		out+="${out:+,}${NAMES[$i]}=${PEER[$i]}"
	done
	echo "$out"
}

# alive PIDFILE: the recorded process exists and is a cairn server.
alive() {
	local pid
	[[ -f $1 ]] || return 1
	pid=$(cat "$1")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled PID: it must still be our binary.
	[[ -r /proc/$pid/cmdline ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "cairn server" && return 1
	return 0
}

# http_get URL: body on stdout; fails unless the status is 2xx.
http_get() {
	if command -v curl >/dev/null; then
		curl -fsS --max-time 2 "$1"
	else
		wget -q -T 2 -O - "$1"
	fi
}

start() {
	local i name
	for name in "${NAMES[@]}"; do
		if alive "$DIR/$name.pid"; then
			echo "$name is already running (pid $(cat "$DIR/$name.pid")); run: scripts/cluster.sh stop" >&2
			exit 1
		fi
	done
	mkdir -p "$DIR" "$ROOT/bin"
	DETACH=nohup
	command -v setsid >/dev/null && DETACH=setsid
	echo "building ./cmd/cairn -> bin/cairn"
	go build -o "$BIN" ./cmd/cairn

	for i in "${!NAMES[@]}"; do
		name=${NAMES[$i]}
		# setsid: own session, so the node outlives this shell and a ^C here.
		$DETACH "$BIN" server \
			--name "$name" \
			--data-dir "$DIR/$name" \
			--listen "${CLIENT[$i]}" \
			--listen-peer "${PEER[$i]}" \
			--listen-resp "" \
			--initial-cluster "$(initial_cluster)" \
			>>"$DIR/$name.log" 2>&1 </dev/null &
		echo $! >"$DIR/$name.pid"
		echo "started $name (pid $!), log $DIR/$name.log"
	done

	local deadline=$((SECONDS + READY_TIMEOUT)) pending
	while :; do
		pending=()
		for i in "${!NAMES[@]}"; do
			name=${NAMES[$i]}
			if ! alive "$DIR/$name.pid"; then
				echo "$name exited during start-up; last lines of $DIR/$name.log:" >&2
				tail -n 20 "$DIR/$name.log" >&2
				stop
				exit 1
			fi
			http_get "http://${CLIENT[$i]}/readyz" >/dev/null 2>&1 || pending+=("$name")
		done
		((${#pending[@]} == 0)) && break
		if ((SECONDS >= deadline)); then
			echo "not ready within ${READY_TIMEOUT}s: ${pending[*]}; see $DIR/*.log" >&2
			exit 1
		fi
		sleep 0.2
	done

	echo
	echo "cairn cluster is ready:"
	for i in "${!NAMES[@]}"; do
		echo "  ${NAMES[$i]}  client http://${CLIENT[$i]}  peer ${PEER[$i]}"
	done
	echo
	echo "try:  curl -X PUT http://${CLIENT[0]}/v1/kv/default/hello -d world"
	echo "      curl http://${CLIENT[1]}/v1/kv/default/hello"
	echo "stop it with: scripts/cluster.sh stop"
}

stop() {
	local name pid f any=0
	local pids=()
	for name in "${NAMES[@]}"; do
		f="$DIR/$name.pid"
		[[ -f $f ]] || continue
		if alive "$f"; then
			pid=$(cat "$f")
			kill -TERM "$pid"
			pids+=("$name:$pid")
			any=1
		fi
	done
	((any)) || echo "no recorded cairn process is running"
	local deadline=$((SECONDS + STOP_TIMEOUT)) entry left
	while :; do
		left=()
		for entry in "${pids[@]}"; do
			kill -0 "${entry#*:}" 2>/dev/null && left+=("$entry")
		done
		((${#left[@]} == 0)) && break
		if ((SECONDS >= deadline)); then
			echo "still running ${STOP_TIMEOUT}s after SIGTERM: ${left[*]} (not killed; check the logs)" >&2
			exit 1
		fi
		sleep 0.2
	done
	for entry in "${pids[@]}"; do
		echo "stopped ${entry%%:*} (pid ${entry#*:})"
	done
	for name in "${NAMES[@]}"; do
		f="$DIR/$name.pid"
		[[ -f $f ]] && ! alive "$f" && rm -f "$f"
	done
	return 0
}

status() {
	local i name rc=0
	for i in "${!NAMES[@]}"; do
		name=${NAMES[$i]}
		if alive "$DIR/$name.pid"; then
			echo "$name (pid $(cat "$DIR/$name.pid")) http://${CLIENT[$i]}:"
		else
			echo "$name: not running"
			rc=1
			continue
		fi
		if ! http_get "http://${CLIENT[$i]}/v1/cluster"; then
			echo "  (no answer from /v1/cluster)"
			rc=1
		fi
		echo
	done
	return $rc
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
