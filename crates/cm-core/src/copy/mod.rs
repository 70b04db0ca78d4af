//! The copy engine behind cm-copy-data: one tree (a "volume") copied into another with every
//! bit of metadata, checksummed, incrementally, in parallel.
//!
//! A copy is planned first ([`plan`]: both trees scanned, every entry compared), then
//! executed ([`execute`]) in phases:
//!
//! 0. entries of the copy that no longer exist in the source (and leftover temporaries of an
//!    interrupted run) are removed, deepest first;
//! 1. missing directories are created, private (0700);
//! 2. files, symlinks, FIFOs and device nodes are copied by `jobs` workers, one source
//!    directory's entries per job. A file is written to a private (0600) temporary in its
//!    final directory while its bytes are hashed (SHA-256), read back and checked, then given
//!    owner, mode, xattrs/ACLs and times in that order, and only then renamed into place;
//! 3. further names of hard-linked inodes are linked to the first name's copy;
//! 4. directories get owner, mode, xattrs and times, deepest first (so a read-only directory
//!    is filled before it becomes read-only, and its mtime is final).
//!
//! Invariants: the source is only ever opened read-only (O_NOATIME where allowed); no path is
//! resolved through a symlink on either side (every operation is relative to a directory
//! descriptor opened with RESOLVE_NO_SYMLINKS / O_NOFOLLOW), so a symlink inside the copy
//! cannot redirect a write outside it; an entry that exists under its final name in the copy
//! is complete (data and metadata); an entry that changed while it was read is retried, then
//! reported, never recorded as good. The engine never prints: it reports through [`Event`]s
//! and returns its findings.

mod file;
pub mod safety;
mod scan;
mod sys;

pub use scan::{Node, NO_PARENT};
pub use sys::{Kind, Stat, Ts};

pub use file::Xattrs;
use file::{ItemError, Worker};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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

/// What an earlier run recorded for one file (from its manifest).
#[derive(Clone, Debug)]
pub struct PrevEntry {
    pub size: u64,
    pub mtime: Ts,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub hash: [u8; 32],
    pub xattrs: Xattrs,
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
    /// Entries to remove from the copy.
    pub delete: u64,
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

/// What happens to one source entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Keep,
    Create,
    /// Another name of the inode first seen at this node index.
    Link(usize),
    /// Right by metadata; read the copy to record its checksum.
    HashTarget,
    /// Right by metadata; compare contents, copy when they differ.
    Checksum,
    Skip,
}

/// A planned copy of one volume.
pub struct Plan {
    pub volume: Volume,
    /// The source, resolved.
    pub src_root: PathBuf,
    pub dst_root: PathBuf,
    pub counts: Counts,
    /// Problems met while scanning (unreadable entries, sockets).
    pub problems: Vec<Problem>,
    /// Set when the source is missing and optional: nothing to do.
    pub skipped: Option<String>,
    /// Set when an earlier run was interrupted by a reboot: contents are compared.
    pub note: Option<String>,
    nodes: Vec<Node>,
    acts: Vec<Act>,
    tgt: Vec<Node>,
    /// For each source node, its counterpart in the copy (`usize::MAX`: none).
    tmatch: Vec<usize>,
    /// Target nodes to remove, deepest first.
    deletes: Vec<usize>,
    prev_hash: Vec<Option<([u8; 32], Xattrs)>>,
}

impl Plan {
    /// Source-relative paths and actions, for tests and `--dry-run` listings.
    pub fn actions(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<(String, &'static str)> = self
            .nodes
            .iter()
            .zip(&self.acts)
            .map(|(n, a)| {
                (
                    show(&n.rel),
                    match a {
                        Act::Keep => "keep",
                        Act::Create => "copy",
                        Act::Link(_) => "link",
                        Act::HashTarget => "hash",
                        Act::Checksum => "compare",
                        Act::Skip => "skip",
                    },
                )
            })
            .collect();
        v.extend(
            self.deletes
                .iter()
                .map(|&j| (show(&self.tgt[j].rel), "delete")),
        );
        v
    }
}

const NONE: usize = usize::MAX;

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
        s.kind == Kind::Symlink || s.perm == t.perm
    }
}

