#!/usr/bin/env bash
# Builds benches/go/natsload (the load tool on the official Go client) into
# ${CARGO_TARGET_DIR:-target}/natsload, in GOPATH mode against Debian's nats.go:
#   apt-get install golang-go golang-github-nats-io-go-nats-dev
# (no Go module proxy is needed or used).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/natsload
GOPATH_DEB=/usr/share/gocode
command -v go >/dev/null 2>&1 || { echo "go not found: apt-get install golang-go" >&2; exit 1; }
[ -d "$GOPATH_DEB/src/github.com/nats-io/nats.go" ] ||
    { echo "nats.go not found: apt-get install golang-github-nats-io-go-nats-dev" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
cd "$ROOT/benches/go/natsload"
GO111MODULE=off GOPATH=$GOPATH_DEB GOFLAGS= GOCACHE=${GOCACHE:-$ROOT/target/go-cache} \
    go build -o "$OUT" .
echo "$OUT"
