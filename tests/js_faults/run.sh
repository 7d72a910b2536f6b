#!/usr/bin/env bash
# Long runs of the replicated-JetStream fault harness (release build). Knobs:
#   POWER_ROUNDS      in-process rounds of power loss (a minority, then every node) (default 25)
#                     -> PETREL_JS_FAULT_ROUNDS
#   SEED              seed of the power-loss rounds (optional) -> PETREL_JS_FAULT_SEED
#   CONTAINER_ROUNDS  container rounds (partition, SIGKILL and SIGSTOP of the leader,
#                     SIGKILL of a follower, SIGKILL of every node, bit flips in a
#                     follower's files) (default 5; 0 skips; needs Docker and the
#                     petrel:latest image from docker/build.sh) -> PETREL_JS_CONTAINER_ROUNDS
# Prints one line per fault with what was acknowledged and lost (always 0, or the run
# fails), and a summary per fault kind: rounds, acked, max time without acks.
set -euo pipefail
cd "$(dirname "$0")/../.."

log="${TMPDIR:-/tmp}/petrel-js-faults-$$.log"
status=0

echo "== power loss (in process, 3 and 5 nodes on simulated disks): ${POWER_ROUNDS:-25} rounds each"
if ! env PETREL_JS_FAULT_ROUNDS="${POWER_ROUNDS:-25}" ${SEED:+PETREL_JS_FAULT_SEED="$SEED"} \
  cargo test --release -p petrel-tests --test integration js_cluster_faults -- --nocapture >"$log" 2>&1; then
  status=1
  grep -E "panicked|FAILED|seed=" "$log" || tail -50 "$log"
fi
grep -E "^js-faults" "$log" || true
{ grep -E "^js-faults .*kind=" "$log" || true; } | awk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    k = v["kind"] " nodes=" v["nodes"]; n[k]++; a[k] += v["acked"]; if (v["max_ack_gap_ms"] + 0 > g[k] + 0) g[k] = v["max_ack_gap_ms"] }
  END { for (k in n) printf "summary kind=%s rounds=%d acked=%d lost=0 max_ms_without_acks=%d\n", k, n[k], a[k], g[k] }'

if [[ "${CONTAINER_ROUNDS:-5}" != 0 ]]; then
  echo "== containers (docker/compose.js-cluster.yaml): ${CONTAINER_ROUNDS:-5} rounds"
  if ! env PETREL_JS_CONTAINER_ROUNDS="${CONTAINER_ROUNDS:-5}" \
    cargo test --release -p petrel-tests --test integration container_js_cluster -- --ignored --nocapture >"$log" 2>&1; then
    status=1
    grep -E "panicked|FAILED" "$log" || tail -50 "$log"
  fi
  { grep -E "^js-container-faults" "$log" || true; } | awk '
    { print
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      k = v["fault"]; n[k]++; if (v["first_ack_after_fault_ms"] + 0 > g[k] + 0) g[k] = v["first_ack_after_fault_ms"] }
    END { for (k in n) printf "summary fault=%s rounds=%d acked_each=50 lost=0 max_failover_ms=%d\n", k, n[k], g[k] }'
fi

rm -f "$log"
exit "$status"