/// Scan source and copy and decide, entry by entry, what to do. Changes nothing.
pub fn plan(
    vol: &Volume,
    opts: &Options,
    prev: Option<&HashMap<Vec<u8>, PrevEntry>>,
) -> Result<Plan, CopyError> {
    let mut p = Plan {
        volume: vol.clone(),
        src_root: vol.src.clone(),
        dst_root: vol.dst.clone(),
        counts: Counts::default(),
        problems: Vec::new(),
        skipped: None,
        note: None,
        nodes: Vec::new(),
        acts: Vec::new(),
        tgt: Vec::new(),
        tmatch: Vec::new(),
        deletes: Vec::new(),
        prev_hash: Vec::new(),
    };
    let src_err = |source| CopyError::Source {
        path: vol.src.clone(),
        source,
    };
    let dst_err = |source| CopyError::Target {
        path: vol.dst.clone(),
        source,
    };
    match lstat_path(&vol.src).map_err(src_err)? {
        None if vol.optional => {
            p.skipped = Some(format!(
                "{}: not present on this host, nothing to copy",
                vol.src.display()
            ));
            return Ok(p);
        }
        None => return Err(CopyError::SourceMissing(vol.src.clone())),
        Some(_) => {}
    }
    p.src_root = std::fs::canonicalize(&vol.src).map_err(src_err)?;
    let dst_meta = lstat_path(&vol.dst).map_err(dst_err)?;
    if let Some(m) = &dst_meta {
        if !m.file_type().is_dir() {
            return Err(CopyError::Refused(format!(
                "{}: the target exists and is not a directory (a symlink is never followed); move it away",
                vol.dst.display()
            )));
        }
    }
    // Both trees are walked at once, each by several workers.
    let threads = opts.jobs.clamp(2, 8);
    let (sres, tres) = std::thread::scope(|sc| {
        let t = sc.spawn(|| {
            if dst_meta.is_some() {
                scan::scan(&vol.dst, true, threads)
            } else {
                Ok((Vec::new(), Vec::new()))
            }
        });
        let s = scan::scan(&p.src_root, true, threads);
        (
            s,
            t.join()
                .unwrap_or_else(|_| Err(io::Error::other("target walker panicked"))),
        )
    });
    let (nodes, sprobs) = sres.map_err(src_err)?;
    if nodes[0].st.kind != Kind::Dir {
        return Err(CopyError::Refused(format!(
            "{}: the source is not a directory",
            vol.src.display()
        )));
    }
    let mut unsure: HashSet<Vec<u8>> = HashSet::new();
    for sp in sprobs {
        p.problems.push(Problem {
            severity: Severity::Error,
            path: join_show(&p.src_root, &sp.rel),
            message: format!(
                "cannot read: {} (not copied; nothing beneath it is removed from the copy)",
                sp.error
            ),
        });
        unsure.insert(sp.rel);
    }
    let (tgt, _tprobs) = tres.map_err(dst_err)?;
    // A run that was interrupted by a reboot may have renamed files whose data never reached
    // the disk: compare contents of everything an earlier finished run did not record.
    let mut force_checksum = false;
    if let Ok(b) = std::fs::read_to_string(crate::manifest::marker_path_for(&vol.dst)) {
        if b.trim() != boot_id() {
            force_checksum = true;
            p.note = Some(format!(
                "{}: an earlier copy was interrupted by a restart; comparing contents of every file it may have written",
                vol.dst.display()
            ));
        }
    }
    let tmap: HashMap<&[u8], usize> = tgt
        .iter()
        .enumerate()
        .skip(1)
        .map(|(j, n)| (n.rel.as_slice(), j))
        .collect();
    let n = nodes.len();
    let mut acts = vec![Act::Keep; n];
    let mut tmatch = vec![NONE; n];
    let mut prev_hash = vec![None; n];
    let mut primaries: HashMap<(u64, u64), usize> = HashMap::new();
    let ids = opts.ids;
    let c = &mut p.counts;
    for (i, node) in nodes.iter().enumerate() {
        let st = &node.st;
        c.entries += 1;
        let t = if i == 0 {
            if tgt.is_empty() {
                NONE
            } else {
                0
            }
        } else {
            tmap.get(node.rel.as_slice()).copied().unwrap_or(NONE)
        };
        tmatch[i] = t;
        let ts = (t != NONE).then(|| &tgt[t].st);
        match st.kind {
            Kind::Dir => c.dirs += 1,
            Kind::File => c.files += 1,
            Kind::Symlink => c.symlinks += 1,
            Kind::Socket => c.sockets += 1,
            _ => c.specials += 1,
        }
        if st.kind == Kind::Socket {
            acts[i] = Act::Skip;
            p.problems.push(Problem {
                severity: Severity::Warning,
                path: join_show(&p.src_root, &node.rel),
                message: "a socket: not copied (its service creates it again at start)".into(),
            });
            continue;
        }
        if st.kind == Kind::Dir {
            acts[i] = match ts {
                Some(t) if t.kind == Kind::Dir => Act::Keep,
                _ => Act::Create,
            };
            continue;
        }
        if st.nlink > 1 {
            if let Some(&first) = primaries.get(&(st.dev, st.ino)) {
                let fa = acts[first];
                let ft = tmatch[first];
                acts[i] = match (ts, fa, ft) {
                    (Some(t), Act::Keep | Act::HashTarget | Act::Checksum, ft)
                        if ft != NONE && tgt[ft].st.ino == t.ino && tgt[ft].st.dev == t.dev =>
                    {
                        Act::Keep
                    }
                    _ => Act::Link(first),
                };
                continue;
            }
            primaries.insert((st.dev, st.ino), i);
            c.bytes += st.size;
        } else if st.kind == Kind::File {
            c.bytes += st.size;
        }
        let Some(t) = ts else {
            acts[i] = Act::Create;
            continue;
        };
        let same = same_meta(st, t, ids)
            && same_xattrs(&node.xattrs, &tgt[tmatch[i]].xattrs, ids)
            && match st.kind {
                // A single-name file whose copy shares its inode (a stale link) is copied
                // anew; names of a linked inode are checked through the link groups.
                Kind::File => st.size == t.size && (st.nlink > 1 || t.nlink == 1),
                Kind::Symlink => node.link == tgt[tmatch[i]].link,
                _ => st.rdev == t.rdev,
            };
        acts[i] = if !same {
            Act::Create
        } else if st.kind != Kind::File {
            Act::Keep
        } else {
            let recorded = prev.and_then(|m| m.get(&node.rel)).filter(|e| {
                e.size == t.size
                    && e.mtime == t.mtime
                    && e.perm == t.perm
                    && e.uid == t.uid
                    && e.gid == t.gid
            });
            match recorded {
                _ if opts.checksum => Act::Checksum,
                Some(e) => {
                    prev_hash[i] = Some((e.hash, e.xattrs.clone()));
                    Act::Keep
                }
                None if force_checksum => Act::Checksum,
                None => Act::HashTarget,
            }
        };
    }
    // Entries of the copy the source no longer has (leftover temporaries included), or whose
    // type changed between directory and non-directory; never beneath an unreadable source
    // entry (its contents are unknown, not gone).
    let smap: HashMap<&[u8], usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.rel.as_slice(), i))
        .collect();
    let mut deletes = Vec::new();
    for j in (1..tgt.len()).rev() {
        let tn = &tgt[j];
        let gone = match smap.get(tn.rel.as_slice()) {
            None => true,
            Some(&i) => {
                acts[i] == Act::Skip
                    || ((nodes[i].st.kind == Kind::Dir) != (tn.st.kind == Kind::Dir))
            }
        };
        if !gone {
            continue;
        }
        let mut k = j;
        let mut protected = false;
        while k != NO_PARENT {
            if unsure.contains(&tgt[k].rel) {
                protected = true;
                break;
            }
            k = tgt[k].parent;
        }
        if !protected {
            deletes.push(j);
        }
    }
    c.delete = deletes.len() as u64;
    for (i, a) in acts.iter().enumerate() {
        let st = &nodes[i].st;
        match a {
            Act::Keep => c.unchanged += 1,
            Act::Create => {
                c.copy += 1;
                c.need_inodes += 1;
                if st.kind == Kind::File {
                    c.copy_bytes += st.size;
                    c.need_bytes += st.blocks * 512;
                } else if st.kind == Kind::Dir {
                    c.need_bytes += 4096;
                }
            }
            Act::Link(_) => c.link += 1,
            Act::HashTarget | Act::Checksum => {
                c.verify += 1;
                c.verify_bytes += st.size;
            }
            Act::Skip => {}
        }
    }
    p.nodes = nodes;
    p.acts = acts;
    p.tgt = tgt;
    p.tmatch = tmatch;
    p.deletes = deletes;
    p.prev_hash = prev_hash;
    Ok(p)
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

