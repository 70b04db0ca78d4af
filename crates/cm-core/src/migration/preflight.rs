//! The checks before anything changes (`cm-migrate preflight`, and the first step of
//! `cm-migrate run`), as data: each [`Finding`] names its check, says what was found and,
//! when something is wrong, what to do; its [`Level`] says whether it blocks the move.
//!
//! Invariant: read-only; a check that could not run is [`Level::NotChecked`] with the
//! reason, never `Ok`.

use crate::ports::{Listener, CONTAINER_PORTS};
use crate::systemd::{MailQueue, QueueStatus};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Ok,
    /// Worth knowing; the move can go on.
    Warn,
    /// Could not be checked (the reason is the message).
    NotChecked,
    /// The move must not start.
    Block,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warning",
            Level::NotChecked => "not checked",
            Level::Block => "BLOCKS",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The check's name (what `--skip-check` takes).
    pub check: String,
    pub level: Level,
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(check: &str, level: Level, message: String, fix: Option<String>) -> Finding {
        Finding {
            check: check.into(),
            level,
            message,
            fix,
        }
    }
    pub fn ok(check: &str, message: impl Into<String>) -> Finding {
        Finding::new(check, Level::Ok, message.into(), None)
    }
    pub fn warn(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding::new(check, Level::Warn, message.into(), Some(fix.into()))
    }
    pub fn block(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding::new(check, Level::Block, message.into(), Some(fix.into()))
    }
    pub fn not_checked(check: &str, why: impl Into<String>) -> Finding {
        Finding::new(check, Level::NotChecked, why.into(), None)
    }
}

/// The checks every preflight knows (for `--skip-check` and the help).
pub const CHECKS: &[&str] = &[
    "root",
    "systemd",
    "docker",
    "compose",
    "cgroup",
    "inotify",
    "space",
    "sources",
    "ports",
    "ini",
    "queue",
    "target",
    "transport",
];

/// A blocking finding of a check the user chose to pass over becomes "not checked", saying
/// so (it is still shown).
pub fn apply_skips(findings: &mut [Finding], skip: &[String]) {
    for f in findings.iter_mut() {
        if f.level == Level::Block && skip.contains(&f.check) {
            f.level = Level::NotChecked;
            f.message = format!("{} (passed over: --skip-check {})", f.message, f.check);
        }
    }
}

/// The inotify values chatmail's Docker guide sets on the host (they cannot be set inside the
/// container; containers without them crashed the deploy).
pub const INOTIFY_MIN: u64 = 65_536;

/// fs.inotify.max_user_instances and max_user_watches (None: unreadable) on `host`.
pub fn check_inotify(
    instances: Option<u64>,
    watches: Option<u64>,
    host: &str,
    start: bool,
) -> Finding {
    let (Some(i), Some(w)) = (instances, watches) else {
        return Finding::not_checked(
            "inotify",
            format!("could not read /proc/sys/fs/inotify on {host}"),
        );
    };
    if i >= INOTIFY_MIN && w >= INOTIFY_MIN {
        return Finding::ok(
            "inotify",
            format!("fs.inotify.max_user_instances={i}, max_user_watches={w} on {host}"),
        );
    }
    Finding::new(
        "inotify",
        if start { Level::Block } else { Level::Warn },
        format!(
            "fs.inotify.max_user_instances={i}, max_user_watches={w} on {host}: the relay's \
             container needs at least {INOTIFY_MIN} each"
        ),
        Some(format!(
            "on {host}: printf 'fs.inotify.max_user_instances={INOTIFY_MIN}\\nfs.inotify.max_user_watches={INOTIFY_MIN}\\n' \
             > /etc/sysctl.d/99-inotify.conf && sysctl --system"
        )),
    )
}

/// The file system type of /sys/fs/cgroup (`stat -fc %T`) on `host`.
pub fn check_cgroup(fstype: &str, host: &str, start: bool) -> Finding {
    if fstype == "cgroup2fs" {
        return Finding::ok("cgroup", format!("cgroup v2 on {host}"));
    }
    Finding::new(
        "cgroup",
        if start { Level::Block } else { Level::Warn },
        format!(
            "{host} does not use cgroup v2 (/sys/fs/cgroup is {fstype}): the deployment runs \
             systemd in the container with `cgroup: host` and requires cgroup v2"
        ),
        Some(
            "boot the Docker host with the unified hierarchy (systemd.unified_cgroup_hierarchy=1 \
             on the kernel command line), or --skip-check cgroup at your own risk"
                .into(),
        ),
    )
}

