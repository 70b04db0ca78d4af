#!/usr/bin/env bash
# A real systemd (Debian 12, systemd 252) booted in systemd-nspawn, for the tests of
# `cm-migrate stop-services`. Works on hosts whose PID 1 is not systemd (no machined, no
# D-Bus, cgroup v1 or hybrid): nspawn runs with --register=no --keep-unit in a cgroup of its
# own, and commands enter the container with nsenter.
#
#   nspawn.sh rootfs              build once (cached) the rootfs with the real packages
#                                 (postfix dovecot-imapd nginx opendkim unbound); prints its dir
#   nspawn.sh up NAME [--persistent] [--bind=HOSTDIR:DIR]...
#                                 boot container NAME with --private-network (ports are the
#                                 container's own); waits until booted; prints the leader pid
#                                 (host view). Default: --volatile=overlay on the cached rootfs,
#                                 so containers never pollute the rootfs or each other, and
#                                 nothing survives a halt. --persistent: boot an overlay of the
#                                 cached rootfs whose upper layer lives beside the container's
#                                 state, so changes survive `reboot` (until `down`).
#                                 --bind: HOSTDIR of this host appears at DIR inside (also
#                                 after `reboot`), as systemd-nspawn --bind.
#   nspawn.sh reboot NAME         shut the container down cleanly and boot it again (same
#                                 mode); prints the new leader pid
#   nspawn.sh leader NAME         print the leader pid (the container's systemd, host view)
#   nspawn.sh exec NAME CMD...    run CMD as root inside the container (clean environment)
#   nspawn.sh down NAME           halt the container (SIGTERM, then SIGKILL after 15 s) and
#                                 remove its cgroups, overlay and state
#
# Cache: $CM_TEST_CACHE (default /var/tmp/cm-migrate-test); state of running containers:
# /run/cm-migrate-test/nspawn/NAME/. Needs: systemd-container, debootstrap (.ci/install-deps).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CM_TEST_CACHE:-/var/tmp/cm-migrate-test}
RUNDIR=/run/cm-migrate-test/nspawn
PKGS="postfix dovecot-imapd nginx opendkim unbound"
ROOTFS="$CACHE/rootfs-chatmail"

die() { echo "nspawn.sh: $*" >&2; exit 1; }
need_tools() {
  command -v systemd-nspawn >/dev/null && command -v nsenter >/dev/null ||
    die "systemd-nspawn or nsenter missing: run .ci/install-deps (apt-get install systemd-container)"
  [ "$(id -u)" = 0 ] || die "must run as root"
}

