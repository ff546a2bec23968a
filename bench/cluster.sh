#!/bin/bash
# bench/cluster.sh - the cluster benchmark (issue 15): one redis-server and
# three roomd nodes (bench/bench.ini plus a [cluster] section each), with
# roombench's members spread over the nodes (--servers: member i of every
# room on node i mod 3), for workloads a and b closed loop, then at a fixed
# rate for the latency the Redis hop adds (p50/p99). The same workloads run
# on one plain roomd in the same run (SINGLE=1), so that cluster / single
# node is a ratio from one run. Every cluster run also records the Redis
# commands per relayed message (INFO commandstats before and after).
#
#   bench/cluster.sh                     3 runs of each, 10 s each
#   REPEAT=1 DURATION=3 bench/cluster.sh  a quick look
#
# Environment:
#   REPEAT      runs per workload and server (3)
#   DURATION    measured seconds per run (10)
#   PIN         1: the servers (nodes, Redis) on CPU 0, roombench on CPU 1 (1)
#   SINGLE      1: also the single-node runs of the same workloads (1)
#   WORKLOADS   which of a b to run (a b; others are ignored)
#   OUT         where the JSON lines and logs go (a new directory under /tmp)
#   REDIS_SERVER  the redis-server binary (default: the one on PATH)
#   ROOMD, BENCH  roomd and roombench to run (default: build/release's,
#               built first)
#
# Prints one JSON line per run on stdout (and into $OUT/cluster.jsonl), as
# bench/run.sh's: roombench's line with "server" ("cluster" or "roomd")
# first; a cluster line adds "nodes", "redis_calls" (commands Redis ran
# during the run, setup included), "redis_calls_per_msg" (that over the
# messages relayed: deliveries / members), "redis_commands" (calls per
# command) and "nodes_cpu_s" (CPU seconds of the three nodes). Everything
# binds 127.0.0.1 on free ports (never 6379); Redis gets a directory of its
# own with AOF on; the script stops what it started on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

REPEAT=${REPEAT:-3}
DURATION=${DURATION:-10}
PIN=${PIN:-1}
SINGLE=${SINGLE:-1}
OUT=${OUT:-$(mktemp -d /tmp/roombench-cluster.XXXXXX)}
mkdir -p "$OUT"
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
RESULTS=$OUT/cluster.jsonl

die() { echo "bench/cluster.sh: $*" >&2; exit 1; }

[ -x "$REDIS_SERVER" ] || die "no redis-server (scripts/setup.sh installs it; or set REDIS_SERVER)"
if [ -z "${ROOMD:-}" ] || [ -z "${BENCH:-}" ]; then
	scripts/build.sh release >/dev/null
fi
ROOMD=${ROOMD:-$ROOT/build/release/server/roomd}
BENCH=${BENCH:-$ROOT/build/release/bench/roombench}
ulimit -n "$(ulimit -Hn)"

PIDS=()
REDIS_PID=""
stop_all() {
	for p in "${PIDS[@]}" $REDIS_PID; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}" $REDIS_PID; do wait "$p" 2>/dev/null || true; done
	PIDS=()
	REDIS_PID=""
}
trap stop_all EXIT

pin() { if [ "$PIN" = 1 ]; then echo "taskset -c $1"; fi; }

# free_ports N: N distinct loopback ports nobody listens on now (never 6379).
free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
held = []
while len(held) < int(sys.argv[1]):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    if s.getsockname()[1] == 6379:
        continue
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

wait_port() {
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	die "nothing listening on port $1 (see $OUT/*.log)"
}

# INFO commandstats of our Redis as "cmd calls" lines.
redis_stats() {
	python3 - "$REDIS_PORT" <<'PY'
import re, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
buf = b""
while True:
    got = s.recv(65536)
    if not got:
        break
    buf += got
    i = buf.find(b"\r\n")
    if i > 0 and len(buf) >= i + 2 + int(buf[1:i]) + 2:
        break
for m in re.finditer(rb"^cmdstat_([^:]+):calls=(\d+)", buf, re.M):
    print(m.group(1).decode(), int(m.group(2)))
PY
}

# CPU seconds (user + system) of the given pids, from /proc.
cpu_of() {
	local total=0 t
	for p in "$@"; do
		t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
		total=$((total + t))
	done
	echo "$total"
}

start_redis() {
	REDIS_DIR=$(mktemp -d "$OUT/redis.XXXXXX")
	REDIS_PORT=$(free_ports 1)
	$(pin 0) "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes \
		--dir "$REDIS_DIR" --save '' --daemonize no --logfile "$REDIS_DIR/redis.log" &
	REDIS_PID=$!
	wait_port "$REDIS_PORT"
}

