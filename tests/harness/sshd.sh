#!/usr/bin/env bash
# A second "host" for the tests of `cm-migrate run --to ssh://HOST/DIR`: an sshd of its own
# on 127.0.0.1 (a free port), with its own config, host key and a client key for root, all in
# DIR. The system's sshd is neither used nor touched.
#
#   sshd.sh up DIR     start it; prints the port. DIR/ssh_config holds the client options
#                      (known host key, identity), for `ssh -F DIR/ssh_config -p PORT root@127.0.0.1`
#   sshd.sh down DIR   stop it (the pid in DIR/sshd.pid) and remove DIR's keys
#
# Needs: openssh-server, openssh-client (.ci/install.d/30-sshd.sh), root.
set -euo pipefail
die() { echo "sshd.sh: $*" >&2; exit 1; }

cmd_up() {
  local dir=$1 port tries
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v ssh-keygen >/dev/null && [ -x /usr/sbin/sshd ] ||
    die "openssh-server or openssh-client missing: run .ci/install-deps"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 0700 "$dir"
  mkdir -p /run/sshd
  chmod 0755 /run/sshd
  rm -f "$dir"/host_key* "$dir"/client_key*
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  for tries in $(seq 20); do
    port=$(( 20000 + (RANDOM % 20000) ))
    cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv LANG
Subsystem sftp internal-sftp
EOF
    rm -f "$dir/sshd.pid"
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" || continue
    for _ in $(seq 50); do
      [ -s "$dir/sshd.pid" ] && break
      sleep 0.1
    done
    [ -s "$dir/sshd.pid" ] || continue
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
    cat >"$dir/ssh_config" <<EOF
Host 127.0.0.1
  Port $port
  User root
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
EOF
    if ssh -F "$dir/ssh_config" 127.0.0.1 true 2>>"$dir/sshd.log"; then
      echo "$port"
      return 0
    fi
    cmd_down "$dir"
  done
  tail -20 "$dir/sshd.log" >&2 || true
  die "could not start sshd on 127.0.0.1 (log: $dir/sshd.log)"
}

cmd_down() {
  local dir=$1 pid
  [ -f "$dir/sshd.pid" ] || return 0
  pid=$(cat "$dir/sshd.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$dir/sshd.pid" "$dir"/host_key* "$dir"/client_key* "$dir/authorized_keys"
}

case "${1:-}" in
  up) [ $# -eq 2 ] || die "usage: sshd.sh up DIR"; cmd_up "$2" ;;
  down) [ $# -eq 2 ] || die "usage: sshd.sh down DIR"; cmd_down "$2" ;;
  *) echo "usage: sshd.sh up DIR | down DIR" >&2; exit 2 ;;
esac
