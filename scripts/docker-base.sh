#!/usr/bin/env bash
# The image's base, made without a registry (DESIGN.md section 12): a
# minimal Debian bookworm root filesystem from mmdebstrap (the host's
# Debian packages, about 170 MB), imported with `docker import` as
# smolsweep-base:bookworm. Runs only when that image is missing or was made
# with other packages; needs DOCKER_HOST to reach a daemon (scripts/dockerd.sh run).
#
#   scripts/docker-base.sh            make the base if it is missing
#   scripts/docker-base.sh --rebuild  make it again
#
# Bookworm because the binary is built on this Debian 12 host: the image's
# glibc and libstdc++ are the ones it was linked against. The mirror is
# $SMOLSWEEP_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

TAG=smolsweep-base:bookworm
SUITE=bookworm
mirror=${SMOLSWEEP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# minbase (essential packages and apt: bash, coreutils, glibc, libstdc++,
# ldd) is all the binary needs; libtorch brings its own libgomp and the
# CUDA libraries come from the pip wheels. The driver (libcuda) is mounted
# by the container runtime (`--gpus`, enroot, `apptainer --nv`).
include=""
# What the base is made from, kept as a label so a change remakes it.
recipe="mmdebstrap --variant=minbase $SUITE include=[$include]"

if [ "${1:-}" != --rebuild ] &&
    [ "$(docker image inspect --format '{{index .Config.Labels "smolsweep.recipe"}}' "$TAG" 2>/dev/null || true)" = "$recipe" ]; then
    exit 0
fi

if ! command -v mmdebstrap >/dev/null; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "docker-base: mmdebstrap is missing and cannot be installed (not root, or no apt-get)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/smolsweep-base.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "docker-base: making $TAG with mmdebstrap ($SUITE, $mirror)" >&2
start=$(date +%s)
# Docs, man pages and locales are not needed in the image.
mmdebstrap --variant=minbase --quiet ${include:+--include="$include"} \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$SUITE" "$tmp/base.tar" "deb $mirror $SUITE main" </dev/null
docker import --change "LABEL smolsweep.recipe=\"$recipe\"" \
    --change 'CMD ["/bin/bash"]' "$tmp/base.tar" "$TAG" >/dev/null
echo "docker-base: $TAG made in $(($(date +%s) - start)) s ($(du -h "$tmp/base.tar" | cut -f1) tar)" >&2
