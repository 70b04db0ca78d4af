#!/usr/bin/env bash
# Build (once) and print the path of a Debian 12 root filesystem tarball with systemd, shared by
# the systemd-nspawn harness and the Docker harness. Cached under $CM_TEST_CACHE
# (default /var/tmp/cm-migrate-test); delete that folder to rebuild.
#   tests/harness/rootfs.sh            -> prints the tarball path
set -euo pipefail
CACHE=${CM_TEST_CACHE:-/var/tmp/cm-migrate-test}
TARBALL="$CACHE/rootfs-bookworm.tar"
mkdir -p "$CACHE"
exec 9>"$CACHE/rootfs.lock"
flock 9
if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\)\/\?[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || { echo "$0: no Debian mirror in this machine's apt sources (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list): add one" >&2; exit 1; }
  R=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$R" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$R"; exit 1; }
  rm -rf "$R"/var/cache/apt/archives/*.deb
  tar -C "$R" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$R"
fi
echo "$TARBALL"
