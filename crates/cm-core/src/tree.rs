//! Walking a tree and recording every entry's metadata and content hash; comparing two
//! records.
//!
//! A [`Snapshot`] is the record of one tree: for every entry (the root itself is `.`) its
//! relative path (bytes: any name, including non-UTF-8 and newlines), [`FileType`],
//! permission bits (with setuid, setgid, sticky), owner, size, mtime and atime to the
//! nanosecond, device number, symlink target, hard-link group, extended attributes (POSIX
//! ACLs included, as raw `system.posix_acl_*` values) and optionally the SHA-256 of its
//! content. [`compare`] turns two snapshots into typed [`Difference`]s; [`compare_trees`]
//! and [`check_against`] do the walking and (parallel) hashing as well.
//!
//! Invariants: symlinks are never followed (the walk uses `lstat`-style calls only and opens
//! files with `O_NOFOLLOW`); the walked tree is never written (files are opened read-only,
//! with `O_NOATIME` where the kernel allows it); a file that cannot be read is recorded as a
//! [`ScanError`], never silently skipped; atime is recorded but not compared unless asked.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use nix::fcntl::{readlinkat, AtFlags};
use nix::sys::stat::{fstatat, FileStat};
use sha2::{Digest, Sha256};
use std::ffi::CStr;
use std::os::fd::{IntoRawFd, RawFd};

use crate::owners::OwnerMap;

pub use crate::sys::{FileType, Timestamp};

/// Identity of an inode, from a live scan (not stored in manifests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inode {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the tree's root; the root itself is `.`.
    pub path: PathBuf,
    pub kind: FileType,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Byte size (`st_size`); compared for regular files only.
    pub size: u64,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    /// Device number of a char/block device; 0 for everything else.
    pub rdev: u64,
    /// Target of a symlink, as bytes.
    pub target: Option<OsString>,
    /// Inode identity from a live scan; `None` when read from a manifest.
    pub inode: Option<Inode>,
    /// Hard-link group inside this tree: entries with the same id are one inode. Only set
    /// when at least two paths of the tree share the inode. Ids are numbered from 1 in path
    /// order by [`Snapshot::assign_link_groups`].
    pub link_group: Option<u64>,
    /// Extended attributes (including `system.posix_acl_access`/`_default`), sorted by name.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
    /// SHA-256 of a regular file's content, when hashed.
    pub sha256: Option<[u8; 32]>,
}

impl Entry {
    /// Build an entry from `lstat` metadata (no xattrs, no target, no hash).
    pub fn from_metadata(path: PathBuf, md: &Metadata) -> Entry {
        let kind = FileType::from_mode(md.mode());
        Entry {
            path,
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            mtime: Timestamp {
                sec: md.mtime(),
                nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
            },
            atime: Timestamp {
                sec: md.atime(),
                nsec: md.atime_nsec().clamp(0, 999_999_999) as u32,
            },
            rdev: match kind {
                FileType::CharDevice | FileType::BlockDevice => md.rdev(),
                _ => 0,
            },
            target: None,
            inode: Some(Inode {
                dev: md.dev(),
                ino: md.ino(),
                nlink: md.nlink(),
            }),
            link_group: None,
            xattrs: Vec::new(),
            sha256: None,
        }
    }

    /// Build an entry from a raw `lstat`/`fstatat` result (no xattrs, no target, no hash).
    pub fn from_stat(path: PathBuf, st: &FileStat) -> Entry {
        let mode = st.st_mode;
        let kind = FileType::from_mode(mode);
        let ts = |sec: i64, nsec: i64| Timestamp {
            sec,
            nsec: nsec.clamp(0, 999_999_999) as u32,
        };
        Entry {
            path,
            kind,
            mode: mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime: ts(st.st_mtime, st.st_mtime_nsec),
            atime: ts(st.st_atime, st.st_atime_nsec),
            rdev: match kind {
                FileType::CharDevice | FileType::BlockDevice => st.st_rdev,
                _ => 0,
            },
            target: None,
            inode: Some(Inode {
                dev: st.st_dev,
                ino: st.st_ino,
                nlink: st.st_nlink,
            }),
            link_group: None,
            xattrs: Vec::new(),
            sha256: None,
        }
    }

    /// Read one entry at `abs` (never following a symlink), recording it under `rel`:
    /// metadata, symlink target, xattrs (when `xattrs`) and the content hash (when `hash`).
    pub fn read(abs: &Path, rel: PathBuf, xattrs: bool, hash: bool) -> io::Result<Entry> {
        let md = fs::symlink_metadata(abs)?;
        let mut e = Entry::from_metadata(rel, &md);
        if e.kind == FileType::Symlink {
            e.target = Some(fs::read_link(abs)?.into_os_string());
        }
        if xattrs {
            e.xattrs = read_xattrs(abs)?;
        }
        if hash && e.kind == FileType::File {
            e.sha256 = Some(hash_file(abs)?);
        }
        Ok(e)
    }
}

/// A problem met while reading one entry: the entry could not be recorded (or hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Relative path of the entry.
    pub path: PathBuf,
    pub message: String,
}

/// Why a tree could not be walked at all.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a directory (a tree's root must be a directory)", path.display())]
    NotADirectory { path: PathBuf },
}

/// The record of a tree. Entries are sorted by path (component-wise, so `.` comes first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: Vec<Entry>,
    /// Entries that could not be read or hashed.
    pub errors: Vec<ScanError>,
}

impl Snapshot {
    /// Sort entries by path (needed before [`Snapshot::get`]).
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| path_cmp(&a.path, &b.path));
    }

    /// Look an entry up by relative path (entries must be sorted).
    pub fn get(&self, path: &Path) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| path_cmp(&e.path, path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Number hard-link groups from the inode identities of a live scan: paths (not
    /// directories) sharing one inode get the same id, numbered from 1 in path order; an
    /// inode seen at only one path gets none. Sorts the entries first.
    pub fn assign_link_groups(&mut self) {
        self.sort();
        let mut by_inode: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(ino) = e.inode {
                if ino.nlink > 1 && e.kind != FileType::Dir {
                    by_inode.entry((ino.dev, ino.ino)).or_default().push(i);
                }
            }
        }
        let mut groups: Vec<Vec<usize>> = by_inode.into_values().filter(|g| g.len() > 1).collect();
        groups.sort_by_key(|g| g[0]);
        for e in &mut self.entries {
            e.link_group = None;
        }
        for (n, g) in groups.iter().enumerate() {
            for &i in g {
                self.entries[i].link_group = Some(n as u64 + 1);
            }
        }
    }

    /// Paths of each hard-link group, by id.
    pub fn link_groups(&self) -> BTreeMap<u64, Vec<&Path>> {
        let mut m: BTreeMap<u64, Vec<&Path>> = BTreeMap::new();
        for e in &self.entries {
            if let Some(g) = e.link_group {
                m.entry(g).or_default().push(&e.path);
            }
        }
        m
    }

    /// Regular files and their total size.
    pub fn file_totals(&self) -> (u64, u64) {
        self.entries
            .iter()
            .filter(|e| e.kind == FileType::File)
            .fold((0, 0), |(n, b), e| (n + 1, b + e.size))
    }
}

/// Options for [`scan`].
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Record extended attributes and ACLs.
    pub xattrs: bool,
    /// Hash every regular file (SHA-256).
    pub hash: bool,
    /// Threads for walking and hashing (at least 1).
    pub jobs: usize,
    /// Relative paths to leave out (with everything below them).
    pub exclude: Vec<PathBuf>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            xattrs: true,
            hash: true,
            jobs: default_io_jobs(),
            exclude: Vec::new(),
        }
    }
}

/// The number of CPUs available (at least 1).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Threads for walking and reading trees: reading is mostly waiting for the disk, so more
/// threads than CPUs keep it busy (4 per CPU, between 8 and 32).
pub fn default_io_jobs() -> usize {
    (default_jobs() * 4).clamp(8, 32)
}

/// Receives progress from walks and hashing (called from worker threads). All methods
/// default to doing nothing; `()` is the silent sink.
pub trait Progress: Sync {
    /// `n` more entries were recorded by a walk.
    fn scanned(&self, _n: u64) {}
    /// Hashing is about to start on `files` files totalling `bytes`.
    fn hash_start(&self, _files: u64, _bytes: u64) {}
    /// One more file of `bytes` was hashed.
    fn hashed(&self, _bytes: u64) {}
}

impl Progress for () {}

