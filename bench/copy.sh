#!/usr/bin/env bash
# Benchmark cm-copy-data against cp -a, rsync -aH and rsync + sha256sum verification, in one
# run, on a loop-mounted journaled ext4 (the root file system here recreates files slowly
# right after rm -rf; see the note in README). Run as root from the repository:
#   bench/copy.sh [USERS=500] [FILES_PER_USER=40]
# Prints one table. Page cache is dropped before each timed run when the kernel allows it
# (otherwise all runs are warm: the source is read once first). Tools alternate order
# between the two rounds so none always runs second; the table shows the median of 2.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-500}
per=${2:-40}
[ "$(id -u)" = 0 ] || { echo "bench/copy.sh: run as root (loop mount, chown)" >&2; exit 2; }
W=/var/tmp/cm-bench-copy
umount "$W/mnt" 2>/dev/null || true
rm -rf "$W"
mkdir -p "$W/mnt"
cleanup() { umount "$W/mnt" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

cargo build --release -q -p cm-copy-data
BIN=$PWD/target/release/cm-copy-data

truncate -s 6G "$W/img"
mkfs.ext4 -q -F "$W/img"   # journaled (default)
mount -o loop "$W/img" "$W/mnt"
M=$W/mnt
bench/gen-tree.sh "$M/src" "$users" "$per"
nfiles=$(find "$M/src" -type f | wc -l)
size=$(du -sh "$M/src" | cut -f1)

cold=warm
drop() {
  sync
  if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then cold=cold; else
    find "$M/src" -type f -exec cat {} + >/dev/null
  fi
}
now() { date +%s.%N; }
declare -A T
timeit() { # name command...
  local name=$1; shift
  rm -rf "$M/dst" "$M/.cm-manifest" "$M/sums"
  drop
  local t0 t1
  t0=$(now); "$@" >/dev/null; t1=$(now)
  T[$name]="${T[$name]:-} $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')"
}
cm()      { "$BIN" --map "$M/src=$M/dst" --quiet; }
cpa()     { cp -a "$M/src" "$M/dst"; }
rs()      { rsync -aH --numeric-ids "$M/src/" "$M/dst/"; }
rs_sums() {
  rsync -aH --numeric-ids "$M/src/" "$M/dst/"
  mkdir -p "$M/sums"
  (cd "$M/src" && find . -type f -print0 | sort -z | xargs -0 sha256sum > "$M/sums/a")
  (cd "$M/dst" && find . -type f -print0 | sort -z | xargs -0 sha256sum > "$M/sums/b")
  cmp "$M/sums/a" "$M/sums/b"
}
for round in 1 2; do
  if [ $round = 1 ]; then order="cm cpa rs rs_sums"; else order="rs_sums rs cpa cm"; fi
  for tool in $order; do timeit "$tool" "$tool"; done
done

# Delta: 1% of the files changed (rewritten, same names), against a previous copy each.
rm -rf "$M/dst" "$M/.cm-manifest"
"$BIN" --map "$M/src=$M/dcm" --quiet
rsync -aH --numeric-ids "$M/src/" "$M/drs/"
find "$M/src" -type f -name '*:2,S' | sort | awk 'NR % 100 == 0' > "$W/changed"
while IFS= read -r f; do printf 'changed %s\n' "$f" >> "$f"; done < "$W/changed"
nchanged=$(wc -l < "$W/changed")
for tool in dcm drs; do
  drop
  t0=$(now)
  if [ $tool = dcm ]; then "$BIN" --map "$M/src=$M/dcm" --quiet; else rsync -aH --numeric-ids --delete "$M/src/" "$M/drs/"; fi
  t1=$(now)
  T[$tool]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
done

med() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {printf "%.2f", (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "tree: $nfiles files, $size, on loop-mounted ext4; $cold runs; $(nproc) CPUs; median of 2 (times in s)"
printf '%-55s %8s\n' "tool" "seconds"
printf '%-55s %8s\n' "cm-copy-data (SHA-256 + read-back check, manifest)" "$(med "${T[cm]}")"
printf '%-55s %8s\n' "cp -a" "$(med "${T[cpa]}")"
printf '%-55s %8s\n' "rsync -aH --numeric-ids" "$(med "${T[rs]}")"
printf '%-55s %8s\n' "rsync -aH --numeric-ids + sha256sum both trees" "$(med "${T[rs_sums]}")"
printf '%-55s %8s\n' "delta ($nchanged files changed): cm-copy-data" "${T[dcm]}"
printf '%-55s %8s\n' "delta ($nchanged files changed): rsync -aH --delete" "${T[drs]}"
