//! The copy engine behind cm-copy-data: one tree (a "volume") copied into another with every
//! bit of metadata, checksummed, incrementally, in parallel, as a stream.
//!
//! [`plan`] walks both trees (changing nothing) and counts what a run would do (with
//! `Options::lazy_plan` only where the counts are needed: see [`Counted`]); [`execute`] walks
//! them and does it (`run`): directory by directory in path order, merging the
//! source, the copy and the earlier run's manifest, the files handed to `jobs` workers. A
//! file is written to a private (0600) temporary in its final directory while its bytes are
//! hashed (SHA-256), read back and checked, then given owner, mode, xattrs/ACLs and times in
//! that order, and only then renamed into place; a new directory stays private (0700) until
//! everything beneath it is done; further names of a hard-linked inode are linked to the
//! first name's copy. The manifest is written as the walk goes, to a private temporary
//! renamed into place by [`write_manifest`].
//!
//! Invariants: the source is only ever opened read-only (O_NOATIME where allowed); no path is
//! resolved through a symlink on either side (every operation is relative to a directory
//! descriptor opened with RESOLVE_NO_SYMLINKS / O_NOFOLLOW), so a symlink inside the copy
//! cannot redirect a write outside it; an entry that exists under its final name in the copy
//! is complete (data and metadata); an entry that changed while it was read is retried, then
//! reported, never recorded as good; an entry of the copy is deleted only when an earlier run
//! recorded it and the source no longer has it (others are moved aside); memory is bounded by
//! the work in flight, not by the size of the tree. The engine never prints: it reports
//! through [`Event`]s and returns its findings.

mod file;
mod links;
pub(crate) mod run;
pub mod safety;
use crate::sys;

pub use run::is_temp;
pub use sys::{FileType, Stat, Timestamp};

pub use file::Xattrs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Maps host ids to the ids the copy carries (see `owners::OwnerMap`).
pub trait MapIds: Sync {
    fn uid(&self, uid: u32) -> u32;
    fn gid(&self, gid: u32) -> u32;
}

impl MapIds for crate::owners::OwnerMap {
    fn uid(&self, uid: u32) -> u32 {
        crate::owners::OwnerMap::uid(self, uid)
    }
    fn gid(&self, gid: u32) -> u32 {
        crate::owners::OwnerMap::gid(self, gid)
    }
}

/// One source tree and where its copy goes.
#[derive(Clone, Debug)]
pub struct Volume {
    /// Short name (`dkim`, `acme`, `mail`, or the target's file name for `--map`).
    pub name: String,
    pub src: PathBuf,
    pub dst: PathBuf,
    /// A missing source is a warning, not an error (ACME state exists only in ACME mode).
    pub optional: bool,
    /// This is the mail store: refuse while chatmail services write to it.
    pub mail_store: bool,
}

/// Why a volume cannot be copied at all.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{}: the source does not exist; check --root or --map", .0.display())]
    SourceMissing(PathBuf),
    #[error("{}: cannot read the source: {source}", path.display())]
    Source { path: PathBuf, source: io::Error },
    #[error("{}: cannot use the target: {source}", path.display())]
    Target { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Refused(String),
}

/// How to copy.
pub struct Options<'a> {
    /// Parallel workers.
    pub jobs: usize,
    /// Compare contents, not just size/mtime/mode/owner/type, to decide what changed.
    pub checksum: bool,
    /// Owner mapping; `None` keeps numeric ids.
    pub ids: Option<&'a dyn MapIds>,
    /// A bulk copy while services run: an entry that keeps changing while it is read is a
    /// warning (the next run copies it), not an error. It is never recorded as copied.
    pub live: bool,
    /// A first copy into a target that already holds entries takes them as a partial copy
    /// (entries the source lacks are moved aside, never deleted) instead of refusing.
    pub adopt: bool,
    /// The root the sources were found under (`--root`), recorded in the manifest's header
    /// with that root's machine id; `/` when not given.
    pub root: Option<&'a Path>,
    /// Per source (as given in [`Volume::src`]): the directories, relative to it, that
    /// changed since the earlier run (the change journal's `Changes::below`). A volume found
    /// here is walked only along them; every other directory the earlier manifest records
    /// is carried over from it unread. A volume not found here is walked in full.
    pub changed: Option<&'a std::collections::BTreeMap<PathBuf, Vec<PathBuf>>>,
    /// Keep the list of what is copied, linked and removed (`-v`): memory grows with it.
    pub list: bool,
    /// Plan without walking the trees where the run can do without the plan's counts (see
    /// [`plan`]): for a caller that needs the counts only for the space check (not for a
    /// dry run, a progress total or the check of a caller who is not root).
    pub lazy_plan: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            jobs: crate::tree::default_io_jobs(),
            checksum: false,
            ids: None,
            live: false,
            adopt: false,
            root: None,
            changed: None,
            list: false,
            lazy_plan: false,
        }
    }
}

/// A path a run removes from the copy or moves aside (listed by `--dry-run`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Removal {
    pub path: String,
    pub action: &'static str,
}

