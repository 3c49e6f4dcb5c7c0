#!/usr/bin/env bash
# A local 3-node Klamm cluster from config/examples/node{1,2,3}.properties.
#
#   bash scripts/cluster.sh start    # build (release) if needed, start 3 nodes in the background
#   bash scripts/cluster.sh status   # which nodes run
#   bash scripts/cluster.sh stop     # SIGTERM exactly the PIDs started here, wait for them
#
# Data, logs and PID files live under ./klamm-cluster/node<N>/ (relative to the repository
# root). KLAMM_BIN overrides the binary (default: target/release/klamm of this checkout).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
base="klamm-cluster"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${KLAMM_BIN:-$target/release/klamm}"

pid_of() { # prints the PID of node $1 if it is running
    local f="$base/node$1/klamm.pid"
    [[ -f "$f" ]] || return 1
    local pid
    pid="$(cat "$f")"
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

start() {
    if [[ ! -x "$bin" ]]; then
        echo "building $bin"
        cargo build --release -p klamm-broker
    fi
    for n in 1 2 3; do
        if pid="$(pid_of "$n")"; then
            echo "node $n already runs (pid $pid)"
            continue
        fi
        mkdir -p "$base/node$n"
        # The three voters must start together: each waits (bounded) for a quorum.
        nohup "$bin" --config "config/examples/node$n.properties" >>"$base/node$n/klamm.log" 2>&1 &
        echo $! >"$base/node$n/klamm.pid"
        echo "node $n started (pid $!, log $base/node$n/klamm.log)"
    done
    echo "bootstrap servers: 127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"
}

stop() {
    local pids=()
    for n in 1 2 3; do
        if pid="$(pid_of "$n")"; then
            kill -TERM "$pid" && pids+=("$pid") && echo "node $n: SIGTERM sent to pid $pid"
        fi
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid still running after 15 s; leaving it (kill -9 $pid to force)"
        fi
    done
    for n in 1 2 3; do
        pid_of "$n" >/dev/null || rm -f "$base/node$n/klamm.pid"
    done
}

status() {
    for n in 1 2 3; do
        if pid="$(pid_of "$n")"; then echo "node $n: running (pid $pid)"; else echo "node $n: stopped"; fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
