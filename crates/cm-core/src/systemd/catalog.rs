//! Which units are chatmail's, and in which order they stop.
//!
//! Invariant: pure data and pure functions. A unit is chatmail's only if it is named in
//! [`classify`]'s table (or triggers such a unit, see `plan`); everything else is never touched.
//! Names that merely look like chatmail's are reported by [`looks_like_chatmail`], never stopped.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The phases of a safe stop, in stop order. Restoring runs them in reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Timers, path and socket units: nothing may fire (expiry, renewal) or be socket-activated
    /// while the rest stops or the data is copied.
    Triggers,
    /// postfix first among daemons: it stops accepting mail; senders retry later.
    Postfix,
    /// filtermail, filtermail-incoming, filtermail-transport.
    Filters,
    /// dovecot: delivery and IMAP.
    Dovecot,
    /// chatmail's own services (doveauth, lastlogin, chatmail-metadata, legacy ones).
    Chatmail,
    /// opendkim (signing milter; nothing is sent once postfix is down).
    Opendkim,
    /// nginx, fcgiwrap, acmetool, iroh-relay, turnserver, mtail, tls-cert-reload.
    WebRelay,
    /// unbound, the host resolver: last, everything above may need DNS while stopping.
    Unbound,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Triggers => "timers, paths, sockets",
            Stage::Postfix => "postfix",
            Stage::Filters => "filtermail",
            Stage::Dovecot => "dovecot",
            Stage::Chatmail => "chatmail services",
            Stage::Opendkim => "opendkim",
            Stage::WebRelay => "web and relay services",
            Stage::Unbound => "unbound",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a unit comes from, for the plan and the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Deployed by current chatmail releases (or by the packages they install).
    Current,
    /// Deployed only by old releases; may linger on upgraded hosts.
    Legacy,
}

/// One row of the catalog: a unit name (exact) or a template prefix (`postfix@` matches every
/// instance such as `postfix@-.service`).
struct Entry {
    name: &'static str,
    stage: Stage,
    origin: Origin,
}

const fn cur(name: &'static str, stage: Stage) -> Entry {
    Entry {
        name,
        stage,
        origin: Origin::Current,
    }
}
const fn old(name: &'static str, stage: Stage) -> Entry {
    Entry {
        name,
        stage,
        origin: Origin::Legacy,
    }
}

/// Chatmail's units (releases 1.1 to 1.12, plus helpers of the packages they install), in stop
/// order within each stage. Template entries end in `@`.
const CATALOG: &[Entry] = &[
    cur("chatmail-expire.timer", Stage::Triggers),
    cur("chatmail-fsreport.timer", Stage::Triggers),
    cur("acmetool-reconcile.timer", Stage::Triggers),
    cur("tls-cert-reload.path", Stage::Triggers),
    cur("postfix-resolvconf.path", Stage::Triggers),
    cur("dovecot.socket", Stage::Triggers),
    cur("fcgiwrap.socket", Stage::Triggers),
    cur("postfix@", Stage::Postfix),
    cur("postfix.service", Stage::Postfix),
    cur("postfix-resolvconf.service", Stage::Postfix),
    cur("filtermail.service", Stage::Filters),
    cur("filtermail-incoming.service", Stage::Filters),
    cur("filtermail-transport.service", Stage::Filters),
    cur("dovecot.service", Stage::Dovecot),
    cur("doveauth.service", Stage::Chatmail),
    cur("lastlogin.service", Stage::Chatmail),
    cur("chatmail-metadata.service", Stage::Chatmail),
    cur("chatmail-expire.service", Stage::Chatmail),
    cur("chatmail-fsreport.service", Stage::Chatmail),
    old("echobot.service", Stage::Chatmail),
    old("doveauth-dictproxy.service", Stage::Chatmail),
    old("mta-sts-daemon.service", Stage::Chatmail),
    cur("opendkim.service", Stage::Opendkim),
    cur("nginx.service", Stage::WebRelay),
    cur("fcgiwrap.service", Stage::WebRelay),
    cur("acmetool-redirector.service", Stage::WebRelay),
    cur("acmetool-reconcile.service", Stage::WebRelay),
    cur("iroh-relay.service", Stage::WebRelay),
    cur("turnserver.service", Stage::WebRelay),
    cur("mtail.service", Stage::WebRelay),
    cur("tls-cert-reload.service", Stage::WebRelay),
    cur("unbound.service", Stage::Unbound),
    cur("unbound-resolvconf.service", Stage::Unbound),
];

/// A unit's place in the stop order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    pub stage: Stage,
    /// Position within the catalog (stop order inside a stage).
    pub rank: usize,
    pub origin: Origin,
}

/// The unit type: the part after the last dot (`service`, `timer`, ...).
pub fn unit_type(unit: &str) -> &str {
    unit.rsplit_once('.').map(|(_, t)| t).unwrap_or("")
}

/// Is `unit` one of chatmail's (by the catalog)? Template instances match their template entry
/// (`postfix@-.service` is postfix's); the template itself (`postfix@.service`) never does,
/// since a template cannot run.
pub fn classify(unit: &str) -> Option<Class> {
    for (rank, e) in CATALOG.iter().enumerate() {
        let hit = if let Some(prefix) = e.name.strip_suffix('@') {
            unit.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('@'))
                .and_then(|rest| rest.strip_suffix(".service"))
                .is_some_and(|instance| !instance.is_empty())
        } else {
            unit == e.name
        };
        if hit {
            return Some(Class {
                stage: e.stage,
                rank,
                origin: e.origin,
            });
        }
    }
    None
}

