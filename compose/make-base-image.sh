#!/usr/bin/env bash
# The offline path: build a local base image for compose/Dockerfile when no
# image registry can be reached (a workshop on poor Wi-Fi, or these machines).
#
#   compose/make-base-image.sh [IMAGE]        (default: minimesh-base:bookworm)
#   docker build --build-arg BASE_IMAGE=minimesh-base:bookworm ...
#
# debootstrap makes a minimal Debian bookworm with python3 and python3-venv from
# the mirror apt already uses; the host's CA bundle goes in so that pip inside
# the image trusts what the host trusts. Needs root, debootstrap and docker.
set -euo pipefail
image="${1:-minimesh-base:bookworm}"

if docker image inspect "$image" >/dev/null 2>&1 && [ -z "${FORCE:-}" ]; then
  echo "$image already exists (FORCE=1 rebuilds it)"
  exit 0
fi
for tool in debootstrap docker; do
  command -v "$tool" >/dev/null || { echo "make-base-image: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done

# The mirror apt's own sources name (deb822 or one-line format), else Debian's.
mirror=$(grep -hoE '^(URIs:|deb) +[a-z]+://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
         | grep -v security | awk '{print $2}' | head -1 || true)
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs=$(mktemp -d /tmp/minimesh-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm from $mirror into $rootfs"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

# `python` as well as `python3`, as the official python images have.
ln -sf python3 "$rootfs/usr/bin/python"
tar -C "$rootfs" -c . | docker import -c 'CMD ["python3"]' - "$image" >/dev/null
echo "built $image"
