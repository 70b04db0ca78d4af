#!/usr/bin/env bash
# Large maildirs: DIRS mailboxes of FILES small messages each in one cur/ (a relay's busy
# account), on a loop-mounted ext4; the cold delta pass with nothing changed (every entry's
# metadata read on both sides) of cm-copy-data against rsync -aH --delete, and cm-verify tree
# against rsync -aHc --dry-run, three rounds, tools alternating, medians. Run as root from the
# repository, by hand, under the bench lock:
#   flock /var/tmp/cm-bench.lock bench/bigdirs.sh [DIRS=10] [FILES=20000]
#
# Measured 2026-12-04 (2 CPUs, load ~3 from other work; 200,021 entries): delta cm-copy-data
# 2.54 s, rsync -aH --delete 3.75 s (0.68x); cm-verify tree 8.14 s, rsync -aHc --dry-run
# 30.24 s. By hand on the same kind of store, before large directories were stat'ed in
# chunks: delta 3.34 s against 2.48 s after (rsync 5.35 s).
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=${1:-10}
files=${2:-20000}
[ "$(id -u)" = 0 ] || { echo "bench/bigdirs.sh: run as root (loop mount)" >&2; exit 2; }
W=/var/tmp/cm-bench-bigdirs
umount "$W/mnt" 2>/dev/null || true
rm -rf "$W"
mkdir -p "$W/mnt"
cleanup() { umount "$W/mnt" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
cargo build --release -q -p cm-copy-data -p cm-verify
BIN=$PWD/target/release/cm-copy-data
VERIFY=$PWD/target/release/cm-verify
truncate -s 4G "$W/img"
mkfs.ext4 -q -F -i 4096 "$W/img"
mount -o loop "$W/img" "$W/mnt"
M=$W/mnt
python3 - "$M/src" "$dirs" "$files" <<'PY'
import os, sys
root, dirs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(dirs):
    p = os.path.join(root, "user%03d" % d, "cur")
    os.makedirs(p)
    for i in range(files):
        with open(os.path.join(p, "%07d.M%dP1.host:2,S" % (i, i)), "w") as f:
            f.write("x" * (40 + i % 160))
PY
"$BIN" --map "$M/src=$M/dcm" --quiet
rsync -aH --numeric-ids "$M/src/" "$M/drs/"
declare -A T
run() { # name command...
  local name=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  T[$name]="${T[$name]:-} $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')"
}
for round in 1 2 3; do
  order="dcm drs vcm vrs"
  [ $round = 2 ] && order="vrs vcm drs dcm"
  for t in $order; do
    case $t in
      dcm) run dcm "$BIN" --map "$M/src=$M/dcm" --quiet ;;
      drs) run drs rsync -aH --numeric-ids --delete "$M/src/" "$M/drs/" ;;
      vcm) run vcm "$VERIFY" tree "$M/src" "$M/dcm" --quiet ;;
      vrs) run vrs rsync -aHc --numeric-ids --dry-run --delete "$M/src/" "$M/drs/" ;;
    esac
  done
done
med() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
entries=$(find "$M/src" | wc -l)
echo "$entries entries in $dirs directories of $files files; cold; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); median of 3 (seconds)"
printf '%-44s %8s\n' "delta, nothing changed: cm-copy-data" "$(med "${T[dcm]}")"
printf '%-44s %8s\n' "delta, nothing changed: rsync -aH --delete" "$(med "${T[drs]}")"
printf '%-44s %8s\n' "cm-verify tree" "$(med "${T[vcm]}")"
printf '%-44s %8s\n' "rsync -aHc --dry-run" "$(med "${T[vrs]}")"
