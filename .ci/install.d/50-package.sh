#!/usr/bin/env bash
# packaging/build-deb and its test (tests/tests/package_deb.rs): dpkg-deb and dpkg-shlibdeps
# (dpkg-dev, which brings binutils' strip), gzip, and unshare/chroot (util-linux, coreutils)
# to enter the clean Debian 12 root the package is installed into.
set -euo pipefail
need=()
for p in dpkg-dev binutils gzip util-linux; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
