#!/usr/bin/env bash
# openssh-server and -client for the tests of `cm-migrate run --to ssh://HOST/DIR`: an sshd
# started by tests/harness/sshd.sh on 127.0.0.1 (its own config, host key and client key;
# the system's sshd service is not enabled or started by this script).
set -euo pipefail
need=()
for p in openssh-server openssh-client rsync; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  # policy-rc.d: installing the package must not start the system's sshd (one we place
  # ourselves is removed again; an existing one is left as it is)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
