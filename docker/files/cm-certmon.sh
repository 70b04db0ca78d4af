#!/bin/bash
# Reload the TLS users (nginx, dovecot, postfix) when the certificates under PATH_TO_SSL
# change. Follows symlinks: acmetool's live/<host> is a link to ../certs/<id>, and renewal
# swaps it. The first run only records the state.
set -euo pipefail
[ -r /run/cm-env/certmon.env ] && . /run/cm-env/certmon.env
PATH_TO_SSL=${PATH_TO_SSL:-${1:-}}
STATE=/run/cm-env/certmon.sha256
[ -n "$PATH_TO_SSL" ] && [ -e "$PATH_TO_SSL" ] || exit 0
now=$(find -L "$PATH_TO_SSL" -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)
before=$(cat "$STATE" 2>/dev/null || true)
printf '%s\n' "$now" >"$STATE"
if [ -n "$before" ] && [ "$now" != "$before" ]; then
  echo "cm-certmon: certificates under $PATH_TO_SSL changed: reloading nginx, dovecot, postfix"
  systemctl try-reload-or-restart nginx.service dovecot.service postfix.service
fi
