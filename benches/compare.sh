#!/usr/bin/env bash
# Side-by-side load comparison of Petrel and nats-server on 127.0.0.1.
#
#   ROUNDS=3 bash benches/compare.sh
#
# For every scenario and round it starts each server in turn (the order alternates between
# rounds), waits for its port, runs petrel-load with --server-pid, stops the server, and at
# the end prints the median of every metric for both servers and the petrel/nats ratio.
# The server is pinned to CPU 0 and the load tool to CPU 1 when taskset is available.
#
# JetStream scenarios (js-pub-sync, js-pub-async, js-consume) start both servers with
# JetStream on a fresh store directory per run (removed afterwards): `nats-server -js -sd
# DIR`, `petrel -js -sd DIR` (fsync before every PubAck, group commit) and a third server,
# "petrel-lazy": `petrel -c FILE` with `jetstream { store_dir: DIR, sync_interval: "2m" }`,
# which matches nats-server 2.9.10's default (PubAck before fsync, fsync every 2 minutes).
# js-consume's untimed prefill has its own --timeout, so its runs may take 2 x TIMEOUT.
#
# Environment (all optional):
#   ROUNDS=3                       rounds per scenario and server
#   SCENARIOS="pubsub fanout queue reqrep"   (also: js-pub-sync js-pub-async js-consume)
#   MSGS=                          --msgs for pubsub/fanout/queue (tool default 2000000)
#   REQS=                          --msgs for reqrep (tool default 20000)
#   JS_SYNC_MSGS=                  --msgs for js-pub-sync (tool default 20000)
#   JS_ASYNC_MSGS=                 --msgs for js-pub-async (tool default 200000)
#   INFLIGHT=                      --inflight for js-pub-async (tool default 256)
#   JS_CONSUME_MSGS=               --msgs for js-consume: prefilled, then pulled and acked
#                                  (tool default 200000)
#   JS_CONSUME_BATCH=              --batch for js-consume: messages per pull request
#                                  (tool default 256)
#   SIZE=128 SUBS=4                payload size, fanout subscribers / queue members
#   TIMEOUT=60                     petrel-load --timeout (seconds) for each run
#   LOAD_ARGS=                     extra petrel-load flags, e.g. "--window 0"
#   BASE_PORT=14222                first port tried; every run gets its own port
#   NATS_SERVER=nats-server        path of the nats-server binary
#   OUT_DIR=$(mktemp -d)           where logs, results.txt and table.md are written
#   NO_BUILD=1                     skip the cargo builds
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
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/petrel-compare.XXXXXX")}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PETREL=$TARGET_DIR/release/petrel
LOAD=$TARGET_DIR/release/petrel-load

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

[ -x "$NATS_SERVER" ] || { log "nats-server not found (set NATS_SERVER)"; exit 1; }

if [ -z "${NO_BUILD:-}" ] && [ -z "${TABLE_ONLY:-}" ]; then
    log "building release petrel and petrel-load..."
    (cd "$ROOT" && cargo build --release -p petrel)
    (cd "$ROOT" && cargo build --release -p petrel-benches --bin petrel-load)
fi
[ -x "$PETREL" ] && [ -x "$LOAD" ] || { log "missing $PETREL or $LOAD"; exit 1; }

SERVER_PIN=()
LOAD_PIN=()
PINNING="none"
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    SERVER_PIN=(taskset -c 0)
    LOAD_PIN=(taskset -c 1)
    PINNING="server on CPU 0, petrel-load on CPU 1 (taskset)"
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

# start_server <nats|petrel|petrel-lazy> <port> <logfile> [js]: sets SERVER_PID, returns 1
# if not listening. With "js" the server runs JetStream on a fresh $JS_DIR.
start_server() {
    local bin extra=()
    case $1 in
    nats) bin=$NATS_SERVER ;;
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
    local args=(--scenario "$scenario" --server "127.0.0.1:$PORT" --timeout "$TIMEOUT"
        --size "$SIZE" --subs "$SUBS")
    local js="" limit=$((TIMEOUT + 30))
    case $scenario in
    reqrep) [ -z "$REQS" ] || args+=(--msgs "$REQS") ;;
    js-pub-sync) js=js; [ -z "$JS_SYNC_MSGS" ] || args+=(--msgs "$JS_SYNC_MSGS") ;;
    js-pub-async)
        js=js
        [ -z "$JS_ASYNC_MSGS" ] || args+=(--msgs "$JS_ASYNC_MSGS")
        [ -z "$INFLIGHT" ] || args+=(--inflight "$INFLIGHT")
        ;;
    js-consume)
        # The untimed prefill gets its own --timeout.
        js=js
        limit=$((2 * TIMEOUT + 40))
        [ -z "$JS_CONSUME_MSGS" ] || args+=(--msgs "$JS_CONSUME_MSGS")
        [ -z "$JS_CONSUME_BATCH" ] || args+=(--batch "$JS_CONSUME_BATCH")
        ;;
    *) [ -z "$MSGS" ] || args+=(--msgs "$MSGS") ;;
    esac
    # shellcheck disable=SC2206 # LOAD_ARGS is a list of flags on purpose
    [ -z "$LOAD_ARGS" ] || args+=($LOAD_ARGS)

    local result rc=0
    if start_server "$server" "$PORT" "$slog" "$js"; then
        args+=(--server-pid "$SERVER_PID")
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
    log "  round $round  $(printf '%-11s' "$server") $(printf '%-12s' "$scenario") $status ${value:-} warnings=${warns:-0} ${ackerr:-} ${other:-}"
}

