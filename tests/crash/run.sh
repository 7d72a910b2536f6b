#!/usr/bin/env bash
# Long crash-harness run (release build). Knobs:
#   ROUNDS            SIGKILL rounds (default 50)          -> CRASH_ROUNDS
#   SEED              seed for every mode (optional)       -> CRASH_SEED, POWER_LOSS_SEED, CORRUPTION_SEED
#   PUBLISHERS        concurrent sync publishers (default 4) -> CRASH_PUBLISHERS
#   MAX_DELAY_MS      longest publish phase before the kill (default 600) -> CRASH_MAX_DELAY_MS
#   POWER_ROUNDS      power-loss rounds (default 2000)     -> POWER_LOSS_ROUNDS
#   CORRUPT_ROUNDS    corruption rounds (default 600)      -> CORRUPTION_ROUNDS
#   ERASE=1           also run power loss with erasing deletes (POWER_LOSS_ERASE)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ -n "${SEED:-}" ]]; then
  export CRASH_SEED="$SEED" POWER_LOSS_SEED="$SEED" CORRUPTION_SEED="$SEED"
fi
export CRASH_PUBLISHERS="${PUBLISHERS:-4}" CRASH_MAX_DELAY_MS="${MAX_DELAY_MS:-600}"

log="${TMPDIR:-/tmp}/petrel-crash-$$.log"
status=0
step() { # <summary regex> <command...>
  local re="$1"; shift
  if "$@" >"$log" 2>&1; then :; else status=1; cat "$log"; fi
  grep -E "$re|panicked|FAILED" "$log" || true
}

echo "== SIGKILL mode: ${ROUNDS:-50} rounds"
step '^crash rounds=|^  ' env CRASH_ROUNDS="${ROUNDS:-50}" \
  cargo test --release -p petrel --test crash -- --nocapture

echo "== power-loss mode: ${POWER_ROUNDS:-2000} rounds"
step '^power-loss' env POWER_LOSS_ROUNDS="${POWER_ROUNDS:-2000}" POWER_LOSS_ERASE="${ERASE:-0}" \
  cargo test --release -p petrel-store --test it power_loss -- --nocapture

echo "== corruption mode: ${CORRUPT_ROUNDS:-600} rounds"
step '^corruption' env CORRUPTION_ROUNDS="${CORRUPT_ROUNDS:-600}" \
  cargo test --release -p petrel-store --test it corruption_rounds -- --nocapture

rm -f "$log"
exit "$status"
