#!/usr/bin/env bash
# weir against its peers (NATS JetStream, RabbitMQ, ActiveMQ) and the machine's limits, on
# this machine, in one run. Every system is driven by the same Rust load generator
# (crates/bench, `weir-bench`), each through its own native client, with durable settings.
#
# Usage: bench/peers/run.sh [--smoke]
#   env: ROUNDS (3)  SECONDS_W1 (10)  SECONDS_W2 (10)  W1_CASES ("1x1 4x1 1x8 4x8",
#        producers x partitions)  RATES (1000,10000,50000)  SYSTEMS ("weir nats rabbitmq activemq")
#        RABBIT_QUEUE_TYPE (quorum)  SKIP_LIMITS (0: run fio and iperf3)
# Rounds are interleaved: weir, nats, rabbitmq, activemq, weir, ... Each system gets a fresh
# server and data dir (under target/) per round.
# Output: bench/results/peers.md, bench/results/peers-*.png, bench/results/peers-raw.jsonl
# --smoke: one short round (2 s per workload), weir plus whichever peers are installed; no
# installs, no fio/iperf3, no plots; writes bench/results/tmp/smoke.jsonl.
set -euo pipefail

SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PEERS="$ROOT/bench/peers"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS/tmp"
export DEBIAN_FRONTEND=noninteractive

ROUNDS="${ROUNDS:-3}"
SECONDS_W1="${SECONDS_W1:-10}"
SECONDS_W2="${SECONDS_W2:-10}"
W1_CASES="${W1_CASES:-1x1 4x1 1x8 4x8}"
RATES="${RATES:-1000,10000,50000}"
SYSTEMS="${SYSTEMS:-weir nats rabbitmq activemq}"
RABBIT_QUEUE_TYPE="${RABBIT_QUEUE_TYPE:-quorum}"
SKIP_LIMITS="${SKIP_LIMITS:-0}"
if [ "$SMOKE" = 1 ]; then
    ROUNDS=1; SECONDS_W1=2; SECONDS_W2=2; W1_CASES="1x1"; RATES=1000; SKIP_LIMITS=1
fi

log() { printf '[peers] %s\n' "$*" >&2; }

# --- tools and peers (Debian packages only) ----------------------------------------------
if [ "$SMOKE" = 0 ]; then
    want=()
    for p in nats-server rabbitmq-server activemq fio iperf3 linux-perf; do
        dpkg -s "$p" >/dev/null 2>&1 || want+=("$p")
    done
    if [ ${#want[@]} -gt 0 ]; then
        log "installing ${want[*]}"
        apt-get update -q >/dev/null
        # policy-rc.d 101: the packages must not start their system-wide services.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        apt-get install -y -q "${want[@]}" </dev/null >/dev/null || log "apt-get install failed for some of: ${want[*]}"
        rm -f /usr/sbin/policy-rc.d
    fi
    # Debian's packages may have started their own instances; ours use other ports and dirs,
    # but stop theirs so they do not compete for CPU and disk.
    for svc in rabbitmq-server activemq nats-server; do
        service "$svc" stop >/dev/null 2>&1 || true
    done
fi
if [ ! -x target/release/weir ]; then
    log "building weir"; cargo build --release -p weir
fi
if [ ! -x target/release/weir-bench ] || [ -n "$(find crates/bench -newer target/release/weir-bench -type f | head -1)" ]; then
    log "building weir-bench"; cargo build --release -p weir-bench
fi
BENCH="$ROOT/target/release/weir-bench"

have() {  # SYSTEM -> 0 if its server is installed
    case "$1" in
        weir) return 0 ;;
        nats) command -v nats-server >/dev/null ;;
        rabbitmq) [ -x /usr/sbin/rabbitmq-server ] ;;
        activemq) [ -x /usr/bin/activemq ] && command -v java >/dev/null ;;
    esac
}
ACTIVE=()
for s in $SYSTEMS; do
    if have "$s"; then ACTIVE+=("$s"); else log "$s is not installed: skipped"; fi
done

