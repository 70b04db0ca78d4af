#!/bin/bash
# Test-only, run inside the container of the docker end-to-end tests (as root): the mailstack
# stage has Debian's postfix and opendkim as packaged; this gives them the part of chatmail
# relay 1.12.0's configuration that decides what is DKIM-signed, so that a message takes the
# path a relay's outgoing mail takes through postfix and opendkim.
#
#   dkim-e2e.sh configure DOMAIN         opendkim and postfix as cmdeploy configures them
#   dkim-e2e.sh send FROM TO MSGID       one message over SMTP to the reinject port
#   dkim-e2e.sh delivered MAILDIR MSGID OUT  the delivered message, once it is there, to OUT
#   dkim-e2e.sh verify FILE              opendkim verifying FILE, the key looked up in DNS
#   dkim-e2e.sh forge DOMAIN OUT         a message signed by opendkim for DOMAIN, selector
#                                        opendkim, with a fresh key of its own
#
# chatmail signs what reaches postfix's reinject smtpd (127.0.0.1:10025, where filtermail
# hands back a user's outgoing mail): `-o milter_macro_daemon_name=ORIGINATING` with
# opendkim as its milter, opendkim's `MTA ORIGINATING` and `InternalHosts -` (nothing else
# is signed), the key chosen by the SigningTable in /etc/dkimkeys (the From address). Mail
# for the relay's own domain is then handed to dovecot over LMTP.
# (cmdeploy/src/cmdeploy/opendkim/opendkim.conf, postfix/main.cf.j2, postfix/master.cf.j2;
# there filtermail sits before the reinject port: not in this image, so the message is sent
# to the reinject port directly.)
set -euo pipefail

configure() {
  local domain=$1
  # opendkim.conf of chatmail 1.12.0 (Domain, Selector, KeyFile as it renders them)
  cat >/etc/opendkim.conf <<EOF
Syslog			yes
SyslogSuccess		yes
Canonicalization	relaxed/simple
On-BadSignature		reject
On-KeyNotFound		reject
On-NoSignature		reject
DNSTimeout		60
Domain			$domain
Selector		opendkim
KeyFile			/etc/dkimkeys/opendkim.private
KeyTable		/etc/dkimkeys/KeyTable
SigningTable		refile:/etc/dkimkeys/SigningTable
SignHeaders		*,+autocrypt,+content-type
OversignHeaders		from,reply-to,subject,date,to,cc,resent-date,resent-from,resent-sender,resent-to,resent-cc,in-reply-to,references,list-id,list-help,list-unsubscribe,list-subscribe,list-post,list-owner,list-archive,autocrypt
UserID			opendkim
UMask			007
Socket			local:/var/spool/postfix/opendkim/opendkim.sock
PidFile			/run/opendkim/opendkim.pid
TrustAnchorFile		/usr/share/dns/root.key
MTA			ORIGINATING
InternalHosts		-
EOF
  install -d -o opendkim -g opendkim -m 0750 /var/spool/postfix/opendkim
  usermod -a -G opendkim postfix
  # main.cf: the relay's domain delivered to dovecot over LMTP, any local part
  postconf -e "myorigin = $domain" "mydestination = $domain" \
    "local_transport = lmtp:unix:private/dovecot-lmtp" "local_recipient_maps =" \
    "inet_interfaces = loopback-only"
  # master.cf: the reinject smtpd, with opendkim as its milter
  postconf -M "127.0.0.1:10025/inet=127.0.0.1:10025 inet n - n - 100 smtpd"
  local o
  for o in syslog_name=postfix/reinject milter_macro_daemon_name=ORIGINATING \
    "smtpd_relay_restrictions=permit_mynetworks,reject" \
    smtpd_milters=unix:opendkim/opendkim.sock; do
    postconf -P "127.0.0.1:10025/inet/$o"
  done
  # dovecot's LMTP socket where postfix looks for it
  cat >/etc/dovecot/conf.d/99-e2e-lmtp.conf <<'EOF'
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    user = postfix
    group = postfix
    mode = 0600
  }
}
EOF
  systemctl restart opendkim dovecot postfix
}

# One SMTP reply (continuation lines included); fails unless its code starts with $1.
reply() {
  local want=$1 line
  while IFS= read -r -t 30 line <&3; do
    line=${line%$'\r'}
    echo "S: $line"
    [[ $line == [0-9][0-9][0-9]-* ]] && continue
    [[ $line == "$want"* ]] && return 0
    echo "expected a $want.. reply" >&2
    return 1
  done
  echo "no reply from the server" >&2
  return 1
}

say() {
  echo "C: $1"
  printf '%s\r\n' "$1" >&3
}

send() {
  local from=$1 to=$2 msgid=$3
  exec 3<>/dev/tcp/127.0.0.1/10025
  reply 220
  say "EHLO localhost"; reply 250
  say "MAIL FROM:<$from>"; reply 250
  say "RCPT TO:<$to>"; reply 250
  say "DATA"; reply 354
  printf '%s\r\n' "From: <$from>" "To: <$to>" "Subject: signed by the relay" \
    "Date: $(date -R)" "Message-ID: <$msgid>" "" "sent through postfix and opendkim" "." >&3
  reply 250
  say "QUIT"; reply 221
  exec 3>&-
}

delivered() {
  local maildir=$1 msgid=$2 out=$3 f
  for _ in $(seq 1 120); do
    f=$(grep -l -F "Message-ID: <$msgid>" "$maildir"/new/* "$maildir"/cur/* 2>/dev/null | head -n1 || true)
    if [ -n "$f" ]; then
      # (opendkim -t takes a comma-separated list: a maildir name is not a file name to it)
      install -m 0644 "$f" "$out"
      return 0
    fi
    sleep 0.5
  done
  echo "no message $msgid in $maildir; the queue:" >&2
  postqueue -p >&2 || true
  journalctl -u postfix@- -u opendkim -u dovecot --no-pager -n 40 >&2 || true
  return 1
}

# opendkim itself (its test mode: the file taken as an arriving message) verifying, the key
# record looked up in DNS: the container's resolver (unbound on 127.0.0.1), without the DNSSEC
# trust anchor (which would make it resolve from the root servers).
verify() {
  local file=$1 conf
  conf=$(mktemp /tmp/verify.XXXXXX)
  printf 'Mode v\nSyslog no\nNameservers 127.0.0.1\n' >"$conf"
  opendkim -x "$conf" -t "$file" 2>&1
  rm -f "$conf"
}

# opendkim signing (its test mode, as an internal host's message) with a key made here.
forge() {
  local domain=$1 out=$2 d
  d=$(mktemp -d /tmp/forge.XXXXXX)
  opendkim-genkey -D "$d" -d "$domain" -s opendkim
  printf '%s\n' "From: <alice0test@$domain>" "To: <bob00test@$domain>" "Subject: not ours" \
    "Date: $(date -R)" "Message-ID: <forged@$domain>" "" "signed by another key" >"$d/msg"
  printf 'Mode s\nSyslog no\nDomain %s\nSelector opendkim\nKeyFile %s\nRequireSafeKeys no\n' \
    "$domain" "$d/opendkim.private" >"$d/conf"
  # its output: a line naming the file, then the DKIM-Signature field (CRLF folded)
  opendkim -x "$d/conf" -t "$d/msg" >"$d/sig"
  grep -q '^DKIM-Signature: ' "$d/sig" || { cat "$d/sig" >&2; return 1; }
  { sed -n '/^DKIM-Signature: /,$p' "$d/sig" | tr -d '\r'; cat "$d/msg"; } >"$out"
  chmod 0644 "$out"
  rm -rf "$d"
}

"$@"
