#!/usr/bin/env bash
# Benchmark the downtime of `cm-migrate run` against the Docker guide's procedure (stop
# everything, then `rsync -a` the whole store), in one run, on the same generated store of
# about 200,000 files (bench/gen-tree.sh) on a loop-mounted ext4. Run as root from the
# repository, by hand (not in CI), under the bench lock:
#   flock /var/tmp/cm-bench.lock bench/downtime.sh [USERS=4500] [FILES_PER_USER=40] [WRITE_SECS=20]
#
# The target is our docker/ compose project, read by Compose v2 (installed by
# .ci/install-deps); the generated store has no service users (no etc/passwd to map names
# by), so the owner map given is the identity (and the image's users are not read).
# The machine runs no systemd, so the old host is a --root tree and the stop is not part of
# either figure (both procedures stop the same units; the batched stop is measured by the
# nspawn tests: tests/tests/systemd_nspawn.rs and migrate_nspawn.rs print its timing).
#
# cm-migrate: a writer delivers, moves and deletes mail in 1% of the mailboxes for
# WRITE_SECS seconds while the live bulk copy runs (it is done before the downtime begins, as
# stopped services would be); the downtime is the run's own (delta + settings + verify), with
# --verify changed, then the verification with --verify full (cm-verify all) is measured on a
# second run. The guide: caches dropped, then `rsync -a` of the whole store into an empty
# target: its downtime is that rsync.
#
# Measured 2026-12-04 evening (with the lister's prefetch and copy::links; compile jobs paused):
# guide 57.6 s; cm-migrate run --verify changed 2.2 s (delta 0.82 s for 6,493 entries, verify
# 1.30 s) = 26.7x; --verify full 17.1 s; bulk copy 43.4 s. Earlier the same day:
# Measured 2026-12-04 (2 CPUs, cold caches, other work light): store 242,896 entries, 206,892
# files, 8.8 GB; guide `rsync -a` 63.2 s of downtime; `cm-migrate run --verify changed` 2.1 s
# (delta 0.79 s for 6,431 entries in the 180 changed directories = 8,130 entries/s, verify
# 1.33 s) = 29.6x shorter; with --verify full 17.7 s; the live bulk copy (not downtime) 49.4 s.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-4500}
per=${2:-40}
write_secs=${3:-20}
[ "$(id -u)" = 0 ] || { echo "bench/downtime.sh: run as root (loop mount, fanotify)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench/downtime.sh: needs python3" >&2; exit 2; }
W=/var/tmp/cm-bench-downtime
umount "$W/mnt" 2>/dev/null || true
rm -rf "$W"
mkdir -p "$W/mnt"
cleanup() {
  [ -n "${writer:-}" ] && kill "$writer" 2>/dev/null || true
  umount "$W/mnt" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

cargo build --release -q -p cm-migrate -p cm-verify
BIN=$PWD/target/release

truncate -s 24G "$W/img"   # the store, then our copy or the guide's (ours is removed first)
mkfs.ext4 -q -F -N 1500000 "$W/img"
mount -o loop "$W/img" "$W/mnt"
M=$W/mnt
R=$M/old
mkdir -p "$R/etc/dkimkeys" "$R/usr/local/lib/chatmaild" "$M/ours" "$M/guide/data/chatmail" "$W/state"
printf '[params]\nmail_domain = example.org\n' >"$R/usr/local/lib/chatmaild/chatmail.ini"
printf 'not a real key\n' >"$R/etc/dkimkeys/opendkim.private"
chmod 0600 "$R/etc/dkimkeys/opendkim.private"
mkdir -p "$R/var/lib/acme/live" "$R/var/lib/acme/certs/c1"
echo cert >"$R/var/lib/acme/certs/c1/cert"
ln -s ../certs/c1 "$R/var/lib/acme/live/example.org"
cp docker/docker-compose.yaml "$M/ours/"
echo "generating the store ($users mailboxes x $per messages) ..." >&2
bench/gen-tree.sh "$R/home" "$users" "$per"
nfiles=$(find "$R/home" -type f | wc -l)
nentries=$(find "$R/home" | wc -l)
size=$(du -sh "$R/home" | cut -f1)
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null && echo cold || echo warm; }

