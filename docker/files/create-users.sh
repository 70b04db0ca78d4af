#!/bin/sh
# Create the service users with the fixed numbers of docker/users (run in the image build,
# before any package install). Homes are not created: packages and volumes bring them.
set -eu
users=$1
home_of() {
  case "$1" in
    vmail) echo /home/vmail ;;
    opendkim) echo /run/opendkim ;;
    iroh) echo /var/lib/iroh-relay ;;
    postfix) echo /var/spool/postfix ;;
    dovecot) echo /usr/lib/dovecot ;;
    unbound) echo /var/lib/unbound ;;
    *) echo /nonexistent ;;
  esac
}
# `name uid gid` lines and `#fixed name uid gid` lines; any other `#` starts a comment
sed -e 's/^#fixed[[:space:]]//' -e 's/#.*//' "$users" | while read -r name uid gid; do
  [ -n "$name" ] || continue
  groupadd --system --gid "$gid" "$name"
  useradd --system --uid "$uid" --gid "$gid" --no-create-home \
    --home-dir "$(home_of "$name")" --shell /usr/sbin/nologin "$name"
done
# postfix's second group (setgid postdrop for the sendmail/postqueue programs)
groupadd --system --gid 910 postdrop