/// What the copy holds for one entry after a run (for the manifest).
#[derive(Clone, Debug)]
pub struct Record {
    /// Path relative to the volume's root, bytes (empty: the root).
    pub rel: Vec<u8>,
    /// The metadata the copy carries (owner already mapped).
    pub st: Stat,
    pub hash: Option<[u8; 32]>,
    pub link: Option<Vec<u8>>,
    pub xattrs: Xattrs,
    /// For every name of a hard-linked inode: the index (in the records) of its first name.
    pub link_group: Option<usize>,
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
    pub deleted: u64,
    pub problems: Vec<Problem>,
    /// Every entry the copy now holds correctly, in source order.
    #[serde(skip)]
    pub records: Vec<Record>,
    /// Entries that could not be copied.
    pub failed: u64,
}

impl Outcome {
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
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

fn name_c(n: &Node) -> io::Result<CString> {
    sys::cstr(n.name())
}

/// Run `f` over `jobs` on `n` threads; each call appends results to its worker's list.
fn parallel<J: Sync, R: Send>(
    jobs: &[J],
    n: usize,
    f: impl Fn(&mut Worker, &J, &mut Vec<R>) + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::new());
    let n = n.clamp(1, jobs.len().max(1));
    std::thread::scope(|s| {
        for id in 0..n {
            let (next, out, f) = (&next, &out, &f);
            s.spawn(move || {
                let mut w = Worker::new(id);
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs.len() {
                        break;
                    }
                    f(&mut w, &jobs[i], &mut local);
                }
                out.lock().unwrap_or_else(|e| e.into_inner()).extend(local);
            });
        }
    });
    out.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Group node indices by their parent directory, in chunks, as jobs.
