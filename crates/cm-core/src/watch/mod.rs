//! The change journal: which directories below the store's roots changed while the relay
//! kept serving mail during the live bulk copy, so that the final pass (with the services
//! stopped) rescans only those instead of the whole store.
//!
//! One fanotify group marks each root's whole file system (`FAN_MARK_FILESYSTEM`, no watch
//! per directory, so a store of a million mailboxes costs nothing more than an empty one).
//! Every event names a directory by its file handle plus an entry name; the handle is turned
//! back into a path with `open_by_handle_at` against a descriptor on that file system, and
//! the directory is kept if it lies below a root. What is kept is a set of directories, never
//! the events, and it is capped ([`Options::max_dirs`]).
//!
//! - [`Journal`]: the fanotify group and the set; [`Journal::drain`] reads what is queued.
//! - [`Watcher`]: a journal drained by a thread of its own from start to [`Watcher::finish`].
//! - [`Changes`]: the result; [`Changes::below`] gives the changed directories of one root,
//!   relative to it, or why a full rescan is needed.
//!
//! Invariant: the journal is either complete or says why it is not. It marks itself
//! incomplete when the kernel's queue overflowed, when a directory handle could not be
//! resolved for another reason than the directory being gone, when a root or a directory
//! above it was moved or removed, when a file system was mounted or unmounted below a root,
//! when reading failed, or when the set outgrew its cap. An object that no longer exists is
//! not a gap: its removal was reported, by name, in a directory that still exists (or one
//! above it), and that directory is in the set.
//!
//! What a changed directory means: an entry in it was created, removed, renamed in or out,
//! written, or had its mode, owner, times or extended attributes (so ACLs) changed, or is a
//! new hard link (the other names of that file are not marked: their entries did not change,
//! only the file's link count, which a consumer checks where it looks); for a directory created or renamed into a root, everything below it (it may
//! arrive full). A root whose own metadata changed is reported as the empty path.

mod sys;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use sys::{Fsid, Handle, Info, RawEvent, Resolved};

/// Limits of a journal.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most directories kept before the journal gives up (a full rescan is then no slower
    /// than the rescan of that many directories, and memory stays bounded).
    pub max_dirs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_dirs: 1_000_000,
        }
    }
}

/// Why a journal could not be started (the caller then rescans in full).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Unsupported { path: PathBuf, msg: String },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> WatchError + 'a {
    move |source| WatchError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// One watched file system and the descriptor its handles are opened against.
struct Fs {
    fsid: Fsid,
    mount: OwnedFd,
}

/// The fanotify group and what it has learnt so far.
pub struct Journal {
    group: OwnedFd,
    fss: Vec<Fs>,
    roots: Vec<PathBuf>,
    mounts_at_start: Vec<PathBuf>,
    dirs: HashSet<PathBuf>,
    subtrees: HashSet<PathBuf>,
    /// Directory handles already resolved (cleared whenever a directory is renamed).
    cache: HashMap<Handle, Option<PathBuf>>,
    incomplete: Option<String>,
    events: u64,
    started: SystemTime,
    opts: Options,
    buf: Vec<u64>,
}

const CACHE_MAX: usize = 65_536;

impl Journal {
    /// Mark the file systems of `roots` (and of anything mounted below them) and start
    /// queueing their events. Needs root (CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH).
    pub fn start(roots: &[PathBuf], opts: Options) -> Result<Journal, WatchError> {
        let group = sys::init().map_err(|e| WatchError::Io {
            path: PathBuf::from("fanotify"),
            what: if e.raw_os_error() == Some(libc::EPERM) {
                "creating the fanotify group needs root"
            } else {
                "creating the fanotify group"
            },
            source: e,
        })?;
        let mut j = Journal {
            group,
            fss: Vec::new(),
            roots: Vec::new(),
            mounts_at_start: Vec::new(),
            dirs: HashSet::new(),
            subtrees: HashSet::new(),
            cache: HashMap::new(),
            incomplete: None,
            events: 0,
            started: SystemTime::now(),
            opts,
            buf: vec![0u64; 8192],
        };
        for r in roots {
            let root = std::fs::canonicalize(r).map_err(io_err(r, "resolving the root"))?;
            if !root.is_dir() {
                return Err(WatchError::Unsupported {
                    path: root,
                    msg: "not a directory".into(),
                });
            }
            j.watch(&root)?;
            let below = sys::mounts_below(&root).map_err(io_err(&root, "reading mountinfo"))?;
            for m in &below {
                j.watch(m)?;
            }
            j.mounts_at_start.extend(below);
            j.roots.push(root);
        }
        Ok(j)
    }