/// The ports the container needs: held by a unit the move stops is fine; held by anything
/// else blocks.
pub fn check_ports(listeners: &[Listener], chatmail_units: &[String]) -> Vec<Finding> {
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for l in listeners {
        let by_planned = !l.holders.is_empty()
            && l.holders.iter().all(|h| {
                h.unit
                    .as_ref()
                    .is_some_and(|u| chatmail_units.iter().any(|c| c == u))
            });
        if by_planned {
            ours.push(l);
        } else {
            others.push(l);
        }
    }
    let mut f = Vec::new();
    if others.is_empty() {
        let ports: Vec<String> = CONTAINER_PORTS.iter().map(u16::to_string).collect();
        f.push(Finding::ok(
            "ports",
            format!(
                "ports {}: free or held by chatmail units the move stops ({} socket(s))",
                ports.join(", "),
                ours.len()
            ),
        ));
    }
    for l in others {
        f.push(Finding::block(
            "ports",
            format!("port the container needs is in use: {l}; the move does not stop it"),
            "stop and disable that service (or move it to another port) first",
        ));
    }
    f
}

/// The postfix queue now.
pub fn check_queue(q: Result<QueueStatus, String>) -> Finding {
    match q {
        Ok(st) if st.total == 0 => Finding::ok("queue", "the postfix queue is empty"),
        Ok(st) => Finding::warn(
            "queue",
            format!(
                "{} message(s) in the postfix queue ({})",
                st.total,
                st.describe()
            ),
            "stop-services flushes the queue and waits (--queue-timeout); mail still queued \
             then stops the move before anything is stopped: let it be delivered (postqueue -p)",
        ),
        Err(e) => Finding::not_checked("queue", format!("the postfix queue was not read: {e}")),
    }
}

/// chatmail.ini: readable, valid as chatmail reads it, and convertible.
pub fn check_ini(path: &Path) -> Vec<Finding> {
    let ini = match crate::ini::read(path) {
        Ok(i) => i,
        Err(e) => {
            return vec![Finding::block(
                "ini",
                e.to_string(),
                "fix the relay's chatmail.ini (or give --ini the right one)",
            )]
        }
    };
    let mut f = Vec::new();
    match crate::params::convert(&ini) {
        Ok(c) => f.push(Finding::ok(
            "ini",
            format!(
                "{}: readable and valid ({} settings)",
                path.display(),
                c.env_entries(false).len()
            ),
        )),
        Err(e) => f.push(Finding::block(
            "ini",
            format!("{}: {e}", path.display()),
            "fix the value in chatmail.ini: chatmail would not start with it",
        )),
    }
    for w in crate::params::warnings(&ini) {
        f.push(Finding::warn("ini", w.to_string(), "see the warning"));
    }
    f
}

/// What the local host checks look at.
pub struct HostInput<'a> {
    pub euid: u32,
    /// /run/systemd/system (systemd runs the old host).
    pub systemd_marker: &'a Path,
    /// The old host's services are this machine's (not a `--root` elsewhere).
    pub services_here: bool,
    pub proc_root: &'a Path,
    pub ini: &'a Path,
    /// The chatmail units the move stops (None: systemd could not be asked).
    pub chatmail_units: Option<Vec<String>>,
    /// The Docker host is this host (not `--to ssh://`).
    pub docker_here: bool,
}

