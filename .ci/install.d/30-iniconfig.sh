#!/usr/bin/env bash
# The real iniconfig (the parser chatmail reads chatmail.ini with), in a private venv, so that
# tests/tests/ini_vs_iniconfig.rs can compare cm-core's ini parser with it on generated files.
# Pinned to the version the fixtures' recorded readings were made with.
set -euo pipefail
V=/opt/cm-migrate/iniconfig-venv
if [ -x "$V/bin/python" ] && "$V/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("iniconfig") != "2.3.1")' 2>/dev/null; then
  exit 0
fi
need=()
for p in python3 python3-venv; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rm -rf "$V"
mkdir -p "$(dirname "$V")"
/usr/bin/python3 -m venv "$V"
"$V/bin/pip" install -q --disable-pip-version-check 'iniconfig==2.3.1'
"$V/bin/python" -c 'import importlib.metadata as m; print("iniconfig", m.version("iniconfig"))'
