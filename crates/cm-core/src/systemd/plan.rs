//! Discovery of chatmail's units from systemd itself, and the ordered plan.
//!
//! Invariant: the plan holds only catalogued units and the timers, paths and sockets that
//! trigger them; units that look like chatmail's but are not catalogued go to `leftovers`
//! (reported, never touched); units that do not exist (LoadState=not-found) are not planned.

use super::catalog::{
    classify, looks_like_chatmail, order_key, trigger_class, unit_type, Class, LEGACY_CRON_FILES,
};
use super::runner::ServiceManager;
use super::{SystemdError, UnitInfo};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One unit of the plan: what it is now and what stop-services will do to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedUnit {
    pub unit: String,
    pub class: Class,
    /// Its state when discovered.
    pub before: UnitInfo,
    /// It is active: it will be stopped.
    pub stop: bool,
    /// It is enabled: it will be disabled.
    pub disable: bool,
    /// For a trigger that is not catalogued: the chatmail unit it triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<String>,
}

/// The whole plan, in stop order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub units: Vec<PlannedUnit>,
    /// Units that look like chatmail's but are not known: reported, left alone.
    pub leftovers: Vec<UnitInfo>,
    /// Legacy cron files present (to be moved aside).
    pub cron_files: Vec<PathBuf>,
}

impl Plan {
    /// Is there anything to do?
    pub fn has_work(&self) -> bool {
        self.units.iter().any(|u| u.stop || u.disable) || !self.cron_files.is_empty()
    }
    /// Does the plan stop a postfix unit (so the queue must be drained first)?
    pub fn stops_postfix(&self) -> bool {
        self.units
            .iter()
            .any(|u| u.stop && u.class.stage == super::Stage::Postfix)
    }
}

/// Build the plan from what systemd reports now, and the legacy cron files in `cron_dir`.
pub fn discover(sm: &mut dyn ServiceManager, cron_dir: &Path) -> Result<Plan, SystemdError> {
    let names: Vec<String> = sm
        .list_unit_names()?
        .into_iter()
        .filter(|n| !n.contains("@.")) // templates cannot run
        .collect();
    let infos = sm.show(&names)?;
    let mut by_id: BTreeMap<String, UnitInfo> = BTreeMap::new();
    for i in infos {
        if i.load_state == "not-found" || i.id.is_empty() {
            continue;
        }
        by_id.entry(i.id.clone()).or_insert(i);
    }
    plan_from(by_id, sm, cron_dir)
}

fn plan_from(
    mut by_id: BTreeMap<String, UnitInfo>,
    sm: &mut dyn ServiceManager,
    cron_dir: &Path,
) -> Result<Plan, SystemdError> {
    let mut selected: BTreeMap<String, (Class, Option<String>)> = BTreeMap::new();
    for id in by_id.keys() {
        if let Some(c) = classify(id) {
            selected.insert(id.clone(), (c, None));
        }
    }
    add_triggers(&mut selected, &mut by_id, sm)?;
    let mut units: Vec<PlannedUnit> = selected
        .into_iter()
        .filter_map(|(id, (class, triggers))| {
            let before = by_id.get(&id)?.clone();
            Some(PlannedUnit {
                stop: before.is_active(),
                disable: before.is_enabled(),
                unit: id,
                class,
                before,
                triggers,
            })
        })
        .collect();
    units.sort_by_key(|u| order_key(&u.class, &u.unit));

    let leftovers = by_id
        .values()
        .filter(|i| looks_like_chatmail(&i.id, &i.exec_start))
        .filter(|i| !units.iter().any(|u| u.unit == i.id))
        .cloned()
        .collect();

    let cron_files = LEGACY_CRON_FILES
        .iter()
        .map(|name| cron_dir.join(name))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    Ok(Plan {
        units,
        leftovers,
        cron_files,
    })
}