/// The order of entries in a snapshot and a manifest: the root `.` first, then component by
/// component by bytes (the same as `Path`'s order for the clean relative paths a walk
/// produces, but without splitting into components: a byte compare where `/` sorts before
/// every other byte).
pub fn path_cmp(a: &Path, b: &Path) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    match (a == b".", b == b".") {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    let n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.get(n), b.get(n)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(&x), Some(&y)) => {
            let key = |c: u8| if c == b'/' { 0u16 } else { c as u16 + 1 };
            key(x).cmp(&key(y))
        }
    }
}

/// Join a relative path (`.` = root) onto a root.
pub fn abs_path(root: &Path, rel: &Path) -> PathBuf {
    if rel == Path::new(".") {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn child_rel(parent: &Path, name: &OsStr) -> PathBuf {
    if parent == Path::new(".") {
        PathBuf::from(name)
    } else {
        parent.join(name)
    }
}

/// Walk `root` (never following symlinks) and record every entry; hash regular files in
/// parallel when `opts.hash`. Per-entry problems land in [`Snapshot::errors`]; only an
/// unreadable root is an error. Link groups are assigned and entries sorted.
pub fn scan(
    root: &Path,
    opts: &ScanOptions,
    progress: &dyn Progress,
) -> Result<Snapshot, TreeError> {
    let mut snap = walk(root, opts, progress)?;
    if opts.hash {
        let mut pending = Vec::new();
        pending.push((root, &mut snap, None::<&Snapshot>));
        hash_snapshots(&mut pending, opts.jobs, progress);
    }
    Ok(snap)
}

/// Walk only (no hashing), sorted, link groups assigned.
pub fn walk(
    root: &Path,
    opts: &ScanOptions,
    progress: &dyn Progress,
) -> Result<Snapshot, TreeError> {
    let mut snap = walk_root(root, opts)?;
    let threads = opts.jobs.max(1);
    if threads == 1 {
        let mut dirs = vec![PathBuf::from(".")];
        while let Some(rel) = dirs.pop() {
            let n = list_dir(
                root,
                &rel,
                opts,
                &mut snap.entries,
                &mut snap.errors,
                &mut dirs,
            );
            progress.scanned(n);
        }
    } else {
        let q = DirQueue {
            q: Mutex::new(Pending {
                dirs: vec![PathBuf::from(".")],
                busy: 0,
            }),
            cv: Condvar::new(),
        };
        let parts: Mutex<Vec<(Vec<Entry>, Vec<ScanError>)>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let part = q.work(root, opts, progress);
                    parts.lock().unwrap_or_else(|p| p.into_inner()).push(part);
                });
            }
        });
        for (mut e, mut er) in parts.into_inner().unwrap_or_else(|p| p.into_inner()) {
            snap.entries.append(&mut e);
            snap.errors.append(&mut er);
        }
        snap.errors.sort_by(|x, y| path_cmp(&x.path, &y.path));
    }
    snap.assign_link_groups();
    Ok(snap)
}