/// Counts of a plan (what is there and what will be done).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    /// Entries in the source (the root included).
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// FIFOs and device nodes.
    pub specials: u64,
    /// Sockets: reported, never copied.
    pub sockets: u64,
    /// Bytes in the source's regular files (each inode once).
    pub bytes: u64,
    /// Entries to create or replace (directories included).
    pub copy: u64,
    /// Bytes to copy.
    pub copy_bytes: u64,
    /// Names to hard-link to an already copied inode.
    pub link: u64,
    /// Entries already right in the copy.
    pub unchanged: u64,
    /// Files whose copy is right by metadata but is read to record (or, with --checksum, to
    /// compare) its checksum.
    pub verify: u64,
    pub verify_bytes: u64,
    /// Entries to remove from the copy (an earlier run recorded them, the source lacks them).
    pub delete: u64,
    /// Entries of the copy no run of this suite recorded, which the source lacks: moved aside.
    pub aside: u64,
    /// Temporaries an interrupted run left: removed.
    pub leftovers: u64,
    /// Entries carried over from the earlier manifest, unread (outside the changed
    /// directories of `Options::changed`).
    pub carried: u64,
    /// Space and inodes the copy needs on the target file system.
    pub need_bytes: u64,
    pub need_inodes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// A per-entry problem: what, where, and (in the message) what to do.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// The entry, shown with non-UTF-8 bytes and control characters escaped.
    pub path: String,
    pub message: String,
}

/// A name for humans, quoted as every tool of the suite quotes it ([`crate::quote`]): a
/// newline in a name cannot forge an output line, and the same name prints the same in
/// cm-copy-data and cm-verify.
pub fn show(b: &[u8]) -> String {
    crate::quote::quote_bytes(b)
}

fn join_show(root: &Path, rel: &[u8]) -> String {
    let mut b = root.as_os_str().as_bytes().to_vec();
    if !rel.is_empty() {
        if b.last() != Some(&b'/') {
            b.push(b'/');
        }
        b.extend_from_slice(rel);
    }
    show(&b)
}

/// A planned copy of one volume.
pub struct Plan {
    pub volume: Volume,
    /// The source, resolved.
    pub src_root: PathBuf,
    pub dst_root: PathBuf,
    pub counts: Counts,
    /// Problems met while walking (unreadable entries, sockets).
    pub problems: Vec<Problem>,
    /// What the run would remove or move aside.
    pub removals: Vec<Removal>,
    /// Set when the source is missing and optional: nothing to do.
    pub skipped: Option<String>,
    /// Set when an earlier run was interrupted by a reboot: contents are compared.
    pub note: Option<String>,
    /// Notes of the walk (an unreadable earlier manifest).
    pub notes: Vec<String>,
    /// The source's owners (uid, gid as the source has them): how many entries, the first.
    pub owners: std::collections::BTreeMap<(u32, u32), (u64, String)>,
    /// Device nodes in the source: how many, the first.
    pub devices: Option<(u64, String)>,
    /// With `Options::list`: (path relative to the volume, "copy" | "link" | "delete").
    listed: Vec<(String, &'static str)>,
    force_checksum: bool,
    /// How `counts` were made.
    pub counted: Counted,
}

/// How a plan's counts were made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Counted {
    /// By a walk of both trees: every count is exact.
    Walked,
    /// A first copy planned lazily: only `need_bytes` and `need_inodes` are set, to an upper
    /// bound (the source file system's used space and inodes, no other file system mounted
    /// below the source); [`count`] walks when the target cannot hold the bound.
    Bound,
    /// A delta planned lazily: nothing counted; the run charges every entry it writes
    /// against the target's free space (found when it starts) before writing it, and stops
    /// at the first that would not fit.
    Run,
}

