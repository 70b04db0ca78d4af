#!/usr/bin/env bash
# Build a tree holding every kind of entry and metadata cm-copy-data must preserve (run as
# root): setuid/setgid/sticky modes, numeric owners without a passwd entry, a FIFO, char and
# block devices, a socket, xattrs (user., trusted., security.), POSIX ACLs (access and
# default), a sparse file with a trailing hole, hard links (also across directories), dangling,
# looping, absolute and relative symlinks, non-UTF-8 and newline names, a path longer than
# PATH_MAX, empty and read-only directories, nanosecond times (a symlink's own too).
# Usage: copy-tree.sh DIR   (DIR must not exist)
set -euo pipefail
D=$1
[ ! -e "$D" ] || { echo "copy-tree.sh: $D exists" >&2; exit 2; }
mkdir -p "$D"
cd "$D"
mkdir -p vmail/mail/example.org/alice/{cur,new,tmp} vmail/mail/example.org/bob/cur empty ro keys
printf 'hello\n' > vmail/mail/example.org/alice/cur/1.M1:2,S
head -c 200000 /dev/urandom > vmail/mail/example.org/alice/cur/2.big:2,S
ln vmail/mail/example.org/alice/cur/1.M1:2,S vmail/mail/example.org/bob/cur/1.M1:2,S
ln vmail/mail/example.org/alice/cur/1.M1:2,S vmail/mail/example.org/alice/new/third-name
: > vmail/mail/example.org/alice/password
chown -R 5000:5000 vmail
chmod 0700 vmail/mail/example.org/alice vmail/mail/example.org/bob
chmod 0600 vmail/mail/example.org/alice/cur/*
printf 'KEY\n' > keys/opendkim.private; chmod 0600 keys/opendkim.private; chown 123:456 keys/opendkim.private
printf 'x' > setuid; chmod 4755 setuid
printf 'x' > setgid; chmod 2710 setgid
mkdir sticky; chmod 1777 sticky
mkfifo fifo; chmod 0640 fifo
mknod chardev c 1 3; mknod blockdev b 7 200; chmod 0600 blockdev
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' sock
printf 'attrs' > xattrs
setfattr -n user.comment -v "hello world" xattrs
setfattr -n trusted.secret -v 0x00ff00 xattrs
setfattr -n security.capability -v 0x0100000200040000000000000000000000000000 setuid 2>/dev/null || true
printf 'acl' > acl-file; setfacl -m u:1234:rw,g:2345:r acl-file
mkdir acl-dir; setfacl -m u:1234:rwx acl-dir; setfacl -d -m u:1234:rx,g:2345:rx acl-dir
printf 'inherits' > acl-dir/child
# sparse: data, hole, data, trailing hole
printf 'start' > sparse; dd if=/dev/urandom of=sparse bs=4096 seek=256 count=1 conv=notrunc status=none; truncate -s 8M sparse
ln -s vmail/mail rel-link
ln -s /etc/passwd abs-link
ln -s does/not/exist dangling
ln -s loop-b loop-a; ln -s loop-a loop-b
ln -s ../keys vmail/up-link
chown -h 77:88 rel-link
printf 'nonutf8' > "$(printf 'bad-\xff\xfe-name')"
printf 'nl' > "$(printf 'new\nline')"
printf 'sp' > ' leading space'
mkdir ./-dash; printf 'x' > ./-dash/-file
# A very long path (about 3,000 bytes: 12 levels of 250-byte names; rsync and path-based
# tools stop at PATH_MAX, 4096).
long=$(printf 'l%.0s' $(seq 1 250))
(
  for i in $(seq 1 12); do mkdir "$long$i"; cd "$long$i"; done
  printf 'deep' > "$long-file"
)
printf 'ro' > ro/inside; chmod 0444 ro/inside; chmod 0555 ro
chmod 0700 empty
# nanosecond times everywhere (directories last), and a symlink's own times
find . -depth ! -type l -exec touch -h -d '2023-05-06 07:08:09.123456789' {} +
touch -h -d '2021-01-02 03:04:05.987654321' rel-link dangling
touch -a -d '2022-02-02 02:02:02.5' xattrs
touch -m -d '2020-01-01 00:00:00.000000001' vmail/mail/example.org/alice/password
