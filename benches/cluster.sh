#!/usr/bin/env bash
# Cross-node throughput: a two-node Petrel cluster against two-node nats-server clusters
# (each binary given), on 127.0.0.1, unpinned. The publisher connects to node 1, the
# subscribers to node 2, so every message crosses the route. TOPOLOGY=leaf joins the two
# nodes with a leafnode connection instead (node 1 the hub, node 2 its spoke). Rounds alternate the order of
# the servers; the table gives the median msgs/s, the CPU both nodes used per message and
# the ratio to Petrel.
#
#   ROUNDS=3 SIZE=16 bash benches/cluster.sh /opt/ns215/bin/nats-server /usr/sbin/nats-server
#
# Environment: TOPOLOGY (cluster | leaf), ROUNDS (3), SIZE (16), MSGS (2000000), SCENARIOS
# ("pubsub fanout"), SUBS (4),
# BASE_PORT (24222), NO_BUILD=1 to skip the cargo build, OUT_DIR for the logs.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-16}
MSGS=${MSGS:-2000000}
SCENARIOS=${SCENARIOS:-"pubsub fanout"}
SUBS=${SUBS:-4}
TOPOLOGY=${TOPOLOGY:-cluster}
BASE_PORT=${BASE_PORT:-24222}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/petrel-cluster.XXXXXX")}
mkdir -p "$OUT_DIR"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PETREL=$TARGET_DIR/release/petrel
LOAD=$TARGET_DIR/release/petrel-load
NATS_SERVERS=("$@")

if [ -z "${NO_BUILD:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked -p petrel -p petrel-benches >/dev/null)
fi
port=$BASE_PORT
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_leaf_pair <binary>: a hub and its spoke (the same nats.conf for both servers).
start_leaf_pair() {
  local bin=$1 l1=$((port + 4))
  printf 'listen: 127.0.0.1:%s\nleafnodes { listen: 127.0.0.1:%s }\n' "$C1" "$l1" >"$OUT_DIR/hub.conf"
  printf 'listen: 127.0.0.1:%s\nleafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:%s" } ] }\n' \
    "$C2" "$l1" >"$OUT_DIR/spoke.conf"
  "$bin" -c "$OUT_DIR/hub.conf" >"$OUT_DIR/n1.log" 2>&1 &
  P1=$!
  wait_port "$l1"
  "$bin" -c "$OUT_DIR/spoke.conf" >"$OUT_DIR/n2.log" 2>&1 &
  P2=$!
  pids+=("$P1" "$P2")
  wait_port "$C1" && wait_port "$C2"
  sleep 2 # the leaf connects
}

# start_pair <kind> <binary>: starts two clustered nodes, sets C1 C2 (client ports), P1 P2.
start_pair() {
  local kind=$1 bin=$2 r1=$((port + 2)) r2=$((port + 3))
  C1=$port C2=$((port + 1))
  if [ "$TOPOLOGY" = leaf ]; then
    start_leaf_pair "$bin"
    port=$((port + 10))
    return
  fi
  port=$((port + 10))
  if [ "$kind" = petrel ]; then
    "$bin" -a 127.0.0.1 -p "$C1" --cluster "nats://127.0.0.1:$r1" --cluster_name bench >"$OUT_DIR/n1.log" 2>&1 &
    P1=$!
    wait_port "$r1"
    "$bin" -a 127.0.0.1 -p "$C2" --cluster "nats://127.0.0.1:$r2" --cluster_name bench \
      --routes "nats://127.0.0.1:$r1" >"$OUT_DIR/n2.log" 2>&1 &
    P2=$!
  else
    "$bin" -a 127.0.0.1 -p "$C1" --cluster "nats://127.0.0.1:$r1" --cluster_name bench >"$OUT_DIR/n1.log" 2>&1 &
    P1=$!
    wait_port "$r1"
    "$bin" -a 127.0.0.1 -p "$C2" --cluster "nats://127.0.0.1:$r2" --cluster_name bench \
      --routes "nats://127.0.0.1:$r1" >"$OUT_DIR/n2.log" 2>&1 &
    P2=$!
  fi
  pids+=("$P1" "$P2")
  wait_port "$C1" && wait_port "$C2"
  sleep 2 # the route forms
}

: >"$OUT_DIR/results.txt"
run() { # run <label> <kind> <binary> <scenario>
  local label=$1 kind=$2 bin=$3 scenario=$4
  start_pair "$kind" "$bin"
  local t1 t2 out
  t1=$(($(ticks "$P1") + $(ticks "$P2")))
  out=$("$LOAD" --scenario "$scenario" --server "127.0.0.1:$C1" --sub-server "127.0.0.1:$C2" \
    --size "$SIZE" --msgs "$MSGS" --subs "$SUBS" 2>&1) || { echo "$label $scenario failed: $out" >&2; }
  t2=$(($(ticks "$P1") + $(ticks "$P2")))
  kill "$P1" "$P2" 2>/dev/null || true
  wait "$P1" "$P2" 2>/dev/null || true
  local rate
  rate=$(echo "$out" | sed -n 's/^RESULT .*delivered_per_sec=\([0-9.]*\).*/\1/p' | head -1)
  local cpu_us
  cpu_us=$(awk -v t=$((t2 - t1)) -v hz="$(getconf CLK_TCK)" -v m="$MSGS" 'BEGIN { printf "%.3f", t / hz * 1e6 / m }')
  echo "$scenario $label ${rate:-0} $cpu_us" | tee -a "$OUT_DIR/results.txt"
}

for round in $(seq 1 "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    if [ $((round % 2)) = 1 ]; then run petrel petrel "$PETREL" "$scenario"; fi
    for ns in "${NATS_SERVERS[@]}"; do
      run "nats-$("$ns" --version | awk '{print $2}')" nats "$ns" "$scenario"
    done
    if [ $((round % 2)) = 0 ]; then run petrel petrel "$PETREL" "$scenario"; fi
  done
done

echo
echo "| scenario | server | delivered msgs/s (median) | CPU µs per message, both nodes | Petrel / this |"
echo "|---|---|---|---|---|"
python3 - "$OUT_DIR/results.txt" <<'EOF'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    s, label, rate, cpu = line.split()
    rows[(s, label)].append((float(rate), float(cpu)))
for s in dict.fromkeys(k[0] for k in rows):
    base = statistics.median(r for r, _ in rows[(s, "petrel")])
    for (sc, label), v in rows.items():
        if sc != s:
            continue
        rate = statistics.median(r for r, _ in v)
        cpu = statistics.median(c for _, c in v)
        ratio = "—" if label == "petrel" else f"{base / rate:.2f}"
        print(f"| {s} | {label} | {rate:,.0f} | {cpu:.3f} | {ratio} |")
EOF
echo "(logs and raw results in $OUT_DIR)"