/// A snapshot holding the root's entry `.` (its xattrs' problem as an error): the root must
/// be a directory that can be read.
fn walk_root(root: &Path, opts: &ScanOptions) -> Result<Snapshot, TreeError> {
    let md = fs::symlink_metadata(root).map_err(|source| TreeError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    if !md.is_dir() {
        return Err(TreeError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let mut snap = Snapshot::default();
    let mut top = Entry::from_metadata(PathBuf::from("."), &md);
    if opts.xattrs {
        match read_xattrs(root) {
            Ok(x) => top.xattrs = x,
            Err(e) => snap.errors.push(ScanError {
                path: top.path.clone(),
                message: format!("cannot read extended attributes: {e}"),
            }),
        }
    }
    // Reading the root directory itself must work.
    drop(Dir::open(root).map_err(|source| TreeError::Io {
        path: root.to_path_buf(),
        source,
    })?);
    snap.entries.push(top);
    Ok(snap)
}

/// The directories a parallel [`walk`] shares: those still to list, and how many threads
/// are listing one (the walk ends when none is left and none is busy).
struct DirQueue {
    q: Mutex<Pending>,
    cv: Condvar,
}

struct Pending {
    dirs: Vec<PathBuf>,
    busy: usize,
}

impl DirQueue {
    /// One thread's share: whole directories listed until the walk ends; what it recorded.
    fn work(
        &self,
        root: &Path,
        opts: &ScanOptions,
        progress: &dyn Progress,
    ) -> (Vec<Entry>, Vec<ScanError>) {
        let (mut entries, mut errors, mut found) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(rel) = self.take() {
            let n = list_dir(root, &rel, opts, &mut entries, &mut errors, &mut found);
            progress.scanned(n);
            let mut g = self.q.lock().unwrap_or_else(|p| p.into_inner());
            g.dirs.append(&mut found);
            g.busy -= 1;
            drop(g);
            self.cv.notify_all();
        }
        self.cv.notify_all();
        (entries, errors)
    }

    /// The next directory to list (counted busy), waiting while others may still find
    /// some; None when the walk is over.
    fn take(&self) -> Option<PathBuf> {
        let mut g = self.q.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(d) = g.dirs.pop() {
                g.busy += 1;
                return Some(d);
            }
            if g.busy == 0 {
                return None;
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// List one directory (`rel` under `root`): record its entries, queue its subdirectories.
/// Returns the number of entries recorded.
fn list_dir(
    root: &Path,
    rel: &Path,
    opts: &ScanOptions,
    entries: &mut Vec<Entry>,
    errors: &mut Vec<ScanError>,
    dirs: &mut Vec<PathBuf>,
) -> u64 {
    let abs = abs_path(root, rel);
    let listing_error = |e: &dyn fmt::Display| ScanError {
        path: rel.to_path_buf(),
        message: format!("cannot list directory: {e}"),
    };
    let mut dir = match Dir::open(&abs) {
        Ok(d) => d,
        Err(e) => {
            errors.push(listing_error(&e));
            return 0;
        }
    };
    let fd = dir.fd();
    let mut count = 0;
    while let Some(name) = dir.next_name() {
        let name = match name {
            Ok(n) => n,
            Err(e) => {
                errors.push(listing_error(&e));
                break;
            }
        };
        let name = OsStr::from_bytes(&name);
        let crel = child_rel(rel, name);
        if !opts.exclude.is_empty() && opts.exclude.contains(&crel) {
            continue;
        }
        let Some(e) = read_entry(fd, &abs, name, crel, opts, errors) else {
            continue;
        };
        if e.kind == FileType::Dir {
            dirs.push(e.path.clone());
        }
        entries.push(e);
        count += 1;
    }
    count
}

/// One name of a directory open as `fd` (at `abs`): its entry at `crel`, with its symlink
/// target and xattrs (their problems go to `errors`); None when it vanished or cannot be
/// stat'ed (said in `errors`).
fn read_entry(
    fd: RawFd,
    abs: &Path,
    name: &OsStr,
    crel: PathBuf,
    opts: &ScanOptions,
    errors: &mut Vec<ScanError>,
) -> Option<Entry> {
    let st = match fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        // Vanished between listing and lstat: that is not an entry any more.
        Err(nix::errno::Errno::ENOENT) => return None,
        Err(e) => {
            errors.push(ScanError {
                path: crel,
                message: format!("cannot stat: {}", io::Error::from(e)),
            });
            return None;
        }
    };
    let mut e = Entry::from_stat(crel, &st);
    if e.kind == FileType::Symlink {
        match readlinkat(Some(fd), name) {
            Ok(t) => e.target = Some(t),
            Err(err) => errors.push(ScanError {
                path: e.path.clone(),
                message: format!("cannot read symlink: {}", io::Error::from(err)),
            }),
        }
    }
    if opts.xattrs {
        match read_xattrs(&abs.join(name)) {
            Ok(x) => e.xattrs = x,
            Err(err) => errors.push(ScanError {
                path: e.path.clone(),
                message: format!("cannot read extended attributes: {err}"),
            }),
        }
    }
    Some(e)
}

/// A directory opened for listing: never through a symlink, with `O_NOATIME` where the
/// kernel allows it (the owner or root), so listing does not touch its atime. (std's
/// `read_dir` takes no open flags.)
struct Dir(*mut libc::DIR);

impl Dir {
    fn open(path: &Path) -> io::Result<Dir> {
        let base = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let f = match OpenOptions::new()
            .read(true)
            .custom_flags(base | libc::O_NOATIME)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => OpenOptions::new()
                .read(true)
                .custom_flags(base)
                .open(path)?,
            Err(e) => return Err(e),
        };
        let fd = f.into_raw_fd();
        // SAFETY: fd is an open directory descriptor we own; on success the DIR owns it.
        let d = unsafe { libc::fdopendir(fd) };
        if d.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so fd is still ours to close.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        Ok(Dir(d))
    }

    fn fd(&self) -> RawFd {
        // SAFETY: self.0 is a valid DIR until drop.
        unsafe { libc::dirfd(self.0) }
    }

    /// The next name (without `.` and `..`), or None at the end.
    fn next_name(&mut self) -> Option<io::Result<Vec<u8>>> {
        loop {
            // SAFETY: errno is thread-local; readdir64 on a valid DIR; the returned entry
            // is valid until the next readdir on this DIR, and we copy the name out at once.
            unsafe {
                *libc::__errno_location() = 0;
                let ent = libc::readdir64(self.0);
                if ent.is_null() {
                    let e = io::Error::last_os_error();
                    return match e.raw_os_error() {
                        Some(0) | None => None,
                        _ => Some(Err(e)),
                    };
                }
                let name = CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                return Some(Ok(name.to_vec()));
            }
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: self.0 came from fdopendir and is closed once.
        unsafe { libc::closedir(self.0) };
    }
}

/// Extended attributes of `path` itself (a symlink's own), sorted by name. A file system
/// without xattr support yields none.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(v)) => out.push((name, v)),
            Ok(None) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

const HASH_BUF: usize = 256 * 1024;

/// SHA-256 of a regular file's content, streamed: opened read-only, without following a
/// symlink, with `O_NOATIME` where permitted (the owner or root), without blocking on a FIFO
/// put in its place. Anything but a regular file is an error.
pub fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut buf = vec![0u8; HASH_BUF];
    hash_file_buf(path, &mut buf, None)
}

/// Open `path` read-only for reading its content, never following a symlink, with
/// `O_NOATIME` where the kernel allows it. Fails unless it is a regular file.
pub fn open_for_read(path: &Path) -> io::Result<File> {
    let base = libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC;
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(base | libc::O_NOATIME)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => OpenOptions::new()
            .read(true)
            .custom_flags(base)
            .open(path)?,
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(f)
}

/// Hash with a caller's buffer; when `expect` is given, fail if the opened file is not that
/// inode (it was replaced since the walk).
fn hash_file_buf(path: &Path, buf: &mut [u8], expect: Option<Inode>) -> io::Result<[u8; 32]> {
    let mut f = open_for_read(path)?;
    if let Some(want) = expect {
        let md = f.metadata()?;
        if md.dev() != want.dev || md.ino() != want.ino {
            return Err(io::Error::other(
                "replaced by another file while being verified",
            ));
        }
    }
    let mut h = Sha256::new();
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Hash the regular files of several snapshots with one pool of `jobs` threads, sharing a
/// queue (crate-visible: the manifest's streaming check and writer use it per chunk). Each element is (root, snapshot, filter): when a filter snapshot is given, only
/// files that exist there as regular files of the same size are hashed (others differ
/// anyway). Hard links are hashed once per inode. Failures go to the snapshot's errors.
pub(crate) fn hash_snapshots(
    items: &mut [(&Path, &mut Snapshot, Option<&Snapshot>)],
    jobs: usize,
    progress: &dyn Progress,
) {
    let (work, dups, total_bytes) = hash_work(items);
    progress.hash_start(work.len() as u64, total_bytes);
    let results = {
        let roots: Vec<&Path> = items.iter().map(|(r, _, _)| *r).collect();
        let snaps: Vec<&Snapshot> = items.iter().map(|(_, s, _)| &**s).collect();
        let hash = |buf: &mut Vec<u8>, n: usize| {
            let (k, i) = work[n];
            let e = &snaps[k].entries[i];
            let abs = abs_path(roots[k], &e.path);
            let r = hash_file_buf(&abs, buf, e.inode).map_err(|e| e.to_string());
            progress.hashed(e.size);
            r
        };
        par_indexed(work.len(), jobs, || vec![0u8; HASH_BUF], hash)
    };
    for (n, r) in results {
        let (k, i) = work[n];
        let snap = &mut items[k].1;
        match r {
            Ok(h) => snap.entries[i].sha256 = Some(h),
            Err(m) => {
                let path = snap.entries[i].path.clone();
                snap.errors.push(ScanError {
                    path,
                    message: format!("cannot read content: {m}"),
                });
            }
        }
    }
    for (k, i, first) in dups {
        let snap = &mut items[k].1;
        snap.entries[i].sha256 = snap.entries[first].sha256;
    }
    for (_, snap, _) in items.iter_mut() {
        snap.errors.sort_by(|a, b| path_cmp(&a.path, &b.path));
    }
}

/// What [`hash_snapshots`] reads: (item, entry index) of each file to hash, the further
/// names of an inode hashed already (item, entry index, index of its first name), and the
/// bytes to read.
type HashWork = (Vec<(usize, usize)>, Vec<(usize, usize, usize)>, u64);

fn hash_work(items: &[(&Path, &mut Snapshot, Option<&Snapshot>)]) -> HashWork {
    let mut work: Vec<(usize, usize)> = Vec::new();
    let mut dups: Vec<(usize, usize, usize)> = Vec::new();
    let mut total_bytes = 0u64;
    for (k, (_, snap, filter)) in items.iter().enumerate() {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (i, e) in snap.entries.iter().enumerate() {
            if e.kind != FileType::File {
                continue;
            }
            if let Some(f) = filter {
                match f.get(&e.path) {
                    Some(o) if o.kind == FileType::File && o.size == e.size => {}
                    _ => continue,
                }
            }
            if let Some(g) = e.link_group {
                if let Some(&first) = seen.get(&g) {
                    dups.push((k, i, first));
                    continue;
                }
                seen.insert(g, i);
            }
            work.push((k, i));
            total_bytes += e.size;
        }
    }
    (work, dups, total_bytes)
}

/// `f` on each index below `n` across `jobs` threads, each with its own state from `init`
/// (read buffers); the results with their index, in no particular order.
fn par_indexed<S, R: Send>(
    n: usize,
    jobs: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize) -> R + Sync,
) -> Vec<(usize, R)> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(n));
    let jobs = jobs.max(1).min(n.max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                let mut state = init();
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    local.push((i, f(&mut state, i)));
                }
                if let Ok(mut r) = results.lock() {
                    r.extend(local);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// The kinds of difference between two trees, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiffKind {
    /// In the source (or manifest), not in the copy.
    Missing,
    /// In the copy, not in the source.
    Extra,
    /// Different file type.
    Type,
    /// Different permission bits (incl. setuid/setgid/sticky); not compared for symlinks.
    Mode,
    /// Different owner or group (after the owner map).
    Owner,
    /// Different size (regular files).
    Size,
    /// Different mtime (to the nanosecond).
    Mtime,
    /// Different atime (only when asked for).
    Atime,
    /// Same size, different SHA-256.
    Content,
    /// Different symlink target.
    Target,
    /// Hard-link grouping differs: a group split in the copy, or separate files merged.
    HardLink,
    /// Extended attributes or ACLs differ.
    Xattr,
    /// Different device number.
    Rdev,
    /// An entry could not be read on one side, so it could not be verified.
    Unreadable,
}

impl DiffKind {
    /// All kinds, in report order.
    pub const ALL: [DiffKind; 14] = [
        DiffKind::Missing,
        DiffKind::Extra,
        DiffKind::Type,
        DiffKind::Mode,
        DiffKind::Owner,
        DiffKind::Size,
        DiffKind::Mtime,
        DiffKind::Atime,
        DiffKind::Content,
        DiffKind::Target,
        DiffKind::HardLink,
        DiffKind::Xattr,
        DiffKind::Rdev,
        DiffKind::Unreadable,
    ];

    /// Stable machine name (used in `--json`).
    pub fn key(self) -> &'static str {
        match self {
            DiffKind::Missing => "missing",
            DiffKind::Extra => "extra",
            DiffKind::Type => "type",
            DiffKind::Mode => "mode",
            DiffKind::Owner => "owner",
            DiffKind::Size => "size",
            DiffKind::Mtime => "mtime",
            DiffKind::Atime => "atime",
            DiffKind::Content => "content",
            DiffKind::Target => "symlink_target",
            DiffKind::HardLink => "hard_link",
            DiffKind::Xattr => "xattr",
            DiffKind::Rdev => "rdev",
            DiffKind::Unreadable => "unreadable",
        }
    }

    /// Heading for humans.
    pub fn title(self) -> &'static str {
        match self {
            DiffKind::Missing => "missing in the copy",
            DiffKind::Extra => "extra in the copy",
            DiffKind::Type => "file type differs",
            DiffKind::Mode => "permission bits differ",
            DiffKind::Owner => "owner differs",
            DiffKind::Size => "size differs",
            DiffKind::Mtime => "mtime differs",
            DiffKind::Atime => "atime differs",
            DiffKind::Content => "content differs (same size)",
            DiffKind::Target => "symlink target differs",
            DiffKind::HardLink => "hard-link grouping differs",
            DiffKind::Xattr => "extended attributes or ACLs differ",
            DiffKind::Rdev => "device number differs",
            DiffKind::Unreadable => "could not be read (not verified)",
        }
    }
}

impl fmt::Display for DiffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One difference: what, where, and the two sides as short human-readable values
/// (`expected` from the source or manifest, `actual` from the copy; empty when that side
/// has no such entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub kind: DiffKind,
    pub path: PathBuf,
    pub expected: String,
    pub actual: String,
}

