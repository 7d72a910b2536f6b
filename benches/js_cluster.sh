#!/usr/bin/env bash
# Replicated JetStream: a three-node Petrel cluster against three-node nats-server
# clusters (the binary given), on 127.0.0.1, unpinned, an R3 file stream `BENCH` created by
# petrel-load through node 1. Scenarios: js-pub-async (publishes with up to INFLIGHT
# PubAcks outstanding) and js-pub-sync (one publish at a time: PubAck latency). Petrel
# acks after a quorum fsynced (its only mode); nats-server runs twice, with its default
# (fsync every 2 minutes) and with `sync_interval: always`. Rounds alternate the order; the
# table gives the median acked msgs/s, p50 latency, the CPU all three nodes used per
# message and the ratio to Petrel.
#
#   ROUNDS=3 bash benches/js_cluster.sh /opt/ns215/bin/nats-server
#
# Environment: ROUNDS (3), SIZE (128), ASYNC_MSGS (200000), SYNC_MSGS (5000), INFLIGHT
# (256; nats.go's own PublishAsyncMaxPending default is 4000), SCENARIOS ("js-pub-async
# js-pub-sync"), TOOL (rust: petrel-load; go: natsload on the official nats.go client,
# built by benches/go/build.sh), BASE_PORT (25222), NO_BUILD=1 to skip the cargo build,
# OUT_DIR for the logs and stores.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-128}
ASYNC_MSGS=${ASYNC_MSGS:-200000}
SYNC_MSGS=${SYNC_MSGS:-5000}
INFLIGHT=${INFLIGHT:-256}
SCENARIOS=${SCENARIOS:-"js-pub-async js-pub-sync"}
BASE_PORT=${BASE_PORT:-25222}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/petrel-js-cluster.XXXXXX")}
mkdir -p "$OUT_DIR"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PETREL=$TARGET_DIR/release/petrel
TOOL=${TOOL:-rust}
case $TOOL in
  rust) LOAD=$TARGET_DIR/release/petrel-load ;;
  go) LOAD=$TARGET_DIR/natsload ;;
  *) echo "TOOL must be rust or go" >&2; exit 2 ;;
esac
NATS=${1:?usage: js_cluster.sh <nats-server binary>}

if [ -z "${NO_BUILD:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked -p petrel -p petrel-benches >/dev/null)
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_trio <binary> <sync: default|always>: three clustered JetStream nodes on fresh
# stores; sets C1 (node 1's client port) and NODES (their pids).
start_trio() {
  local bin=$1 sync=$2 base=$BASE_PORT routes="" i
  BASE_PORT=$((BASE_PORT + 10))
  for i in 1 2 3; do routes="$routes nats://127.0.0.1:$((base + 3 + i))"; done
  NODES=()
  for i in 1 2 3; do
    local dir="$OUT_DIR/store-$base-$i" conf="$OUT_DIR/n$i-$base.conf"
    rm -rf "$dir"
    {
      printf 'server_name: n%s\nlisten: 127.0.0.1:%s\n' "$i" "$((base + i))"
      printf 'jetstream { store_dir: "%s"' "$dir"
      [ "$sync" = always ] && printf ', sync_interval: always'
      printf ' }\n'
      printf 'cluster { name: bench, listen: 127.0.0.1:%s, routes: [%s ] }\n' \
        "$((base + 3 + i))" "$(echo "$routes" | sed 's/ /, /g; s/^, //')"
    } >"$conf"
    "$bin" -c "$conf" >"$OUT_DIR/n$i-$base.log" 2>&1 &
    NODES+=("$!")
    pids+=("$!")
  done
  C1=$((base + 1))
  for i in 1 2 3; do wait_port "$((base + i))"; done
}

stop_trio() {
  kill "${NODES[@]}" 2>/dev/null || true
  wait "${NODES[@]}" 2>/dev/null || true
}

: >"$OUT_DIR/results.txt"
run() { # run <label> <binary> <sync> <scenario>
  local label=$1 bin=$2 sync=$3 scenario=$4 msgs
  [ "$scenario" = js-pub-async ] && msgs=$ASYNC_MSGS || msgs=$SYNC_MSGS
  start_trio "$bin" "$sync"
  local t1=0 t2=0 p out
  for p in "${NODES[@]}"; do t1=$((t1 + $(ticks "$p"))); done
  out=$("$LOAD" --scenario "$scenario" --server "127.0.0.1:$C1" --replicas 3 --size "$SIZE" \
    --msgs "$msgs" --inflight "$INFLIGHT" --timeout 120 2>&1) || echo "$label $scenario failed: $out" >&2
  for p in "${NODES[@]}"; do t2=$((t2 + $(ticks "$p"))); done
  stop_trio
  local rate p50 cpu_us
  rate=$(echo "$out" | sed -n 's/^RESULT .*acked_per_sec=\([0-9.]*\).*/\1/p' | head -1)
  p50=$(echo "$out" | sed -n 's/^RESULT .* p50_us=\([0-9.]*\).*/\1/p' | head -1)
  [ -n "$p50" ] || p50=$(echo "$out" | sed -n 's/^RESULT .*ack_p50_us=\([0-9.]*\).*/\1/p' | head -1)
  cpu_us=$(awk -v t=$((t2 - t1)) -v hz="$(getconf CLK_TCK)" -v m="$msgs" 'BEGIN { printf "%.2f", t / hz * 1e6 / m }')
  echo "$scenario $label ${rate:-0} ${p50:-0} $cpu_us" | tee -a "$OUT_DIR/results.txt"
}

NS_VERSION=$("$NATS" --version | awk '{print $2}')
for round in $(seq 1 "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    if [ $((round % 2)) = 1 ]; then run petrel "$PETREL" default "$scenario"; fi
    run "nats-$NS_VERSION" "$NATS" default "$scenario"
    run "nats-$NS_VERSION-always" "$NATS" always "$scenario"
    if [ $((round % 2)) = 0 ]; then run petrel "$PETREL" default "$scenario"; fi
  done
done

echo
echo "| scenario | server | acked msgs/s (median) | p50 PubAck µs | CPU µs per message, 3 nodes | Petrel / this |"
echo "|---|---|---|---|---|---|"
python3 - "$OUT_DIR/results.txt" <<'EOF'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    s, label, rate, p50, cpu = line.split()
    rows[(s, label)].append((float(rate), float(p50), float(cpu)))
for s in dict.fromkeys(k[0] for k in rows):
    base = statistics.median(r for r, _, _ in rows[(s, "petrel")])
    for (sc, label), v in rows.items():
        if sc != s:
            continue
        rate = statistics.median(r for r, _, _ in v)
        p50 = statistics.median(p for _, p, _ in v)
        cpu = statistics.median(c for _, _, c in v)
        ratio = "—" if label == "petrel" else f"{base / rate:.2f}" if rate else "∞"
        print(f"| {s} | {label} | {rate:,.0f} | {p50:,.0f} | {cpu:.2f} | {ratio} |")
EOF
echo "(logs and raw results in $OUT_DIR)"
