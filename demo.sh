#!/usr/bin/env bash
# The main job of cm-migrate on built-in sample data, start to finish:
#   1. build the suite;
#   2. lay out a sample old chatmail host (fixtures/sample-host/make.sh) in a scratch folder;
#   3. cm-migrate run --root: preflight, a change journal, the live bulk copy of DKIM keys,
#      ACME state and the mail store into the Docker data folders (owners mapped to the
#      image's users, docker/users), the stop (skipped: the sample host's services are not
#      this machine's, and the run says so), the delta, chatmail.ini -> .env, cm-verify; each
#      step says what it did, then the measured downtime and the next step.
# Run as root on Debian 12 (owners are set). Usage: ./demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then echo "demo.sh: run as root (the copy sets owners)" >&2; exit 2; fi
command -v cargo >/dev/null || { echo "demo.sh: cargo is needed (https://rustup.rs)" >&2; exit 2; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
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