log "results and logs: $OUT_DIR"
START=$(date +%s)
[ -n "${TABLE_ONLY:-}" ] || for scenario in $SCENARIOS; do
    log "scenario $scenario"
    for round in $(seq 1 "$ROUNDS"); do
        case $scenario in
        js-*) if [ $((round % 2)) -eq 1 ]; then order="nats petrel petrel-lazy"; else order="petrel-lazy petrel nats"; fi ;;
        *) if [ $((round % 2)) -eq 1 ]; then order="nats petrel"; else order="petrel nats"; fi ;;
        esac
        for server in $order; do
            run_one "$server" "$scenario" "$round"
        done
    done
done
END=$(date +%s)

# ------------------------------------------------------------------------------------
# Table: median per metric, ratio petrel/nats, which direction is better, project goal.
# ------------------------------------------------------------------------------------
{
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//' || echo unknown)), $(uname -sr)"
    echo "Servers: $("$NATS_SERVER" --version 2>&1 | head -n 1); $("$PETREL" --version 2>&1 | head -n 1)"
    echo "Pinning: $PINNING. Rounds: $ROUNDS (median shown). Payload: $SIZE B, subs: $SUBS, msgs: ${MSGS:-2000000 (default)}, reqrep requests: ${REQS:-20000 (default)}, js-pub-sync msgs: ${JS_SYNC_MSGS:-20000 (default)}, js-pub-async msgs: ${JS_ASYNC_MSGS:-200000 (default)} (inflight ${INFLIGHT:-256}), js-consume msgs: ${JS_CONSUME_MSGS:-200000 (default)} (pull batch ${JS_CONSUME_BATCH:-256})${LOAD_ARGS:+, extra flags: $LOAD_ARGS}. Wall time: $((END - START)) s."
    echo
    awk -v rounds="$ROUNDS" -v scenarios="$SCENARIOS" '
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
            k = substr($i, 1, p - 1); v = substr($i, p + 1)
            kv[k] = v
        }
        srv = kv["server"]; sc = kv["scenario"]
        runs[sc, srv]++
        warn[sc, srv] += kv["server_warnings"]
        ackerr[sc, srv] += kv["ack_errors"]
        ackpend[sc, srv] += kv["ack_pending_end"]
        if (kv["status"] != "ok") next
        okruns[sc, srv]++
        for (k in kv) if (k ~ /_(per_sec|us|cpu_s|per_msg|per_req|util)$|^steal_s$|^server_peak_rss_mb$/) vals[sc, srv, k] = vals[sc, srv, k] " " kv[k]
    }
    END {
        split("delivered_per_sec published_per_sec mb_per_sec cpu_ns_per_msg server_cpu_util tool_cpu_util other_cpu_s steal_s", tput, " ")
        split("req_per_sec p50_us p90_us p99_us p999_us max_us cpu_ns_per_req cpu_ns_per_msg server_cpu_util tool_cpu_util other_cpu_s steal_s", rr, " ")
        lower["cpu_ns_per_msg"] = 1; lower["cpu_ns_per_req"] = 1; lower["p50_us"] = 1
        lower["p90_us"] = 1; lower["p99_us"] = 1; lower["p999_us"] = 1; lower["max_us"] = 1
        lower["ack_p50_us"] = 1; lower["ack_p99_us"] = 1; lower["ack_max_us"] = 1
        lower["server_peak_rss_mb"] = 1
        split("acked_per_sec p50_us p90_us p99_us p999_us max_us cpu_ns_per_msg server_cpu_util tool_cpu_util server_peak_rss_mb other_cpu_s steal_s", jss, " ")
        split("acked_per_sec mb_per_sec ack_p50_us ack_p99_us ack_max_us cpu_ns_per_msg server_cpu_util tool_cpu_util server_peak_rss_mb other_cpu_s steal_s", jsa, " ")
        split("msgs_per_sec mb_per_sec cpu_ns_per_msg server_cpu_util tool_cpu_util server_peak_rss_mb other_cpu_s steal_s", jsc, " ")
        ns = split(scenarios, scs, " ")
        core = 0; js = 0
        for (s = 1; s <= ns; s++) if (scs[s] ~ /^js-/) js++; else core++
        if (core) {
        print "| scenario | metric | nats-server | petrel | petrel/nats | better | goal | nats min-max | petrel min-max |"
        print "|---|---|---:|---:|---:|---|---|---|---|"
        }
        for (s = 1; s <= ns; s++) {
            sc = scs[s]
            if (sc ~ /^js-/) continue
            if (sc == "reqrep") { n = 12; for (i = 1; i <= n; i++) m[i] = rr[i] }
            else { n = 8; for (i = 1; i <= n; i++) m[i] = tput[i] }
            for (i = 1; i <= n; i++) {
                k = m[i]
                a = median(vals[sc, "nats", k]); b = median(vals[sc, "petrel", k])
                ratio = (a != "" && b != "" && a > 0) ? sprintf("%.2f", b / a) : "n/a"
                better = (k ~ /_cpu_util$|^other_cpu_s$|^steal_s$/) ? "(info)" : (k in lower ? "lower" : "higher")
                goal = ""
                if (ratio != "n/a") {
                    if (k == "delivered_per_sec" && (sc == "fanout" || sc == "queue"))
                        goal = (ratio + 0 >= 1.5) ? ">=1.5x: met" : ">=1.5x: NOT met"
                    else if (k == "cpu_ns_per_msg")
                        goal = (ratio + 0 <= 0.5) ? "<=0.5x: met" : "<=0.5x: NOT met"
                    else if (k == "p99_us")
                        goal = (ratio + 0 <= 0.8) ? "<=0.8x: met" : "<=0.8x: NOT met"
                }
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc, k, fmt(a), fmt(b), ratio, better, goal, \
                    range(vals[sc, "nats", k]), range(vals[sc, "petrel", k])
            }
            printf "| %s | ok runs, server warnings | %d/%d, %d | %d/%d, %d | | | | | |\n", sc, \
                okruns[sc, "nats"], runs[sc, "nats"], warn[sc, "nats"], \
                okruns[sc, "petrel"], runs[sc, "petrel"], warn[sc, "petrel"]
        }
        if (!js) exit
        if (core) print ""
        print "JetStream: \"petrel\" fsyncs before every PubAck (group commit); nats-server 2.9.10 acks before fsync (lazy fsync every 2 min); \"petrel-lazy\" is petrel with `sync_interval: \"2m\"`, the like-for-like comparison. js-consume times pull + ack only (its prefill is untimed)."
        print ""
        print "| scenario | metric | nats-server | petrel (fsync) | petrel-lazy | petrel/nats | lazy/nats | better | nats min-max | petrel min-max | lazy min-max |"
        print "|---|---|---:|---:|---:|---:|---:|---|---|---|---|"
        for (s = 1; s <= ns; s++) {
            sc = scs[s]
            if (sc !~ /^js-/) continue
            if (sc == "js-pub-sync") { n = 12; for (i = 1; i <= n; i++) m[i] = jss[i] }
            else if (sc == "js-consume") { n = 8; for (i = 1; i <= n; i++) m[i] = jsc[i] }
            else { n = 11; for (i = 1; i <= n; i++) m[i] = jsa[i] }
            for (i = 1; i <= n; i++) {
                k = m[i]
                a = median(vals[sc, "nats", k]); b = median(vals[sc, "petrel", k]); c = median(vals[sc, "petrel-lazy", k])
                r1 = (a != "" && b != "" && a > 0) ? sprintf("%.2f", b / a) : "n/a"
                r2 = (a != "" && c != "" && a > 0) ? sprintf("%.2f", c / a) : "n/a"
                better = (k ~ /_cpu_util$|^other_cpu_s$|^steal_s$/) ? "(info)" : (k in lower ? "lower" : "higher")
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc, k, fmt(a), fmt(b), fmt(c), r1, r2, better, \
                    range(vals[sc, "nats", k]), range(vals[sc, "petrel", k]), range(vals[sc, "petrel-lazy", k])
            }
            # js-consume: acks still pending at the end (summed) instead of error PubAcks.
            label = "ok runs, server warnings, error acks"
            split("nats petrel petrel-lazy", sv, " ")
            for (i = 1; i <= 3; i++) bad[sv[i]] = ackerr[sc, sv[i]]
            if (sc == "js-consume") {
                label = "ok runs, server warnings, acks pending at end"
                for (i = 1; i <= 3; i++) bad[sv[i]] = ackpend[sc, sv[i]]
            }
            printf "| %s | %s | %d/%d, %d, %d | %d/%d, %d, %d | %d/%d, %d, %d | | | | | | |\n", sc, label, \
                okruns[sc, "nats"], runs[sc, "nats"], warn[sc, "nats"], bad["nats"], \
                okruns[sc, "petrel"], runs[sc, "petrel"], warn[sc, "petrel"], bad["petrel"], \
                okruns[sc, "petrel-lazy"], runs[sc, "petrel-lazy"], warn[sc, "petrel-lazy"], bad["petrel-lazy"]
        }
    }' "$RESULTS"
} | if [ -n "${TABLE_ONLY:-}" ]; then cat; else tee "$OUT_DIR/table.md"; fi

if grep -q 'status=failed' "$RESULTS"; then
    log ""
    log "failed runs:"
    grep 'status=failed' "$RESULTS" >&2
fi
log "full results: $RESULTS"