# start_cluster LABEL: a fresh Redis and three fresh nodes per run.
start_cluster() {
	local label=$1 i
	start_redis
	read -r -a NODE_PORTS <<<"$(free_ports 3)"
	for i in 0 1 2; do
		{
			cat bench/bench.ini
			printf '\n[cluster]\nredis = 127.0.0.1:%s\nnode_id = n%d\n' "$REDIS_PORT" $((i + 1))
		} >"$OUT/node$((i + 1)).ini"
		$(pin 0) "$ROOMD" -c "$OUT/node$((i + 1)).ini" -p "${NODE_PORTS[$i]}" \
			2>"$OUT/$label.n$((i + 1)).log" &
		PIDS+=($!)
	done
	for i in 0 1 2; do wait_port "${NODE_PORTS[$i]}"; done
}

start_single() {
	SINGLE_PORT=$(free_ports 1)
	$(pin 0) "$ROOMD" -c bench/bench.ini -p "$SINGLE_PORT" 2>"$OUT/$1.single.log" &
	PIDS+=($!)
	wait_port "$SINGLE_PORT"
}

# run cluster|roomd LABEL ROOMBENCH-ARGS...: one run, one JSON line.
run() {
	local kind=$1 label=$2 line rc=0 servers before after cpu0 cpu1 extra=""
	shift 2
	if [ "$kind" = cluster ]; then
		start_cluster "$label"
		servers=127.0.0.1:${NODE_PORTS[0]},127.0.0.1:${NODE_PORTS[1]},127.0.0.1:${NODE_PORTS[2]}
		before=$(redis_stats)
		cpu0=$(cpu_of "${PIDS[@]}")
		line=$(timeout 300 $(pin 1) "$BENCH" --servers "$servers" -l "$label" --spin "$@" \
			2>>"$OUT/$label.table") || rc=$?
		cpu1=$(cpu_of "${PIDS[@]}")
		after=$(redis_stats)
		extra=$(python3 - "$before" "$after" "$line" $((cpu1 - cpu0)) "$(getconf CLK_TCK)" <<'PY'
import json, sys
def stats(text):
    return {l.split()[0]: int(l.split()[1]) for l in text.splitlines() if l.strip()}
b, a = stats(sys.argv[1]), stats(sys.argv[2])
delta = {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0) > 0}
delta.pop("info", None)
r = json.loads(sys.argv[3]) if sys.argv[3].startswith("{") else {}
msgs = r.get("deliveries", 0) / max(1, r.get("members", 1))
calls = sum(delta.values())
print(json.dumps({"nodes": 3, "redis_calls": calls,
                  "redis_calls_per_msg": round(calls / msgs, 3) if msgs else None,
                  "redis_commands": dict(sorted(delta.items(), key=lambda kv: -kv[1])),
                  "nodes_cpu_s": round(int(sys.argv[4]) / int(sys.argv[5]), 2)})[1:-1])
PY
)
	else
		start_single "$label"
		line=$(timeout 300 $(pin 1) "$BENCH" -p "$SINGLE_PORT" --pid "${PIDS[0]}" -l "$label" \
			--spin "$@" 2>>"$OUT/$label.table") || rc=$?
	fi
	# 3: the run completed but a delivery check failed: recorded, reported.
	[ "$rc" = 0 ] || [ "$rc" = 3 ] ||
		die "$label ($kind): roombench failed (exit $rc): see $OUT/$label.table and $OUT/$label*.log"
	stop_all
	line=$(echo "$line" | sed "s/^{/{\"server\":\"$kind\",/")
	[ -z "$extra" ] || line="${line%\}},$extra}"
	echo "$line" | tee -a "$RESULTS"
	tail -n 7 "$OUT/$label.table" >&2
}

compare() {
	local label=$1 i
	shift
	for i in $(seq "$REPEAT"); do
		run cluster "$label" "$@"
		if [ "$SINGLE" = 1 ]; then run roomd "$label" "$@"; fi
	done
}

: >"$RESULTS"
echo "bench/cluster.sh: results in $OUT" >&2
# bench/run.sh's workloads a and b, closed loop, then at a fixed rate.
WORKLOADS=${WORKLOADS:-a b}
want() { [[ " $WORKLOADS " == *" $1 "* ]]; }
if want a; then compare a-closed -r 1 -m 100 -s 10 -b 100 -w 8 -d "$DURATION"; fi
if want b; then compare b-closed -r 50 -m 20 -s 2 -b 100 -w 8 -d "$DURATION"; fi
if want a; then compare a-rate -r 1 -m 100 -s 10 -b 100 -R 500 -d "$DURATION"; fi
# b at a fixed rate: 50 messages/s per sender (5,000/s in all, as a's fixed
# rate and run.sh's b-rate): at 10,000/s three nodes and Redis sharing one
# core (PIN) fall behind, and a latency measured past capacity is only the
# queue.
if want b; then compare b-rate -r 50 -m 20 -s 2 -b 100 -R 50 -d "$DURATION"; fi
echo "bench/cluster.sh: done, $(wc -l <"$RESULTS") runs in $RESULTS" >&2
