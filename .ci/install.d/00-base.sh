#!/usr/bin/env bash
# Base tools used by several test suites: rsync (comparison copies), acl/attr (planting ACLs
# and xattrs in test trees), hyperfine for benchmarks.
set -euo pipefail
need=()
for p in rsync acl attr e2fsprogs openssl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
