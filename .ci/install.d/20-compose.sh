#!/usr/bin/env bash
# Docker Compose v2, the real reader of the .env files the suite writes. Debian 12 only ships
# Compose v1, so take the Go binary from Debian 13's docker-compose package through a private
# apt directory (the system's apt sources are not touched) and install it as a CLI plugin and
# as /usr/local/bin/docker-compose-v2. `docker compose config` needs no engine.
set -euo pipefail
if [ -x /usr/local/bin/docker-compose-v2 ]; then exit 0; fi
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*debian\)\/\?[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "$0: no Debian mirror in this machine's apt sources (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list): add one" >&2; exit 1; }
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/etc" "$D/lists/partial" "$D/cache/archives/partial" "$D/x"
printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" >"$D/etc/trixie.sources"
A=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$D/etc" -o "Dir::State::Lists=$D/lists"
   -o "Dir::Cache=$D/cache" -o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=/dev/null)
apt-get "${A[@]}" update -qq
(cd "$D" && apt-get "${A[@]}" download docker-compose >/dev/null && dpkg-deb -x docker-compose_*.deb x)
install -m 0755 "$D/x/usr/libexec/docker/cli-plugins/docker-compose" /usr/local/bin/docker-compose-v2
mkdir -p /usr/local/lib/docker/cli-plugins
ln -sf /usr/local/bin/docker-compose-v2 /usr/local/lib/docker/cli-plugins/docker-compose
/usr/local/bin/docker-compose-v2 version
