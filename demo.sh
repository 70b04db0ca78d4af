#!/usr/bin/env bash
# The main job of cm-migrate on built-in sample data, start to finish:
#   1. build the suite;
#   2. lay out a sample old chatmail host (fixtures/sample-host/make.sh) in a scratch folder;
#   3. cm-migrate run --root: preflight (the target read from docker/'s compose file by
#      Docker Compose v2, installed first when missing), a change journal, the live bulk copy
#      of DKIM keys, ACME state and the mail store where that file mounts them (owners mapped to the
#      image's users, docker/users), the stop (skipped: the sample host's services are not
#      this machine's, and the run says so), the delta, chatmail.ini -> .env, cm-verify; each
#      step says what it did, then the measured downtime and the next step.
# Run as root on Debian 12 (owners are set). Usage: ./demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then echo "demo.sh: run as root (the copy sets owners)" >&2; exit 2; fi
command -v cargo >/dev/null || { echo "demo.sh: cargo is needed (https://rustup.rs)" >&2; exit 2; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
# the run reads where each piece of state goes from the target's compose file, with the real
# Docker Compose v2 (no engine needed): install it when this machine has none
compose_v2() {
  for c in "docker compose" docker-compose docker-compose-v2; do
    $c version 2>/dev/null | grep -q 'v\?2\.' && return 0
  done
  return 1
}
if ! compose_v2; then
  echo "demo.sh: no Docker Compose v2 here: installing it (.ci/install.d/20-compose.sh)" >&2
  bash .ci/install.d/20-compose.sh >/dev/null
fi
W=${1:-$(mktemp -d /tmp/cm-demo.XXXXXX)}
mkdir -p "$W"
say() { printf '\n== %s\n' "$*"; }

say "building the suite (release)"
cargo build --release --quiet --workspace --bins
B=$PWD/target/release

say "sample old host in $W/old-host"
rm -rf "$W/old-host" "$W/project"
fixtures/sample-host/make.sh "$W/old-host" >/dev/null
mkdir -p "$W/project"
cp docker/docker-compose.yaml "$W/project/"

say "cm-migrate run: the whole move of the sample host into $W/project"
"$B/cm-migrate" run --root "$W/old-host" --project-dir "$W/project" --owner-map docker/users \
  --state-dir "$W/state"
cat "$W/project/.env"

say "done: the Docker project is in $W/project"
