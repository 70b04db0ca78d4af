#!/usr/bin/env bash
# Docker engine for the docker/ end-to-end test (tests/tests/docker_e2e.rs): Debian 12's
# docker.io, plus debootstrap (base image) and openssl (the fixture's DKIM key). The package
# must not start its own dockerd (that one would add a bridge and iptables rules to the host):
# a policy-rc.d denies it during the install. tests/harness/docker.sh starts dockerd by hand,
# without bridge or iptables, and stops it again.
set -euo pipefail
need=()
for p in docker.io debootstrap openssl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ]