/// Options for comparing.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Applied to the source's (or manifest's) owners before comparing.
    pub owner_map: OwnerMap,
    /// Compare atime too (off by default: reading a file may change it).
    pub atime: bool,
    /// Compare extended attributes and ACLs.
    pub xattrs: bool,
    /// Compare content hashes (hashing both sides when walking).
    pub content: bool,
    /// Threads for walking and reading contents.
    pub jobs: usize,
    /// Relative paths to leave out on both sides.
    pub exclude: Vec<PathBuf>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            owner_map: OwnerMap::identity(),
            atime: false,
            xattrs: true,
            content: true,
            jobs: default_io_jobs(),
            exclude: Vec::new(),
        }
    }
}

fn hex(h: &[u8]) -> String {
    let mut s = String::with_capacity(h.len() * 2);
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Lowercase hex of a SHA-256.
pub fn sha256_hex(h: &[u8; 32]) -> String {
    hex(h)
}

fn show_xattrs(x: &[(OsString, Vec<u8>)]) -> String {
    if x.is_empty() {
        return "none".into();
    }
    x.iter()
        .map(|(n, v)| format!("{}({} bytes)", n.to_string_lossy(), v.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn xattr_diff(a: &[(OsString, Vec<u8>)], b: &[(OsString, Vec<u8>)]) -> (String, String) {
    let am: BTreeMap<&OsString, &Vec<u8>> = a.iter().map(|(n, v)| (n, v)).collect();
    let bm: BTreeMap<&OsString, &Vec<u8>> = b.iter().map(|(n, v)| (n, v)).collect();
    let mut exp = Vec::new();
    let mut act = Vec::new();
    for (n, v) in &am {
        match bm.get(n) {
            None => {
                exp.push(format!("{}({} bytes)", n.to_string_lossy(), v.len()));
                act.push(format!("no {}", n.to_string_lossy()));
            }
            Some(w) if w != v => {
                exp.push(format!("{}={}", n.to_string_lossy(), hex(v)));
                act.push(format!("{}={}", n.to_string_lossy(), hex(w)));
            }
            _ => {}
        }
    }
    for (n, w) in &bm {
        if !am.contains_key(n) {
            exp.push(format!("no {}", n.to_string_lossy()));
            act.push(format!("{}({} bytes)", n.to_string_lossy(), w.len()));
        }
    }
    if exp.is_empty() {
        (show_xattrs(a), show_xattrs(b))
    } else {
        (exp.join(", "), act.join(", "))
    }
}

fn show_rdev(r: u64) -> String {
    format!("{}:{}", libc::major(r), libc::minor(r))
}

/// Compare `src` (the source tree or a manifest) with `dst` (the copy). Both must be sorted.
/// Differences come sorted by path then kind; read errors of either side are reported as
/// [`DiffKind::Unreadable`].
pub fn compare(src: &Snapshot, dst: &Snapshot, opts: &CompareOptions) -> Vec<Difference> {
    let mut out = Vec::new();
    let excluded = |p: &Path| opts.exclude.iter().any(|x| p.starts_with(x));
    let (mut i, mut j) = (0, 0);
    let (a, b) = (&src.entries, &dst.entries);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => path_cmp(&x.path, &y.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                let x = &a[i];
                if !excluded(&x.path) {
                    out.push(difference(
                        DiffKind::Missing,
                        &x.path,
                        x.kind.name().into(),
                        String::new(),
                    ));
                }
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let y = &b[j];
                if !excluded(&y.path) {
                    out.push(difference(
                        DiffKind::Extra,
                        &y.path,
                        String::new(),
                        y.kind.name().into(),
                    ));
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&a[i], &b[j]);
                i += 1;
                j += 1;
                if !excluded(&x.path) {
                    entry_diffs(x, y, opts, &mut out);
                }
            }
        }
    }
    link_diffs(src, dst, opts, &mut out);
    unreadable_diffs(src, dst, opts, &mut out);
    out.sort_by(|p, q| path_cmp(&p.path, &q.path).then(p.kind.cmp(&q.kind)));
    out
}

fn difference(kind: DiffKind, path: &Path, expected: String, actual: String) -> Difference {
    Difference {
        kind,
        path: path.to_path_buf(),
        expected,
        actual,
    }
}

/// The differences of one path present on both sides: its type (and nothing else when
/// that differs), mode, owner, size, times, content, symlink target, xattrs, device.
fn entry_diffs(x: &Entry, y: &Entry, opts: &CompareOptions, out: &mut Vec<Difference>) {
    let p = &x.path;
    let mut push =
        |kind, expected: String, actual: String| out.push(difference(kind, p, expected, actual));
    if x.kind != y.kind {
        push(DiffKind::Type, x.kind.name().into(), y.kind.name().into());
        return;
    }
    if x.kind != FileType::Symlink && x.mode != y.mode {
        push(
            DiffKind::Mode,
            format!("{:04o}", x.mode),
            format!("{:04o}", y.mode),
        );
    }
    if let Some((e, a)) = owner_diff(x, y, &opts.owner_map) {
        push(DiffKind::Owner, e, a);
    }
    if x.kind == FileType::File && x.size != y.size {
        push(DiffKind::Size, x.size.to_string(), y.size.to_string());
    }
    if x.mtime != y.mtime {
        push(DiffKind::Mtime, x.mtime.utc(), y.mtime.utc());
    }
    if opts.atime && x.atime != y.atime {
        push(DiffKind::Atime, x.atime.utc(), y.atime.utc());
    }
    if opts.content && x.kind == FileType::File && x.size == y.size {
        if let (Some(h1), Some(h2)) = (x.sha256, y.sha256) {
            if h1 != h2 {
                push(DiffKind::Content, hex(&h1), hex(&h2));
            }
        }
    }
    if x.target != y.target {
        let show = |t: &Option<OsString>| {
            t.as_deref()
                .map(crate::quote::quote_bytes_os)
                .unwrap_or_default()
        };
        push(DiffKind::Target, show(&x.target), show(&y.target));
    }
    if opts.xattrs {
        let xs = mapped_xattrs(x, &opts.owner_map);
        if *xs != *y.xattrs {
            let (e, a) = xattr_diff(&xs, &y.xattrs);
            push(DiffKind::Xattr, e, a);
        }
    }
    if x.rdev != y.rdev {
        push(DiffKind::Rdev, show_rdev(x.rdev), show_rdev(y.rdev));
    }
}

/// The owner `x` should have in the copy (mapped), and `y`'s, when they differ.
fn owner_diff(x: &Entry, y: &Entry, map: &OwnerMap) -> Option<(String, String)> {
    let (u, g) = map.map(x.uid, x.gid);
    if (u, g) == (y.uid, y.gid) {
        return None;
    }
    let exp = if (u, g) != (x.uid, x.gid) {
        format!("{u}:{g} (mapped from {}:{})", x.uid, x.gid)
    } else {
        format!("{u}:{g}")
    };
    Some((exp, format!("{}:{}", y.uid, y.gid)))
}

/// The source's xattrs as the copy should hold them: ACLs name owners, so they are mapped
/// as the owners are.
fn mapped_xattrs<'e>(x: &'e Entry, map: &OwnerMap) -> Cow<'e, [(OsString, Vec<u8>)]> {
    let is_acl = |n: &OsString| crate::owners::is_acl_xattr(n.as_bytes());
    if map.is_identity() || !x.xattrs.iter().any(|(n, _)| is_acl(n)) {
        return Cow::Borrowed(&x.xattrs);
    }
    let mapped = x.xattrs.iter().map(|(n, v)| {
        if is_acl(n) {
            (n.clone(), map.map_acl(v))
        } else {
            (n.clone(), v.clone())
        }
    });
    Cow::Owned(mapped.collect())
}

