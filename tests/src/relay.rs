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
