//! A chatmail relay in a booted container: the real packages plus chatmail-like units, as the
//! tests that stop and restore it (systemd_nspawn, migrate_nspawn) set it up.

use crate::nspawn::{stdout, text, Container, LISTEN};
use cm_core::systemd::parse::parse_show;
use cm_core::systemd::UnitInfo;
use std::collections::BTreeMap;

/// ActiveState and UnitFileState of units, by Id.
pub fn states(c: &Container, units: &[&str]) -> BTreeMap<String, UnitInfo> {
    let mut a = vec![
        "systemctl",
        "show",
        "-p",
        "Id,LoadState,ActiveState,SubState,UnitFileState",
        "--",
    ];
    a.extend_from_slice(units);
    let o = c.exec(&a);
    assert!(o.status.success(), "{}", text(&o));
    parse_show("systemctl show", &stdout(&o))
        .expect("parse systemctl show")
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect()
}

pub fn service(c: &Container, name: &str, exec: &str, extra: &str) {
    c.write(
        &format!("/etc/systemd/system/{name}.service"),
        &format!(
            "[Unit]\nDescription=test {name}\n[Service]\nExecStart={exec}\n{extra}\n\
             [Install]\nWantedBy=multi-user.target\n"
        ),
    );
}

pub fn timer(c: &Container, name: &str) {
    c.write(
        &format!("/etc/systemd/system/{name}.service"),
        "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    );
    c.write(
        &format!("/etc/systemd/system/{name}.timer"),
        "[Timer]\nOnCalendar=*-01-01 00:00:00\n[Install]\nWantedBy=timers.target\n",
    );
}

/// chatmail's units as a 1.12 relay has them (the real packages are already installed and
/// running), a legacy echobot, a legacy cron job, one unit enabled but not running, one
/// running but not enabled, a non-chatmail unit and an unknown chatmail-looking leftover.
pub fn chatmail_relay(c: &Container) {
    c.write("/usr/local/bin/listen", LISTEN);
    c.sh("chmod 755 /usr/local/bin/listen");
    let sleep = "/bin/sleep infinity";
    service(c, "doveauth", sleep, "");
    service(c, "filtermail", "/usr/local/bin/listen 10080", "");
    service(
        c,
        "filtermail-incoming",
        "/usr/local/bin/listen 10081 10082",
        "",
    );
    service(c, "filtermail-transport", "/usr/local/bin/listen 10083", "");
    service(c, "chatmail-metadata", sleep, "");
    service(c, "lastlogin", sleep, "");
    service(c, "turnserver", sleep, "");
    service(c, "iroh-relay", "/usr/local/bin/listen 3340", "");
    service(c, "echobot", sleep, "");
    service(c, "backup-agent", sleep, ""); // not chatmail's
    service(c, "chatmail-custom", sleep, ""); // looks like chatmail's, unknown
    timer(c, "chatmail-expire");
    timer(c, "chatmail-fsreport");
    timer(c, "acmetool-reconcile");
    c.write(
        "/etc/systemd/system/tls-cert-reload.service",
        "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    );
    c.write(
        "/etc/systemd/system/tls-cert-reload.path",
        "[Path]\nPathChanged=/etc/ssl/certs/mailserver.pem\n[Install]\nWantedBy=multi-user.target\n",
    );
    c.write(
        "/etc/cron.d/expunge",
        "2 0 * * * vmail find /home/vmail/mail -mtime +20 -delete\n",
    );
    c.sh("systemctl daemon-reload
         systemctl enable --now doveauth filtermail filtermail-incoming filtermail-transport \
           chatmail-metadata iroh-relay echobot backup-agent chatmail-custom \
           chatmail-expire.timer chatmail-fsreport.timer acmetool-reconcile.timer \
           tls-cert-reload.path 2>/dev/null
         systemctl enable lastlogin 2>/dev/null
         systemctl start turnserver");
}

/// Every chatmail unit the relay above has (real packages + fakes), and whether it ran.
pub const CHATMAIL_UNITS: &[&str] = &[
    "chatmail-expire.timer",
    "chatmail-fsreport.timer",
    "acmetool-reconcile.timer",
    "tls-cert-reload.path",
    "postfix@-.service",
    "postfix.service",
    "filtermail.service",
    "filtermail-incoming.service",
    "filtermail-transport.service",
    "dovecot.service",
    "doveauth.service",
    "lastlogin.service",
    "chatmail-metadata.service",
    "echobot.service",
    "opendkim.service",
    "nginx.service",
    "iroh-relay.service",
    "turnserver.service",
    "unbound.service",
    "unbound-resolvconf.service",
];
pub const FOREIGN: &[&str] = &["backup-agent.service", "chatmail-custom.service"];

pub fn all_units() -> Vec<&'static str> {
    CHATMAIL_UNITS.iter().chain(FOREIGN).copied().collect()
}

pub fn summary(m: &BTreeMap<String, UnitInfo>) -> BTreeMap<String, (String, String)> {
    m.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v.active_state.clone(), v.unit_file_state.clone()),
            )
        })
        .collect()
}

