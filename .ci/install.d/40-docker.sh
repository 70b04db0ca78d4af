#!/usr/bin/env bash
# Docker engine for the docker/ end-to-end test (tests/tests/docker_e2e.rs): Debian 12's
# docker.io. Its policy-rc.d-less install may try to start the service; on a machine whose PID 1
# is not systemd that simply does nothing. The test harness (tests/harness/docker.sh) starts
# dockerd by hand and stops it again. debootstrap builds the base image's root filesystem.
set -euo pipefail
need=()
for p in docker.io debootstrap openssl; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ]
