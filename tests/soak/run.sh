#!/usr/bin/env bash
# Hostile-load soak (not in CI): builds release petrel, then runs tests/soak/soak.py.
#
#   bash tests/soak/run.sh                 # 10-minute soak of mixed hostile load
#   SECONDS_=60 bash tests/soak/run.sh     # shorter
#   MODE=flood bash tests/soak/run.sh      # the 10 s 1 MiB flood from 4 connections only
#
# Prints a JSON report: peak RSS, publishes sent/acked/refused, whether every publish was
# answered, whether the server is alive and its streams intact. Exit status 0 when so.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${MODE:-soak}
SECONDS_=${SECONDS_:-}
cargo build --release -p petrel >&2
args=("$MODE" --server target/release/petrel)
[ -n "$SECONDS_" ] && args+=(--seconds "$SECONDS_")
exec python3 tests/soak/soak.py "${args[@]}"
