#!/usr/bin/env bash
# cm-copy-data tests and benchmark: python3 (test-tree and benchmark generators make a Unix
# socket and many files), util-linux's setpriv (drops the capabilities that let root read
# anything, to test unreadable files), getfacl/setfacl and setfattr (acl, attr in 00-base).
set -euo pipefail
need=()
for p in python3 util-linux acl attr rsync; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
