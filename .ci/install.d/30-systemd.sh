#!/usr/bin/env bash
# systemd-nspawn (systemd-container) and debootstrap for the stop-services tests, which boot a
# real systemd in a container; then build the cached root filesystem once (Debian 12 minbase +
# systemd + the real postfix, dovecot-imapd, nginx, opendkim and unbound packages) so that
# every test boots from it (see tests/harness/nspawn.sh).
set -euo pipefail
need=()
for p in systemd-container debootstrap util-linux; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
bash "$(dirname "$0")/../../tests/harness/nspawn.sh" rootfs