# --- the writer: delivery, moves to cur/, deletions, flag changes in 1% of the mailboxes
cat >"$W/writer.py" <<'PY'
import os, random, sys, time
base, secs = sys.argv[1], float(sys.argv[2])
rnd = random.Random(7)
users = sorted(os.listdir(base))
hot = users[:: max(1, len(users) // max(1, len(users) // 100))][: max(1, len(users) // 100)]
end = time.time() + secs
n = 0
while time.time() < end:
    u = os.path.join(base, rnd.choice(hot))
    name = "%d.W%d.bench:2," % (time.time(), n)
    with open(os.path.join(u, "tmp", name), "wb") as f:
        f.write(os.urandom(rnd.randrange(2048, 20480)))
    os.rename(os.path.join(u, "tmp", name), os.path.join(u, "new", name))
    if n % 3 == 0:
        for m in os.listdir(os.path.join(u, "new"))[:1]:
            os.rename(os.path.join(u, "new", m), os.path.join(u, "cur", m + "S"))
    if n % 5 == 0:
        cur = os.listdir(os.path.join(u, "cur"))
        if cur:
            os.unlink(os.path.join(u, "cur", rnd.choice(cur)))
    if n % 7 == 0:
        os.utime(os.path.join(u, "password"))
    n += 1
    time.sleep(0.002)
print("writer: %d deliveries in %d mailboxes" % (n, len(hot)), file=sys.stderr)
open(sys.argv[3], "w").write("%d\n" % (time.time() * 1000))
PY

printf '# identity: the generated store has no service users\n' >"$W/users"
# --- cm-migrate run: writer during the live phase
cache_ours=$(drop)
python3 "$W/writer.py" "$R/home/vmail/mail/example.org" "$write_secs" "$W/writer.end" & writer=$!
rc=0
"$BIN/cm-migrate" run --root "$R" --project-dir "$M/ours" --state-dir "$W/state" \
  --owner-map "$W/users" \
  --verify changed --json >"$W/ours.json" 2>"$W/ours.log" || rc=$?
wait "$writer" || true
writer=
# the writer stands for the services: it must have stopped before the downtime began
python3 - "$W/ours.json" "$W/writer.end" <<'PY' || exit 1
import json, sys
r = json.load(open(sys.argv[1])); end = int(open(sys.argv[2]).read())
start = (r.get("downtime") or {}).get("started_unix_ms")
if start is None:
    start = min([e for e in [end + 1]])  # no downtime: the run failed; say why below
if end >= start:
    sys.exit("INVALID: the writer ran into the downtime (the bulk copy was shorter than "
             "WRITE_SECS): use a larger store or a smaller WRITE_SECS")
PY
[ "$rc" = 0 ] || { cat "$W/ours.log" >&2; cat "$W/ours.json" >&2; exit 1; }
# the same again with the full verification (a fresh run: nothing changed since)
"$BIN/cm-migrate" run --root "$R" --project-dir "$M/ours" --state-dir "$W/state" \
  --owner-map "$W/users" \
  --verify full --json >"$W/full.json" 2>"$W/full.log" || {
  cat "$W/full.log" >&2; cat "$W/full.json" >&2; exit 1; }

# --- the guide: everything stopped, then rsync -a of the whole store, cold cache
rm -rf "$M/ours/data"   # room for the guide's copy (not timed)
cache_guide=$(drop)
t0=$(date +%s.%N)
rsync -a "$R/home/" "$M/guide/data/chatmail/"
t1=$(date +%s.%N)
guide_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")

python3 - "$W/ours.json" "$W/full.json" "$guide_s" "$nfiles" "$nentries" "$size" "$cache_ours" "$cache_guide" <<'PY'
import json, sys
ours, full = (json.load(open(p)) for p in sys.argv[1:3])
guide_s = float(sys.argv[3]); nfiles, nentries, size = sys.argv[4], sys.argv[5], sys.argv[6]
def step(r, n):
    return next(s for s in reversed(r["steps"]) if s["step"] == n)
d = ours["downtime"]; parts = d["parts"]
delta = step(ours, "delta")
delta_s = parts.get("delta", delta["ms"]) / 1000
scanned = delta["summary"].split("looked at ")[1].split(" ")[0]
notes = " ".join(delta.get("notes", []))
fullv = step(full, "verify")["ms"] / 1000
ours_s = d["ms"] / 1000
print(f"store: {nentries} entries, {nfiles} files, {size}; caches: cm-migrate {sys.argv[7]}, guide {sys.argv[8]}")
print(f"bulk copy (relay serving, not downtime): {step(ours, 'bulk-copy')['ms']/1000:.1f} s")
print(f"{'procedure':<44} {'downtime':>10}")
print(f"{'guide: rsync -a of the whole store':<44} {guide_s:>9.1f}s")
print(f"{'cm-migrate run --verify changed':<44} {ours_s:>9.1f}s   (delta {delta_s:.2f} s, settings {parts.get('settings',0)/1000:.2f} s, verify {parts.get('verify',0)/1000:.2f} s)")
print(f"{'  ... with --verify full (cm-verify all)':<44} {ours_s - parts.get('verify',0)/1000 + fullv:>9.1f}s   (verify {fullv:.1f} s)")
print(f"delta pass: {scanned} entries looked at in {delta_s:.2f} s = {int(scanned)/max(delta_s,1e-9):.0f} entries/s; {notes}")
print(f"ratio guide / cm-migrate (--verify changed): {guide_s / max(ours_s, 1e-9):.1f}x")
PY
