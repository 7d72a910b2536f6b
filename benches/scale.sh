#!/usr/bin/env bash
# Petrel at scale beside nats-server, through the official Go client (natsload):
# - js: create STREAMS file streams and CONSUMERS durable consumers (spread over the
#   streams), stop the server (SIGTERM), start it again and time until $JS.API.INFO reports
#   them all;
# - conns: CONNS client connections, the server's memory per connection;
# - subs: SUBS subscriptions on literal subjects of one connection, the server's memory per
#   subscription, then SUBS_MSGS messages to random subjects among them (every publish a
#   match-cache miss: the subject tree's match time);
# - recover: RECOVER_MSGS 16-byte messages into one file stream (js-pub-async), then the
#   time from a restart until the stream reports them all and its last one reads back,
#   after SIGTERM and again after SIGKILL.
#
#   bash benches/scale.sh [nats-server binaries...]
#
# Prints one table per phase, a line per server. Environment: PHASES ("js conns subs"; add
# "recover"), RECOVER_MSGS (10000000),
# STREAMS (10000), CONSUMERS (100000), WORKERS (8 API requests in flight), CONNS (10000),
# SUBS (1000000), SUBS_MSGS (200000), TIMEOUT (1800 s per phase), NO_BUILD=1, OUT_DIR (logs;
# default a fresh mktemp -d), NO_NATS=1 (Petrel only).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STREAMS=${STREAMS:-10000}
CONSUMERS=${CONSUMERS:-100000}
WORKERS=${WORKERS:-8}
PHASES=${PHASES:-"js conns subs"}
CONNS=${CONNS:-10000}
SUBS=${SUBS:-1000000}
SUBS_MSGS=${SUBS_MSGS:-200000}
RECOVER_MSGS=${RECOVER_MSGS:-10000000}
# Every connection is a file descriptor, in the tool and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TIMEOUT=${TIMEOUT:-1800}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/petrel-scale.XXXXXX")}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PETREL=$TARGET_DIR/release/petrel
LOAD=$TARGET_DIR/natsload
NATS=("$@")
if [ ${#NATS[@]} -eq 0 ] && [ -z "${NO_NATS:-}" ]; then
    for b in /usr/sbin/nats-server /opt/ns215/bin/nats-server; do [ -x "$b" ] && NATS+=("$b"); done
fi
if [ -z "${NO_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release -p petrel)
    bash "$ROOT/benches/go/build.sh" >/dev/null
fi
mkdir -p "$OUT_DIR"
SERVER_PID=""
STORE=""
cleanup() {
    [ -z "$SERVER_PID" ] || kill -KILL "$SERVER_PID" 2>/dev/null || true
    [ -z "$STORE" ] || rm -rf "$STORE"
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() { # start <bin> <port> <log> [extra flags]: JetStream on $STORE when it is set
    local bin=$1 port=$2 log=$3
    shift 3
    if [ -n "$STORE" ]; then
        "$bin" -js -sd "$STORE" -a 127.0.0.1 -p "$port" "$@" >>"$log" 2>&1 &
    else
        "$bin" -a 127.0.0.1 -p "$port" "$@" >>"$log" 2>&1 &
    fi
    SERVER_PID=$!
    # A restart is timed by the tool, which retries its connection: nats-server listens
    # only once it has recovered every stream.
    [ -z "${NO_WAIT:-}" ] || return 0
    for _ in $(seq 1 100); do port_open "$port" && return 0; sleep 0.1; done
    echo "server $bin did not listen on $port, see $log" >&2
    return 1
}

STOPPED_IN=""
stop() { # sets STOPPED_IN: seconds from SIGTERM to exit
    local t0 t1
    t0=$(date +%s%N)
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    t1=$(date +%s%N)
    SERVER_PID=""
    STOPPED_IN=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e9 }')
}

field() { grep -oE "(^| )$1=[^ ]+" <<<"$2" | head -n 1 | cut -d= -f2; }

run_js() { # run_js <label> <bin>
    local label=$1 bin=$2 port=$((15000 + RANDOM % 5000)) log=$OUT_DIR/$1.log
    STORE=$(mktemp -d "${TMPDIR:-/tmp}/petrel-scale-store.XXXXXX")
    start "$bin" "$port" "$log"
    local created
    created=$("$LOAD" --scenario js-scale-create --server "127.0.0.1:$port" --server-pid "$SERVER_PID" \
        --streams "$STREAMS" --consumers "$CONSUMERS" --workers "$WORKERS" --timeout "$TIMEOUT" | tail -n 1 || true)
    echo "$label create: $created" >>"$OUT_DIR/results.txt"
    if ! grep -q 'status=ok' <<<"$created"; then
        stop
        rm -rf "$STORE"
        STORE=""
        printf '| %s | failed: %s (fd limit %s) | | | | | | | |\n' "$label" "$(field error "$created")" "$(ulimit -n)"
        return 0
    fi
    local down size
    stop
    down=$STOPPED_IN
    size=$(du -sm "$STORE" | cut -f1)
    local since
    since=$(date +%s%N)
    NO_WAIT=1 start "$bin" "$port" "$log"
    local checked
    checked=$("$LOAD" --scenario js-scale-check --server "127.0.0.1:$port" --server-pid "$SERVER_PID" \
        --streams "$STREAMS" --consumers "$CONSUMERS" --since-ns "$since" --timeout "$TIMEOUT" | tail -n 1 || true)
    echo "$label check: $checked" >>"$OUT_DIR/results.txt"
    stop
    rm -rf "$STORE"
    STORE=""
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" \
        "$(field stream_create_s "$created") s ($(field streams_per_sec "$created")/s)" \
        "$(field consumer_create_s "$created") s ($(field consumers_per_sec "$created")/s)" \
        "$(field rss_after_streams_mb "$created")" "$(field server_rss_mb "$created")" \
        "$down s" "$(field ready_s "$checked") s" "$(field server_rss_mb "$checked")" "$size"
}

labels=(petrel)
bins=("$PETREL")
for bin in ${NATS[@]+"${NATS[@]}"}; do
    v=$("$bin" --version 2>&1 | grep -oE 'v[0-9.]+' | head -n 1)
    labels+=("nats-server ${v#v}")
    bins+=("$bin")
done

run_conns() { # run_conns <label> <bin>
    local port=$((15000 + RANDOM % 5000)) out
    # nats-server's default max_connections is 64K; Petrel's the same.
    start "$2" "$port" "$OUT_DIR/conns.log"
    out=$("$LOAD" --scenario scale-conns --server "127.0.0.1:$port" --server-pid "$SERVER_PID" \
        --conns "$CONNS" --timeout "$TIMEOUT" | tail -n 1 || true)
    echo "$1 conns: $out" >>"$OUT_DIR/results.txt"
    stop
    printf '| %s | %s s (%s/s) | %s | %s | %s |\n' "$1" "$(field connect_s "$out")" \
        "$(field conns_per_sec "$out")" "$(field rss_before_mb "$out")" "$(field rss_after_mb "$out")" \
        "$(field kb_per_conn "$out")"
}

run_subs() { # run_subs <label> <bin>
    local port=$((15000 + RANDOM % 5000)) out
    start "$2" "$port" "$OUT_DIR/subs.log"
    out=$("$LOAD" --scenario scale-subs --server "127.0.0.1:$port" --server-pid "$SERVER_PID" \
        --sub-count "$SUBS" --msgs "$SUBS_MSGS" --timeout "$TIMEOUT" | tail -n 1 || true)
    echo "$1 subs: $out" >>"$OUT_DIR/results.txt"
    stop
    printf '| %s | %s s (%s/s) | %s | %s | %s | %s | %s |\n' "$1" "$(field subscribe_s "$out")" \
        "$(field subs_per_sec "$out")" "$(field rss_before_mb "$out")" "$(field rss_after_mb "$out")" \
        "$(field bytes_per_sub "$out")" "$(field delivered_per_sec "$out")" "$(field cpu_ns_per_msg "$out")"
}

READY=""
restart_ready() { # restart_ready <bin> <port> <log>: sets READY, the time until BENCH reads back
    local since
    since=$(date +%s%N)
    NO_WAIT=1 start "$1" "$2" "$3"
    READY=$("$LOAD" --scenario js-recover-check --server "127.0.0.1:$2" --server-pid "$SERVER_PID" \
        --msgs "$RECOVER_MSGS" --since-ns "$since" --timeout "$TIMEOUT" | tail -n 1 || true)
}

run_recover() { # run_recover <label> <bin>
    local label=$1 bin=$2 port=$((15000 + RANDOM % 5000)) log=$OUT_DIR/recover-$1.log
    STORE=$(mktemp -d "${TMPDIR:-/tmp}/petrel-scale-store.XXXXXX")
    start "$bin" "$port" "$log"
    local filled term killed down size
    filled=$("$LOAD" --scenario js-pub-async --server "127.0.0.1:$port" --server-pid "$SERVER_PID" \
        --msgs "$RECOVER_MSGS" --size 16 --stall-wait 10s --timeout "$TIMEOUT" | tail -n 1 || true)
    echo "$label fill: $filled" >>"$OUT_DIR/results.txt"
    if ! grep -q 'status=ok' <<<"$filled"; then
        stop
        rm -rf "$STORE"
        STORE=""
        printf '| %s | failed: %s | | | | | |\n' "$label" "$(field error "$filled")"
        return 0
    fi
    stop
    down=$STOPPED_IN
    size=$(du -sm "$STORE" | cut -f1)
    restart_ready "$bin" "$port" "$log"
    term=$READY
    echo "$label after SIGTERM: $term" >>"$OUT_DIR/results.txt"
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    restart_ready "$bin" "$port" "$log"
    killed=$READY
    echo "$label after SIGKILL: $killed" >>"$OUT_DIR/results.txt"
    stop
    rm -rf "$STORE"
    STORE=""
    printf '| %s | %s | %s | %s s | %s s (%s s CPU) | %s s (%s s CPU) | %s |\n' "$label" \
        "$(field acked_per_sec "$filled")" "$size" "$down" \
        "$(field ready_s "$term")" "$(field server_cpu_s "$term")" \
        "$(field ready_s "$killed")" "$(field server_cpu_s "$killed")" "$(field server_rss_mb "$killed")"
}

echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; logs in $OUT_DIR"
for phase in $PHASES; do
    echo
    case $phase in
    js)
        echo "$STREAMS file streams, $CONSUMERS durable consumers (explicit ack), $WORKERS API requests in flight:"
        echo
        echo "| server | create streams | create consumers | RSS after streams (MB) | RSS after consumers (MB) | SIGTERM to exit | restart to all reported | RSS after restart (MB) | store (MB) |"
        echo "|---|---|---|---|---|---|---|---|---|"
        for i in "${!labels[@]}"; do run_js "${labels[$i]}" "${bins[$i]}"; done
        ;;
    conns)
        echo "$CONNS client connections (nats.go, idle after CONNECT + PING):"
        echo
        echo "| server | connect all | RSS before (MB) | RSS after (MB) | KiB per connection |"
        echo "|---|---|---|---|---|"
        for i in "${!labels[@]}"; do run_conns "${labels[$i]}" "${bins[$i]}"; done
        ;;
    subs)
        echo "$SUBS subscriptions (literal subjects under 1,000 prefixes, one connection), then $SUBS_MSGS messages to random ones among them:"
        echo
        echo "| server | subscribe all | RSS before (MB) | RSS after (MB) | bytes per subscription | random-subject msgs/s | server CPU ns/msg |"
        echo "|---|---|---|---|---|---|---|"
        for i in "${!labels[@]}"; do run_subs "${labels[$i]}" "${bins[$i]}"; done
        ;;
    recover)
        echo "$RECOVER_MSGS messages of 16 B in one file stream (js-pub-async, 256 in flight, a publish may wait 10 s for room), then restarts:"
        echo
        echo "| server | fill, acked msgs/s | store (MB) | SIGTERM to exit | restart to readable | after SIGKILL: restart to readable | RSS after (MB) |"
        echo "|---|---|---|---|---|---|---|"
        for i in "${!labels[@]}"; do run_recover "${labels[$i]}" "${bins[$i]}"; done
        ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
    esac
done
