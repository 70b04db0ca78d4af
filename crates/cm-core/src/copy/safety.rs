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

/// `p` made absolute without resolving anything (`..` applied lexically).
fn lexical(p: &Path) -> PathBuf {
    if p.is_absolute() {
        normalize(p)
    } else {
        normalize(&std::env::current_dir().unwrap_or_default().join(p))
    }
}

/// Refuse a target the copy would reach through a symlink: any component below the project
/// directory on the way to a target (`data/` included), the target itself, and the manifest
/// directory beside it. The project directory itself (and what is above it) is the user's
/// to choose and is resolved as usual.
pub fn check_target_links(project_dir: &Path, vols: &[Volume]) -> Result<(), String> {
    let project = lexical(project_dir);
    for v in vols {
        let dst = lexical(&v.dst);
        let manifest_dir = crate::manifest::path_for(&dst)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut paths = vec![dst.clone(), manifest_dir];
        if let Ok(rel) = dst.strip_prefix(&project) {
            let mut cur = project.clone();
            for c in rel.components() {
                cur.push(c);
                paths.push(cur.clone());
            }
        }
        for p in paths {
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.file_type().is_symlink() {
                let to = std::fs::read_link(&p)
                    .map(|t| format!(" (to {})", t.display()))
                    .unwrap_or_default();
                return Err(format!(
                    "refusing: {} is a symlink{to}; the copy never writes through a symlink \
                     below the project directory: replace it with a directory, or give the \
                     directory it points to as --project-dir",
                    p.display()
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
    #[serde(serialize_with = "crate::quote::serialize_path")]
    pub at: PathBuf,
    pub need_bytes: u64,
    pub free_bytes: u64,
    pub need_inodes: u64,
    /// `None` when the file system does not count inodes.
    pub free_inodes: Option<u64>,
}

impl SpaceCheck {
    pub fn ok(&self) -> bool {
        self.short().is_empty()
    }

    /// The resources this file system lacks: `"space"` (bytes), `"inodes"`.
    pub fn short(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.need_bytes > self.free_bytes {
            v.push("space");
        }
        if self.free_inodes.is_some_and(|f| self.need_inodes > f) {
            v.push("inodes");
        }
        v
    }

    /// What is short, in words: `not enough space and inodes on /srv: ...`.
    pub fn shortage(&self) -> Option<String> {
        let short = self.short();
        (!short.is_empty()).then(|| format!("not enough {} on {self}", short.join(" and ")))
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

/// [`check_space`], after walking the plans made lazily with a bound (`Counted::Bound`) when
/// a file system cannot hold the bounds: the shortage said is then the exact one.
pub fn check_space_counting(
    plans: &mut [Plan],
    opts: &super::Options,
) -> Result<Vec<SpaceCheck>, std::io::Error> {
    let space = check_space(plans)?;
    if space.iter().all(|s| s.ok()) || plans.iter().all(|p| p.counted != super::Counted::Bound) {
        return Ok(space);
    }
    for p in plans
        .iter_mut()
        .filter(|p| p.counted == super::Counted::Bound)
    {
        super::count(p, opts).map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    check_space(plans)
}

/// Who runs the copy: what a user who is not root can give a copied entry.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// The effective ids of this process.
    pub fn current() -> Caller {
        Caller {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: nix::unistd::getgroups()
                .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_default(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    fn owns(&self, uid: u32, gid: u32) -> bool {
        uid == self.uid && (gid == self.gid || self.groups.contains(&gid))
    }
}

/// A copy run by a user who is not root can only be exact when no entry needs an owner other
/// than the caller (and a group of the caller's) after `ids`, and there is no device node
/// (creating one needs root). Otherwise refuse up front, saying the first entry that needs
/// root and how many do, instead of one `chown` error per file.
pub fn check_caller(
    plans: &[Plan],
    ids: Option<&dyn super::MapIds>,
    who: &Caller,
) -> Result<(), String> {
    if who.is_root() {
        return Ok(());
    }
    let mut first: Option<String> = None;
    let mut count = 0u64;
    for p in plans.iter().filter(|p| p.skipped.is_none()) {
        // The plan's walk recorded each owner (as the source has it) and device node once,
        // with its count and first path.
        for (&(uid, gid), (n, path)) in &p.owners {
            let (u, g) = match ids {
                Some(m) => (m.uid(uid), m.gid(gid)),
                None => (uid, gid),
            };
            if !who.owns(u, g) {
                count += n;
                if first.is_none() {
                    first = Some(format!("{path} must be owned by {u}:{g}"));
                }
            }
        }
        if let Some((n, path)) = &p.devices {
            count += n;
            if first.is_none() {
                first = Some(format!("{path} is a device node"));
            }
        }
    }
    match first {
        None => Ok(()),
        Some(f) => Err(format!(
            "run as root: this user (uid {}) cannot give the copy its owners: {count} entries need root, the first: {f}; nothing was copied",
            who.uid
        )),
    }
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
    /// systemd answered for every unit: none is active.
    Stopped,
    /// The question does not apply to this machine, and why (printed as a note): `--root` is
    /// another machine's tree, or no systemd runs here (so no chatmail unit can).
    NotApplicable(String),
    /// systemd should have answered and did not (systemctl missing, failing, or answering
    /// something else than one state per unit): not checked, and why. Never read as stopped.
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
        return Services::NotApplicable(format!(
            "--root is {}, not /: not checking whether chatmail services are running there (they are not this machine's to ask); stop them on the old host before the final copy",
            root.display()
        ));
    }
    if !systemd_is_pid1() {
        return Services::NotApplicable(
            "this machine does not run systemd (no /run/systemd/system), so no chatmail unit runs here: not checking whether chatmail services are running; stop the relay's services before the final copy".into(),
        );
    }
    match Command::new("systemctl")
        .arg("is-active")
        .args(MAIL_WRITERS)
        .output()
    {
        Ok(o) => read_is_active(
            o.status.code(),
            &String::from_utf8_lossy(&o.stdout),
            &String::from_utf8_lossy(&o.stderr),
        ),
        Err(e) => Services::NotChecked(format!("cannot run systemctl: {e}")),
    }
}

/// The states `systemctl is-active` prints.
const STATES: &[&str] = &[
    "active",
    "reloading",
    "inactive",
    "failed",
    "activating",
    "deactivating",
    "maintenance",
    "refreshing",
];

/// Read `systemctl is-active u1 u2 ...` (one state per line, in order; exit 0 when one is
/// active, 3 when none is). Anything else (another exit status, a line missing or not a
/// state, "Failed to connect to bus") is [`Services::NotChecked`], never stopped.
pub fn read_is_active(code: Option<i32>, stdout: &str, stderr: &str) -> Services {
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let said = || {
        let e = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let e: String = e.chars().take(200).collect();
        match code {
            Some(c) => format!(
                "exit status {c}{}",
                if e.is_empty() {
                    String::new()
                } else {
                    format!(": {e}")
                }
            ),
            None => "killed by a signal".to_string(),
        }
    };
    if !matches!(code, Some(0) | Some(3)) {
        return Services::NotChecked(format!("systemctl is-active failed ({})", said()));
    }
    if lines.len() != MAIL_WRITERS.len() || lines.iter().any(|l| !STATES.contains(l)) {
        return Services::NotChecked(format!(
            "systemctl is-active did not answer one state for each of {} units ({}; stdout {:?})",
            MAIL_WRITERS.len(),
            said(),
            stdout.chars().take(200).collect::<String>()
        ));
    }
    let running: Vec<String> = lines
        .iter()
        .zip(MAIL_WRITERS)
        .filter(|(state, _)| {
            matches!(
                **state,
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
        assert_eq!(
            read_is_active(Some(3), &lines.join("\n"), ""),
            Services::Stopped
        );
        lines[2] = "active";
        assert_eq!(
            read_is_active(Some(0), &lines.join("\n"), ""),
            Services::Running(vec!["dovecot.service".into()])
        );
    }

    #[test]
    fn a_failing_systemctl_is_not_checked_never_stopped() {
        let none = vec!["inactive"; MAIL_WRITERS.len()].join("\n");
        let bus = "Failed to connect to bus: Host is down\n";
        for (code, out) in [
            (Some(1), ""),
            (Some(1), none.as_str()),
            (None, ""),
            (Some(3), "inactive\n"),
            (Some(3), ""),
        ] {
            match read_is_active(code, out, bus) {
                Services::NotChecked(why) => assert!(why.contains("systemctl"), "{why}"),
                other => panic!("{code:?} {out:?}: {other:?}"),
            }
        }
        let garbage = vec!["unknown"; MAIL_WRITERS.len()].join("\n");
        assert!(matches!(
            read_is_active(Some(3), &garbage, ""),
            Services::NotChecked(_)
        ));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