    /// Mark the file system `dir` is on (once per file system), and check that a handle
    /// taken of `dir` resolves back to `dir` (so paths read back are paths below it).
    fn watch(&mut self, dir: &Path) -> Result<(), WatchError> {
        let fsid = sys::fsid_of(dir).map_err(io_err(dir, "statfs"))?;
        if !self.fss.iter().any(|f| f.fsid == fsid) {
            sys::mark_filesystem(&self.group, dir)
                .map_err(io_err(dir, "marking its file system for fanotify"))?;
            let mount = sys::open_dir(dir).map_err(io_err(dir, "opening"))?;
            self.fss.push(Fs { fsid, mount });
        }
        let h = sys::handle_of(dir, fsid).map_err(io_err(dir, "taking a file handle"))?;
        let fs = self
            .fss
            .iter()
            .find(|f| f.fsid == fsid)
            .expect("just added");
        match sys::resolve(&fs.mount, &h) {
            Ok(Resolved::Path { path, .. }) if path == dir => Ok(()),
            Ok(other) => Err(WatchError::Unsupported {
                path: dir.to_path_buf(),
                msg: format!(
                    "its file handle resolves to {other:?} (the same file system is mounted \
                     at several places below the roots)"
                ),
            }),
            Err(e) => Err(WatchError::Io {
                path: dir.to_path_buf(),
                what: "opening its file handle",
                source: e,
            }),
        }
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> i32 {
        self.group.as_raw_fd()
    }

    /// Read and digest everything queued now; the number of events read.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        loop {
            let bytes: &mut [u8] = bytemuck_bytes(&mut self.buf);
            let len = match sys::read(self.group.as_raw_fd(), bytes) {
                Ok(0) => return n,
                Ok(len) => len,
                Err(e) => {
                    self.fail(format!("reading the fanotify queue failed: {e}"));
                    return n;
                }
            };
            let events = match sys::parse_events(&bytemuck_bytes(&mut self.buf)[..len]) {
                Ok(ev) => ev,
                Err(e) => {
                    self.fail(format!("unreadable fanotify event: {}", e.0));
                    return n;
                }
            };
            n += events.len();
            for ev in events {
                self.digest(&ev);
            }
        }
    }

    /// Directories kept so far, events read so far, and whether the journal is complete.
    pub fn progress(&self) -> (usize, u64, bool) {
        (
            self.dirs.len() + self.subtrees.len(),
            self.events,
            self.incomplete.is_none(),
        )
    }

    /// Mark the journal incomplete (the first reason wins) and free the set.
    pub fn fail(&mut self, why: String) {
        if self.incomplete.is_none() {
            self.incomplete = Some(why);
        }
        self.dirs = HashSet::new();
        self.subtrees = HashSet::new();
        self.cache = HashMap::new();
    }

    fn digest(&mut self, ev: &RawEvent) {
        self.events += 1;
        if ev.has(libc::FAN_Q_OVERFLOW) {
            self.fail(
                "the kernel's fanotify queue overflowed (changes came faster than they were \
                 read), so some were not seen"
                    .into(),
            );
            return;
        }
        if self.incomplete.is_some() {
            return; // nothing more to learn; keep the queue empty
        }
        let name = ev.infos.iter().find_map(|i| match i {
            Info::DfidName(h, n) if n.as_os_str() != "." => Some((h, n)),
            _ => None,
        });
        if let Some((h, n)) = name {
            self.entry_event(ev, h, n);
        } else if let Some(h) = ev.infos.iter().find_map(|i| match i {
            Info::Dfid(h) | Info::DfidName(h, _) => Some(h),
            _ => None,
        }) {
            if let Some(p) = self.dir_path(h) {
                self.mark_self(&p, true);
            }
        } else if let Some(h) = ev.infos.iter().find_map(|i| match i {
            Info::Fid(h) => Some(h),
            _ => None,
        }) {
            // An event naming only a non-directory is a link-count change or the file's
            // own delete/move: the name created, removed or renamed is reported with its
            // directory by its own event. (Its handle may not even resolve: a file whose
            // names are not cached cannot be reconnected to a path.)
            if ev.is_dir() {
                self.object_event(h);
            }
        } else {
            self.fail(format!(
                "an event (mask {:#x}) carried no file handle",
                ev.mask
            ));
        }
        if ev.is_dir() && ev.has(libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO | libc::FAN_MOVE_SELF) {
            self.cache.clear(); // paths below a renamed directory changed
        }
    }

    /// An event naming entry `name` in the directory `h`.
    fn entry_event(&mut self, ev: &RawEvent, h: &Handle, name: &OsStr) {
        let Some(dir) = self.dir_path(h) else {
            return; // the directory is gone: its removal is reported where it was
        };
        let full = dir.join(name);
        let structural = libc::FAN_CREATE
            | libc::FAN_DELETE
            | libc::FAN_MOVED_FROM
            | libc::FAN_MOVED_TO
            | libc::FAN_DELETE_SELF
            | libc::FAN_MOVE_SELF;
        if ev.has(structural) {
            if let Some(r) = self.roots.iter().find(|r| r.starts_with(&full)) {
                let why = format!(
                    "{} was moved, removed or replaced while watching {}",
                    full.display(),
                    r.display()
                );
                self.fail(why);
                return;
            }
        }
        if self.roots.contains(&full) {
            self.mark(&full); // the root's own metadata
            return;
        }
        self.mark(&dir);
        if ev.is_dir() && ev.has(libc::FAN_MOVED_TO) {
            self.subtree(&full);
        } else if ev.is_dir() && ev.has(libc::FAN_CREATE) {
            self.mark(&full);
        }
    }

    /// An event that names only a directory (its own delete or move).
    fn object_event(&mut self, h: &Handle) {
        let Some(fs) = self.fss.iter().find(|f| f.fsid == h.fsid) else {
            self.fail("an event on a file system that is not watched".into());
            return;
        };
        match sys::resolve(&fs.mount, h) {
            Ok(Resolved::Gone) => {}
            Ok(Resolved::Path { path, is_dir }) => self.mark_self(&path, is_dir),
            Err(e) => self.fail(format!(
                "cannot resolve a file handle (type {}, {} bytes): {e}",
                h.kind,
                h.bytes.len()
            )),
        }
    }

    /// `p` itself changed: its entry in its parent (and, for a directory, itself).
    fn mark_self(&mut self, p: &Path, is_dir: bool) {
        if is_dir {
            self.mark(p);
        }
        if !self.roots.iter().any(|r| r == p) {
            if let Some(parent) = p.parent() {
                self.mark(parent);
            }
        }
    }

    /// The path of a directory handle, or None when it is gone (or the journal failed).
    fn dir_path(&mut self, h: &Handle) -> Option<PathBuf> {
        if let Some(p) = self.cache.get(h) {
            return p.clone();
        }
        let Some(fs) = self.fss.iter().find(|f| f.fsid == h.fsid) else {
            self.fail("an event on a file system that is not watched".into());
            return None;
        };
        let p = match sys::resolve(&fs.mount, h) {
            Ok(Resolved::Gone) => None,
            Ok(Resolved::Path { path, .. }) => Some(path),
            Err(e) => {
                self.fail(format!("cannot resolve a directory's file handle: {e}"));
                return None;
            }
        };
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(h.clone(), p.clone());
        p
    }

    fn below_a_root(&self, p: &Path) -> bool {
        self.roots.iter().any(|r| p.starts_with(r))
    }

    fn mark(&mut self, p: &Path) {
        if self.below_a_root(p) && !self.dirs.contains(p) {
            self.dirs.insert(p.to_path_buf());
            self.check_cap();
        }
    }

    fn subtree(&mut self, p: &Path) {
        if self.below_a_root(p) && !self.subtrees.contains(p) {
            self.subtrees.insert(p.to_path_buf());
            self.check_cap();
        }
    }

    fn check_cap(&mut self) {
        if self.dirs.len() + self.subtrees.len() > self.opts.max_dirs {
            let n = self.opts.max_dirs;
            self.fail(format!(
                "more than {n} directories changed: a full rescan costs no more"
            ));
        }
    }

    /// Read what is left and close the journal.
    pub fn finish(mut self) -> Changes {
        self.drain();
        match self
            .roots
            .iter()
            .map(|r| sys::mounts_below(r))
            .collect::<io::Result<Vec<_>>>()
        {
            Ok(now) => {
                if now.concat() != self.mounts_at_start {
                    self.fail("a file system was mounted or unmounted below a root".into());
                }
            }
            Err(e) => self.fail(format!("reading mountinfo: {e}")),
        }
        Changes {
            roots: self.roots,
            dirs: self.dirs.into_iter().collect(),
            subtrees: self.subtrees.into_iter().collect(),
            incomplete: self.incomplete,
            events: self.events,
            started: self.started,
            finished: SystemTime::now(),
        }
    }
}

