#!/usr/bin/env bash
# Builds the statically linked petrel binary and the container image petrel:<version>, also
# tagged petrel:latest, FROM scratch. Needs cargo, a C toolchain with glibc's static
# libraries (Debian: libc6-dev) and a Docker engine; pulls nothing and the image build runs
# without network.
#
#   docker/build.sh            # build the binary and the image
#   PETREL_IMAGE=myorg/petrel docker/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."

image="${PETREL_IMAGE:-petrel}"
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
target="$(uname -m)-unknown-linux-gnu"
# A target directory of its own: the static build's flags would otherwise invalidate the
# ordinary build's cache.
export CARGO_TARGET_DIR="${PETREL_STATIC_TARGET_DIR:-$PWD/target/static}"

echo "== building the static petrel binary ($target, profile release-static)"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked --profile release-static --target "$target" -p petrel
binary="$CARGO_TARGET_DIR/$target/release-static/petrel"
if command -v ldd >/dev/null 2>&1 && ldd "$binary" 2>&1 | grep -q '=>'; then
  echo "error: $binary is dynamically linked; a scratch image needs a static binary" >&2
  ldd "$binary" >&2 || true
  exit 1
fi
"$binary" --version

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp docker/Dockerfile "$context/"
cp "$binary" "$context/petrel"
mkdir -p "$context/data" "$context/etc"
printf 'root:x:0:0:root:/:/sbin/nologin\npetrel:x:65532:65532:petrel:/data:/sbin/nologin\n' \
  >"$context/etc/passwd"
printf 'root:x:0:\npetrel:x:65532:\n' >"$context/etc/group"
printf 'hosts: files dns\n' >"$context/etc/nsswitch.conf"

echo "== building the image $image:$version"
docker build --network none \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --build-arg "CREATED=$created" \
  -t "$image:$version" -t "$image:latest" "$context"
size="$(docker image inspect -f '{{.Size}}' "$image:$version")"
echo "== built $image:$version ($image:latest): $((size / 1024)) KiB"