/// What either side could not read, as [`DiffKind::Unreadable`] (the message on the side's
/// own column).
fn unreadable_diffs(
    src: &Snapshot,
    dst: &Snapshot,
    opts: &CompareOptions,
    out: &mut Vec<Difference>,
) {
    let excluded = |p: &Path| opts.exclude.iter().any(|x| p.starts_with(x));
    for (side, snap) in [("source", src), ("copy", dst)] {
        for e in &snap.errors {
            if excluded(&e.path) {
                continue;
            }
            let (expected, actual) = if side == "source" {
                (e.message.clone(), String::new())
            } else {
                (String::new(), e.message.clone())
            };
            out.push(difference(DiffKind::Unreadable, &e.path, expected, actual));
        }
    }
}

/// Hard-link grouping: each group of one side, restricted to the paths present as
/// non-directories of the same type on both sides, must be exactly one group on the other.
fn link_diffs(src: &Snapshot, dst: &Snapshot, opts: &CompareOptions, out: &mut Vec<Difference>) {
    let excluded = |p: &Path| opts.exclude.iter().any(|x| p.starts_with(x));
    // (this side, other side, kind of finding from this side's point of view)
    for (this, other, from_src) in [(src, dst, true), (dst, src, false)] {
        for (_, paths) in this.link_groups() {
            let common: Vec<&Path> = paths
                .iter()
                .copied()
                .filter(|p| !excluded(p))
                .filter(|p| {
                    matches!((this.get(p), other.get(p)), (Some(x), Some(y)) if x.kind == y.kind)
                })
                .collect();
            if common.len() < 2 {
                continue;
            }
            // Partition by the other side's group (None = on its own).
            let mut parts: BTreeMap<Option<u64>, Vec<&Path>> = BTreeMap::new();
            let mut singles: Vec<Vec<&Path>> = Vec::new();
            for p in &common {
                match other.get(p).and_then(|e| e.link_group) {
                    Some(g) => parts.entry(Some(g)).or_default().push(p),
                    None => singles.push(vec![p]),
                }
            }
            let parts: Vec<Vec<&Path>> = parts.into_values().chain(singles).collect();
            out.extend(split_links(&common, &parts, from_src));
        }
    }
}