/// The triggers (timers, paths, sockets) of the selected units are chatmail's too: added
/// with the unit each triggers (those not loaded yet are asked for).
fn add_triggers(
    selected: &mut BTreeMap<String, (Class, Option<String>)>,
    by_id: &mut BTreeMap<String, UnitInfo>,
    sm: &mut dyn ServiceManager,
) -> Result<(), SystemdError> {
    let mut missing = BTreeSet::new();
    let mut extra: Vec<(String, String)> = Vec::new();
    for id in selected.keys() {
        let Some(info) = by_id.get(id) else { continue };
        for t in &info.triggered_by {
            if !selected.contains_key(t) {
                extra.push((t.clone(), id.clone()));
                if !by_id.contains_key(t) {
                    missing.insert(t.clone());
                }
            }
        }
    }
    if !missing.is_empty() {
        let m: Vec<String> = missing.into_iter().collect();
        for i in sm.show(&m)? {
            if i.load_state != "not-found" {
                by_id.entry(i.id.clone()).or_insert(i);
            }
        }
    }
    for (t, target) in extra {
        if by_id.contains_key(&t) && matches!(unit_type(&t), "timer" | "path" | "socket") {
            selected
                .entry(t)
                .or_insert_with(|| (trigger_class(), Some(target)));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake systemd for unit tests: units with states, a log of every call, and units that
    //! refuse to stop.
    use super::super::runner::{MailQueue, QueueStatus, ServiceManager};
    use super::super::{SystemdError, UnitInfo};
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    #[derive(Default)]
    pub struct FakeSystemd {
        pub units: BTreeMap<String, UnitInfo>,
        pub log: Vec<String>,
        pub hang_on_stop: BTreeSet<String>,
        /// Units whose disable fails (and fails any batch holding them).
        pub refuse_disable: BTreeSet<String>,
    }

    impl FakeSystemd {
        pub fn add(&mut self, id: &str, active: &str, file_state: &str) -> &mut UnitInfo {
            self.units.insert(
                id.to_string(),
                UnitInfo {
                    id: id.to_string(),
                    load_state: "loaded".into(),
                    active_state: active.into(),
                    sub_state: if active == "active" {
                        "running".into()
                    } else {
                        "dead".into()
                    },
                    unit_file_state: file_state.into(),
                    ..Default::default()
                },
            );
            self.units.get_mut(id).unwrap()
        }
        pub fn state(&self, id: &str) -> (String, String) {
            let u = &self.units[id];
            (u.active_state.clone(), u.unit_file_state.clone())
        }
    }

    impl ServiceManager for FakeSystemd {
        fn list_unit_names(&mut self) -> Result<Vec<String>, SystemdError> {
            self.log.push("list".into());
            Ok(self.units.keys().cloned().collect())
        }
        fn show(&mut self, units: &[String]) -> Result<Vec<UnitInfo>, SystemdError> {
            Ok(units
                .iter()
                .map(|u| {
                    self.units.get(u).cloned().unwrap_or(UnitInfo {
                        id: u.clone(),
                        load_state: "not-found".into(),
                        active_state: "inactive".into(),
                        ..Default::default()
                    })
                })
                .collect())
        }
        fn stop(&mut self, units: &[String], timeout: Duration) -> Result<(), SystemdError> {
            self.log.push(format!("stop {}", units.join(" ")));
            let mut hung = Vec::new();
            for unit in units {
                let u = self.units.get_mut(unit).unwrap();
                if self.hang_on_stop.contains(unit) {
                    u.active_state = "deactivating".into();
                    hung.push(unit.clone());
                } else {
                    u.active_state = "inactive".into();
                    u.sub_state = "dead".into();
                }
            }
            if hung.is_empty() {
                return Ok(());
            }
            Err(SystemdError::Timeout {
                cmd: format!("systemctl stop -- {}", units.join(" ")),
                secs: timeout.as_secs(),
            })
        }
        fn start(&mut self, units: &[String], _t: Duration) -> Result<(), SystemdError> {
            self.log.push(format!("start {}", units.join(" ")));
            for unit in units {
                self.units.get_mut(unit).unwrap().active_state = "active".into();
            }
            Ok(())
        }
        fn disable(&mut self, units: &[String]) -> Result<(), SystemdError> {
            self.log.push(format!("disable {}", units.join(" ")));
            if let Some(r) = units.iter().find(|u| self.refuse_disable.contains(*u)) {
                return Err(SystemdError::Command {
                    cmd: format!("systemctl disable -- {}", units.join(" ")),
                    status: "exit status: 1".into(),
                    stderr: format!("Failed to disable unit {r}"),
                });
            }
            for unit in units {
                self.units.get_mut(unit).unwrap().unit_file_state = "disabled".into();
            }
            Ok(())
        }
        fn enable(&mut self, units: &[String]) -> Result<(), SystemdError> {
            self.log.push(format!("enable {}", units.join(" ")));
            for unit in units {
                self.units.get_mut(unit).unwrap().unit_file_state = "enabled".into();
            }
            Ok(())
        }
        fn reload(&mut self) -> Result<(), SystemdError> {
            self.log.push("reload".into());
            Ok(())
        }
    }

    /// A queue that empties after `drains_after` status calls once flushed.
    #[derive(Default)]
    pub struct FakeQueue {
        pub messages: usize,
        pub drains_after: Option<usize>,
        pub flushed: bool,
        pub calls: usize,
    }

    impl MailQueue for FakeQueue {
        fn flush(&mut self) -> Result<(), SystemdError> {
            self.flushed = true;
            Ok(())
        }
        fn status(&mut self) -> Result<QueueStatus, SystemdError> {
            if self.flushed {
                self.calls += 1;
                if let Some(n) = self.drains_after {
                    if self.calls >= n {
                        self.messages = 0;
                    }
                }
            }
            let mut st = QueueStatus {
                total: self.messages,
                queue_dir: "/var/spool/postfix".into(),
                ..Default::default()
            };
            if self.messages > 0 {
                st.by_queue.insert("deferred".into(), self.messages);
            }
            Ok(st)
        }
    }

    /// A host like a chatmail 1.12 relay after some upgrades, plus foreign units.
    pub fn relay() -> FakeSystemd {
        let mut f = FakeSystemd::default();
        f.add("postfix.service", "active", "enabled");
        f.add("postfix@-.service", "active", "enabled-runtime")
            .wanted_by = vec!["postfix.service".into()];
        f.add("dovecot.service", "active", "enabled");
        f.add("filtermail.service", "active", "enabled");
        f.add("filtermail-incoming.service", "active", "enabled");
        f.add("doveauth.service", "active", "enabled");
        f.add("chatmail-metadata.service", "active", "enabled");
        f.add("opendkim.service", "active", "enabled");
        f.add("nginx.service", "active", "enabled");
        f.add("fcgiwrap.service", "inactive", "static").triggered_by =
            vec!["fcgiwrap.socket".into()];
        f.add("fcgiwrap.socket", "active", "enabled");
        f.add("unbound.service", "active", "enabled");
        f.add("chatmail-expire.timer", "active", "enabled");
        f.add("chatmail-expire.service", "inactive", "static")
            .triggered_by = vec!["chatmail-expire.timer".into()];
        f.add("turnserver.service", "active", "disabled"); // running, not enabled
        f.add("lastlogin.service", "inactive", "enabled"); // enabled, not running
        f.add("echobot.service", "active", "enabled");
        f.add("ssh.service", "active", "enabled");
        f.add("cron.service", "active", "enabled");
        f.add("chatmail-custom.service", "active", "enabled");
        f
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;
    use crate::systemd::Stage;

    #[test]
    fn discovers_chatmail_units_in_safe_order_and_nothing_else() {
        let mut sd = relay();
        let dir = tempfile::tempdir().unwrap();
        let plan = discover(&mut sd, dir.path()).unwrap();
        let order: Vec<&str> = plan.units.iter().map(|u| u.unit.as_str()).collect();
        assert_eq!(
            order,
            vec![
                "chatmail-expire.timer",
                "fcgiwrap.socket",
                "postfix@-.service",
                "postfix.service",
                "filtermail.service",
                "filtermail-incoming.service",
                "dovecot.service",
                "doveauth.service",
                "lastlogin.service",
                "chatmail-metadata.service",
                "chatmail-expire.service",
                "echobot.service",
                "opendkim.service",
                "nginx.service",
                "fcgiwrap.service",
                "turnserver.service",
                "unbound.service",
            ]
        );
        assert!(!order.contains(&"ssh.service") && !order.contains(&"cron.service"));
        let leftovers: Vec<&str> = plan.leftovers.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(leftovers, vec!["chatmail-custom.service"]);
        let get = |n: &str| plan.units.iter().find(|u| u.unit == n).unwrap();
        assert!(get("turnserver.service").stop && !get("turnserver.service").disable);
        assert!(!get("lastlogin.service").stop && get("lastlogin.service").disable);
        assert!(get("postfix@-.service").stop && !get("postfix@-.service").disable);
        assert!(!get("chatmail-expire.service").stop && !get("chatmail-expire.service").disable);
        assert_eq!(
            get("echobot.service").class.origin,
            crate::systemd::Origin::Legacy
        );
        assert!(plan.stops_postfix());
    }

    #[test]
    fn uncatalogued_trigger_of_a_chatmail_unit_is_planned_first() {
        let mut sd = FakeSystemd::default();
        sd.add("doveauth.service", "active", "enabled").triggered_by =
            vec!["doveauth.socket".into()];
        sd.add("doveauth.socket", "active", "enabled");
        sd.add("ssh.socket", "active", "enabled");
        let dir = tempfile::tempdir().unwrap();
        let plan = discover(&mut sd, dir.path()).unwrap();
        assert_eq!(plan.units[0].unit, "doveauth.socket");
        assert_eq!(plan.units[0].class.stage, Stage::Triggers);
        assert_eq!(plan.units[0].triggers.as_deref(), Some("doveauth.service"));
        assert_eq!(plan.units.len(), 2);
    }

    #[test]
    fn legacy_cron_files_are_found() {
        let mut sd = FakeSystemd::default();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("expunge"), "2 0 * * * vmail x\n").unwrap();
        std::fs::write(dir.path().join("e2scrub_all"), "x\n").unwrap();
        let plan = discover(&mut sd, dir.path()).unwrap();
        assert_eq!(plan.cron_files, vec![dir.path().join("expunge")]);
        assert!(plan.has_work());
        assert!(!plan.stops_postfix());
    }
}
