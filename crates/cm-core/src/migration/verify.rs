//! `--verify changed`: a verification that costs what changed. With a complete change
//! journal, every directory outside the journal's set is as the bulk copy left it (which read
//! each copy back as it wrote it); so the source and the copy are compared, entry by entry and
//! by content, in the changed directories only, plus cm-verify's checks that do not walk
//! trees (env, layout, services). A volume the journal did not follow (completely) gets the
//! full `cm-verify tree`; no journal at all gets the full `cm-verify all`.
//!
//! Invariant: nothing is assumed beyond the journal: whatever it could not vouch for is
//! compared in full.

use super::real::{run_cm_verify, VerifyCommand};
use super::{Changed, MigrationError, Step, StepOutcome, Verifier};
use crate::owners::OwnerMap;
use crate::tree::{self, CompareOptions, Entry, Snapshot};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// One volume: its source and its copy.
#[derive(Clone, Debug)]
pub struct VolumePair {
    pub name: String,
    pub src: PathBuf,
    pub dst: PathBuf,
}

pub struct ChangedVerify {
    /// cm-verify (the suite's binary).
    pub program: PathBuf,
    /// `cm-verify env INI ENV`, `layout ...`, `services` (when the services are this
    /// host's): each an argument list.
    pub checks: Vec<Vec<OsString>>,
    pub volumes: Volumes,
    pub owners: OwnerMap,
    /// The owner-map file and the root its names are resolved in (for `cm-verify tree`).
    pub owner_map_file: Option<PathBuf>,
    pub root: PathBuf,
    /// The full verification, when there is no journal.
    pub full: VerifyCommand,
}

/// Where the volumes are: given, or read from the target when the verification runs (a
/// named volume exists only once the copy created it).
pub enum Volumes {
    Fixed(Vec<VolumePair>),
    Target {
        target: Box<crate::target::Target>,
        root: PathBuf,
    },
}

impl Volumes {
    /// The volumes as they are now; a named volume that does not exist is left out (the
    /// copy wrote nothing there).
    pub fn get(&self) -> Result<Vec<VolumePair>, String> {
        let (t, root) = match self {
            Volumes::Fixed(v) => return Ok(v.clone()),
            Volumes::Target { target, root } => (target, root),
        };
        let engine = crate::target::engine_of(t);
        let p = crate::target::plan::copy_volumes(t, root, engine.as_ref(), false, &[])
            .map_err(|e| e.to_string())?;
        Ok(p.volumes
            .into_iter()
            .map(|v| VolumePair {
                name: v.name,
                src: v.src,
                dst: v.dst,
            })
            .collect())
    }
}

/// The entries of `dirs` (relative to `root`) and their children, as a live scan records
/// them (hashed, with xattrs and symlink targets). A directory that is gone is left out.
pub fn snapshot_of_dirs(root: &Path, dirs: &[PathBuf]) -> io::Result<Snapshot> {
    let mut snap = Snapshot::default();
    let mut seen = std::collections::HashSet::new();
    let mut add = |snap: &mut Snapshot, rel: PathBuf| -> io::Result<()> {
        if !seen.insert(rel.clone()) {
            return Ok(());
        }
        let abs = if rel == Path::new(".") {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let md = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut e = Entry::from_metadata(rel, &md);
        if md.file_type().is_symlink() {
            e.target = Some(std::fs::read_link(&abs)?.into_os_string());
        }
        if md.file_type().is_file() {
            e.sha256 = Some(tree::hash_file(&abs)?);
        }
        e.xattrs = tree::read_xattrs(&abs).unwrap_or_default();
        snap.entries.push(e);
        Ok(())
    };
    for d in dirs {
        let rel = if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d.clone()
        };
        add(&mut snap, rel.clone())?;
        let abs = root.join(d);
        let rd = match std::fs::read_dir(&abs) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => continue,
            Err(e) => return Err(e),
        };
        for c in rd {
            let c = c?;
            let child = if rel == Path::new(".") {
                PathBuf::from(c.file_name())
            } else {
                rel.join(c.file_name())
            };
            add(&mut snap, child)?;
        }
    }
    snap.assign_link_groups();
    Ok(snap)
}