fn quote_list(ps: &[&Path]) -> String {
    ps.iter()
        .map(|p| crate::quote::quote_path(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The difference of a hard-link group found `common` on one side (`from_src`: the source)
/// and in `parts` (several inodes) on the other; None when the other side keeps it whole.
fn split_links(common: &[&Path], parts: &[Vec<&Path>], from_src: bool) -> Option<Difference> {
    if parts.len() <= 1 {
        return None;
    }
    let shown: Vec<String> = parts.iter().map(|v| quote_list(v)).collect();
    let linked = format!("one inode: {}", quote_list(common));
    let split = format!("{} separate inodes: {}", parts.len(), shown.join(" | "));
    let (expected, actual) = if from_src {
        (linked, split)
    } else {
        (split, linked)
    };
    Some(Difference {
        kind: DiffKind::HardLink,
        path: common[0].to_path_buf(),
        expected,
        actual,
    })
}

/// Entries compared at a time by the streaming comparisons (per side, about).
pub const CHUNK: usize = 4096;

impl Entry {
    /// An entry from the engine's `lstat` model (no xattrs, no target, no hash).
    pub fn from_sys(path: PathBuf, st: &crate::sys::Stat) -> Entry {
        Entry {
            path,
            kind: st.kind,
            mode: st.perm,
            uid: st.uid,
            gid: st.gid,
            size: st.size,
            mtime: st.mtime,
            atime: st.atime,
            rdev: match st.kind {
                FileType::CharDevice | FileType::BlockDevice => st.rdev,
                _ => 0,
            },
            target: None,
            inode: Some(Inode {
                dev: st.dev,
                ino: st.ino,
                nlink: st.nlink,
            }),
            link_group: None,
            xattrs: Vec::new(),
            sha256: None,
        }
    }
}

fn os(b: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(b)
}

fn rel_of(rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(os(rel.to_vec()))
    }
}

/// What a streaming walk yields, in path order.
pub enum Walked {
    Entry(Entry),
    Error(ScanError),
}

/// Walk `root` as a stream, in path order (the root `.` first, then each directory's names
/// sorted by bytes, a directory's subtree right after it), calling `f` for every entry and
/// for every problem. Memory is bounded by the directories listed ahead of the walk, not by
/// the tree. Never follows a symlink (every directory is opened beneath the root with
/// RESOLVE_NO_SYMLINKS).
pub fn walk_stream(
    root: &Path,
    opts: &ScanOptions,
    progress: &dyn Progress,
    f: &mut dyn FnMut(Walked),
) -> Result<(), TreeError> {
    let (rfd, rst) = open_stream_root(root)?;
    // What the walk leaves out is not prefetched either.
    let exclude = opts.exclude.clone();
    let lister = crate::walk::Lister::with_prefetch(crate::walk::PREFETCH_DEPTH)
        .prefetch_only(Box::new(move |rel| !stream_excluded(&exclude, rel)));
    let threads = opts.jobs.clamp(2, 8);
    std::thread::scope(|sc| -> Result<(), TreeError> {
        for _ in 0..threads {
            sc.spawn(|| lister.work());
        }
        let _close = crate::walk::CloseOnDrop(&lister);
        let mut w = StreamWalk {
            lister: &lister,
            rfd: &rfd,
            opts,
            progress,
            xbuf: vec![0u8; 1024],
        };
        w.run(&rst, f);
        Ok(())
    })
}

/// The root of a streaming walk: a directory, opened, and its `lstat`.
fn open_stream_root(
    root: &Path,
) -> Result<(std::sync::Arc<std::os::fd::OwnedFd>, crate::sys::Stat), TreeError> {
    let md = fs::symlink_metadata(root).map_err(|source| TreeError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    if !md.is_dir() {
        return Err(TreeError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let io_err = |source| TreeError::Io {
        path: root.to_path_buf(),
        source,
    };
    let rfd = std::sync::Arc::new(crate::sys::open_dir_path(root).map_err(io_err)?);
    let rst = crate::sys::fstat(std::os::fd::AsRawFd::as_raw_fd(&*rfd)).map_err(io_err)?;
    Ok((rfd, rst))
}

/// Is `rel` one of the paths [`walk_stream`] leaves out (by the walk and the prefetch alike)?
fn stream_excluded(exclude: &[PathBuf], rel: &[u8]) -> bool {
    !exclude.is_empty() && exclude.iter().any(|x| path_bytes(x) == rel)
}

/// Child directories listed ahead of [`walk_stream`], per directory on its path.
const STREAM_AHEAD: usize = 6;

/// A directory on the path of [`walk_stream`]: its listing, the next item, and the child
/// directories requested ahead (item index, ticket).
struct StreamFrame {
    rel: Vec<u8>,
    items: Vec<crate::walk::Item>,
    i: usize,
    ahead: std::collections::VecDeque<(usize, crate::walk::Ticket)>,
    next: usize,
    /// Listings of subdirectories the lister prefetched.
    sub: crate::walk::Subs,
}

/// One [`walk_stream`]: the listing threads' queue, the root, and a buffer for xattrs.
struct StreamWalk<'w> {
    lister: &'w crate::walk::Lister,
    rfd: &'w std::sync::Arc<std::os::fd::OwnedFd>,
    opts: &'w ScanOptions,
    progress: &'w dyn Progress,
    xbuf: Vec<u8>,
}

impl StreamWalk<'_> {
    fn excluded(&self, rel: &[u8]) -> bool {
        stream_excluded(&self.opts.exclude, rel)
    }

    fn request(&self, rel: &[u8]) -> crate::walk::Ticket {
        self.lister.request(self.rfd, rel, true, self.opts.xattrs)
    }

    /// Request the listings of the frame's next child directories, up to [`STREAM_AHEAD`].
    fn ahead(&self, fr: &mut StreamFrame) {
        while fr.ahead.len() < STREAM_AHEAD && fr.next < fr.items.len() {
            let i = fr.next;
            fr.next += 1;
            let it = &fr.items[i];
            if it.st.kind != crate::sys::FileType::Dir {
                continue;
            }
            let rel = crate::walk::join(&fr.rel, &it.name);
            if self.excluded(&rel) {
                continue;
            }
            let t = fr.sub.take(i).unwrap_or_else(|| self.request(&rel));
            fr.ahead.push_back((i, t));
        }
    }

    /// The walk proper: depth first, each directory's items in order.
    fn run(&mut self, rst: &crate::sys::Stat, f: &mut dyn FnMut(Walked)) {
        let mut stack = Vec::new();
        let t = self.request(b"");
        stack.extend(self.open(Vec::new(), rst, t, f));
        while let Some(top) = stack.last_mut() {
            let Some(it) = top.items.get(top.i) else {
                stack.pop();
                continue;
            };
            let i = top.i;
            top.i += 1;
            let rel = crate::walk::join(&top.rel, &it.name);
            if self.excluded(&rel) {
                continue;
            }
            if it.st.kind != crate::sys::FileType::Dir {
                f(Walked::Entry(item_entry(&rel, it)));
                continue;
            }
            let st = it.st;
            let t = if top.ahead.front().is_some_and(|a| a.0 == i) {
                top.ahead.pop_front().map(|a| a.1)
            } else {
                None
            };
            let t = t.unwrap_or_else(|| self.request(&rel));
            self.ahead(top);
            stack.extend(self.open(rel, &st, t, f));
        }
    }

    /// A directory: its entry (xattrs read through its listing's descriptor), then its
    /// listing as a frame, its first child directories requested ahead.
    fn open(
        &mut self,
        rel: Vec<u8>,
        st: &crate::sys::Stat,
        t: crate::walk::Ticket,
        f: &mut dyn FnMut(Walked),
    ) -> Option<StreamFrame> {
        let l = t.wait();
        let mut e = Entry::from_sys(rel_of(&rel), st);
        if let (true, Some(fd)) = (self.opts.xattrs, &l.fd) {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&**fd);
            match crate::walk::read_xattrs(&crate::sys::XTarget::Fd(fd), &mut self.xbuf) {
                Ok(x) => e.xattrs = x.into_iter().map(|(n, v)| (os(n), v)).collect(),
                Err(err) => f(Walked::Error(ScanError {
                    path: e.path.clone(),
                    message: format!("cannot read extended attributes: {err}"),
                })),
            }
        }
        f(Walked::Entry(e));
        if let Some(err) = l.error {
            f(Walked::Error(ScanError {
                path: rel_of(&rel),
                message: format!("cannot list directory: {err}"),
            }));
            return None;
        }
        self.progress.scanned(l.items.len() as u64 + 1);
        for (name, err) in l.problems {
            f(Walked::Error(ScanError {
                path: rel_of(&crate::walk::join(&rel, &name)),
                message: format!("cannot stat: {err}"),
            }));
        }
        let mut fr = StreamFrame {
            rel,
            items: l.items,
            i: 0,
            ahead: Default::default(),
            next: 0,
            sub: l.sub,
        };
        self.ahead(&mut fr);
        Some(fr)
    }
}

/// A non-directory's entry from its listing.
fn item_entry(rel: &[u8], it: &crate::walk::Item) -> Entry {
    let mut e = Entry::from_sys(rel_of(rel), &it.st);
    e.target = it.link.clone().map(os);
    e.xattrs = it
        .xattrs
        .iter()
        .map(|(n, v)| (os(n.clone()), v.clone()))
        .collect();
    e
}

/// Two sorted streams merged in chunks: the entries of both sides up to a common point.
pub struct Chunks {
    /// Entries with more than one link (either side), for the link check made at the end
    /// over the whole tree: the path once, and each side's type and inode identity.
    pub links: Vec<LinkRecord>,
    pub stats: TreeStats,
    pub diffs: Vec<Difference>,
}

/// One path linked on either side: (path, type and inode identity of each side). The
/// identity is a live inode (dev, ino) or a manifest's link group (`u64::MAX`, number).
pub type LinkRecord = (
    PathBuf,
    FileType,
    Option<(u64, u64)>,
    FileType,
    Option<(u64, u64)>,
);

fn link_ident(e: &Entry) -> Option<(u64, u64)> {
    if e.kind == FileType::Dir {
        return None;
    }
    match (e.link_group, e.inode) {
        (Some(g), _) => Some((u64::MAX, g)),
        (None, Some(i)) if i.nlink > 1 => Some((i.dev, i.ino)),
        _ => None,
    }
}

/// Hard-link grouping over linked records: each inode of one side, among the paths of the
/// same type on both sides, must be exactly one inode on the other (as [`link_diffs`]).
fn link_check(links: &[LinkRecord], opts: &CompareOptions, out: &mut Vec<Difference>) {
    let excluded = |p: &Path| opts.exclude.iter().any(|x| p.starts_with(x));
    for from_src in [true, false] {
        let mut groups: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for (i, l) in links.iter().enumerate() {
            if l.1 != l.3 || excluded(&l.0) {
                continue;
            }
            if let Some(k) = if from_src { l.2 } else { l.4 } {
                groups
                    .entry(k)
                    .or_insert_with(|| {
                        order.push(k);
                        Vec::new()
                    })
                    .push(i);
            }
        }
        for k in order {
            let members = &groups[&k];
            if members.len() < 2 {
                continue;
            }
            let common: Vec<&Path> = members.iter().map(|&i| links[i].0.as_path()).collect();
            let mut parts: Vec<((u64, u64), Vec<&Path>)> = Vec::new();
            let mut singles: Vec<Vec<&Path>> = Vec::new();
            for &i in members {
                let other = if from_src { links[i].4 } else { links[i].2 };
                match other {
                    Some(h) => match parts.iter_mut().find(|p| p.0 == h) {
                        Some(p) => p.1.push(&links[i].0),
                        None => parts.push((h, vec![&links[i].0])),
                    },
                    None => singles.push(vec![&links[i].0]),
                }
            }
            let parts: Vec<Vec<&Path>> = parts.into_iter().map(|p| p.1).chain(singles).collect();
            out.extend(split_links(&common, &parts, from_src));
        }
    }
}

/// Compare two streams of entries (each in path order) chunk by chunk: `chunk` is called on
/// each pair of chunks covering the same range of paths (to read contents), then the pair is
/// compared; hard links are compared over the whole tree at the end, from the entries that
/// have several links on either side. Memory: one chunk per side, plus the linked entries.
pub fn compare_streams(
    a: &mut dyn Iterator<Item = Result<Walked, TreeError>>,
    b: &mut dyn Iterator<Item = Result<Walked, TreeError>>,
    opts: &CompareOptions,
    a_groups: bool,
    chunk: &mut dyn FnMut(&mut Snapshot, &mut Snapshot) -> (u64, u64),
) -> Result<(Vec<Difference>, TreeStats), TreeError> {
    let mut out = Chunks {
        links: Vec::new(),
        stats: TreeStats::default(),
        diffs: Vec::new(),
    };
    let (mut ca, mut cb) = (Snapshot::default(), Snapshot::default());
    let mut x = next_entry(a, &mut ca.errors)?;
    let mut y = next_entry(b, &mut cb.errors)?;
    loop {
        let ord = match (&x, &y) {
            (None, None) => break,
            (Some(p), Some(q)) => path_cmp(&p.path, &q.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                ca.entries.extend(x.take());
                x = next_entry(a, &mut ca.errors)?;
            }
            std::cmp::Ordering::Greater => {
                cb.entries.extend(y.take());
                y = next_entry(b, &mut cb.errors)?;
            }
            std::cmp::Ordering::Equal => {
                if let (Some(p), Some(q)) = (x.take(), y.take()) {
                    out.links.extend(link_record(&p, &q));
                    ca.entries.push(p);
                    cb.entries.push(q);
                }
                x = next_entry(a, &mut ca.errors)?;
                y = next_entry(b, &mut cb.errors)?;
            }
        }
        if ca.entries.len() + cb.entries.len() >= 2 * CHUNK {
            out.flush(&mut ca, &mut cb, opts, chunk);
        }
    }
    out.flush(&mut ca, &mut cb, opts, chunk);
    // A manifest's side is identified by its link groups, a live tree's by its inodes.
    let _ = a_groups;
    out.links.shrink_to_fit();
    link_check(&out.links, opts, &mut out.diffs);
    out.diffs
        .sort_by(|p, q| path_cmp(&p.path, &q.path).then(p.kind.cmp(&q.kind)));
    Ok((out.diffs, out.stats))
}

/// The stream's next entry; the problems before it go to `errs`.
fn next_entry(
    it: &mut dyn Iterator<Item = Result<Walked, TreeError>>,
    errs: &mut Vec<ScanError>,
) -> Result<Option<Entry>, TreeError> {
    loop {
        match it.next() {
            None => return Ok(None),
            Some(Err(e)) => return Err(e),
            Some(Ok(Walked::Error(e))) => errs.push(e),
            Some(Ok(Walked::Entry(e))) => return Ok(Some(e)),
        }
    }
}

/// A path linked on either side, as the link check reads it: the path, each side's type
/// and inode identity; None when neither side is linked.
fn link_record(p: &Entry, q: &Entry) -> Option<LinkRecord> {
    let linked = |e: &Entry| {
        e.kind != FileType::Dir && (e.link_group.is_some() || e.inode.is_some_and(|i| i.nlink > 1))
    };
    if !linked(p) && !linked(q) {
        return None;
    }
    Some((p.path.clone(), p.kind, link_ident(p), q.kind, link_ident(q)))
}

impl Chunks {
    /// One pair of chunks: contents read (`chunk`), counted, compared (link groups left to
    /// the link check over the whole tree), then emptied.
    fn flush(
        &mut self,
        ca: &mut Snapshot,
        cb: &mut Snapshot,
        opts: &CompareOptions,
        chunk: &mut dyn FnMut(&mut Snapshot, &mut Snapshot) -> (u64, u64),
    ) {
        let (files, bytes) = chunk(ca, cb);
        let mut s = TreeStats::of(ca, cb);
        if files > 0 || bytes > 0 {
            s.files_hashed = files;
            s.bytes_hashed = bytes;
        }
        self.stats.source_entries += s.source_entries;
        self.stats.copy_entries += s.copy_entries;
        self.stats.files_hashed += s.files_hashed;
        self.stats.bytes_hashed += s.bytes_hashed;
        for e in ca.entries.iter_mut() {
            e.link_group = None;
        }
        self.diffs.extend(compare(ca, cb, opts));
        *ca = Snapshot::default();
        *cb = Snapshot::default();
    }
}

/// A tree walked in a thread of its own, as an iterator of its stream (bounded queue).
pub fn stream_in_thread<'s, 'e>(
    sc: &'s std::thread::Scope<'s, 'e>,
    root: &'e Path,
    opts: &'e ScanOptions,
    progress: &'e dyn Progress,
) -> impl Iterator<Item = Result<Walked, TreeError>> + 's {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<Walked, TreeError>>>(8);
    sc.spawn(move || {
        let mut batch = Vec::with_capacity(512);
        let r = walk_stream(root, opts, progress, &mut |w| {
            batch.push(Ok(w));
            if batch.len() >= 512 {
                let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(512)));
            }
        });
        if let Err(e) = r {
            batch.push(Err(e));
        }
        let _ = tx.send(batch);
    });
    rx.into_iter().flatten()
}