impl Plan {
    /// What the run would copy, link and remove (relative paths, escaped as printed names
    /// are, without the quotes), with `Options::list`.
    pub fn actions(&self) -> Vec<(String, &'static str)> {
        self.listed.clone()
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn lstat_path(p: &Path) -> io::Result<Option<std::fs::Metadata>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The source's attributes (ACL ids mapped) equal the copy's?
fn same_xattrs(s: &Xattrs, t: &Xattrs, ids: Option<&dyn MapIds>) -> bool {
    if s.len() != t.len() {
        return false;
    }
    s.iter().zip(t).all(|((sn, sv), (tn, tv))| {
        sn == tn
            && match ids {
                Some(m) if file::is_acl(sn) => {
                    let mut v = sv.clone();
                    file::map_acl(&mut v, m);
                    &v == tv
                }
                _ => sv == tv,
            }
    })
}

fn same_meta(s: &Stat, t: &Stat, ids: Option<&dyn MapIds>) -> bool {
    let (u, g) = match ids {
        Some(m) => (m.uid(s.uid), m.gid(s.gid)),
        None => (s.uid, s.gid),
    };
    s.kind == t.kind && t.uid == u && t.gid == g && s.mtime == t.mtime && {
        s.kind == FileType::Symlink || s.perm == t.perm
    }
}

/// Walk source and copy and decide, entry by entry, what to do. Changes nothing. A first
/// copy (no manifest, no interrupted run) into a target that holds entries is refused unless
/// `opts.adopt`. With `opts.lazy_plan` (and root: a caller who is not root is checked on the
/// walk's owners) there is no walk for a delta (`Counted::Run`) nor for a first copy whose
/// need the source's file system bounds (`Counted::Bound`).
pub fn plan(vol: &Volume, opts: &Options) -> Result<Plan, CopyError> {
    let mut p = Plan {
        volume: vol.clone(),
        src_root: vol.src.clone(),
        dst_root: vol.dst.clone(),
        counts: Counts::default(),
        problems: Vec::new(),
        removals: Vec::new(),
        skipped: None,
        note: None,
        notes: Vec::new(),
        owners: Default::default(),
        devices: None,
        listed: Vec::new(),
        force_checksum: false,
        counted: Counted::Walked,
    };
    match source_root(vol)? {
        Ok(root) => p.src_root = root,
        Err(skipped) => {
            p.skipped = Some(skipped);
            return Ok(p);
        }
    }
    let ours = check_target(vol, opts)?;
    // A run that was interrupted by a reboot may have renamed files whose data never reached
    // the disk: compare contents of everything an earlier finished run did not record.
    if let Ok(b) = std::fs::read_to_string(crate::manifest::marker_path_for(&vol.dst)) {
        if b.trim() != boot_id() {
            p.force_checksum = true;
            p.note = Some(format!(
                "{}: an earlier copy was interrupted by a restart; comparing contents of every file it may have written",
                vol.dst.display()
            ));
        }
    }
    if opts.lazy_plan && sys::is_root() {
        let manifest = crate::manifest::path_for(&vol.dst);
        if ours && lstat_path(&manifest).ok().flatten().is_some() {
            p.counted = Counted::Run;
            return Ok(p);
        }
        if let Some((bytes, inodes)) = space_bound(&p.src_root) {
            p.counts.need_bytes = bytes;
            p.counts.need_inodes = inodes;
            p.counted = Counted::Bound;
            return Ok(p);
        }
    }
    count(&mut p, opts)?;
    Ok(p)
}

/// The volume's source, resolved (it must be a directory); `Err` with why it is skipped
/// when an optional one is not there.
fn source_root(vol: &Volume) -> Result<Result<PathBuf, String>, CopyError> {
    let src_err = |source| CopyError::Source {
        path: vol.src.clone(),
        source,
    };
    match lstat_path(&vol.src).map_err(src_err)? {
        None if vol.optional => {
            return Ok(Err(format!(
                "{}: not present on this host, nothing to copy",
                vol.src.display()
            )));
        }
        None => return Err(CopyError::SourceMissing(vol.src.clone())),
        Some(_) => {}
    }
    let root = std::fs::canonicalize(&vol.src).map_err(src_err)?;
    if !std::fs::metadata(&root).map_err(src_err)?.is_dir() {
        return Err(CopyError::Refused(format!(
            "{}: the source is not a directory",
            vol.src.display()
        )));
    }
    Ok(Ok(root))
}

/// The volume's target: absent, or a directory that is empty, ours (a run marker or a
/// manifest of this suite beside it) or adopted (`opts.adopt`); whether it is ours.
fn check_target(vol: &Volume, opts: &Options) -> Result<bool, CopyError> {
    let dst_err = |source| CopyError::Target {
        path: vol.dst.clone(),
        source,
    };
    let dst_meta = lstat_path(&vol.dst).map_err(dst_err)?;
    if let Some(m) = &dst_meta {
        if !m.file_type().is_dir() {
            return Err(CopyError::Refused(format!(
                "{}: the target exists and is not a directory (a symlink is never followed); move it away",
                vol.dst.display()
            )));
        }
    }
    let manifest = crate::manifest::path_for(&vol.dst);
    let ours = lstat_path(&crate::manifest::marker_path_for(&vol.dst))
        .ok()
        .flatten()
        .is_some()
        || lstat_path(&manifest).ok().flatten().is_some();
    if dst_meta.is_none() || ours || opts.adopt {
        return Ok(ours);
    }
    let mut names = sys::read_dir_path(&vol.dst).map_err(dst_err)?;
    if names.is_empty() {
        return Ok(ours);
    }
    names.sort();
    let n = names.len();
    let shown: Vec<String> = names.iter().take(5).map(|b| show(b)).collect();
    Err(CopyError::Refused(format!(
        "{}: the target is not empty ({n} {}: {}{}) and no earlier copy of this suite is recorded there (no {}); \
         move them away, or pass --adopt to take them as a partial copy (what the source lacks is then moved aside beside the target, never deleted)",
        crate::quote::quote_path(&vol.dst),
        if n == 1 { "entry" } else { "entries" },
        shown.join(", "),
        if n > 5 { ", ..." } else { "" },
        manifest.display()
    )))
}

/// Walk source and copy and count what the plan's run would do (exact counts, the dry-run
/// listing, owners and device nodes); changes nothing.
pub fn count(p: &mut Plan, opts: &Options) -> Result<(), CopyError> {
    if p.skipped.is_some() {
        return Ok(());
    }
    let vol = &p.volume;
    let sroot = sys::open_dir_path(&p.src_root).map_err(|source| CopyError::Source {
        path: vol.src.clone(),
        source,
    })?;
    let droot = match lstat_path(&vol.dst) {
        Ok(Some(_)) => Some(sys::open_dir_path(&vol.dst)),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
    .transpose()
    .map_err(|source| CopyError::Target {
        path: vol.dst.clone(),
        source,
    })?;
    let on = |_: Event| {};
    let setup = run::Setup {
        src_root: &p.src_root,
        dst_root: &p.dst_root,
        opts,
        force_checksum: p.force_checksum,
        dry: true,
        root_created: false,
        only: run::only_dirs(opts, &vol.src),
        on: &on,
        budget: None,
    };
    let w = run::walk_volume(&setup, sroot, droot, None);
    p.counts = w.counts;
    p.problems = w.problems;
    p.removals = w.removals;
    p.notes = w.notes;
    p.owners = w.owners;
    p.devices = w.devices;
    p.listed = w.listed;
    p.counted = Counted::Walked;
    Ok(())
}

/// An upper bound of the space and inodes a copy of the tree at `src` can need: what its
/// file system uses (bytes, plus a directory block per inode; inodes), when that file system
/// reports both and no other file system is mounted below `src`. None otherwise.
fn space_bound(src: &Path) -> Option<(u64, u64)> {
    let (used_bytes, used_inodes) = sys::statfs_used(src).ok()??;
    let mut below = src.as_os_str().as_bytes().to_vec();
    if below.last() != Some(&b'/') {
        below.push(b'/');
    }
    let mounts = std::fs::read("/proc/self/mountinfo").ok()?;
    for line in mounts.split(|&b| b == b'\n') {
        // field 5: the mount point, with space, tab, newline and backslash octal-escaped
        let Some(mp) = line.split(|&b| b == b' ').nth(4) else {
            continue;
        };
        if unescape_mount(mp).starts_with(&below) {
            return None;
        }
    }
    Some((
        used_bytes.saturating_add(used_inodes.saturating_mul(4096)),
        used_inodes,
    ))
}

/// A mountinfo field with its `\NNN` octal escapes decoded.
fn unescape_mount(f: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.len());
    let mut i = 0;
    while i < f.len() {
        let oct = f
            .get(i + 1..i + 4)
            .filter(|d| f[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(f[i]);
                i += 1;
            }
        }
    }
    out
}

/// Progress and problems, reported while a copy runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A phase started (for a status line).
    Phase(&'a str),
    /// One entry done: `bytes` of file data copied or read for checking.
    Done { bytes: u64 },
    /// A problem with one entry (also returned in the outcome).
    Problem(&'a Problem),
}

/// What a run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub copied: u64,
    pub copied_bytes: u64,
    pub linked: u64,
    /// Entries compared by content (a resumed or --checksum run) and found equal: not copied.
    pub verified: u64,
    pub unchanged: u64,
    /// Entries removed: an earlier run recorded them and the source no longer has them.
    pub deleted: u64,
    /// Entries no run of this suite recorded, which the source lacks: moved aside.
    pub moved_aside: u64,
    /// Where they were moved.
    pub aside_dir: Option<PathBuf>,
    /// Temporaries an interrupted run left behind, removed (not entries of the source).
    pub leftovers: u64,
    /// Entries carried over from the earlier manifest, unread (`Options::changed`).
    pub carried: u64,
    pub problems: Vec<Problem>,
    /// Entries that could not be copied.
    pub failed: u64,
    /// Notes (an unreadable earlier manifest).
    pub notes: Vec<String>,
    /// Entries the manifest records.
    pub recorded: u64,
    /// What the run's walk counted (the plan's counts, when the plan did not walk).
    #[serde(skip)]
    pub walked: Counts,
    /// With `Options::list`: what was copied, linked and removed (relative paths).
    #[serde(skip)]
    listed: Vec<(String, &'static str)>,
    /// The manifest being written, finished by [`write_manifest`].
    #[serde(skip)]
    manifest: Option<Arc<Mutex<Option<crate::manifest::Writer>>>>,
}

impl Outcome {
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// With `Options::list`: (relative path, "copy" | "link" | "delete") of what the run did
    /// or tried (failures are among the problems).
    pub fn actions(&self) -> Vec<(String, &'static str)> {
        self.listed.clone()
    }

    /// Whether the run recorded anything (a manifest can be written).
    pub fn has_manifest(&self) -> bool {
        self.manifest.is_some()
    }
}

fn map_st(st: &Stat, ids: Option<&dyn MapIds>) -> Stat {
    let mut s = *st;
    if let Some(m) = ids {
        s.uid = m.uid(st.uid);
        s.gid = m.gid(st.gid);
    }
    s
}

/// Execute a plan: walk again and copy. The caller then writes the manifest with
/// [`write_manifest`] (which also removes the run marker).
pub fn execute(plan: &Plan, opts: &Options, on: &(dyn Fn(Event) + Sync)) -> Outcome {
    if plan.skipped.is_some() {
        return Outcome::default();
    }
    let ready = match Ready::make(plan, opts) {
        Ok(r) => r,
        Err((what, e)) => {
            let mut out = Outcome::default();
            let p = problem(plan, format!("{what}: {e}; nothing copied"));
            on(Event::Problem(&p));
            out.problems.push(p);
            out.failed = plan.counts.entries.max(1);
            return out;
        }
    };
    on(Event::Phase("copying"));
    let setup = run::Setup {
        src_root: &plan.src_root,
        dst_root: &plan.dst_root,
        opts,
        force_checksum: plan.force_checksum,
        dry: false,
        root_created: ready.root_created,
        only: run::only_dirs(opts, &plan.volume.src),
        on,
        budget: ready.budget,
    };
    let w = run::walk_volume(&setup, ready.sroot, Some(ready.droot), Some(ready.writer));
    let mut out = w.outcome;
    out.walked = w.counts;
    out.notes = w.notes;
    out.listed = w.listed;
    on(Event::Phase("flushing to disk"));
    let synced = sys::open_dir_path(&plan.dst_root)
        .and_then(|d| sys::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)));
    if let Err(e) = synced {
        let p = problem(plan, format!("cannot flush the copy to disk: {e}"));
        on(Event::Problem(&p));
        out.problems.push(p);
    }
    if let Some(wr) = w.writer {
        out.recorded = wr.count();
        out.manifest = Some(Arc::new(Mutex::new(Some(wr))));
    }
    out
}

/// An error of the run as a whole, on the target's root.
fn problem(plan: &Plan, message: String) -> Problem {
    Problem {
        severity: Severity::Error,
        path: plan.dst_root.display().to_string(),
        message,
    }
}

/// What a step of making the target ready was, and why it failed (nothing is copied then).
type Unready = (&'static str, io::Error);

/// The target made ready for a run: its run marker written, its root there, both roots
/// open, its free space taken and its manifest begun.
struct Ready {
    sroot: std::os::fd::OwnedFd,
    droot: std::os::fd::OwnedFd,
    /// The copy's root was made by this run.
    root_created: bool,
    /// What the run may write: the target's free space now (earlier volumes are done).
    budget: Option<(u64, Option<u64>)>,
    writer: crate::manifest::Writer,
}

impl Ready {
    fn make(plan: &Plan, opts: &Options) -> Result<Ready, Unready> {
        let dst = &plan.dst_root;
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ("cannot create the target's parent", e))?;
        }
        Ready::write_marker(dst)
            .map_err(|e| ("cannot write the run marker beside the target", e))?;
        let root_created = Ready::make_root(dst)?;
        let droot = sys::open_dir_path(dst).map_err(|e| ("cannot open the target", e))?;
        let (free, favail, files) =
            sys::statvfs(dst).map_err(|e| ("cannot check free space on the target", e))?;
        let sroot =
            sys::open_dir_path(&plan.src_root).map_err(|e| ("cannot open the source", e))?;
        let header =
            crate::manifest::Header::of(opts.root.unwrap_or(Path::new("/")), &plan.volume.src);
        let writer = crate::manifest::Writer::create(
            &crate::manifest::path_for(dst),
            &header,
            &[format!("source: {}", plan.src_root.display())],
        )
        .map_err(|e| ("cannot write the manifest", io::Error::other(e.to_string())))?;
        Ok(Ready {
            sroot,
            droot,
            root_created,
            budget: Some((free, (files > 0).then_some(favail))),
            writer,
        })
    }