/// Source and copy compared in the changed directories: the differences, one line each.
pub fn compare_dirs(
    v: &VolumePair,
    dirs: &[PathBuf],
    owners: &OwnerMap,
) -> Result<Vec<String>, String> {
    let src = snapshot_of_dirs(&v.src, dirs).map_err(|e| format!("{}: {e}", v.src.display()))?;
    let dst = snapshot_of_dirs(&v.dst, dirs).map_err(|e| format!("{}: {e}", v.dst.display()))?;
    let opts = CompareOptions {
        owner_map: owners.clone(),
        ..Default::default()
    };
    // a hard link split in the copy shows as a link count that differs (its other names may
    // lie in directories that did not change)
    let mut out: Vec<String> = src
        .entries
        .iter()
        .filter(|e| e.kind != tree::FileType::Dir)
        .filter_map(|e| {
            let (n, m) = (e.inode?.nlink, dst.get(&e.path)?.inode?.nlink);
            (n != m).then(|| {
                format!(
                    "{}: hard links {}: {n} names in the source, {m} in the copy",
                    v.name,
                    e.path.display()
                )
            })
        })
        .collect();
    out.extend(tree::compare(&src, &dst, &opts).into_iter().map(|d| {
        format!(
            "{}: {} {}: expected {}, found {}",
            v.name,
            d.kind,
            d.path.display(),
            d.expected,
            d.actual
        )
    }));
    Ok(out)
}

impl ChangedVerify {
    /// One cm-verify check: (held, what it is, or what it found).
    fn tool(&self, args: &[OsString]) -> Result<(bool, String), MigrationError> {
        let what = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (held, out, errs) = run_cm_verify(&self.program, args)?;
        if held {
            return Ok((true, what));
        }
        let found: Vec<String> = out
            .into_iter()
            .filter(|l| !l.starts_with("note:") && !l.starts_with("OK:"))
            .chain(errs)
            .collect();
        Ok((false, format!("cm-verify {what}: {}", found.join("; "))))
    }
}

/// What a `--verify changed` found so far: its outcome, what held, and how many changed
/// directories were compared.
struct Tally {
    o: StepOutcome,
    held: Vec<String>,
    compared: usize,
}

impl Tally {
    /// A check's result: `what` held, or what it found.
    fn add(&mut self, (ok, what): (bool, String)) {
        if ok {
            self.held.push(what);
        } else {
            self.o.problems.push(what);
        }
    }

    fn outcome(self) -> StepOutcome {
        let mut o = self.o;
        o.ok = o.problems.is_empty();
        o.summary = format!(
            "{}: {} hold; {} changed directories compared by content",
            if o.ok { "ALL OK" } else { "NOT OK" },
            self.held.join(", "),
            self.compared
        );
        o.notes.push(
            "the directories the change journal did not name were verified by the bulk copy, \
             which read each copy back"
                .into(),
        );
        o
    }
}

impl ChangedVerify {
    /// A volume the journal followed: its changed directories compared by content.
    fn compare_changed(
        &self,
        v: &VolumePair,
        dirs: &[PathBuf],
        t: &mut Tally,
        on: &mut dyn FnMut(String),
    ) -> Result<(), MigrationError> {
        on(format!(
            "{}: {} changed directories compared",
            v.name,
            dirs.len()
        ));
        t.compared += dirs.len();
        let d = compare_dirs(v, dirs, &self.owners)
            .map_err(|e| MigrationError::step(Step::Verify, e))?;
        if d.is_empty() {
            t.held
                .push(format!("{} ({} changed dirs)", v.name, dirs.len()));
        }
        t.o.problems.extend(d);
        Ok(())
    }

    /// A volume the journal did not follow: `cm-verify tree` in full.
    fn compare_full(
        &self,
        v: &VolumePair,
        t: &mut Tally,
        on: &mut dyn FnMut(String),
    ) -> Result<(), MigrationError> {
        on(format!("{}: not journaled: cm-verify tree in full", v.name));
        let mut args: Vec<OsString> =
            vec!["tree".into(), v.src.clone().into(), v.dst.clone().into()];
        args.extend(["--root".into(), self.root.clone().into()]);
        if let Some(m) = &self.owner_map_file {
            args.extend(["--owner-map".into(), m.clone().into()]);
        }
        t.o.notes
            .push(format!("{}: compared in full (not journaled)", v.name));
        let (ok, what) = self.tool(&args)?;
        t.add((
            ok,
            if ok {
                format!("{} (full tree)", v.name)
            } else {
                what
            },
        ));
        Ok(())
    }
}