/// Walk both trees (in parallel, as streams) and compare them, chunk by chunk. Contents are
/// compared byte for byte (cheaper than hashing both sides, and exact), only for files
/// present on both sides with the same size (a size difference says enough), across `jobs`
/// threads; files that differ are then hashed so the report shows both SHA-256s. Memory is
/// bounded by a chunk per side and the hard-linked entries, not by the trees.
pub fn compare_trees(
    src: &Path,
    dst: &Path,
    opts: &CompareOptions,
    progress: &dyn Progress,
) -> Result<(Vec<Difference>, TreeStats), TreeError> {
    let sopts = ScanOptions {
        xattrs: opts.xattrs,
        hash: false,
        jobs: opts.jobs,
        exclude: opts.exclude.clone(),
    };
    std::thread::scope(|sc| {
        let mut a = stream_in_thread(sc, src, &sopts, progress);
        let mut b = stream_in_thread(sc, dst, &sopts, progress);
        compare_streams(&mut a, &mut b, opts, false, &mut |ca, cb| {
            if opts.content {
                compare_contents(src, ca, dst, cb, opts.jobs, progress)
            } else {
                (0, 0)
            }
        })
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Ident {
    Group(u64),
    Entry(usize),
}

/// Compare the contents of the regular files present on both sides with the same size, byte
/// for byte, in parallel: each distinct (source inode, copy inode) pair once. Both sides of a
/// pair that differs are then hashed, so [`compare`] reports it with its SHA-256s; equal
/// pairs are left without hashes. Read failures go to the snapshots' errors. Returns the
/// number of files (paths on the source side) and bytes (one side) compared.
fn compare_contents(
    src: &Path,
    a: &mut Snapshot,
    dst: &Path,
    b: &mut Snapshot,
    jobs: usize,
    progress: &dyn Progress,
) -> (u64, u64) {
    let p = content_pairs(a, b);
    let total: u64 = p.pairs.iter().map(|&(i, _)| a.entries[i].size * 2).sum();
    progress.hash_start(p.pairs.len() as u64 * 2, total);
    let sides = (src, &*a, dst, &*b);
    let results = compare_pairs(sides, &p.pairs, jobs, progress);
    for (n, out) in results {
        match out {
            ContentOutcome::Same => {}
            ContentOutcome::Differ(h1, h2) => {
                for &(i, j) in &p.members[n] {
                    a.entries[i].sha256 = Some(h1);
                    b.entries[j].sha256 = Some(h2);
                }
            }
            ContentOutcome::Fail(src_side, m) => {
                let (snap, idx) = if src_side {
                    (&mut *a, p.pairs[n].0)
                } else {
                    (&mut *b, p.pairs[n].1)
                };
                let path = snap.entries[idx].path.clone();
                snap.errors.push(ScanError {
                    path,
                    message: format!("cannot read content: {m}"),
                });
            }
        }
    }
    for snap in [a, b] {
        snap.errors.sort_by(|x, y| path_cmp(&x.path, &y.path));
    }
    (p.files, p.bytes)
}

/// The files whose contents [`compare_contents`] compares.
struct ContentPairs {
    /// Unique pairs (source index, copy index): one per (source inode, copy inode).
    pairs: Vec<(usize, usize)>,
    /// Every path pair that maps to each unique pair.
    members: Vec<Vec<(usize, usize)>>,
    /// Files (paths on the source side) and bytes (one side) compared.
    files: u64,
    bytes: u64,
}

/// The regular files present on both sides with the same size, each inode pair once.
fn content_pairs(a: &Snapshot, b: &Snapshot) -> ContentPairs {
    let ident = |e: &Entry, i: usize| match e.link_group {
        Some(g) => Ident::Group(g),
        None => Ident::Entry(i),
    };
    let mut p = ContentPairs {
        pairs: Vec::new(),
        members: Vec::new(),
        files: 0,
        bytes: 0,
    };
    let mut seen: HashMap<(Ident, Ident), usize> = HashMap::new();
    let (mut i, mut j) = (0, 0);
    while i < a.entries.len() && j < b.entries.len() {
        match path_cmp(&a.entries[i].path, &b.entries[j].path) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                let (x, y) = (&a.entries[i], &b.entries[j]);
                if x.kind == FileType::File && y.kind == FileType::File && x.size == y.size {
                    p.files += 1;
                    p.bytes += x.size;
                    let k = (ident(x, i), ident(y, j));
                    let n = *seen.entry(k).or_insert_with(|| {
                        p.pairs.push((i, j));
                        p.members.push(Vec::new());
                        p.pairs.len() - 1
                    });
                    p.members[n].push((i, j));
                }
                i += 1;
                j += 1;
            }
        }
    }
    p
}

/// What comparing one pair's contents found.
#[derive(Clone)]
enum ContentOutcome {
    Same,
    Differ([u8; 32], [u8; 32]),
    /// (source side?, message)
    Fail(bool, String),
}

/// The two sides of a content comparison: (source root, its snapshot, copy root, its
/// snapshot).
type Sides<'s> = (&'s Path, &'s Snapshot, &'s Path, &'s Snapshot);

/// Each pair's contents compared across `jobs` threads; results by pair index, in no
/// particular order.
fn compare_pairs(
    sides: Sides,
    pairs: &[(usize, usize)],
    jobs: usize,
    progress: &dyn Progress,
) -> Vec<(usize, ContentOutcome)> {
    let init = || (vec![0u8; HASH_BUF], vec![0u8; HASH_BUF]);
    par_indexed(pairs.len(), jobs, init, |(b1, b2), n| {
        compare_pair(sides, pairs[n], b1, b2, progress)
    })
}

/// One pair's contents: byte for byte, both sides hashed when they differ.
fn compare_pair(
    (src, a, dst, b): Sides,
    (i, j): (usize, usize),
    b1: &mut [u8],
    b2: &mut [u8],
    progress: &dyn Progress,
) -> ContentOutcome {
    let (x, y) = (&a.entries[i], &b.entries[j]);
    let pa = abs_path(src, &x.path);
    let pb = abs_path(dst, &y.path);
    let out = match same_content(&pa, x.inode, &pb, y.inode, b1, b2) {
        Ok(true) => ContentOutcome::Same,
        Ok(false) => match (
            hash_file_buf(&pa, b1, x.inode),
            hash_file_buf(&pb, b2, y.inode),
        ) {
            (Ok(h1), Ok(h2)) => ContentOutcome::Differ(h1, h2),
            (Err(e), _) => ContentOutcome::Fail(true, e.to_string()),
            (_, Err(e)) => ContentOutcome::Fail(false, e.to_string()),
        },
        Err((side, e)) => ContentOutcome::Fail(side, e.to_string()),
    };
    progress.hashed(x.size * 2);
    out
}

/// Fill `buf` as far as the file allows; returns the bytes read (less only at the end).
fn fill(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Are two files' contents identical? Errors say which side (true = the first).
fn same_content(
    pa: &Path,
    ia: Option<Inode>,
    pb: &Path,
    ib: Option<Inode>,
    b1: &mut [u8],
    b2: &mut [u8],
) -> Result<bool, (bool, io::Error)> {
    let open = |p: &Path, want: Option<Inode>| -> io::Result<File> {
        let f = open_for_read(p)?;
        if let Some(w) = want {
            let md = f.metadata()?;
            if md.dev() != w.dev || md.ino() != w.ino {
                return Err(io::Error::other(
                    "replaced by another file while being verified",
                ));
            }
        }
        Ok(f)
    };
    let mut fa = open(pa, ia).map_err(|e| (true, e))?;
    let mut fb = open(pb, ib).map_err(|e| (false, e))?;
    loop {
        let na = fill(&mut fa, b1).map_err(|e| (true, e))?;
        let nb = fill(&mut fb, b2).map_err(|e| (false, e))?;
        if na != nb || b1[..na] != b2[..nb] {
            return Ok(false);
        }
        if na < b1.len() {
            return Ok(true);
        }
    }
}

/// What a comparison looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    pub source_entries: u64,
    pub copy_entries: u64,
    /// Regular files (paths) whose content was compared: byte for byte between two live
    /// trees, by SHA-256 against a manifest.
    pub files_hashed: u64,
    /// Bytes of those files (one side).
    pub bytes_hashed: u64,
}

impl TreeStats {
    pub(crate) fn of(a: &Snapshot, b: &Snapshot) -> TreeStats {
        let mut s = TreeStats {
            source_entries: a.entries.len() as u64,
            copy_entries: b.entries.len() as u64,
            ..Default::default()
        };
        for e in &b.entries {
            if e.sha256.is_some() && a.get(&e.path).is_some_and(|x| x.sha256.is_some()) {
                s.files_hashed += 1;
                s.bytes_hashed += e.size;
            }
        }
        s
    }
}

/// Bytes of a path, for callers that escape or hash names.
pub fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn sample() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::write(r.join("a/one"), b"hello").unwrap();
        fs::hard_link(r.join("a/one"), r.join("a/b/one-link")).unwrap();
        fs::write(r.join(OsStr::from_bytes(b"odd\nname\xff")), b"x").unwrap();
        symlink("../one", r.join("a/b/up")).unwrap();
        fs::set_permissions(r.join("a/b"), fs::Permissions::from_mode(0o2750)).unwrap();
        d
    }

    #[test]
    fn walk_records_names_links_and_groups() {
        let d = sample();
        let s = scan(d.path(), &ScanOptions::default(), &()).unwrap();
        let paths: Vec<&Path> = s.entries.iter().map(|e| e.path.as_path()).collect();
        assert_eq!(paths[0], Path::new("."));
        let odd = s
            .get(Path::new(OsStr::from_bytes(b"odd\nname\xff")))
            .unwrap();
        assert_eq!(odd.kind, FileType::File);
        let up = s.get(Path::new("a/b/up")).unwrap();
        assert_eq!(up.target.as_deref(), Some(OsStr::new("../one")));
        let one = s.get(Path::new("a/one")).unwrap();
        let link = s.get(Path::new("a/b/one-link")).unwrap();
        assert_eq!(one.link_group, Some(1));
        assert_eq!(link.link_group, Some(1));
        assert_eq!(one.sha256, link.sha256);
        assert_eq!(
            sha256_hex(&one.sha256.unwrap()),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(s.get(Path::new("a/b")).unwrap().mode, 0o2750);
        assert!(s.errors.is_empty());
    }

    #[test]
    fn identical_trees_compare_clean_and_planted_ones_do_not() {
        let a = sample();
        let b = sample();
        // Make times equal: copy every mtime from a to b.
        let sa = scan(a.path(), &ScanOptions::default(), &()).unwrap();
        for e in sa.entries.iter().rev() {
            let t = filetime::FileTime::from_unix_time(e.mtime.sec, e.mtime.nsec);
            filetime::set_symlink_file_times(abs_path(b.path(), &e.path), t, t).unwrap();
        }
        let (d, _) = compare_trees(a.path(), b.path(), &CompareOptions::default(), &()).unwrap();
        assert!(d.is_empty(), "{d:?}");
        // Same size, same mtime, different byte.
        let f = b.path().join("a/one");
        let md = fs::metadata(&f).unwrap();
        fs::write(&f, b"hellO").unwrap();
        filetime::set_file_mtime(&f, filetime::FileTime::from_last_modification_time(&md)).unwrap();
        let (d, _) = compare_trees(a.path(), b.path(), &CompareOptions::default(), &()).unwrap();
        // Both names of the hard-linked inode carry the flipped byte.
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|x| x.kind == DiffKind::Content));
        assert_eq!(d[0].path, Path::new("a/b/one-link"));
        assert_eq!(d[1].path, Path::new("a/one"));
    }

    fn file(p: &str, group: Option<u64>) -> Entry {
        Entry {
            path: PathBuf::from(p),
            kind: FileType::File,
            mode: 0o600,
            uid: 1,
            gid: 1,
            size: 1,
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            rdev: 0,
            target: None,
            inode: None,
            link_group: group,
            xattrs: vec![],
            sha256: None,
        }
    }

    #[test]
    fn hard_link_groups_split_merged_and_regrouped() {
        let snap = |v: Vec<Entry>| {
            let mut s = Snapshot {
                entries: v,
                errors: vec![],
            };
            s.sort();
            s
        };
        let o = CompareOptions::default();
        let kinds = |d: Vec<Difference>| -> Vec<(DiffKind, String)> {
            d.into_iter()
                .map(|d| (d.kind, d.path.display().to_string()))
                .collect()
        };
        // same grouping, different group numbers: fine
        let a = snap(vec![
            file("a", Some(1)),
            file("b", Some(1)),
            file("c", None),
        ]);
        let b = snap(vec![
            file("a", Some(7)),
            file("b", Some(7)),
            file("c", None),
        ]);
        assert!(compare(&a, &b, &o).is_empty());
        // split in the copy
        let b = snap(vec![file("a", None), file("b", None), file("c", None)]);
        assert_eq!(
            kinds(compare(&a, &b, &o)),
            vec![(DiffKind::HardLink, "a".into())]
        );
        // merged in the copy
        let b = snap(vec![
            file("a", Some(1)),
            file("b", Some(1)),
            file("c", Some(1)),
        ]);
        assert_eq!(
            kinds(compare(&a, &b, &o)),
            vec![(DiffKind::HardLink, "a".into())]
        );
        // a missing member is reported as missing, not as a split
        let b = snap(vec![file("a", None), file("c", None)]);
        assert_eq!(
            kinds(compare(&a, &b, &o)),
            vec![(DiffKind::Missing, "b".into())]
        );
    }

    #[test]
    fn path_order_is_component_order() {
        let mut v: Vec<PathBuf> = [
            "a/b", "a-b", "a", ".", "-x", "a/b/c", "a.b", "b", "a/a", "a b",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let mut w = v.clone();
        v.sort_by(|a, b| path_cmp(a, b));
        w.sort();
        assert_eq!(v, w);
        assert_eq!(v[0], Path::new("."));
    }

    #[test]
    fn timestamps_parse_and_print() {
        let t: Timestamp = "1796226078.993459510".parse().unwrap();
        assert_eq!(t.utc(), "2026-12-02 15:41:18.993459510 UTC");
        let e: Timestamp = "-1.000000000".parse().unwrap();
        assert_eq!(e.utc(), "1969-12-31 23:59:59.000000000 UTC");
        let t: Timestamp = "1700000000.000000042".parse().unwrap();
        assert_eq!(
            t,
            Timestamp {
                sec: 1700000000,
                nsec: 42
            }
        );
        assert_eq!(t.to_string(), "1700000000.000000042");
        let n: Timestamp = "-5.500000000".parse().unwrap();
        assert_eq!(n.to_string(), "-5.500000000");
        assert!("1.5".parse::<Timestamp>().is_err());
        assert!("x".parse::<Timestamp>().is_err());
    }

    #[test]
    fn hash_file_refuses_symlinks_and_fifos() {
        let d = tempfile::tempdir().unwrap();
        symlink("/etc/passwd", d.path().join("l")).unwrap();
        assert!(hash_file(&d.path().join("l")).is_err());
        nix::unistd::mkfifo(
            &d.path().join("p"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert!(hash_file(&d.path().join("p")).is_err());
    }
}
