#!/usr/bin/env bash
# Benchmark: `cm-verify tree` on a clean copy of a maildir-like tree, against
# `sha256sum` over both trees (find | xargs, serial and with one process per CPU) and
# `rsync -aHc --dry-run`, all in ONE run, warm and cold page cache.
#
# Usage (as root): bench/verify.sh [USERS]        (default 500 users: ~20k files, ~500 MB)
# Env: RUNS=3 (repetitions, median reported), COLD=1 (also measure with the page cache
# dropped before each run), KEEP=0 (keep the image), WORK=/var/tmp/cm-verify-bench.
#
# The trees live on a journaled ext4 made in a file and loop-mounted: the root file system
# here recreates files 10-25x slower right after an `rm -rf` (see the baselines), which
# would distort any timing. Tools are run in alternating order so none always goes second.
# Needs: root, e2fsprogs (mkfs.ext4), util-linux (mount, losetup), rsync, python3, cargo.
#
# Measured 2026-11-29 (2 cores shared with other jobs, load ~6; 500 users: 20,328 files,
# 1,189 hard-linked, 4,672 dirs, 531 MB per tree; medians of 3):
#                                     warm s   cold s
#   cm-verify tree (release)            1.55     3.66
#   find|xargs sha256sum, both trees   10.21    15.78   (cm-verify: 6.6x / 4.3x faster)
# Again on an idle machine: cm-verify 0.73 / 2.62, sha256sum 7.09 / 11.90 (9.7x / 4.5x),
# -P2 sha256sum 4.19 / 7.88, rsync -aHc --dry-run 1.16 / 4.26.
#   find|xargs -P2 sha256sum            5.79    14.65
#   rsync -aHc --dry-run                1.82     9.35
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${1:-500}
RUNS=${RUNS:-3}
COLD=${COLD:-1}
WORK=${WORK:-/var/tmp/cm-verify-bench}
[ "$(id -u)" = 0 ] || { echo "bench/verify.sh: run as root (loop mount, chown)" >&2; exit 2; }
for t in mkfs.ext4 rsync python3 sha256sum; do
  command -v "$t" >/dev/null || { echo "bench/verify.sh: $t missing: run .ci/install-deps" >&2; exit 2; }
done

cargo build --release -q -p cm-verify
BIN=$PWD/target/release/cm-verify

MNT=$WORK/mnt
IMG=$WORK/ext4.img
cleanup() {
  cd /
  if mountpoint -q "$MNT"; then umount "$MNT"; fi
  if [ "${KEEP:-0}" != 1 ]; then rm -f "$IMG" "$WORK/a.sum" "$WORK/b.sum"; fi
}
trap cleanup EXIT
mkdir -p "$MNT"
if mountpoint -q "$MNT"; then umount "$MNT"; fi
rm -f "$IMG"
truncate -s 4G "$IMG"
mkfs.ext4 -q -F -O ^metadata_csum "$IMG"
mount -o loop "$IMG" "$MNT"
SRC=$MNT/src
DST=$MNT/dst

echo "== generating a maildir-like tree for $USERS users in $SRC"
python3 - "$SRC" "$USERS" <<'PY'
import os, random, sys
root, users = sys.argv[1], int(sys.argv[2])
random.seed(42)
os.umask(0o077)  # dovecot runs with UMask=0077: dirs 0700, files 0600
base = os.path.join(root, "vmail/mail/example.org")
msgs = []
n = 0
for u in range(users):
    home = os.path.join(base, f"user{u:05d}@example.org")
    folders = ["", ".Sent", ".Archive"] if u % 3 == 0 else ["", ".Sent"]
    for f in folders:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(home, f, sub), mode=0o700, exist_ok=True)
    for name, size in (("password", 120), ("maildirsize", 64), ("dovecot.index", 4096),
                       ("dovecot.index.log", 9000), ("dovecot-uidlist", 800)):
        with open(os.path.join(home, name), "wb") as fh:
            fh.write(os.urandom(size))
        n += 1
    for i in range(random.randint(20, 50)):
        folder = random.choice(folders)
        t = 1700000000 + n
        if random.random() < 0.03 and msgs:
            # dovecot copies a message into another mailbox as a hard link
            other = random.choice(msgs)
            dst = os.path.join(home, folder, "cur", os.path.basename(other))
            if not os.path.exists(dst):
                os.link(other, dst)
                n += 1
                continue
        big = random.random() < 0.0012
        size = random.randint(1 << 20, 20 << 20) if big else random.randint(2048, 30 << 10)
        p = os.path.join(home, folder, random.choice(("cur", "cur", "new")),
                         f"{t}.M{n}P{u}.relay,S={size},W={size + size // 40}:2,S")
        with open(p, "wb") as fh:
            fh.write(os.urandom(size))
        os.utime(p, ns=(t * 10**9 + n, t * 10**9 + n * 7))
        msgs.append(p)
        n += 1