fn jobs_by_dir(nodes: &[Node], items: impl Iterator<Item = usize>) -> Vec<(usize, Vec<usize>)> {
    let mut by: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut index: HashMap<usize, usize> = HashMap::new();
    for i in items {
        let p = nodes[i].parent;
        let k = *index.entry(p).or_insert_with(|| {
            by.push((p, Vec::new()));
            by.len() - 1
        });
        by[k].1.push(i);
    }
    let mut jobs = Vec::new();
    for (p, v) in by {
        for chunk in v.chunks(64) {
            jobs.push((p, chunk.to_vec()));
        }
    }
    jobs
}

enum ItemResult {
    Done(Record, u64),
    /// Checksum compared equal: nothing copied.
    Same(Record, u64),
    Failed(ItemError),
}

/// Execute a plan. Writes the copy; the caller writes the manifest from the outcome's
/// records and then calls [`finish`].
pub fn execute(plan: &Plan, opts: &Options, on: &(dyn Fn(Event) + Sync)) -> Outcome {
    let mut out = Outcome::default();
    if plan.skipped.is_some() {
        return out;
    }
    let ids = opts.ids;
    let problem = |out: &mut Outcome, sev: Severity, rel: &[u8], msg: String| {
        let p = Problem {
            severity: sev,
            path: join_show(&plan.src_root, rel),
            message: msg,
        };
        on(Event::Problem(&p));
        out.problems.push(p);
    };
    for p in &plan.problems {
        on(Event::Problem(p));
    }
    out.problems.extend(plan.problems.iter().cloned());
    let fatal = |out: &mut Outcome, what: &str, e: io::Error| {
        let p = Problem {
            severity: Severity::Error,
            path: plan.dst_root.display().to_string(),
            message: format!("{what}: {e}; nothing copied"),
        };
        on(Event::Problem(&p));
        out.problems.push(p);
        out.failed = plan.nodes.len() as u64;
    };
    let dst = &plan.dst_root;
    if let Some(parent) = dst.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            fatal(&mut out, "cannot create the target's parent", e);
            return out;
        }
    }
    let marker = crate::manifest::marker_path_for(dst);
    let made = marker.parent().map_or(Ok(()), |d| {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
    });
    if let Err(e) =
        made.and_then(|_| crate::fsutil::write_atomic(&marker, boot_id().as_bytes(), 0o600))
    {
        fatal(&mut out, "cannot write the run marker beside the target", e);
        return out;
    }
    if plan.tgt.is_empty() {
        if let Err(e) = std::fs::DirBuilder::new().mode_0700().create(dst) {
            fatal(&mut out, "cannot create the target", e);
            return out;
        }
    }
    let droot = match sys::open_dir_path(dst) {
        Ok(f) => f,
        Err(e) => {
            fatal(&mut out, "cannot open the target", e);
            return out;
        }
    };
    let sroot = match sys::open_dir_path(&plan.src_root) {
        Ok(f) => f,
        Err(e) => {
            fatal(&mut out, "cannot open the source", e);
            return out;
        }
    };
    let (sr, dr) = (sroot.as_raw_fd(), droot.as_raw_fd());
    let nodes = &plan.nodes;

    // Phase 0: removals, deepest first.
    on(Event::Phase("removing what the source no longer has"));
    let mut cache: Option<(usize, OwnedFd)> = None;
    for &j in &plan.deletes {
        let tn = &plan.tgt[j];
        let r = (|| -> io::Result<()> {
            if cache.as_ref().map(|c| c.0) != Some(tn.parent) {
                cache = Some((
                    tn.parent,
                    sys::open_dir_beneath(dr, &plan.tgt[tn.parent].rel, true)?,
                ));
            }
            let d = cache.as_ref().map(|c| c.1.as_raw_fd()).unwrap_or(dr);
            match sys::unlink_at(d, &name_c(tn)?, tn.st.kind == Kind::Dir) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                r => r,
            }
        })();
        match r {
            Ok(()) => out.deleted += 1,
            Err(e) => {
                let p = Problem {
                    severity: Severity::Error,
                    path: join_show(dst, &tn.rel),
                    message: format!("cannot remove from the copy: {e}"),
                };
                on(Event::Problem(&p));
                out.problems.push(p);
            }
        }
    }
    drop(cache);

    // Phase 1: directories, parents first, private until phase 4.
    on(Event::Phase("creating directories"));
    let mut dir_ok = vec![true; nodes.len()];
    {
        let mut cache: Option<(usize, OwnedFd)> = None;
        for (i, node) in nodes.iter().enumerate().skip(1) {
            if node.st.kind != Kind::Dir {
                continue;
            }
            if !dir_ok[node.parent] {
                dir_ok[i] = false;
                continue;
            }
            if plan.acts[i] != Act::Create {
                continue;
            }
            let r = (|| -> io::Result<()> {
                if cache.as_ref().map(|c| c.0) != Some(node.parent) {
                    cache = Some((
                        node.parent,
                        sys::open_dir_beneath(dr, &nodes[node.parent].rel, false)?,
                    ));
                }
                let d = cache.as_ref().map(|c| c.1.as_raw_fd()).unwrap_or(dr);
                let c = name_c(node)?;
                match sys::mkdir_at(d, &c, 0o700) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        let st = sys::lstat_at(d, &c)?;
                        if st.kind == Kind::Dir {
                            Ok(())
                        } else {
                            Err(io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                "exists in the copy and is not a directory",
                            ))
                        }
                    }
                    r => r,
                }
            })();
            on(Event::Done { bytes: 0 });
            if let Err(e) = r {
                dir_ok[i] = false;
                problem(
                    &mut out,
                    Severity::Error,
                    &node.rel,
                    format!(
                        "cannot create the directory in the copy: {e}; nothing beneath it copied"
                    ),
                );
            }
        }
    }

    let mut recs: Vec<Option<Record>> = vec![None; nodes.len()];
    let mut recopied = vec![false; nodes.len()];
    let mut failed = vec![false; nodes.len()];
    let record =
        |i: usize, st: Stat, hash: Option<[u8; 32]>, link: Option<Vec<u8>>, xattrs| Record {
            rel: nodes[i].rel.clone(),
            st,
            hash,
            link,
            xattrs,
            link_group: None,
        };

    // Phase 2: files, symlinks and nodes, in parallel, one directory's entries per job.
    on(Event::Phase("copying"));
    let items = (1..nodes.len()).filter(|&i| {
        dir_ok[nodes[i].parent]
            && nodes[i].st.kind != Kind::Dir
            && matches!(plan.acts[i], Act::Create | Act::HashTarget | Act::Checksum)
    });
    let jobs = jobs_by_dir(nodes, items);
    let results = parallel(&jobs, opts.jobs, |w, (dir, items), res| {
        let rel = &nodes[*dir].rel;
        let dirs = sys::open_dir_beneath(sr, rel, true)
            .map_err(|e| ItemError::Io("open source directory", e))
            .and_then(|s| {
                sys::open_dir_beneath(dr, rel, false)
                    .map(|d| (s, d))
                    .map_err(|e| ItemError::Io("open directory in the copy", e))
            });
        let (sd, dd) = match dirs {
            Ok(p) => p,
            Err(e) => {
                for &i in items {
                    let e2 = match &e {
                        ItemError::Io(op, err) => ItemError::Io(
                            op,
                            io::Error::from_raw_os_error(err.raw_os_error().unwrap_or(libc::EIO)),
                        ),
                        _ => ItemError::Changed,
                    };
                    on(Event::Done { bytes: 0 });
                    res.push((i, ItemResult::Failed(e2)));
                }
                return;
            }
        };
        let (s, d) = (sd.as_raw_fd(), dd.as_raw_fd());
        let dacl = file::has_default_acl(d);
        for &i in items {
            let node = &nodes[i];
            let r = item(w, plan, i, s, d, ids, dacl);
            let bytes = match &r {
                ItemResult::Done(rec, b) | ItemResult::Same(rec, b) => {
                    let _ = rec;
                    *b
                }
                ItemResult::Failed(_) => 0,
            };
            let _ = node;
            on(Event::Done { bytes });
            res.push((i, r));
        }
    });
    for (i, r) in results {
        match r {
            ItemResult::Done(rec, b) => {
                if plan.acts[i] == Act::HashTarget {
                    out.verified += 1;
                } else {
                    out.copied += 1;
                    out.copied_bytes += b;
                    recopied[i] = true;
                }
                recs[i] = Some(rec);
            }
            ItemResult::Same(rec, _) => {
                out.verified += 1;
                recs[i] = Some(rec);
            }
            ItemResult::Failed(e) => {
                failed[i] = true;
                let sev = if matches!(e, ItemError::Vanished)
                    || (opts.live && matches!(e, ItemError::Changed))
                {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                if sev == Severity::Error {
                    out.failed += 1;
                }
                problem(&mut out, sev, &nodes[i].rel, e.to_string());
            }
        }
    }
    // Entries already right (their attributes as the scan of the copy found them).
    for (i, node) in nodes.iter().enumerate() {
        if plan.acts[i] != Act::Keep || node.st.kind == Kind::Dir || !dir_ok[node.parent] {
            continue;
        }
        let t = plan.tmatch[i];
        if t == NONE {
            continue;
        }
        let tn = &plan.tgt[t];
        let hash = plan.prev_hash[i].as_ref().map(|(h, _)| *h);
        recs[i] = Some(record(i, tn.st, hash, tn.link.clone(), tn.xattrs.clone()));
        out.unchanged += 1;
    }

    // Phase 3: further names of hard-linked inodes.
    on(Event::Phase("linking"));
    let mut first_of = vec![NONE; nodes.len()];
    for (i, a) in plan.acts.iter().enumerate() {
        if let Act::Link(f) = a {
            first_of[i] = *f;
        }
    }
    // A Keep second name whose first name was copied again must follow it.
    let mut primaries: HashMap<(u64, u64), usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if node.st.kind == Kind::Dir || node.st.nlink < 2 || plan.acts[i] == Act::Skip {
            continue;
        }
        match primaries.get(&(node.st.dev, node.st.ino)) {
            None => {
                primaries.insert((node.st.dev, node.st.ino), i);
            }
            Some(&f) => {
                first_of[i] = f;
            }
        }
    }
    let link_items: Vec<usize> = (1..nodes.len())
        .filter(|&i| {
            first_of[i] != NONE
                && dir_ok[nodes[i].parent]
                && (matches!(plan.acts[i], Act::Link(_)) || recopied[first_of[i]])
        })
        .collect();
    let mut link_jobs_items = Vec::new();
    for &i in &link_items {
        let f = first_of[i];
        if failed[f] || recs[f].is_none() {
            failed[i] = true;
            out.failed += 1;
            problem(
                &mut out,
                Severity::Error,
                &nodes[i].rel,
                format!(
                    "not linked: its other name {} was not copied",
                    show(&nodes[f].rel)
                ),
            );
            recs[i] = None;
        } else {
            link_jobs_items.push(i);
        }
    }
    let jobs = jobs_by_dir(nodes, link_jobs_items.into_iter());
    let results = parallel(&jobs, opts.jobs, |w, (dir, items), res| {
        let dd = match sys::open_dir_beneath(dr, &nodes[*dir].rel, false) {
            Ok(d) => d,
            Err(e) => {
                for &i in items {
                    res.push((
                        i,
                        Err(ItemError::Io(
                            "open directory in the copy",
                            io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)),
                        )),
                    ));
                }
                return;
            }
        };
        let mut pcache: Option<(usize, OwnedFd)> = None;
        for &i in items {
            let f = first_of[i];
            let pdir = nodes[f].parent;
            let r = (|| -> Result<(), ItemError> {
                if pcache.as_ref().map(|c| c.0) != Some(pdir) {
                    let fd = sys::open_dir_beneath(dr, &nodes[pdir].rel, false)
                        .map_err(|e| ItemError::Io("open directory in the copy", e))?;
                    pcache = Some((pdir, fd));
                }
                let pd = pcache.as_ref().map(|c| c.1.as_raw_fd()).unwrap_or(dr);
                let pn = name_c(&nodes[f]).map_err(|e| ItemError::Io("name", e))?;
                let n = name_c(&nodes[i]).map_err(|e| ItemError::Io("name", e))?;
                file::link_into(w, pd, &pn, dd.as_raw_fd(), &n)
            })();
            on(Event::Done { bytes: 0 });
            res.push((i, r));
        }
    });
    for (i, r) in results {
        match r {
            Ok(()) => {
                out.linked += 1;
                let f = first_of[i];
                if let Some(fr) = recs[f].clone() {
                    recs[i] = Some(Record {
                        rel: nodes[i].rel.clone(),
                        ..fr
                    });
                }
            }
            Err(e) => {
                failed[i] = true;
                out.failed += 1;
                problem(&mut out, Severity::Error, &nodes[i].rel, e.to_string());
            }
        }
    }

    // Phase 4: directories' metadata, deepest first.
    on(Event::Phase("setting directory metadata"));
    let mut w = Worker::new(usize::MAX / 2);
    for i in (0..nodes.len()).rev() {
        let node = &nodes[i];
        if node.st.kind != Kind::Dir || !dir_ok[i] {
            continue;
        }
        let r = (|| -> Result<(Stat, Xattrs), ItemError> {
            let s = sys::open_dir_beneath(sr, &node.rel, true)
                .map_err(|e| ItemError::Io("open source directory", e))?;
            let d = sys::open_dir_beneath(dr, &node.rel, false)
                .map_err(|e| ItemError::Io("open directory in the copy", e))?;
            file::apply_dir_meta(&mut w, s.as_raw_fd(), d.as_raw_fd(), ids)
        })();
        match r {
            Ok((st, x)) => {
                recs[i] = Some(record(i, map_st(&st, ids), None, None, x));
                if plan.acts[i] == Act::Create {
                    out.copied += 1;
                } else {
                    out.unchanged += 1;
                }
            }
            Err(e) => {
                out.failed += 1;
                problem(&mut out, Severity::Error, &node.rel, e.to_string());
            }
        }
    }
    on(Event::Phase("flushing to disk"));
    if let Err(e) = sys::syncfs(dr) {
        problem(
            &mut out,
            Severity::Error,
            b"",
            format!("cannot flush the copy to disk: {e}"),
        );
    }

    // Records, with hard-link groups pointing at the first name's record.
    let mut index = vec![NONE; nodes.len()];
    for (i, r) in recs.into_iter().enumerate() {
        if let Some(mut r) = r {
            if first_of[i] != NONE && index[first_of[i]] != NONE {
                let g = index[first_of[i]];
                // One inode: the same metadata, content hash and attributes as its first name.
                let first = &out.records[g];
                r.st = first.st;
                r.hash = first.hash;
                r.xattrs = first.xattrs.clone();
                r.link_group = Some(g);
                out.records[g].link_group = Some(g);
            }
            index[i] = out.records.len();
            out.records.push(r);
        }
    }
    out
}

