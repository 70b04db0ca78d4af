#!/usr/bin/env bash
# A real Docker engine for the end-to-end tests, started by hand (the CI machine's PID 1 is not
# systemd, no registry is reachable). Debian 12's docker.io is installed by
# .ci/install.d/40-docker.sh; Compose v2 is /usr/local/bin/docker-compose-v2 (20-compose.sh).
#
#   tests/harness/docker.sh start   # start dockerd in the background (idempotent)
#   tests/harness/docker.sh base    # import debian:12 from tests/harness/rootfs.sh's tarball
#   tests/harness/docker.sh stop    # remove every container, stop dockerd by its pid, unmount leftovers
#   tests/harness/docker.sh env     # print DOCKER=... COMPOSE=... for callers
#
# dockerd runs with --bridge=none --iptables=false --ip-forward=false --ip-masq=false: the host's
# sysctls and firewall are left alone, so builds need `--network host` (compose: build.network:
# host) and containers network_mode: host. State lives under $CM_TEST_CACHE/docker
# (default /var/tmp/cm-migrate-test/docker): dockerd.pid, dockerd.log.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CM_TEST_CACHE:-/var/tmp/cm-migrate-test}
W="$CACHE/docker"
DOCKER=/usr/bin/docker            # Debian's client (20.10), matching the engine
DOCKERD=/usr/sbin/dockerd
COMPOSE=/usr/local/bin/docker-compose-v2
mkdir -p "$W"

die() { echo "docker.sh: $*" >&2; exit 1; }

need() {
  [ "$(id -u)" = 0 ] || die "must run as root (it starts dockerd)"
  [ -x "$DOCKERD" ] && [ -x "$DOCKER" ] || die "$DOCKERD or $DOCKER missing: run .ci/install-deps (installs docker.io)"
  [ -x "$COMPOSE" ] || die "$COMPOSE missing: run .ci/install-deps (installs Compose v2)"
}

running() { [ -f "$W/dockerd.pid" ] && kill -0 "$(cat "$W/dockerd.pid")" 2>/dev/null; }

start() {
  need
  exec 9>"$W/lock"
  flock 9
  if running && "$DOCKER" info >/dev/null 2>&1; then
    return 0
  fi
  if "$DOCKER" info >/dev/null 2>&1; then
    # an engine we did not start (e.g. a system service) answers: use it, never stop it
    echo "docker.sh: using the Docker engine already running" >&2
    return 0
  fi
  setsid nohup "$DOCKERD" --iptables=false --ip6tables=false --ip-forward=false \
    --ip-masq=false --bridge=none --storage-driver=overlay2 \
    --exec-opt native.cgroupdriver=cgroupfs >"$W/dockerd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$W/dockerd.pid"
  for _ in $(seq 1 240); do
    "$DOCKER" info >/dev/null 2>&1 && break
    running || break
    sleep 0.25
  done
  "$DOCKER" info >/dev/null 2>&1 || { tail -30 "$W/dockerd.log" >&2; die "dockerd did not come up (log: $W/dockerd.log)"; }
}

base() {
  need
  exec 9>"$W/lock"
  flock 9
  if ! "$DOCKER" image inspect debian:12 >/dev/null 2>&1; then
    tarball=$("$HERE/rootfs.sh")
    "$DOCKER" import "$tarball" debian:12 >/dev/null
  fi
  "$DOCKER" image inspect -f '{{.Id}}' debian:12
}

stop() {
  exec 9>"$W/lock"
  flock 9
  if ! [ -f "$W/dockerd.pid" ]; then
    return 0     # not ours (or already stopped): leave it alone
  fi
  pid=$(cat "$W/dockerd.pid")
  if kill -0 "$pid" 2>/dev/null; then
    ids=$("$DOCKER" ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || "$DOCKER" rm -f $ids >/dev/null 2>&1 || true
    kill -TERM "$pid"
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$W/dockerd.pid"
  # dockerd unmounts its own things; clean up whatever stayed (deepest first)
  awk '$2 ~ "^(/var/lib/docker|/run/docker|/var/run/docker|/run/containerd)" {print $2}' /proc/self/mounts \
    | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  # container cgroups go away with the containers; the empty /docker ones stay behind
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h/docker" ] && find "$h/docker" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

case "${1:-}" in
  start) start ;;
  base) base ;;
  stop) stop ;;
  env) echo "DOCKER=$DOCKER"; echo "COMPOSE=$COMPOSE" ;;
  *) echo "usage: $0 start|base|stop|env" >&2; exit 2 ;;
esac