PY
chown -R 5000:5000 "$SRC/vmail"
cp -a "$SRC" "$DST"
files=$(find "$SRC" -type f | wc -l); dirs=$(find "$SRC" -type d | wc -l)
bytes=$(du -sb "$SRC" | cut -f1); links=$(find "$SRC" -type f -links +1 | wc -l)
echo "tree: $files files ($links with hard links), $dirs directories, $((bytes / 1000000)) MB; copy made with cp -a"
"$BIN" tree "$SRC" "$DST" --quiet || { echo "bench/verify.sh: the clean copy does not verify" >&2; exit 1; }

NP=$(nproc)
t_cmverify() { "$BIN" tree "$SRC" "$DST" --quiet; }
t_sha() {
  (cd "$SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$WORK/a.sum"
  (cd "$DST" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$WORK/b.sum"
  cmp -s "$WORK/a.sum" "$WORK/b.sum"
}
t_shaP() {
  (cd "$SRC" && find . -type f -print0 | xargs -0 -P"$NP" -n64 sha256sum | sort) > "$WORK/a.sum"
  (cd "$DST" && find . -type f -print0 | xargs -0 -P"$NP" -n64 sha256sum | sort) > "$WORK/b.sum"
  cmp -s "$WORK/a.sum" "$WORK/b.sum"
}
t_rsync() { [ -z "$(rsync -aHc --dry-run --itemize-changes "$SRC/" "$DST/")" ]; }
TOOLS=(t_cmverify t_sha t_shaP t_rsync)
declare -A LABEL=([t_cmverify]="cm-verify tree (release)"
  [t_sha]="find|xargs sha256sum, both trees" [t_shaP]="find|xargs -P$NP sha256sum, both trees"
  [t_rsync]="rsync -aHc --dry-run")

now() { date +%s.%N; }
measure() { # mode -> fills TIMES[tool] with space-separated seconds
  local mode=$1 r i tool s e
  for ((r = 0; r < RUNS; r++)); do
    for ((i = 0; i < ${#TOOLS[@]}; i++)); do
      tool=${TOOLS[$(((i + r) % ${#TOOLS[@]}))]}   # rotate the order every round
      sync
      if [ "$mode" = cold ]; then echo 3 > /proc/sys/vm/drop_caches; else "$tool" >/dev/null || true; fi
      s=$(now); "$tool" >/dev/null || { echo "$tool reported a difference on a clean copy" >&2; exit 1; }; e=$(now)
      TIMES[$tool]+="$(echo "$e - $s" | bc) "
    done
  done
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
report() {
  local mode=$1 base
  base=$(echo "${TIMES[t_sha]}" | median)
  printf '\n%-45s %8s %10s\n' "$mode cache, median of $RUNS" "seconds" "vs sha256sum"
  for tool in "${TOOLS[@]}"; do
    m=$(echo "${TIMES[$tool]}" | median)
    printf '%-45s %8.2f %9.1fx\n' "${LABEL[$tool]}" "$m" "$(echo "$base / $m" | bc -l)"
  done
}
command -v bc >/dev/null || { echo "bench/verify.sh: bc missing (apt-get install bc)" >&2; exit 2; }
declare -A TIMES=()
measure warm; report warm
if [ "$COLD" = 1 ]; then declare -A TIMES=(); measure cold; report cold; fi
