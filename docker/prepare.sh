#!/usr/bin/env bash
# Put the start-up applier into the build context: builds cm-env-apply (release) from this
# checkout and copies it to docker/bin/. Run once before `docker compose build`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p cm-env-apply
install -D -m 0755 target/release/cm-env-apply docker/bin/cm-env-apply
echo "docker/bin/cm-env-apply ready; now: docker compose build" >&2