    /// The run marker beside the target (this boot's id), in a private directory.
    fn write_marker(dst: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let marker = crate::manifest::marker_path_for(dst);
        if let Some(d) = marker.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)?;
        }
        crate::fsutil::write_atomic(&marker, boot_id().as_bytes(), 0o600)
    }

    /// The copy's root, made (0700) when it is not there; whether this run made it.
    fn make_root(dst: &Path) -> Result<bool, Unready> {
        use std::os::unix::fs::DirBuilderExt;
        match lstat_path(dst) {
            Ok(Some(_)) => Ok(false),
            Ok(None) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dst)
                .map(|_| true)
                .map_err(|e| ("cannot create the target", e)),
            Err(e) => Err(("cannot use the target", e)),
        }
    }
}

/// After the manifest is written: the run is complete, remove its marker.
pub fn finish(plan: &Plan) -> io::Result<()> {
    match std::fs::remove_file(crate::manifest::marker_path_for(&plan.dst_root)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Finish the volume's manifest from a run's outcome (trailing `comments`), then remove the
/// run marker.
pub fn write_manifest(
    plan: &Plan,
    out: &Outcome,
    comments: &[String],
) -> Result<PathBuf, crate::manifest::ManifestError> {
    let path = crate::manifest::path_for(&plan.dst_root);
    let w = out
        .manifest
        .as_ref()
        .and_then(|m| m.lock().unwrap_or_else(|e| e.into_inner()).take());
    let Some(w) = w else {
        return Err(crate::manifest::ManifestError::Io {
            path,
            source: io::Error::other(
                "nothing was recorded by this run (or it was already written)",
            ),
        });
    };
    let mut c = comments.to_vec();
    if out.errors() > 0 {
        c.push(format!(
            "incomplete: {} entries could not be copied and are not listed",
            out.failed
        ));
    }
    w.finish(&c)?;
    finish(plan).map_err(|source| crate::manifest::ManifestError::Io {
        path: crate::manifest::marker_path_for(&plan.dst_root),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn shown_names_escape_control_and_invalid_bytes() {
        assert_eq!(show(b"cur/1.M1:2,S"), "\"cur/1.M1:2,S\"");
        assert_eq!(show(b"new\nline"), "\"new\\nline\"");
        assert_eq!(show(b"bad-\xff"), "\"bad-\\xff\"");
        assert_eq!(show(b"a\\b"), "\"a\\\\b\"");
        // the same as cm-verify's report
        assert_eq!(show(b"s\nx"), crate::quote::quote_path(Path::new("s\nx")));
    }

    fn run_copy(v: &Volume, opts: &Options) -> Outcome {
        let p = plan(v, opts).unwrap();
        let o = execute(&p, opts, &|_| {});
        write_manifest(&p, &o, &[]).unwrap();
        o
    }

    #[test]
    fn a_restricted_delta_walks_only_the_changed_directories_and_carries_the_rest() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        for d in ["a/cur", "b/cur", "a-b"] {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        std::fs::write(src.join("a/cur/1"), b"one").unwrap();
        std::fs::write(src.join("b/cur/2"), b"two").unwrap();
        std::fs::write(src.join("a-b/3"), b"three").unwrap();
        let v = Volume {
            name: "copy".into(),
            src: src.clone(),
            dst: t.path().join("data/copy"),
            optional: false,
            mail_store: false,
        };
        let opts = Options {
            jobs: 2,
            ..Default::default()
        };
        assert_eq!(run_copy(&v, &opts).copied, 9);
        // Both a/cur and b/cur change; the journal names only a/cur.
        std::fs::write(src.join("a/cur/new"), b"new").unwrap();
        std::fs::write(src.join("b/cur/unseen"), b"unseen").unwrap();
        let mut m = std::collections::BTreeMap::new();
        m.insert(src.clone(), vec![PathBuf::from("a/cur")]);
        let ropts = Options {
            changed: Some(&m),
            ..Options {
                jobs: 2,
                ..Default::default()
            }
        };
        let o = run_copy(&v, &ropts);
        assert_eq!(o.copied, 1, "{o:?}");
        assert!(v.dst.join("a/cur/new").exists());
        assert!(
            !v.dst.join("b/cur/unseen").exists(),
            "b was carried, not walked"
        );
        // b, b/cur, b/cur/2 and a-b, a-b/3 carried over from the manifest.
        assert_eq!(o.carried, 5, "{o:?}");
        let snap = crate::manifest::read(&crate::manifest::path_for(&v.dst)).unwrap();
        let paths: Vec<String> = snap
            .entries
            .iter()
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                ".",
                "a",
                "a/cur",
                "a/cur/1",
                "a/cur/new",
                "a-b",
                "a-b/3",
                "b",
                "b/cur",
                "b/cur/2"
            ]
        );
        // A full delta then finds what the journal did not name.
        let o = run_copy(&v, &opts);
        assert_eq!(o.copied, 1);
        assert!(v.dst.join("b/cur/unseen").exists());
    }

    /// A volume `src` -> `data/copy` in a temporary directory, with `dirs` made.
    fn link_volume(t: &tempfile::TempDir, dirs: &[&str]) -> Volume {
        let src = t.path().join("src");
        for d in dirs {
            std::fs::create_dir_all(src.join(d)).unwrap();
        }
        Volume {
            name: "copy".into(),
            src,
            dst: t.path().join("data/copy"),
            optional: false,
            mail_store: false,
        }
    }

    /// A delta restricted to `changed` (directories relative to the source).
    fn restricted(v: &Volume, changed: &[&str]) -> Outcome {
        let mut m = std::collections::BTreeMap::new();
        m.insert(v.src.clone(), changed.iter().map(PathBuf::from).collect());
        let opts = Options {
            jobs: 2,
            changed: Some(&m),
            ..Default::default()
        };
        run_copy(v, &opts)
    }

    fn full(v: &Volume) -> Outcome {
        run_copy(
            v,
            &Options {
                jobs: 2,
                ..Default::default()
            },
        )
    }

    /// The hard-link groups the volume's manifest records, as sets of paths.
    fn recorded_groups(v: &Volume) -> BTreeSet<BTreeSet<String>> {
        let snap = crate::manifest::read(&crate::manifest::path_for(&v.dst)).unwrap();
        snap.link_groups()
            .into_values()
            .filter(|p| p.len() > 1)
            .map(|p| p.iter().map(|p| p.display().to_string()).collect())
            .collect()
    }

    fn groups(g: &[&[&str]]) -> BTreeSet<BTreeSet<String>> {
        g.iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    /// The copy is the source (contents and hard links included), and so is its manifest, read
    /// as a stream against the copy and against the source.
    fn assert_whole(v: &Volume) {
        let opts = crate::tree::CompareOptions {
            jobs: 2,
            ..Default::default()
        };
        let (d, _) = crate::tree::compare_trees(&v.src, &v.dst, &opts, &()).unwrap();
        assert!(d.is_empty(), "copy vs source: {d:?}");
        let m = crate::manifest::path_for(&v.dst);
        for tree in [&v.dst, &v.src] {
            let (d, _) = crate::manifest::check(&m, tree, &opts, &()).unwrap();
            assert!(d.is_empty(), "manifest vs {}: {d:?}", tree.display());
        }
    }

    fn ino(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p).unwrap().ino()
    }

    /// A later delta that walks everything finds nothing to do and records the same groups.
    fn assert_full_delta_agrees(v: &Volume) {
        let before = recorded_groups(v);
        let o = full(v);
        assert_eq!((o.copied, o.linked, o.failed), (0, 0, 0), "{o:?}");
        assert_eq!(recorded_groups(v), before);
        assert_whole(v);
    }

    fn append(p: &Path, b: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(b).unwrap();
    }

    #[test]
    fn a_restricted_delta_keeps_a_changed_inode_linked_to_its_names_in_carried_directories() {
        let t = tempfile::tempdir().unwrap();
        let v = link_volume(&t, &["a", "b", "c", "d"]);
        let s = &v.src;
        // a/1 = b/1 (the carried name after the changed one), c/1 = d/1 (before it)
        std::fs::write(s.join("a/1"), b"first").unwrap();
        std::fs::hard_link(s.join("a/1"), s.join("b/1")).unwrap();
        std::fs::write(s.join("c/1"), b"second").unwrap();
        std::fs::hard_link(s.join("c/1"), s.join("d/1")).unwrap();
        std::fs::write(s.join("b/2"), b"alone").unwrap();
        full(&v);
        assert_eq!(
            recorded_groups(&v),
            groups(&[&["a/1", "b/1"], &["c/1", "d/1"]])
        );
        // Written through the names in a and d: the journal names a and d only.
        append(&s.join("a/1"), b" and more");
        append(&s.join("d/1"), b" and more");
        let o = restricted(&v, &["a", "d"]);
        assert_eq!(o.failed, 0, "{o:?}");
        let d = &v.dst;
        assert_eq!(
            ino(&d.join("a/1")),
            ino(&d.join("b/1")),
            "a/1 and b/1 split"
        );
        assert_eq!(
            ino(&d.join("c/1")),
            ino(&d.join("d/1")),
            "c/1 and d/1 split"
        );
        assert_eq!(std::fs::read(d.join("b/1")).unwrap(), b"first and more");
        assert_eq!(std::fs::read(d.join("c/1")).unwrap(), b"second and more");
        assert_eq!(
            recorded_groups(&v),
            groups(&[&["a/1", "b/1"], &["c/1", "d/1"]])
        );
        assert_whole(&v);
        assert_full_delta_agrees(&v);
    }

    #[test]
    fn a_restricted_delta_links_a_new_name_to_an_inode_of_a_carried_directory() {
        let t = tempfile::tempdir().unwrap();
        let v = link_volume(&t, &["e", "f", "g", "h", "i", "j", "k"]);
        let s = &v.src;
        std::fs::write(s.join("e/1"), b"one").unwrap();
        std::fs::write(s.join("h/1"), b"two").unwrap();
        // an inode linked already: i/1 = j/1, both carried
        std::fs::write(s.join("i/1"), b"three").unwrap();
        std::fs::hard_link(s.join("i/1"), s.join("j/1")).unwrap();
        full(&v);
        // New names in f, g and k of inodes whose only names are in carried directories.
        std::fs::hard_link(s.join("e/1"), s.join("f/new")).unwrap();
        std::fs::hard_link(s.join("h/1"), s.join("g/new")).unwrap();
        std::fs::hard_link(s.join("i/1"), s.join("k/new")).unwrap();
        let o = restricted(&v, &["f", "g", "k"]);
        assert_eq!(o.failed, 0, "{o:?}");
        let d = &v.dst;
        assert_eq!(
            ino(&d.join("e/1")),
            ino(&d.join("f/new")),
            "e/1 and f/new split"
        );
        assert_eq!(
            ino(&d.join("g/new")),
            ino(&d.join("h/1")),
            "g/new and h/1 split"
        );
        assert_eq!(
            ino(&d.join("i/1")),
            ino(&d.join("k/new")),
            "i/1 and k/new split"
        );
        assert_eq!(
            ino(&d.join("j/1")),
            ino(&d.join("k/new")),
            "j/1 and k/new split"
        );
        assert_eq!(
            recorded_groups(&v),
            groups(&[
                &["e/1", "f/new"],
                &["g/new", "h/1"],
                &["i/1", "j/1", "k/new"]
            ])
        );
        assert_whole(&v);
        assert_full_delta_agrees(&v);
    }

    #[test]
    fn an_unchanged_inode_linked_into_carried_directories_is_linked_to_them_unread() {
        let t = tempfile::tempdir().unwrap();
        let v = link_volume(&t, &["a", "b"]);
        let s = &v.src;
        std::fs::write(s.join("a/1"), b"shared").unwrap();
        std::fs::hard_link(s.join("a/1"), s.join("b/1")).unwrap();
        full(&v);
        // a changes (a new file, a new name of the shared inode); b is not named
        std::fs::write(s.join("a/2"), b"new").unwrap();
        std::fs::hard_link(s.join("a/1"), s.join("a/3")).unwrap();
        let o = restricted(&v, &["a"]);
        assert_eq!((o.copied, o.linked, o.failed), (1, 1, 0), "{o:?}");
        assert_eq!(o.carried, 2, "b and b/1 carried, unread: {o:?}");
        let d = &v.dst;
        assert_eq!(ino(&d.join("a/3")), ino(&d.join("b/1")));
        assert_eq!(ino(&d.join("a/1")), ino(&d.join("b/1")));
        assert_eq!(recorded_groups(&v), groups(&[&["a/1", "a/3", "b/1"]]));
        assert_whole(&v);
        assert_full_delta_agrees(&v);
    }

    #[test]
    fn after_a_restart_cut_a_run_short_a_linked_copy_is_read_again_not_taken_from_its_name() {
        let t = tempfile::tempdir().unwrap();
        let v = link_volume(&t, &["a", "b"]);
        let s = &v.src;
        std::fs::write(s.join("a/1"), b"before").unwrap();
        std::fs::hard_link(s.join("a/1"), s.join("b/1")).unwrap();
        full(&v);
        // The interrupted run had written the new content into the copy's inode (size and
        // time as the source's), whose data the restart lost.
        append(&s.join("a/1"), b" after");
        let d = &v.dst;
        std::fs::write(d.join("a/1"), b"lost lost...").unwrap();
        let mtime = filetime::FileTime::from_last_modification_time(
            &std::fs::symlink_metadata(s.join("a/1")).unwrap(),
        );
        filetime::set_symlink_file_times(d.join("a/1"), mtime, mtime).unwrap();
        std::fs::write(crate::manifest::marker_path_for(d), b"another boot").unwrap();
        let o = restricted(&v, &["a"]);
        assert_eq!(o.failed, 0, "{o:?}");
        assert_eq!(std::fs::read(d.join("b/1")).unwrap(), b"before after");
        assert_eq!(ino(&d.join("a/1")), ino(&d.join("b/1")));
        assert_whole(&v);
    }

    #[test]
    fn a_name_linked_outside_the_volume_makes_a_restricted_delta_walk_in_full() {
        let t = tempfile::tempdir().unwrap();
        let v = link_volume(&t, &["a", "b"]);
        let s = &v.src;
        full(&v);
        std::fs::write(t.path().join("outside"), b"out").unwrap();
        std::fs::hard_link(t.path().join("outside"), s.join("a/in")).unwrap();
        std::fs::write(s.join("b/unseen"), b"unseen").unwrap();
        let o = restricted(&v, &["a"]);
        assert_eq!(o.failed, 0, "{o:?}");
        assert!(
            o.notes.iter().any(|n| n.contains("walked in full")),
            "{o:?}"
        );
        assert!(v.dst.join("b/unseen").exists(), "walked in full");
        assert_eq!(o.carried, 0);
        assert_whole(&v);
        // recorded now (a group of one name): the next restricted delta needs no full walk
        let o = restricted(&v, &["a"]);
        assert!(o.notes.is_empty(), "{o:?}");
        assert!(o.carried > 0, "{o:?}");
    }

    #[test]
    fn link_groups_carried_from_the_earlier_manifest_never_clash_with_new_ones() {
        let t = tempfile::tempdir().unwrap();
        let v = link_volume(&t, &["a", "x", "y", "z"]);
        let s = &v.src;
        // groups 1 and 2 of the first manifest, carried: a/1 = a/2, and x/1 = y/1 whose name
        // in the changed directory x is removed
        std::fs::write(s.join("a/1"), b"one").unwrap();
        std::fs::hard_link(s.join("a/1"), s.join("a/2")).unwrap();
        std::fs::write(s.join("x/1"), b"two").unwrap();
        std::fs::hard_link(s.join("x/1"), s.join("y/1")).unwrap();
        std::fs::write(s.join("z/0"), b"zero").unwrap();
        full(&v);
        assert_eq!(
            recorded_groups(&v),
            groups(&[&["a/1", "a/2"], &["x/1", "y/1"]])
        );
        std::fs::remove_file(s.join("x/1")).unwrap();
        // new inodes with several names in the changed directories, numbered by this run
        std::fs::write(s.join("x/2"), b"new").unwrap();
        std::fs::hard_link(s.join("x/2"), s.join("x/3")).unwrap();
        std::fs::write(s.join("z/1"), b"newer").unwrap();
        std::fs::hard_link(s.join("z/1"), s.join("z/2")).unwrap();
        let o = restricted(&v, &["x", "z"]);
        assert_eq!(o.failed, 0, "{o:?}");
        assert_eq!(
            recorded_groups(&v),
            groups(&[&["a/1", "a/2"], &["x/2", "x/3"], &["z/1", "z/2"]])
        );
        let d = &v.dst;
        assert_ne!(ino(&d.join("a/1")), ino(&d.join("z/1")));
        assert_eq!(ino(&d.join("z/1")), ino(&d.join("z/2")));
        assert_whole(&v);
        assert_full_delta_agrees(&v);
    }

    #[test]
    fn mount_points_are_unescaped_and_bound_the_space_only_without_a_mount_below() {
        assert_eq!(unescape_mount(b"/srv/a\\040b\\134c"), b"/srv/a b\\c");
        assert_eq!(unescape_mount(b"/x\\9"), b"/x\\9");
        // /proc has file systems mounted below it: no bound
        assert_eq!(space_bound(Path::new("/proc")), None);
        // a tmpfs or ext4 directory without mounts below is bounded by what its file system
        // uses (a bound at least as large as the tree)
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), vec![1u8; 64 << 10]).unwrap();
        if let Ok(Some(_)) = sys::statfs_used(t.path()) {
            let (b, i) = space_bound(t.path()).expect("bounded");
            assert!(b >= 64 << 10 && i >= 2, "{b} {i}");
        }
    }

    #[test]
    fn state_files_live_beside_the_volume_not_inside() {
        let d = Path::new("/p/data/chatmail");
        assert_eq!(
            crate::manifest::path_for(d),
            Path::new("/p/data/.cm-manifest/chatmail.manifest")
        );
        assert_eq!(
            crate::manifest::marker_path_for(d),
            Path::new("/p/data/.cm-manifest/chatmail.running")
        );
    }
}