fn item(
    w: &mut Worker,
    plan: &Plan,
    i: usize,
    s: RawFd,
    d: RawFd,
    ids: Option<&dyn MapIds>,
    dacl: bool,
) -> ItemResult {
    let node = &plan.nodes[i];
    let name = match name_c(node) {
        Ok(c) => c,
        Err(e) => return ItemResult::Failed(ItemError::Io("name", e)),
    };
    let rec = |st: Stat, hash: Option<[u8; 32]>, link: Option<Vec<u8>>, xattrs| Record {
        rel: node.rel.clone(),
        st,
        hash,
        link,
        xattrs,
        link_group: None,
    };
    let copy = |w: &mut Worker| -> ItemResult {
        if node.st.kind == Kind::File {
            match file::copy_file(w, s, d, &name, ids, dacl) {
                Ok(c) => {
                    let b = c.st.size;
                    ItemResult::Done(rec(map_st(&c.st, ids), Some(c.hash), None, c.xattrs), b)
                }
                Err(e) => ItemResult::Failed(e),
            }
        } else {
            match file::copy_special(w, s, d, &name, ids) {
                Ok((st, link, x)) => ItemResult::Done(rec(map_st(&st, ids), None, link, x), 0),
                Err(e) => ItemResult::Failed(e),
            }
        }
    };
    match plan.acts[i] {
        Act::Create => copy(w),
        Act::HashTarget => match file::hash_at(w, d, &name, true, true) {
            Ok(c) => {
                let b = c.st.size;
                ItemResult::Done(rec(c.st, Some(c.hash), None, c.xattrs), b)
            }
            Err(e) => ItemResult::Failed(ItemError::Io("read the copy to checksum it", e)),
        },
        Act::Checksum => {
            let src = match file::hash_at(w, s, &name, true, false) {
                Ok(c) => c,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return ItemResult::Failed(ItemError::Vanished)
                }
                Err(e) => return ItemResult::Failed(ItemError::Io("read source", e)),
            };
            match file::hash_at(w, d, &name, true, true) {
                Ok(t) if t.hash == src.hash && !changed_meta(&src.st, &node.st) => {
                    let b = t.st.size;
                    ItemResult::Same(rec(t.st, Some(t.hash), None, t.xattrs), b)
                }
                _ => copy(w),
            }
        }
        Act::Keep | Act::Link(_) | Act::Skip => ItemResult::Failed(ItemError::Changed),
    }
}