/// The u64 buffer as bytes (aligned for the kernel's structures).
fn bytemuck_bytes(v: &mut [u64]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirements; the length covers the same memory.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 8) }
}

/// What the journal learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    /// The roots watched (canonical paths).
    pub roots: Vec<PathBuf>,
    dirs: BTreeSet<PathBuf>,
    subtrees: BTreeSet<PathBuf>,
    /// Why the journal is not complete, if it is not.
    pub incomplete: Option<String>,
    /// Events read.
    pub events: u64,
    pub started: SystemTime,
    pub finished: SystemTime,
}

impl Changes {
    /// A journal that saw nothing because it never ran: every caller rescans in full.
    pub fn not_running(why: String) -> Changes {
        let now = SystemTime::now();
        Changes {
            roots: Vec::new(),
            dirs: BTreeSet::new(),
            subtrees: BTreeSet::new(),
            incomplete: Some(why),
            events: 0,
            started: now,
            finished: now,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.incomplete.is_none()
    }

    /// Whether the journal ran (completely) through the whole interval starting at `since`.
    pub fn covers(&self, since: SystemTime) -> bool {
        self.is_complete() && self.started <= since
    }

    /// Directories kept (before expanding the subtrees).
    pub fn len(&self) -> usize {
        self.dirs.len() + self.subtrees.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The changed directories below `root`, relative to it (the root itself as the empty
    /// path), sorted; a directory created or renamed in counts with every directory below
    /// it (walked now). `Err` says why the caller must rescan `root` in full.
    pub fn below(&self, root: &Path) -> Result<Vec<PathBuf>, String> {
        if let Some(why) = &self.incomplete {
            return Err(why.clone());
        }
        let root = std::fs::canonicalize(root).map_err(|e| format!("{}: {e}", root.display()))?;
        if !self.roots.iter().any(|r| root.starts_with(r)) {
            return Err(format!("{} was not watched", root.display()));
        }
        let rel = |p: &Path| p.strip_prefix(&root).ok().map(Path::to_path_buf);
        let mut out: BTreeSet<PathBuf> = self.dirs.iter().filter_map(|p| rel(p)).collect();
        for t in &self.subtrees {
            let Some(r) = rel(t) else { continue };
            walk_dirs(t, &r, &mut out).map_err(|e| format!("{}: {e}", t.display()))?;
        }
        Ok(out.into_iter().collect())
    }
}

/// `abs` (known as `rel`) and every directory below it, without following symlinks; a
/// directory that is gone is skipped (its removal is in the set already).
fn walk_dirs(abs: &Path, rel: &Path, out: &mut BTreeSet<PathBuf>) -> io::Result<()> {
    match abs.symlink_metadata() {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    out.insert(rel.to_path_buf());
    let rd = match std::fs::read_dir(abs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        if e.file_type()?.is_dir() {
            walk_dirs(&e.path(), &rel.join(e.file_name()), out)?;
        }
    }
    Ok(())
}

/// What a running watcher has seen so far (for progress lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub dirs: u64,
    pub events: u64,
    pub complete: bool,
}

#[derive(Default)]
struct Shared {
    dirs: AtomicU64,
    events: AtomicU64,
    incomplete: AtomicBool,
}

/// A [`Journal`] drained by a thread of its own until [`Watcher::finish`].
pub struct Watcher {
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<Journal>>,
    shared: Arc<Shared>,
    started: SystemTime,
}

impl Watcher {
    /// Start watching `roots` (see [`Journal::start`]).
    pub fn start(roots: &[PathBuf], opts: Options) -> Result<Watcher, WatchError> {
        let mut j = Journal::start(roots, opts)?;
        let started = j.started;
        let mut fds = [0i32; 2];
        // SAFETY: fds has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io_err(
                Path::new("pipe"),
                "creating the watcher's stop pipe",
            )(io::Error::last_os_error()));
        }
        // SAFETY: both are fresh descriptors we own.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cm-watch".into())
            .spawn(move || loop {
                let stop = match sys::wait(j.fd(), r.as_raw_fd(), 1000) {
                    Ok(s) => s,
                    Err(e) => {
                        j.fail(format!("waiting for fanotify events failed: {e}"));
                        true
                    }
                };
                j.drain();
                let (d, ev, ok) = j.progress();
                sh.dirs.store(d as u64, Ordering::Relaxed);
                sh.events.store(ev, Ordering::Relaxed);
                sh.incomplete.store(!ok, Ordering::Relaxed);
                if stop {
                    return j;
                }
            })
            .map_err(io_err(Path::new("thread"), "starting the watcher thread"))?;
        Ok(Watcher {
            stop: Some(w),
            thread: Some(thread),
            shared,
            started,
        })
    }

    /// When the journal started queueing events.
    pub fn started(&self) -> SystemTime {
        self.started
    }

    pub fn progress(&self) -> Progress {
        Progress {
            dirs: self.shared.dirs.load(Ordering::Relaxed),
            events: self.shared.events.load(Ordering::Relaxed),
            complete: !self.shared.incomplete.load(Ordering::Relaxed),
        }
    }

    /// Stop the thread, read what is still queued, and return what was learnt. Call it once
    /// the writers are stopped: every change made before the call is then in the result.
    pub fn finish(mut self) -> Changes {
        self.stop.take(); // closing the write end wakes the thread
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(j)) => j.finish(),
            _ => Changes::not_running("the change journal's thread stopped unexpectedly".into()),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
