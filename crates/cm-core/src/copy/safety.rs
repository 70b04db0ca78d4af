//! Checks made before anything is written: overlapping trees, free space on the target, and
//! chatmail services still writing to the mail store.

use super::{Plan, Volume};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// `path` made absolute and resolved as far as it exists (the rest appended as given).
pub fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return normalize(&out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_os_string());
                existing = p.to_path_buf();
            }
            _ => return normalize(&abs),
        }
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Refuse a target inside a source, a source inside a target, or two targets that overlap.
pub fn check_overlap(vols: &[Volume]) -> Result<(), String> {
    let r: Vec<(PathBuf, PathBuf)> = vols
        .iter()
        .map(|v| (resolve(&v.src), resolve(&v.dst)))
        .collect();
    for (i, v) in vols.iter().enumerate() {
        let (s, d) = &r[i];
        if d.starts_with(s) {
            return Err(format!(
                "refusing: the target {} is inside the source {} (the copy would copy itself)",
                v.dst.display(),
                v.src.display()
            ));
        }
        if s.starts_with(d) {
            return Err(format!(
                "refusing: the source {} is inside the target {} (removing stale entries would delete the source)",
                v.src.display(),
                v.dst.display()
            ));
        }
        for (j, w) in vols.iter().enumerate() {
            if i == j {
                continue;
            }
            let (s2, d2) = &r[j];
            if d.starts_with(d2) || d2.starts_with(d) {
                return Err(format!(
                    "refusing: the targets {} and {} overlap",
                    v.dst.display(),
                    w.dst.display()
                ));
            }
            if d.starts_with(s2) {
                return Err(format!(
                    "refusing: the target {} is inside the source {}",
                    v.dst.display(),
                    w.src.display()
                ));
            }
        }
    }
    Ok(())
}

/// One file system's needs against what it has free.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpaceCheck {
    /// A directory on that file system (the nearest existing ancestor of a target).
    pub at: PathBuf,
    pub need_bytes: u64,
    pub free_bytes: u64,
    pub need_inodes: u64,
    /// `None` when the file system does not count inodes.
    pub free_inodes: Option<u64>,
}

impl SpaceCheck {
    pub fn ok(&self) -> bool {
        self.need_bytes <= self.free_bytes
            && self.free_inodes.map_or(true, |f| self.need_inodes <= f)
    }
}

/// Human-readable size.
pub fn human(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < U.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[u])
    }
}

impl std::fmt::Display for SpaceCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the copy needs {} and {} inodes, the file system has {} free",
            self.at.display(),
            human(self.need_bytes),
            self.need_inodes,
            human(self.free_bytes)
        )?;
        if let Some(i) = self.free_inodes {
            write!(f, " and {i} free inodes")?;
        }
        Ok(())
    }
}

fn nearest_existing(p: &Path) -> PathBuf {
    let mut cur = resolve(p);
    loop {
        if cur.exists() {
            return cur;
        }
        if !cur.pop() {
            return PathBuf::from("/");
        }
    }
}

/// Sum what every plan needs per target file system and compare with its free space.
pub fn check_space(plans: &[Plan]) -> Result<Vec<SpaceCheck>, std::io::Error> {
    let mut by_dev: BTreeMap<u64, SpaceCheck> = BTreeMap::new();
    for p in plans {
        if p.skipped.is_some() {
            continue;
        }
        let at = nearest_existing(&p.dst_root);
        let dev = std::fs::metadata(&at)?.dev();
        let entry = match by_dev.get_mut(&dev) {
            Some(e) => e,
            None => {
                let (free, favail, files) = crate::sys::statvfs(&at)?;
                by_dev.entry(dev).or_insert(SpaceCheck {
                    at,
                    need_bytes: 0,
                    free_bytes: free,
                    need_inodes: 0,
                    free_inodes: (files > 0).then_some(favail),
                })
            }
        };
        entry.need_bytes += p.counts.need_bytes;
        entry.need_inodes += p.counts.need_inodes;
    }
    Ok(by_dev.into_values().collect())
}

/// chatmail units that write to the mail store (or deliver into it) while they run.
pub const MAIL_WRITERS: &[&str] = &[
    "postfix.service",
    "postfix@-.service",
    "dovecot.service",
    "doveauth.service",
    "chatmail-metadata.service",
    "lastlogin.service",
    "chatmail-expire.service",
    "chatmail-expire.timer",
    "filtermail.service",
    "filtermail-incoming.service",
];

/// What the service check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Services {
    /// These units are active.
    Running(Vec<String>),
    /// None is active.
    Stopped,
    /// Not checked, and why (printed as a notice).
    NotChecked(String),
}

/// Is this machine run by systemd?
pub fn systemd_is_pid1() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Ask systemd which of [`MAIL_WRITERS`] are active, when `root` is `/` and systemd runs
/// this machine.
pub fn mail_services(root: &Path) -> Services {
    if resolve(root) != Path::new("/") {
        return Services::NotChecked(format!(
            "--root is {}, not /: not checking whether chatmail services are running there; stop them on the old host before the final copy",
            root.display()
        ));
    }
    if !systemd_is_pid1() {
        return Services::NotChecked(
            "this machine does not run systemd: not checking whether chatmail services are running; stop them before the final copy".into(),
        );
    }
    let out = match Command::new("systemctl")
        .arg("is-active")
        .args(MAIL_WRITERS)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            return Services::NotChecked(format!(
                "cannot run systemctl ({e}): not checking whether chatmail services are running"
            ))
        }
    };
    parse_is_active(&String::from_utf8_lossy(&out.stdout))
}

/// Parse `systemctl is-active u1 u2 ...` output (one state per line, in order).
pub fn parse_is_active(text: &str) -> Services {
    let running: Vec<String> = text
        .lines()
        .zip(MAIL_WRITERS)
        .filter(|(state, _)| {
            matches!(
                state.trim(),
                "active" | "activating" | "reloading" | "deactivating" | "refreshing"
            )
        })
        .map(|(_, u)| u.to_string())
        .collect();
    if running.is_empty() {
        Services::Stopped
    } else {
        Services::Running(running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(s: &str, d: &str) -> Volume {
        Volume {
            name: "t".into(),
            src: s.into(),
            dst: d.into(),
            optional: false,
            mail_store: false,
        }
    }

    #[test]
    fn overlap_is_refused_both_ways() {
        assert!(check_overlap(&[vol("/srv/a", "/srv/a/copy")]).is_err());
        assert!(check_overlap(&[vol("/srv/a/b", "/srv/a")]).is_err());
        assert!(check_overlap(&[vol("/srv/a", "/srv/a")]).is_err());
        assert!(check_overlap(&[vol("/srv/a", "/srv/ab")]).is_ok());
        assert!(check_overlap(&[vol("/srv/a", "/srv/x/../a/c")]).is_err());
        assert!(check_overlap(&[vol("/srv/a", "/t/1"), vol("/srv/b", "/t/1/2")]).is_err());
    }

    #[test]
    fn is_active_output_is_parsed_in_unit_order() {
        let mut lines = vec!["inactive"; MAIL_WRITERS.len()];
        assert_eq!(parse_is_active(&lines.join("\n")), Services::Stopped);
        lines[2] = "active";
        assert_eq!(
            parse_is_active(&lines.join("\n")),
            Services::Running(vec!["dovecot.service".into()])
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