fn changed_meta(a: &Stat, b: &Stat) -> bool {
    a.size != b.size || a.mtime != b.mtime || a.perm != b.perm || a.uid != b.uid || a.gid != b.gid
}

/// After the manifest is written: the run is complete, remove its marker.
pub fn finish(plan: &Plan) -> io::Result<()> {
    match std::fs::remove_file(crate::manifest::marker_path_for(&plan.dst_root)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

trait DirBuilderExt2 {
    fn mode_0700(&mut self) -> &mut Self;
}
impl DirBuilderExt2 for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o700)
    }
}

/// Read the manifest an earlier run wrote for `dst`, as the planner's record of hashes.
/// `Ok(None)` when there is none.
pub fn load_prev(
    dst: &Path,
) -> Result<Option<HashMap<Vec<u8>, PrevEntry>>, crate::manifest::ManifestError> {
    let p = crate::manifest::path_for(dst);
    if !p.exists() {
        return Ok(None);
    }
    let snap = crate::manifest::read(&p)?;
    let mut m = HashMap::with_capacity(snap.entries.len());
    for e in snap.entries {
        let Some(hash) = e.sha256 else { continue };
        let rel = e.path.as_os_str().as_bytes().to_vec();
        m.insert(
            rel,
            PrevEntry {
                size: e.size,
                mtime: Ts {
                    sec: e.mtime.sec,
                    nsec: e.mtime.nsec as i64,
                },
                perm: e.mode,
                uid: e.uid,
                gid: e.gid,
                hash,
                xattrs: e
                    .xattrs
                    .into_iter()
                    .map(|(n, v)| (n.as_bytes().to_vec(), v))
                    .collect(),
            },
        );
    }
    Ok(Some(m))
}