# Run "$@" inside our own cgroups (name=systemd and unified, where present) called cm-$1.
# nspawn --keep-unit puts the container in <own cgroup>/payload and never removes it; a private
# parent cgroup keeps parallel containers apart and makes the cleanup exact.
in_cg() {
  local name=$1 h; shift
  for h in systemd unified; do
    if [ -d /sys/fs/cgroup/$h ]; then
      mkdir -p /sys/fs/cgroup/$h/cm-"$name"
      echo "$BASHPID" >/sys/fs/cgroup/$h/cm-"$name"/cgroup.procs
    fi
  done
  exec "$@"
}
rm_cg() {
  local h
  for h in systemd unified; do
    [ -d /sys/fs/cgroup/$h/cm-"$1" ] &&
      find /sys/fs/cgroup/$h/cm-"$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

cmd_rootfs() {
  need_tools
  mkdir -p "$CACHE"
  exec 8>"$CACHE/rootfs-chatmail.lock"
  flock 8
  # the marker holds the package list: changing PKGS rebuilds the cached rootfs
  if [ "$(cat "$ROOTFS/.cm-complete" 2>/dev/null)" != "$PKGS" ]; then
    local base tmp
    base=$("$HERE/rootfs.sh")
    tmp=$(mktemp -d "$CACHE/rootfs-chatmail.XXXXXX")
    tar -C "$tmp" -xf "$base"
    echo cmtest >"$tmp/etc/hostname"
    # a non-booted nspawn is a chroot with /proc, /sys, /dev: postinst scripts enable the
    # units (they start at the container's boot) but start nothing
    if ! ( in_cg "rootfs-$$" systemd-nspawn -q -D "$tmp" --register=no --keep-unit --pipe \
        env DEBIAN_FRONTEND=noninteractive sh -c "
          set -e
          echo 'postfix postfix/main_mailer_type select Internet Site' | debconf-set-selections
          echo 'postfix postfix/mailname string cmtest.invalid' | debconf-set-selections
          apt-get update -qq
          apt-get install -y -qq --no-install-recommends $PKGS
          apt-get clean
          rm -rf /var/lib/apt/lists/*" </dev/null >"$CACHE/rootfs-chatmail.log" 2>&1 ); then
      rm_cg "rootfs-$$"; rm -rf "$tmp"
      tail -30 "$CACHE/rootfs-chatmail.log" >&2
      die "installing $PKGS into the rootfs failed (log: $CACHE/rootfs-chatmail.log)"
    fi
    rm_cg "rootfs-$$"
    echo "$PKGS" >"$tmp/.cm-complete"
    rm -rf "$ROOTFS"
    mv "$tmp" "$ROOTFS"
  fi
  echo "$ROOTFS"
}

leader() {
  local name=$1 pid c
  [ -f "$RUNDIR/$name/pid" ] || return 1
  pid=$(cat "$RUNDIR/$name/pid")
  for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    [ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd ] && { echo "$c"; return 0; }
  done
  return 1
}

cm_exec() {
  local name=$1 l; shift
  l=$(leader "$name") || die "container $name is not running"
  nsenter -t "$l" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}

# boot NAME DIR [NSPAWN-OPTION...]: boot DIR as container NAME, wait until it has booted
boot() {
  local name=$1 dir=$2 s=unknown; shift 2
  ( in_cg "$name" systemd-nspawn -b -D "$dir" -M "$name" --register=no --keep-unit \
      --private-network --console=read-only "$@" \
      </dev/null >>"$RUNDIR/$name/log" 2>&1 ) &
  echo $! >"$RUNDIR/$name/pid"
  for _ in $(seq 200); do leader "$name" >/dev/null 2>&1 && break; sleep 0.1; done
  leader "$name" >/dev/null 2>&1 || { tail -20 "$RUNDIR/$name/log" >&2; cmd_down "$name"; die "container $name did not start"; }
  for _ in $(seq 600); do
    s=$(cm_exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$s" in running|degraded) break ;; esac
    sleep 0.1
  done
  case "$s" in
    running|degraded) ;;
    *) tail -20 "$RUNDIR/$name/log" >&2; cmd_down "$name"; die "container $name did not boot (state: $s)" ;;
  esac
  leader "$name"
}

# boot NAME as recorded in its state directory (volatile or persistent)
boot_again() {
  local name=$1 rootfs binds=()
  rootfs=$(cmd_rootfs)
  [ -f "$RUNDIR/$name/binds" ] && mapfile -t binds <"$RUNDIR/$name/binds"
  if [ "$(cat "$RUNDIR/$name/mode")" = persistent ]; then
    boot "$name" "$RUNDIR/$name/root" "${binds[@]}"
  else
    boot "$name" "$rootfs" --volatile=overlay "${binds[@]}"
  fi
}

cmd_up() {
  local name=$1 mode='' rootfs d a binds=()
  shift
  need_tools
  case "$name" in ''|*/*|.*) die "bad container name '$name'" ;; esac
  for a in "$@"; do
    case "$a" in
      --persistent) mode=$a ;;
      --bind=/*:/*) binds+=("$a") ;;
      *) die "unknown option '$a'" ;;
    esac
  done
  rootfs=$(cmd_rootfs)
  [ -d "$RUNDIR/$name" ] && cmd_down "$name"
  d="$RUNDIR/$name"
  mkdir -p "$d"
  printf '%s\n' "${binds[@]}" | grep -v '^$' >"$d/binds" || true
  if [ "$mode" = --persistent ]; then
    mkdir -p "$d/upper" "$d/work" "$d/root"
    mount -t overlay "cm-$name" -o "lowerdir=$rootfs,upperdir=$d/upper,workdir=$d/work" "$d/root" ||
      { rm -rf "${d:?}"; die "cannot mount an overlay of $rootfs for $name"; }
    echo persistent >"$d/mode"
  else
    echo volatile >"$d/mode"
  fi
  boot_again "$name"
}

# stop the container's nspawn (a clean shutdown: nspawn turns SIGTERM into a halt request);
# SIGKILL after 15 s. Keeps the state directory.
halt() {
  local name=$1 pid l
  [ -f "$RUNDIR/$name/pid" ] || return 0
  pid=$(cat "$RUNDIR/$name/pid")
  l=$(leader "$name" 2>/dev/null || true)
  # the subshell in boot exec'd nspawn, so $pid is nspawn
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    [ -n "$l" ] && kill -KILL "$l" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$RUNDIR/$name/pid"
  rmdir /run/systemd/nspawn/propagate/"$name" 2>/dev/null || true
  rm_cg "$name"
}

cmd_reboot() {
  local name=$1
  [ -f "$RUNDIR/$name/mode" ] || die "container $name was never started"
  halt "$name"
  boot_again "$name"
}

cmd_down() {
  local name=$1
  halt "$name"
  if mountpoint -q "$RUNDIR/$name/root" 2>/dev/null; then
    umount "$RUNDIR/$name/root" 2>/dev/null || umount -l "$RUNDIR/$name/root"
  fi
  rm_cg "$name"
  rm -rf "${RUNDIR:?}/$name"
}

case "${1:-}" in
  rootfs) cmd_rootfs ;;
  up) [ $# -ge 2 ] || die "usage: nspawn.sh up NAME [--persistent] [--bind=HOSTDIR:DIR]..."; shift; cmd_up "$@" ;;
  reboot) [ $# -eq 2 ] || die "usage: nspawn.sh reboot NAME"; need_tools; cmd_reboot "$2" ;;
  leader) [ $# -eq 2 ] || die "usage: nspawn.sh leader NAME"; leader "$2" || die "container $2 is not running" ;;
  exec) [ $# -ge 3 ] || die "usage: nspawn.sh exec NAME CMD..."; n=$2; shift 2; cm_exec "$n" "$@" ;;
  down) [ $# -eq 2 ] || die "usage: nspawn.sh down NAME"; cmd_down "$2" ;;
  *) echo "usage: nspawn.sh rootfs | up NAME [--persistent] | reboot NAME | leader NAME | exec NAME CMD... | down NAME" >&2; exit 2 ;;
esac