WORK="$(mktemp -d "$ROOT/target/peers.XXXXXX")"
chmod 755 "$WORK"   # RabbitMQ's start script drops to the rabbitmq user
RAW="$WORK/raw.jsonl"
: >"$RAW"
SERVER_PID=""
SERVER_SYS=""
EPMD_PORT=""
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {  # PORT SECONDS (gives up early if SERVER_PID died)
    local i
    for i in $(seq $(( $2 * 10 ))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
listener_pid() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

# NATS before 2.10 (Debian 12 has 2.9.10) does not know `sync_interval`: JetStream then
# fsyncs on its own timer (2 minutes), so its acks do NOT mean "on disk". Detected, reported.
NATS_SYNC="always"
nats_conf() {  # PORT DIR -> config path
    local conf="$2/nats.conf"
    sed -e "s|@PORT@|$1|" -e "s|@DIR@|$2/js|" "$PEERS/nats.conf.in" >"$conf"
    if [ "$NATS_SYNC" != always ]; then sed -i '/sync_interval/d' "$conf"; fi
    echo "$conf"
}
if have nats; then
    probe="$(mktemp -d "$WORK/natsprobe.XXXX")"
    probe_out="$(nats-server -c "$(nats_conf 1 "$probe")" -t 2>&1 || true)"
    if [[ "$probe_out" == *'unknown field "sync_interval"'* ]]; then
        NATS_SYNC="server default (2 min timer; sync_interval unsupported by $(nats-server --version))"
        log "NATS: $NATS_SYNC"
    fi
fi

start_server() {  # SYSTEM -> sets SERVER_PID, ADDR, SERVER_PORT
    local sys="$1" port dir
    port="$(free_port)"
    dir="$WORK/data-$sys"
    rm -rf "$dir"; mkdir -p "$dir"
    SERVER_PORT="$port"
    SERVER_SYS="$sys"
    case "$sys" in
        weir)
            NO_COLOR=1 target/release/weir serve --listen "127.0.0.1:$port" --data-dir "$dir/data" \
                >"$WORK/server-$sys.log" 2>&1 &
            SERVER_PID=$!; ADDR="127.0.0.1:$port"; wait_port "$port" 30 ;;
        nats)
            nats-server -c "$(nats_conf "$port" "$dir")" >"$WORK/server-$sys.log" 2>&1 &
            SERVER_PID=$!; ADDR="nats://127.0.0.1:$port"; wait_port "$port" 30 ;;
        rabbitmq)
            sed -e "s|@PORT@|$port|" "$PEERS/rabbitmq.conf.in" >"$dir/rabbitmq.conf"
            echo '[].' >"$dir/enabled_plugins"
            chown -R rabbitmq: "$dir" 2>/dev/null || true
            EPMD_PORT="$(free_port)"
            ERL_EPMD_PORT="$EPMD_PORT" RABBITMQ_NODENAME="bench@localhost" RABBITMQ_NODE_PORT="$port" \
            RABBITMQ_DIST_PORT="$(free_port)" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
            RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_FEATURE_FLAGS_FILE="$dir/feature_flags" \
            RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins-expand" RABBITMQ_PID_FILE="$dir/rabbit.pid" \
                bash -c 'cd "$1" && exec setsid /usr/sbin/rabbitmq-server' _ "$dir" >"$WORK/server-$sys.log" 2>&1 &
            SERVER_PID=$!; ADDR="amqp://guest:guest@127.0.0.1:$port/%2f"; wait_port "$port" 90 ;;
        activemq)
            mkdir -p "$dir/conf" "$dir/data" "$dir/tmp"
            sed -e "s|@PORT@|$port|" -e "s|@DIR@|$dir/data|" "$PEERS/activemq.xml.in" >"$dir/conf/activemq.xml"
            cp /etc/activemq/instances-available/main/log4j2.properties "$dir/conf/" 2>/dev/null || true
            # The JVM directly, as Debian's /usr/bin/activemq would run it, minus its switch
            # to the activemq user (our data dir is root's).
            (cd "$dir" && exec setsid java -Xms1G -Xmx1G \
                --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
                --add-opens java.base/java.util.concurrent=ALL-UNNAMED --add-opens java.naming/javax.naming.spi=ALL-UNNAMED \
                -Djava.io.tmpdir="$dir/tmp" -Dactivemq.classpath="$dir/conf" \
                -Dlog4j2.configurationFile="$dir/conf/log4j2.properties" \
                -Dactivemq.home=/usr/share/activemq -Dactivemq.base="$dir" -Dactivemq.conf="$dir/conf" \
                -Dactivemq.data="$dir/data" -jar /usr/share/activemq/bin/activemq.jar \
                start "xbean:file:$dir/conf/activemq.xml") >"$WORK/server-$sys.log" 2>&1 &
            SERVER_PID=$!; ADDR="127.0.0.1:$port"; wait_port "$port" 90 ;;
    esac || { log "$sys did not start; log tail:"; tail -n 30 "$WORK/server-$sys.log" >&2; return 1; }
    sleep 1
}

server_stats() {  # -> JSON of the listening process: peak RSS, CPU seconds
    local pid
    pid="$(listener_pid "$SERVER_PORT")"
    [ -n "$pid" ] || { echo '{}'; return; }
    python3 - "$pid" <<'PY'
import json, os, sys
pid = sys.argv[1]
st = {l.split(":")[0]: l.split(":")[1].strip() for l in open(f"/proc/{pid}/status")}
f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
tick = os.sysconf("SC_CLK_TCK")
print(json.dumps({"rss_mib": int(st["VmRSS"].split()[0]) / 1024, "rss_peak_mib": int(st["VmHWM"].split()[0]) / 1024,
                  "cpu_s": (int(f[11]) + int(f[12])) / tick}))
PY
}

