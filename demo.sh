#!/usr/bin/env bash
# The main job of cm-migrate on built-in sample data, start to finish:
#   1. build the suite;
#   2. lay out a sample old chatmail host (fixtures/sample-host/make.sh) in a scratch folder;
#   3. chatmail.ini -> .env (cm-ini-to-env);
#   4. copy DKIM keys, ACME state and the mail store into the Docker data folders, mapping
#      owners to the image's users (cm-copy-data --owner-map docker/users);
#   5. prove the result (cm-verify).
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

say "cm-ini-to-env: chatmail.ini -> .env"
"$B/cm-ini-to-env" "$W/old-host/usr/local/lib/chatmaild/chatmail.ini" "$W/project/.env"
cat "$W/project/.env"

say "cm-copy-data: old host -> Docker data folders"
"$B/cm-copy-data" --root "$W/old-host" --project-dir "$W/project" --owner-map docker/users

say "cm-verify: every volume against its source, the .env against the ini, the project layout"
"$B/cm-verify" all --root "$W/old-host" --project-dir "$W/project" --owner-map docker/users \
  --ini "$W/old-host/usr/local/lib/chatmaild/chatmail.ini" --image-users docker/users --no-services

say "done: the Docker project is in $W/project"