/// The mail domain of [`serving_relay`].
pub const DOMAIN: &str = "chat.example.org";

/// Writes, renames, deletes and touches mail like dovecot and doveauth do, until stopped.
pub const WRITER: &str = r#"#!/bin/sh
d=/home/vmail/mail/chat.example.org
i=0
while :; do
  i=$((i+1)); u=u$((i % 20))@chat.example.org; v=u$(((i + 7) % 20))@chat.example.org
  echo "mail $i" > $d/$u/tmp/w$i && mv $d/$u/tmp/w$i $d/$u/new/w$i
  # as dovecot does: a message for two recipients is one inode in both mailboxes, a
  # message copied into another mailbox a new name of its inode
  [ $((i % 4)) = 0 ] && ln $d/$u/new/w$i $d/$v/new/w$i.l
  [ $((i % 6)) = 0 ] && ln "$d/$u/cur/m1:2,S" "$d/$v/cur/c$i:2,S"
  [ $((i % 3)) = 0 ] && mv $d/$u/new/w$((i-1)) "$d/$u/cur/w$((i-1)):2,S" 2>/dev/null
  [ $((i % 7)) = 0 ] && rm -f "$d/$u/cur/w$((i-6)):2,S"
  [ $((i % 5)) = 0 ] && touch $d/$u/password
  [ $((i % 11)) = 0 ] && chmod 0640 $d/$u/new/w$i
  sleep 0.005
done
"#;

/// A serving relay (booted with nspawn options `opts`) with a mail store of `users` x
/// `per_user` messages on a tmpfs of its own, a DKIM key, acmetool state, a project
/// directory /srv/proj and a unit that keeps writing mail ([`WRITER`]), as the tests of
/// `cm-migrate run` (migrate_nspawn, migrate_compose) use it.
pub fn serving_relay(tag: &str, users: usize, per_user: usize, opts: &[&str]) -> Container {
    let c = Container::boot("cmm", tag, opts, &["cm-migrate", "cm-verify"]);
    chatmail_relay(&c);
    // the unknown chatmail-looking unit of the setup is the operator's to handle: done here
    c.sh("systemctl disable --now chatmail-custom 2>/dev/null");
    // chatmail's mail user, as cmdeploy makes it (the host's ids are its own)
    c.sh(
        "useradd --system --uid 5000 --user-group --no-create-home --home-dir /home/vmail \
          --shell /usr/sbin/nologin vmail",
    );
    c.sh("mount -t tmpfs -o size=512m,mode=0755 cmstore /home");
    // a DKIM key as opendkim keeps it, and acmetool's state with its relative links
    c.sh("install -d -m 0750 -o opendkim -g opendkim /etc/dkimkeys
          printf 'not a real key\n' > /etc/dkimkeys/opendkim.private
          chown opendkim:opendkim /etc/dkimkeys/opendkim.private
          chmod 0600 /etc/dkimkeys/opendkim.private
          mkdir -p /var/lib/acme/certs/c1 /var/lib/acme/keys/k1 /var/lib/acme/live
          echo cert > /var/lib/acme/certs/c1/cert; echo key > /var/lib/acme/keys/k1/privkey
          chmod 0600 /var/lib/acme/keys/k1/privkey
          ln -s ../../keys/k1/privkey /var/lib/acme/certs/c1/privkey
          ln -s ../certs/c1 /var/lib/acme/live/chat.example.org");
    c.sh(&format!(
        "d=/home/vmail/mail/{DOMAIN}
         for u in $(seq 0 {last}); do
           a=$d/u$u@{DOMAIN}
           mkdir -p $a/cur $a/new $a/tmp
           echo '{{SHA512-CRYPT}}x' > $a/password
           for m in $(seq 1 {per_user}); do echo \"old $m\" > \"$a/cur/m$m:2,S\"; done
         done
         chown -R vmail:vmail /home/vmail && chmod 0700 /home/vmail
         mkdir -p /usr/local/lib/chatmaild /srv/proj /etc/systemd/system/doveauth.service.d
         printf '[params]\\nmail_domain = {DOMAIN}\\n' > /usr/local/lib/chatmaild/chatmail.ini",
        last = users - 1
    ));
    let compose = std::fs::read_to_string(crate::repo_root().join("docker/docker-compose.yaml"))
        .expect("docker/docker-compose.yaml");
    c.write("/srv/proj/docker-compose.yaml", &compose);
    c.write("/usr/local/bin/writer", WRITER);
    c.write(
        "/etc/systemd/system/doveauth.service.d/writer.conf",
        "[Service]\nExecStart=\nExecStart=/usr/local/bin/writer\n",
    );
    c.sh("chmod 755 /usr/local/bin/writer; systemctl daemon-reload; systemctl restart doveauth");
    c
}
