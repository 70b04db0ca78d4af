#!/usr/bin/env bash
# Peak memory (and time) at scale: stores of 100k, 500k and 1M small-file entries, each on a
# loop-mounted ext4 of its own (inline data, so a million files fit), reporting the peak RSS
# (/usr/bin/time -v) of cm-copy-data's full copy and delta pass (1% of the files changed)
# and of `cm-verify tree`, beside rsync's for the same work. The goal (issue 11): at 1M
# entries each stays under 100 MB, and 100k vs 1M differ by less than 2x.
# Run as root from the repository, by hand, under the benchmark lock:
#   flock /var/tmp/cm-bench.lock bench/scale.sh [SIZES="100000 500000 1000000"]
#
# Measured 2026-12-04 evening (with the lister's prefetch; 2 CPUs, load 5-7 from other work):
#   100k      10.1 / 5.6 (10.3 / 12.0)   9.8 / 1.9 (10.8 / 2.8)      25.7 / 2.8 (7.3 / 4.1)
#   1M        14.5 / 92.7 (23.2 / 168.6) 15.1 / 24.8 (22.0 / 31.6)   43.7 / 42.2 (17.3 / 50.3)
#   100k -> 1M: 1.44x / 1.54x / 1.70x.
# Measured 2026-12-04 (after the speed work of issue 11; 2 CPUs, load ~2.5), peak MB / s:
#   entries   full copy (rsync -aH)      delta 1% (rsync --delete)   cm-verify tree (rsync -aHc -n)
#   100k      10.0 / 4.4 (9.4 / 6.5)     8.7 / 2.4 (11.0 / 2.0)      25.4 / 2.6 (7.3 / 2.4)
#   1M        14.3 / 58.9 (23.9 / 76.3)  12.7 / 26.6 (22.4 / 22.7)   44.6 / 34.1 (17.1 / 46.4)
#   100k -> 1M: 1.43x / 1.46x / 1.76x. Earlier figures:
# Measured 2026-12-03 (2 CPUs shared with three other jobs, load 8-13), peak MB / seconds:
#   entries   full copy (rsync -aH)      delta 1% (rsync --delete)   cm-verify tree (rsync -aHc -n)
#   100k      6.7 / 13  (10.9 / 35)      9.3 / 6.2  (11.3 / 8.7)     30.3 / 9.5  (7.2 / 11.6)
#   500k      9.4 / 53  (20.4 / 74)      12.6 / 31  (17.4 / 28)      83.3 / 30   (11.6 / 38)  [a]
#   1M        11.2 / 359 (23.2 / 283)    15.3 / 73  (23.1 / 45)      83.7 / 62   (17.2 / 76)  [b]
# [a] before the compare chunk was cut to 4096 entries; [b] before hard-link records were
# made compact (the linked entries, 10% of this store, were kept whole). After both, by hand
# on the same stores: cm-verify tree 28.6 MB / 2.3 s at 100k, 31.5 / 5.0 at 200k, 49.5 / 21.6
# at 1M (1.7x from 100k to 1M).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-"100000 500000 1000000"}
[ "$(id -u)" = 0 ] || { echo "bench/scale.sh: run as root (loop mount, chown)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/scale.sh: needs GNU time (/usr/bin/time)" >&2; exit 2; }
W=/var/tmp/cm-bench-scale
umount "$W/mnt" 2>/dev/null || true
rm -rf "$W"
mkdir -p "$W/mnt"
cleanup() { umount "$W/mnt" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

cargo build --release -q -p cm-copy-data -p cm-verify
CP=$PWD/target/release/cm-copy-data
VF=$PWD/target/release/cm-verify

# peak RSS in MB and elapsed seconds of one command: "MB s"
measure() {
  /usr/bin/time -v -o "$W/time" "$@" >/dev/null 2>"$W/err" || {
    local rc=$?
    # cm-verify tree exits 1 on differences; anything else is a failure
    [ "$rc" = 1 ] || { cat "$W/err" >&2; echo "failed ($rc): $*" >&2; exit 1; }
  }
  local kb s
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time")
  s=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$W/time" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  printf '%.1f %.1f' "$(echo "$kb / 1024" | bc -l)" "$s"
}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

printf '%-9s %-34s %10s %9s\n' entries run "peak MB" seconds
for n in $sizes; do
  img_mb=$(( n * 3 / 1000 + 1024 ))
  truncate -s "${img_mb}M" "$W/img"
  mkfs.ext4 -q -F -O inline_data -I 512 -N $(( n * 4 )) "$W/img"
  mount -o loop "$W/img" "$W/mnt"
  M=$W/mnt
  python3 - "$M/src" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
# maildir-like: users with cur/ new/ tmp/, 100 messages of 40-200 bytes per cur/, one in 20
# hard-linked into the previous user's cur/ (as dovecot does for copies)
base = os.path.join(root, "vmail", "mail", "example.org")
made = 0; u = 0; prev = None
while made < n:
    ud = os.path.join(base, "user%06d" % u)
    for s in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(ud, s)); made += 1
    made += 1
    for m in range(100):
        p = os.path.join(ud, "cur", "%d.M%dP%d.host,S=100:2,S" % (1700000000 + m, u, m))
        with open(p, "wb") as f:
            f.write(b"x" * (40 + (m * 7) % 160))
        made += 1
        if prev and m % 20 == 0:
            os.link(p, os.path.join(prev, "cur", "copy-%d-%d:2,S" % (u, m))); made += 1
    prev = ud; u += 1
os.system("chown -R 5000:5000 " + root)
PY
  ne=$(find "$M/src" | wc -l)
  row() { printf '%-9s %-34s %10s %9s\n' "$ne" "$1" "$2" "$3"; }
  drop; read -r mb s <<<"$(measure "$CP" --map "$M/src=$M/cm" --quiet)"; row "cm-copy-data full copy" "$mb" "$s"
  drop; read -r mb s <<<"$(measure rsync -aH --numeric-ids "$M/src/" "$M/rs/")"; row "rsync -aH full copy" "$mb" "$s"
  find "$M/src" -type f -name '*:2,S' | awk 'NR % 100 == 0' | while IFS= read -r f; do printf 'c\n' >> "$f"; done
  drop; read -r mb s <<<"$(measure "$CP" --map "$M/src=$M/cm" --quiet)"; row "cm-copy-data delta (1% changed)" "$mb" "$s"
  drop; read -r mb s <<<"$(measure rsync -aH --numeric-ids --delete "$M/src/" "$M/rs/")"; row "rsync -aH --delete delta" "$mb" "$s"
  drop; read -r mb s <<<"$(measure "$VF" tree "$M/src" "$M/cm" --quiet)"; row "cm-verify tree" "$mb" "$s"
  drop; read -r mb s <<<"$(measure rsync -aHc --numeric-ids --dry-run "$M/src/" "$M/rs/")"; row "rsync -aHc --dry-run" "$mb" "$s"
  umount "$M"
  rm -f "$W/img"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