fn ftype(k: Kind) -> crate::tree::FileType {
    use crate::tree::FileType as F;
    match k {
        Kind::File => F::File,
        Kind::Dir => F::Dir,
        Kind::Symlink => F::Symlink,
        Kind::Fifo => F::Fifo,
        Kind::Char => F::CharDevice,
        Kind::Block => F::BlockDevice,
        Kind::Socket => F::Socket,
    }
}

fn stamp(t: Ts) -> crate::tree::Timestamp {
    crate::tree::Timestamp {
        sec: t.sec,
        nsec: t.nsec.clamp(0, 999_999_999) as u32,
    }
}

/// The copy as a tree snapshot (what the manifest records), sorted, link groups numbered.
pub fn snapshot(records: &[Record]) -> crate::tree::Snapshot {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let entries = records
        .iter()
        .map(|r| crate::tree::Entry {
            path: if r.rel.is_empty() {
                PathBuf::from(".")
            } else {
                PathBuf::from(OsString::from_vec(r.rel.clone()))
            },
            kind: ftype(r.st.kind),
            mode: r.st.perm,
            uid: r.st.uid,
            gid: r.st.gid,
            size: r.st.size,
            mtime: stamp(r.st.mtime),
            atime: stamp(r.st.atime),
            rdev: match r.st.kind {
                Kind::Char | Kind::Block => r.st.rdev,
                _ => 0,
            },
            target: r.link.clone().map(OsString::from_vec),
            inode: r.link_group.map(|g| crate::tree::Inode {
                dev: u64::MAX,
                ino: g as u64,
                nlink: 2,
            }),
            link_group: None,
            xattrs: r
                .xattrs
                .iter()
                .map(|(n, v)| (OsString::from_vec(n.clone()), v.clone()))
                .collect(),
            sha256: r.hash,
        })
        .collect();
    let mut snap = crate::tree::Snapshot {
        entries,
        errors: Vec::new(),
    };
    snap.assign_link_groups();
    snap
}

