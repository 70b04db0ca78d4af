#!/bin/bash
# Container start-up (cm-start.service, before the mail services): honours the variables of
# docker/example.env and applies every chatmail setting given in the environment to
# chatmail.ini. The container's environment is the one Docker gave PID 1, saved by
# `cm-env-apply boot` to /run/cm-env/environ (NUL-separated, 0600) before systemd started.
set -euo pipefail
ENVIRON=${CM_ENVIRON:-/run/cm-env/environ}   # overridable for tests and debugging
if [ -r "$ENVIRON" ]; then
  while IFS= read -r -d '' kv; do
    name=${kv%%=*}
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    case "$name" in PATH|HOME|HOSTNAME|TERM|container|SHLVL|PWD|_) continue ;; esac
    export "$kv"
  done <"$ENVIRON"
fi

if [ -z "${MAIL_DOMAIN:-}" ]; then
  echo "cm-start: MAIL_DOMAIN is not set: put it in .env (see example.env)" >&2
  exit 1
fi
[ "${DEBUG_COMMANDS_ENABLED:-false}" = true ] && set -x

CHATMAIL_SRC=/opt/chatmail
INI_FILE=${INI_FILE:-$CHATMAIL_SRC/chatmail.ini}
case "$INI_FILE" in /*) ;; *) INI_FILE="$CHATMAIL_SRC/$INI_FILE" ;; esac
export INI_FILE
PATH_TO_SSL=${PATH_TO_SSL:-/var/lib/acme/live/$MAIL_DOMAIN}
CMDEPLOY=/opt/cmdeploy/bin/cmdeploy
relay_installed() { [ -x "$CMDEPLOY" ]; }

# 1. RECREATE_VENV (relay stage only): rebuild cmdeploy's virtualenv from the source.
if relay_installed && [ "${RECREATE_VENV:-false}" = true ]; then
  rm -rf /opt/cmdeploy
  python3 -m venv /opt/cmdeploy
  /opt/cmdeploy/bin/pip install --no-cache-dir -e "$CHATMAIL_SRC/chatmaild" -e "$CHATMAIL_SRC/cmdeploy"
fi

# 2. chatmail.ini: generated from the relay's template when missing (or always, with
#    FORCE_REINIT_INI_FILE=true), then every chatmail setting of the environment applied.
mkdir -p "$(dirname "$INI_FILE")"
create=()
if [ "${FORCE_REINIT_INI_FILE:-false}" = true ] || [ ! -e "$INI_FILE" ]; then
  if relay_installed; then
    "$CMDEPLOY" init --config "$INI_FILE" --force "$MAIL_DOMAIN"
  else
    # no relay template in this stage: start from an empty [params] (MAIL_DOMAIN is applied
    # like every other setting)
    rm -f "$INI_FILE"
    create=(--create)
  fi
fi
/usr/local/bin/cm-env-apply apply --ini "$INI_FILE" --environ-file "$ENVIRON" "${create[@]}"
[ "${DEBUG_COMMANDS_ENABLED:-false}" = true ] && cat "$INI_FILE"

# 3. The DKIM key: migrated data brings it (owned by opendkim already, see docker/users);
#    a fresh deployment gets a new one.
if [ ! -e /etc/dkimkeys/opendkim.private ] && command -v opendkim-genkey >/dev/null; then
  opendkim-genkey -D /etc/dkimkeys -d "$MAIL_DOMAIN" -s opendkim
  chown opendkim:opendkim /etc/dkimkeys/opendkim.private /etc/dkimkeys/opendkim.txt
fi

# 4. Certificate monitoring: a timer whose interval comes from CERTS_MONITORING_TIMEOUT.
mkdir -p /run/cm-env /run/systemd/system/cm-certmon.timer.d
printf 'PATH_TO_SSL=%s\n' "$PATH_TO_SSL" >/run/cm-env/certmon.env
if [ "${ENABLE_CERTS_MONITORING:-false}" = true ]; then
  t=${CERTS_MONITORING_TIMEOUT:-60}
  [[ $t =~ ^[1-9][0-9]*$ ]] || { echo "cm-start: CERTS_MONITORING_TIMEOUT=$t is not a number of seconds" >&2; exit 1; }
  printf '[Timer]\nOnUnitActiveSec=%ss\n' "$t" >/run/systemd/system/cm-certmon.timer.d/interval.conf
  systemctl daemon-reload
  systemctl start --no-block cm-certmon.timer
fi

# 5. The relay itself (relay stage only): cmdeploy's stages against this container.
if relay_installed; then
  # cmdeploy's default config path is the source's chatmail.ini: point it at INI_FILE
  if [ "$(realpath -m "$INI_FILE")" != "$(realpath -m "$CHATMAIL_SRC/chatmail.ini")" ]; then
    ln -sfn "$INI_FILE" "$CHATMAIL_SRC/chatmail.ini"
  fi
  export CMDEPLOY_STAGES=${CMDEPLOY_STAGES:-configure,activate}
  # the release detects the container itself (systemd-detect-virt --container)
  export CHATMAIL_INI=$INI_FILE
  "$CMDEPLOY" run --config "$INI_FILE" --ssh-host @local
fi