/// Root, systemd, ports (when the container runs here), the ini, the queue.
pub fn host_findings(input: &HostInput, queue: &mut dyn MailQueue) -> Vec<Finding> {
    let mut f = Vec::new();
    f.push(if input.euid == 0 {
        Finding::ok("root", "running as root")
    } else {
        Finding::block(
            "root",
            format!(
                "running as uid {}: the move stops services and writes as root",
                input.euid
            ),
            "run it as root (sudo)",
        )
    });
    f.push(if !input.services_here {
        Finding::not_checked(
            "systemd",
            "--root is not this machine's root: its services are not this machine's to stop",
        )
    } else if input.systemd_marker.is_dir() {
        Finding::ok("systemd", "systemd runs this host")
    } else {
        Finding::block(
            "systemd",
            format!(
                "systemd is not running here ({} is missing): the old relay's services cannot \
                 be stopped",
                input.systemd_marker.display()
            ),
            "run cm-migrate on the old relay itself",
        )
    });
    match (&input.chatmail_units, input.docker_here) {
        _ if !input.services_here => f.push(Finding::not_checked(
            "ports",
            "--root is not this machine's root: its ports are not this machine's",
        )),
        (_, false) => f.push(Finding::not_checked(
            "ports",
            "the container runs on another host: its ports are checked there by compose",
        )),
        (None, true) => f.push(Finding::not_checked(
            "ports",
            "systemd could not be asked which units are chatmail's",
        )),
        (Some(units), true) => match crate::ports::listeners_on(input.proc_root, CONTAINER_PORTS) {
            Ok(l) => f.extend(check_ports(&l, units)),
            Err(e) => f.push(Finding::not_checked("ports", e.to_string())),
        },
    }
    f.extend(check_ini(input.ini));
    f.push(if input.services_here {
        check_queue(queue.status().map_err(|e| e.to_string()))
    } else {
        Finding::not_checked(
            "queue",
            "--root is not this machine's root: no postfix to ask",
        )
    });
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Holder;

    fn listener(port: u16, unit: Option<&str>) -> Listener {
        Listener {
            proto: "tcp".into(),
            addr: "0.0.0.0".into(),
            port,
            inode: 1,
            holders: vec![Holder {
                pid: 7,
                name: "x".into(),
                unit: unit.map(String::from),
            }],
        }
    }

    #[test]
    fn ports_held_by_chatmail_units_are_fine_and_others_block() {
        let units = vec!["postfix@-.service".to_string()];
        let f = check_ports(&[listener(25, Some("postfix@-.service"))], &units);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Ok);
        let f = check_ports(
            &[
                listener(25, Some("postfix@-.service")),
                listener(443, Some("caddy.service")),
                listener(53, None),
            ],
            &units,
        );
        let blocks: Vec<_> = f.iter().filter(|f| f.level == Level::Block).collect();
        assert_eq!(blocks.len(), 2, "{f:?}");
        assert!(blocks[0].message.contains("443") && blocks[0].message.contains("caddy"));
    }

    #[test]
    fn inotify_and_cgroup_block_only_when_the_container_starts_here() {
        let ok = check_inotify(Some(65536), Some(100_000), "h", true);
        assert_eq!(ok.level, Level::Ok);
        let low = check_inotify(Some(128), Some(65536), "h", false);
        assert_eq!(low.level, Level::Warn);
        assert!(low
            .fix
            .as_deref()
            .unwrap()
            .contains("max_user_instances=65536"));
        assert_eq!(
            check_inotify(Some(128), Some(65536), "h", true).level,
            Level::Block
        );
        assert_eq!(
            check_inotify(None, Some(1), "h", true).level,
            Level::NotChecked
        );
        assert_eq!(check_cgroup("cgroup2fs", "h", true).level, Level::Ok);
        assert_eq!(check_cgroup("tmpfs", "h", true).level, Level::Block);
        assert_eq!(check_cgroup("tmpfs", "h", false).level, Level::Warn);
    }

    #[test]
    fn a_skipped_check_is_shown_as_not_checked_never_as_ok() {
        let mut f = vec![
            check_cgroup("tmpfs", "h", true),
            Finding::block("root", "uid 1000", "sudo"),
        ];
        apply_skips(&mut f, &["cgroup".into()]);
        assert_eq!(f[0].level, Level::NotChecked);
        assert!(f[0].message.contains("--skip-check cgroup"));
        assert_eq!(f[1].level, Level::Block);
    }

    #[test]
    fn the_ini_is_read_as_chatmail_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("chatmail.ini");
        std::fs::write(&p, "[params]\nmail_domain = example.org\n").unwrap();
        let f = check_ini(&p);
        assert_eq!(f[0].level, Level::Ok, "{f:?}");
        std::fs::write(&p, "[params]\nmail_domain = a\nmail_domain = b\n").unwrap();
        let f = check_ini(&p);
        assert_eq!(f[0].level, Level::Block, "{f:?}");
        assert!(f[0].message.contains("duplicate"), "{f:?}");
        let f = check_ini(&dir.path().join("missing.ini"));
        assert_eq!(f[0].level, Level::Block);
    }
}