/// Write the volume's manifest from a run's outcome, then remove the run marker.
pub fn write_manifest(
    plan: &Plan,
    out: &Outcome,
    comments: &[String],
) -> Result<PathBuf, crate::manifest::ManifestError> {
    let path = crate::manifest::path_for(&plan.dst_root);
    let mut c = comments.to_vec();
    c.push(format!("source: {}", plan.src_root.display()));
    if out.errors() > 0 {
        c.push(format!(
            "incomplete: {} entries could not be copied and are not listed",
            out.failed
        ));
    }
    crate::manifest::write(&path, &snapshot(&out.records), &c)?;
    finish(plan).map_err(|source| crate::manifest::ManifestError::Io {
        path: crate::manifest::marker_path_for(&plan.dst_root),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_names_escape_control_and_invalid_bytes() {
        assert_eq!(show(b"cur/1.M1:2,S"), "\"cur/1.M1:2,S\"");
        assert_eq!(show(b"new\nline"), "\"new\\nline\"");
        assert_eq!(show(b"bad-\xff"), "\"bad-\\xff\"");
        assert_eq!(show(b"a\\b"), "\"a\\\\b\"");
        // the same as cm-verify's report
        assert_eq!(show(b"s\nx"), crate::quote::quote_path(Path::new("s\nx")));
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
