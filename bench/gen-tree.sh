#!/usr/bin/env bash
# Generate a maildir-like tree for benchmarks (shared by bench/copy.sh and the verify
# benchmark): USERS mailboxes under vmail/mail/example.org/, each with cur/ new/ tmp/, a
# .Sent folder, a password file and dovecot index files; mail files of 2-50 KiB, about one in
# 500 an attachment of 1-20 MiB; one message in 20 hard-linked into another user's mailbox
# (as dovecot does for copies); owner 5000:5000, dirs 0700, files 0600. Deterministic
# (seeded), so runs are comparable.
# Usage: bench/gen-tree.sh DIR [USERS=500] [FILES_PER_USER=40]
set -euo pipefail
dir=${1:?usage: gen-tree.sh DIR [USERS] [FILES_PER_USER]}
users=${2:-500}
per=${3:-40}
command -v python3 >/dev/null || { echo "gen-tree.sh: needs python3 (.ci/install-deps)" >&2; exit 2; }
python3 - "$dir" "$users" "$per" <<'PY'
import os, random, sys
root, users, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(20260101)
base = os.path.join(root, "vmail", "mail", "example.org")
os.makedirs(base, exist_ok=True)
blob = os.urandom(1 << 20)  # source of incompressible bytes
def body(n):
    out = bytearray()
    while len(out) < n:
        off = rnd.randrange(0, len(blob) - 4096)
        out += blob[off:off + min(n - len(out), len(blob) - off)]
    return bytes(out[:n])
prev = []
files = dirs = links = 0
total = 0
for u in range(users):
    ud = os.path.join(base, "user%05d" % u)
    for sub in ("cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"):
        os.makedirs(os.path.join(ud, sub), exist_ok=True)
        dirs += 1
    with open(os.path.join(ud, "password"), "wb") as f:
        f.write(b"{SHA512-CRYPT}$6$" + os.urandom(40).hex().encode())
    for idx in ("dovecot.index", "dovecot.index.log", "dovecot-uidlist"):
        with open(os.path.join(ud, idx), "wb") as f:
            f.write(body(rnd.randrange(1024, 16384)))
    files += 4
    for m in range(per):
        size = rnd.randrange(2048, 51200)
        if rnd.random() < 1 / 500:
            size = rnd.randrange(1 << 20, 20 << 20)
        folder = "cur" if rnd.random() < 0.8 else ".Sent/cur"
        name = "%d.M%dP%d.host,S=%d,W=%d:2,S" % (1700000000 + m, u, m, size, size + 40)
        p = os.path.join(ud, folder, name)
        with open(p, "wb") as f:
            f.write(body(size))
        total += size
        files += 1
        if prev and rnd.random() < 0.05:
            src = rnd.choice(prev)
            os.link(src, os.path.join(ud, "cur", "copy%d-" % links + os.path.basename(src)))
            links += 1
        prev.append(p)
        if len(prev) > 200:
            prev.pop(0)
print("gen-tree: %d files, %d hard links, %d dirs, %.1f MB" % (files, links, dirs, total / 1e6), file=sys.stderr)
PY
chown -R 5000:5000 "$dir/vmail"
find "$dir/vmail" -type d -exec chmod 0700 {} +
find "$dir/vmail" -type f -exec chmod 0600 {} +