/// The class of a unit that is not in the catalog but triggers (timer, path, socket) a unit
/// that is: it stops with the triggers, after the catalogued ones.
pub fn trigger_class() -> Class {
    Class {
        stage: Stage::Triggers,
        rank: CATALOG
            .iter()
            .position(|e| e.stage != Stage::Triggers)
            .unwrap_or(0),
        origin: Origin::Current,
    }
}

/// Name fragments of chatmail's components: a unit that carries one but is not in the
/// catalog is an unknown leftover, reported and left alone.
const CHATMAIL_HINTS: &[&str] = &[
    "chatmail",
    "filtermail",
    "doveauth",
    "lastlogin",
    "echobot",
    "iroh",
    "acmetool",
    "mta-sts",
    "turnserver",
    "chatmaild",
];

/// Does a unit that is not in the catalog look like chatmail's (by its name, or because its
/// command line runs chatmaild code)? Such units are reported, never touched.
pub fn looks_like_chatmail(unit: &str, exec_start: &str) -> bool {
    if classify(unit).is_some() {
        return false;
    }
    // templates themselves (foo@.service) cannot run: nothing to report
    if unit.contains("@.") {
        return false;
    }
    let lower = unit.to_ascii_lowercase();
    CHATMAIL_HINTS.iter().any(|h| lower.contains(h)) || exec_start.contains("chatmaild")
}

/// Legacy cron jobs of chatmail releases before 1.8 / 1.10 (file names under /etc/cron.d).
/// `expunge` deletes mail. They are renamed aside (a name with a dot is ignored by cron),
/// recorded in the state file and renamed back by a restore.
pub const LEGACY_CRON_FILES: &[&str] = &["expunge", "chatmail-metrics", "acmetool"];

/// The suffix a moved-aside cron file gets.
pub const CRON_ASIDE_SUFFIX: &str = ".cm-migrate-disabled";

/// Sort key of a planned unit: stage, catalog rank, then name (template instances and
/// triggers that share a rank stay in a stable, predictable order).
pub fn order_key(class: &Class, unit: &str) -> (Stage, usize, String) {
    (class.stage, class.rank, unit.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_are_unique_and_stages_are_in_order() {
        let mut seen = std::collections::HashSet::new();
        let mut last = Stage::Triggers;
        for e in CATALOG {
            assert!(seen.insert(e.name), "{} twice in the catalog", e.name);
            assert!(e.stage >= last, "{} is out of stage order", e.name);
            last = e.stage;
        }
    }

    #[test]
    fn template_instances_match_their_template_only() {
        assert_eq!(classify("postfix@-.service").unwrap().stage, Stage::Postfix);
        assert_eq!(
            classify("postfix@out.service").unwrap().stage,
            Stage::Postfix
        );
        assert!(
            classify("postfix@.service").is_none(),
            "a template never runs"
        );
        assert!(classify("postfix@-.socket").is_none());
        assert!(classify("postfixadmin.service").is_none());
    }

    #[test]
    fn published_stop_list_mistakes_are_fixed() {
        assert!(
            classify("chatmail-turn.service").is_none(),
            "does not exist"
        );
        for u in [
            "filtermail-transport.service",
            "fcgiwrap.service",
            "chatmail-expire.timer",
            "chatmail-fsreport.timer",
            "acmetool-reconcile.timer",
            "tls-cert-reload.path",
            "turnserver.service",
        ] {
            assert!(classify(u).is_some(), "{u} must be chatmail's");
        }
    }

    #[test]
    fn legacy_units_are_marked_legacy() {
        for u in [
            "echobot.service",
            "mta-sts-daemon.service",
            "doveauth-dictproxy.service",
        ] {
            assert_eq!(classify(u).unwrap().origin, Origin::Legacy, "{u}");
        }
        assert_eq!(
            classify("doveauth.service").unwrap().origin,
            Origin::Current
        );
    }

    #[test]
    fn foreign_units_are_not_chatmail() {
        for u in [
            "ssh.service",
            "cron.service",
            "apache2.service",
            "systemd-journald.service",
            "unbound-anchor.timer",
            "nginx-debug.service",
        ] {
            assert!(classify(u).is_none(), "{u}");
        }
    }

    #[test]
    fn leftover_detection_by_name_and_command() {
        assert!(looks_like_chatmail("chatmail-foo.service", ""));
        assert!(looks_like_chatmail("chatmail-turn.service", ""));
        assert!(looks_like_chatmail(
            "custom.service",
            "{ path=/usr/local/lib/chatmaild/venv/bin/x ; }"
        ));
        assert!(
            !looks_like_chatmail("doveauth.service", ""),
            "known, not leftover"
        );
        assert!(!looks_like_chatmail("ssh.service", "/usr/sbin/sshd -D"));
        assert!(!looks_like_chatmail("chatmail-foo@.service", ""));
    }

    #[test]
    fn unbound_is_last_and_timers_first() {
        let mut units = vec![
            "unbound.service",
            "nginx.service",
            "chatmail-expire.timer",
            "dovecot.service",
            "postfix.service",
            "postfix@-.service",
            "filtermail.service",
            "doveauth.service",
            "opendkim.service",
            "tls-cert-reload.path",
        ];
        units.sort_by_key(|u| order_key(&classify(u).unwrap(), u));
        assert_eq!(
            units,
            vec![
                "chatmail-expire.timer",
                "tls-cert-reload.path",
                "postfix@-.service",
                "postfix.service",
                "filtermail.service",
                "dovecot.service",
                "doveauth.service",
                "opendkim.service",
                "nginx.service",
                "unbound.service",
            ]
        );
    }
}