impl Verifier for ChangedVerify {
    fn verify(
        &mut self,
        changed: &Changed,
        on: &mut dyn FnMut(String),
    ) -> Result<StepOutcome, MigrationError> {
        let Changed::Dirs(map) = changed else {
            on("no complete change journal: the full cm-verify all".into());
            return self.full.verify(changed, on);
        };
        let mut t = Tally {
            o: StepOutcome::ok(""),
            held: Vec::new(),
            compared: 0,
        };
        for c in self.checks.clone() {
            t.add(self.tool(&c)?);
        }
        let volumes = self
            .volumes
            .get()
            .map_err(|e| MigrationError::step(Step::Verify, e))?;
        let journaled = |v: &VolumePair| {
            let key = std::fs::canonicalize(&v.src).unwrap_or_else(|_| v.src.clone());
            map.get(&v.src).or_else(|| map.get(&key)).cloned()
        };
        // a volume compared in full needs the owner map as a file (cm-verify tree): owners
        // read from the image have none, so the full cm-verify all (which reads them too)
        if self.owner_map_file.is_none()
            && !self.owners.is_identity()
            && volumes
                .iter()
                .any(|v| v.src.exists() && journaled(v).is_none())
        {
            on("a volume the change journal did not follow: the full cm-verify all".into());
            return self.full.verify(changed, on);
        }
        for v in volumes.iter().filter(|v| v.src.exists()) {
            match journaled(v) {
                Some(dirs) => self.compare_changed(v, &dirs, &mut t, on)?,
                None => self.compare_full(v, &mut t, on)?,
            }
        }
        Ok(t.outcome())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_the_changed_directories_are_compared_and_a_difference_there_is_found() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        for root in [&src, &dst] {
            fs::create_dir_all(root.join("a/sub")).unwrap();
            fs::create_dir_all(root.join("b")).unwrap();
            fs::write(root.join("a/m1"), "one").unwrap();
            fs::write(root.join("b/m2"), "two").unwrap();
            std::os::unix::fs::symlink("m1", root.join("a/link")).unwrap();
        }
        let same_times = |p: &str| {
            let m = fs::symlink_metadata(src.join(p)).unwrap();
            let ft = filetime::FileTime::from_last_modification_time(&m);
            filetime::set_symlink_file_times(dst.join(p), ft, ft).unwrap();
        };
        for p in ["a/m1", "b/m2", "a/link", "a/sub", "a", "b", ""] {
            same_times(p);
        }
        let v = VolumePair {
            name: "mail".into(),
            src: src.clone(),
            dst: dst.clone(),
        };
        let ids = OwnerMap::identity();
        let dirs = |d: &[&str]| d.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            compare_dirs(&v, &dirs(&["", "a", "b"]), &ids).unwrap(),
            Vec::<String>::new()
        );
        // same size and mtime, other content: found by content, only where it is looked for
        fs::write(dst.join("b/m2"), "twO").unwrap();
        same_times("b/m2");
        assert!(compare_dirs(&v, &dirs(&["a"]), &ids).unwrap().is_empty());
        let d = compare_dirs(&v, &dirs(&["b"]), &ids).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].contains("b/m2"), "{d:?}");
        // a name only in the source
        fs::write(src.join("a/new"), "x").unwrap();
        let d = compare_dirs(&v, &dirs(&["a"]), &ids).unwrap();
        assert!(d.iter().any(|x| x.contains("a/new")), "{d:?}");
        // a changed directory that is gone on both sides is no difference
        assert!(compare_dirs(&v, &dirs(&["gone"]), &ids).unwrap().is_empty());
        // a hard link split in the copy, its other name in a directory that did not change
        fs::hard_link(src.join("b/m2"), src.join("a/hl")).unwrap();
        fs::copy(src.join("b/m2"), dst.join("a/hl")).unwrap();
        let d = compare_dirs(&v, &dirs(&["a"]), &ids).unwrap();
        assert!(
            d.iter()
                .any(|x| x.contains("hard links a/hl: 2 names in the source, 1 in the copy")),
            "{d:?}"
        );
    }
}