stop_server() {
    local pid="$SERVER_PID" i
    [ -n "$pid" ] || return 0
    SERVER_PID=""
    case "$SERVER_SYS" in
        rabbitmq) ERL_EPMD_PORT="$EPMD_PORT" rabbitmqctl -n bench@localhost stop >/dev/null 2>&1 || true ;;
    esac
    # The whole process group for the peers started with setsid (JVM, Erlang VM + epmd helpers).
    kill -TERM "$pid" 2>/dev/null || true
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # RabbitMQ's epmd runs on its own port and outlives the node: stop exactly that one.
    if [ "$SERVER_SYS" = rabbitmq ]; then ERL_EPMD_PORT="$EPMD_PORT" epmd -kill >/dev/null 2>&1 || true; fi
}
cleanup() {
    stop_server || true
    if [ "$SMOKE" = 1 ]; then cp "$RAW" "$RESULTS/tmp/smoke.jsonl" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

bench() {  # SYSTEM ROUND ARGS...
    local sys="$1" round="$2"; shift 2
    local kind="kafka"
    case "$sys" in nats) kind=nats ;; rabbitmq) kind=rabbitmq ;; activemq) kind=activemq ;; esac
    local out
    if out="$(timeout 300 "$BENCH" --system "$kind" --addr "$ADDR" --label "$sys/round$round" \
              --rabbit-queue-type "$RABBIT_QUEUE_TYPE" "$@" 2>>"$WORK/bench-$sys.err")"; then
        printf '%s\n' "$out" | sed "s|^{|{\"sys\":\"$sys\",\"round\":$round,|" >>"$RAW"
    else
        log "weir-bench failed for $sys ($*); stderr tail:"; tail -n 5 "$WORK/bench-$sys.err" >&2
        printf '{"sys":"%s","round":%s,"failed":true,"args":"%s"}\n' "$sys" "$round" "$*" >>"$RAW"
    fi
}

for round in $(seq "$ROUNDS"); do
    for sys in "${ACTIVE[@]}"; do
        log "round $round/$ROUNDS: $sys"
        if ! start_server "$sys"; then stop_server; continue; fi
        for c in $W1_CASES; do
            bench "$sys" "$round" --workload produce --producers "${c%x*}" --partitions "${c#*x}" \
                --seconds "$SECONDS_W1" --linger-ms 5
        done
        bench "$sys" "$round" --workload latency --partitions 1 --rate "$RATES" \
            --seconds "$SECONDS_W2" --linger-ms 0
        printf '{"sys":"%s","round":%s,"workload":"server","stats":%s}\n' \
            "$sys" "$round" "$(server_stats)" >>"$RAW"
        stop_server
    done
done

if [ "$SMOKE" = 1 ]; then cat "$RAW"; exit 0; fi
cp "$RAW" "$RESULTS/peers-raw.jsonl"

# --- the machine's limits, on the same filesystem ------------------------------------------
LIMITS="$WORK/limits.json"
echo '{}' >"$LIMITS"
if [ "$SKIP_LIMITS" = 0 ]; then
    F="$WORK/fio"; mkdir -p "$F"
    log "fio: sequential 1 MiB writes + fdatasync (buffered, then O_DIRECT); 4 KiB fdatasync latency"
    fio --name=seq --filename="$F/seq" --rw=write --bs=1m --size=512m --fdatasync=1 --ioengine=psync --output-format=json >"$WORK/fio-seq.json"
    fio --name=seqd --filename="$F/seqd" --rw=write --bs=1m --size=512m --fdatasync=1 --direct=1 --ioengine=psync --output-format=json >"$WORK/fio-seqd.json"
    fio --name=lat4k --filename="$F/4k" --rw=write --bs=4k --size=64m --runtime=10 --time_based=0 --fdatasync=1 --ioengine=psync --output-format=json >"$WORK/fio-4k.json"
    rm -rf "$F"
    log "iperf3: loopback TCP, 5 s"
    iport="$(free_port)"
    iperf3 -s -1 -B 127.0.0.1 -p "$iport" >/dev/null 2>&1 &
    sleep 0.5
    iperf3 -c 127.0.0.1 -p "$iport" -t 5 -J >"$WORK/iperf3.json" || echo '{}' >"$WORK/iperf3.json"
fi

export RAW WORK RESULTS NATS_SYNC RABBIT_QUEUE_TYPE ROUNDS SECONDS_W1 SECONDS_W2 W1_CASES RATES SKIP_LIMITS
export VERSIONS="weir: $(target/release/weir --version 2>/dev/null | head -1); nats-server: $(nats-server --version 2>/dev/null || echo none); rabbitmq-server: $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo none); erlang: $(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || echo none); activemq: $(dpkg-query -W -f='${Version}' activemq 2>/dev/null || echo none); java: $(java -version 2>&1 | head -1); fio: $(fio --version 2>/dev/null); iperf3: $(iperf3 --version 2>/dev/null | head -1)"
export COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (dirty)')"
export DISK="$(df --output=fstype,source "$WORK" | tail -n 1) ($(lsblk -dno NAME,MODEL,ROTA 2>/dev/null | tr '\n' ';'))"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import matplotlib' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check matplotlib </dev/null
"$VENV/bin/python" "$PEERS/report.py"
log "wrote $RESULTS/peers.md"
