//! One volume's copy as a stream: the walker goes directory by directory in path order
//! (names sorted by bytes, a directory's subtree right after it), merging the source's
//! listing, the copy's listing and the earlier run's manifest (read as a stream in the same
//! order); what must be copied goes to `jobs` workers through a bounded queue; a recorder
//! puts the results back in path order, writes the manifest as a stream and finishes each
//! directory (its owner, mode, xattrs and times) once everything beneath it is done.
//!
//! What is held in memory: the directories on the walker's path and those listed ahead, the
//! entries in flight (at most [`WINDOW`]), the inodes with several names seen so far, and
//! counters. Nothing grows with the number of entries of the store.
//!
//! The deletion rule: an entry of the copy the source no longer has is removed only when the
//! earlier run's manifest records it (or it is a temporary of an interrupted run, reported
//! apart); anything else is moved aside into a dated folder beside the target, never
//! deleted.

use super::file::{self, ItemError, Worker};
use super::links;
use super::{
    join_show, map_st, same_meta, same_xattrs, Counts, Event, MapIds, Options, Outcome, Problem,
    Removal, Severity,
};
use crate::manifest;
use crate::sys::{self, FileType, Stat, XTarget};
use crate::tree::Entry;
use crate::walk::{self, Item, Lister, Listing, Ticket};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

static RENAMES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static KILL_AT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// A file was renamed into place. Test hook: with `CM_COPY_TEST_KILL_AFTER_RENAMES=N` in the
/// environment the process kills itself (SIGKILL) right after the N-th rename, so kill tests
/// land where files are written and renamed, replayably.
pub fn renamed() {
    let at = *KILL_AT.get_or_init(|| {
        std::env::var("CM_COPY_TEST_KILL_AFTER_RENAMES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    let n = RENAMES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if at > 0 && n >= at {
        // SAFETY: raising a signal against ourselves.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

/// Entries in flight between the walker and the recorder at most.
pub const WINDOW: u64 = 4096;
/// Child directories listed ahead of the walker, per directory on its path.
const AHEAD: usize = 6;

/// How far the recorder got (entries before `done` are written), and the walker's wait for
/// it: the recorder wakes the walker only when it waits.
#[derive(Default)]
struct Written {
    done: AtomicU64,
    waiting: AtomicBool,
    m: Mutex<()>,
    cv: Condvar,
}

impl Written {
    /// Wait until entry `seq` fits in the window.
    fn wait_for(&self, seq: u64) {
        let mut g = self.m.lock().unwrap_or_else(|e| e.into_inner());
        self.waiting.store(true, SeqCst);
        while seq >= self.done.load(SeqCst) + WINDOW {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        self.waiting.store(false, SeqCst);
    }

    fn set(&self, next: u64) {
        self.done.store(next, SeqCst);
        if self.waiting.load(SeqCst) {
            let _g = self.m.lock().unwrap_or_else(|e| e.into_inner());
            self.cv.notify_all();
        }
    }
}

/// What a run needs to know about its volume (resolved by `copy::plan`).
pub(super) struct Setup<'a> {
    pub src_root: &'a Path,
    pub dst_root: &'a Path,
    pub opts: &'a Options<'a>,
    /// Contents are compared for files the earlier manifest does not record (a reboot
    /// interrupted a run).
    pub force_checksum: bool,
    /// Plan only: change nothing.
    pub dry: bool,
    /// The copy's root was made by this run.
    pub root_created: bool,
    /// Walk only these directories (and their ancestors); carry the rest over from the
    /// earlier manifest.
    pub only: Option<std::collections::BTreeSet<Vec<u8>>>,
    pub on: &'a (dyn Fn(Event) + Sync),
    /// The target's free space when the run started (bytes; inodes when counted): every
    /// entry written is charged against it first, and the walk stops at the first that
    /// would not fit.
    pub budget: Option<(u64, Option<u64>)>,
}

/// What a walk found and did.
pub(super) struct Walked {
    pub counts: Counts,
    pub problems: Vec<Problem>,
    pub removals: Vec<Removal>,
    pub outcome: Outcome,
    pub writer: Option<manifest::Writer>,
    pub notes: Vec<String>,
    pub owners: std::collections::BTreeMap<(u32, u32), (u64, String)>,
    pub devices: Option<(u64, String)>,
    pub listed: Vec<(String, &'static str)>,
}

/// One inode with several names: its first name's copy, once done.
struct LinkSlot {
    group: u64,
    first_rel: Vec<u8>,
    state: Mutex<LinkState>,
    cv: Condvar,
}

enum LinkState {
    Pending,
    /// The first name's copy: its inode in the copy and its record.
    Done {
        ino: u64,
        dev: u64,
        entry: Box<Entry>,
    },
    /// Not copied; `soft`: a change (vanished, kept changing), not a failure.
    Failed {
        soft: bool,
    },
}

impl LinkSlot {
    fn set(&self, s: LinkState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
        self.cv.notify_all();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Act {
    Create,
    HashTarget,
    Checksum,
    Link,
}

struct Job {
    seq: u64,
    act: Act,
    sd: Arc<OwnedFd>,
    dd: Arc<OwnedFd>,
    rel: Vec<u8>,
    name_at: usize,
    st: Stat,
    dacl: bool,
    group: Option<u64>,
    /// First name of a linked inode: the slot to fill; further name: the slot to wait on.
    slot: Option<Arc<LinkSlot>>,
}

/// A finished directory: what to apply to its copy.
struct Close {
    rel: Vec<u8>,
    sfd: Arc<OwnedFd>,
    dfd: Arc<OwnedFd>,
    st: Stat,
    apply: bool,
    created: bool,
}

enum Done {
    Copied(u64),
    Verified(u64),
    Same(u64),
    Unchanged,
    Linked,
    Failed,
    /// A directory's entry (counted when it is closed).
    Dir,
    Removed,
    Leftover,
    Aside,
    /// Carried over from the earlier manifest (not walked).
    Carried,
}

enum Msg {
    /// The walker's messages, sent together (one wake-up of the recorder for many).
    Batch(Vec<Msg>),
    Item {
        seq: u64,
        entry: Option<Box<Entry>>,
        done: Done,
        problem: Option<Problem>,
    },
    Close {
        seq: u64,
        close: Box<Close>,
    },
}

/// The earlier run's manifest, read along with the walk.
struct Prev {
    r: Option<manifest::Reader>,
    peek: Option<Entry>,
    note: Option<String>,
}

impl Prev {
    fn open(dst: &Path) -> Prev {
        let p = manifest::path_for(dst);
        let (r, note) = if std::fs::symlink_metadata(&p).is_ok() {
            match manifest::Reader::open(&p) {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(format!("ignoring the earlier manifest ({e}); files already copied are read again to checksum them"))),
            }
        } else {
            (None, None)
        };
        Prev {
            r,
            peek: None,
            note,
        }
    }

    /// The next recorded entry below the directory `rel` (its subtree follows it in order).
    fn next_below(&mut self, rel: &[u8]) -> Option<Entry> {
        use std::os::unix::ffi::OsStrExt;
        if self.peek.is_none() {
            match self.r.as_mut()?.next_entry() {
                Ok(Some(e)) => self.peek = Some(e),
                Ok(None) => {
                    self.r = None;
                    return None;
                }
                Err(e) => {
                    self.note = Some(format!(
                        "the earlier manifest is unreadable from here on ({e})"
                    ));
                    self.r = None;
                    return None;
                }
            }
        }
        let p = self.peek.as_ref()?.path.as_os_str().as_bytes();
        let below = p.len() > rel.len() && p.starts_with(rel) && p[rel.len()] == b'/';
        if below {
            self.peek.take()
        } else {
            None
        }
    }

    /// The recorded entry at `rel` (empty: the root). Calls come in path order; entries
    /// before `rel` are passed over.
    fn find(&mut self, rel: &[u8]) -> Option<Entry> {
        let want = rel_path(rel);
        loop {
            if self.peek.is_none() {
                let r = self.r.as_mut()?;
                match r.next_entry() {
                    Ok(Some(e)) => self.peek = Some(e),
                    Ok(None) => {
                        self.r = None;
                        return None;
                    }
                    Err(e) => {
                        self.note = Some(format!("the earlier manifest is unreadable from here on ({e}); files it would record are read again to checksum them, entries it would record are moved aside rather than removed"));
                        self.r = None;
                        return None;
                    }
                }
            }
            let p = self.peek.as_ref()?;
            match crate::tree::path_cmp(&p.path, &want) {
                std::cmp::Ordering::Less => self.peek = None,
                std::cmp::Ordering::Equal => return self.peek.take(),
                std::cmp::Ordering::Greater => return None,
            }
        }
    }
}

/// The changed directories of the volume whose source is `src`, as bytes.
pub(super) fn only_dirs(opts: &Options, src: &Path) -> Option<std::collections::BTreeSet<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let dirs = opts.changed?.get(src)?;
    Some(
        dirs.iter()
            .map(|d| {
                let b = d.as_os_str().as_bytes();
                if b == b"." {
                    Vec::new()
                } else {
                    b.to_vec()
                }
            })
            .collect(),
    )
}

/// Must the directory `rel` be walked: it changed, or a changed directory lies below it.
pub(super) fn must_walk(only: &std::collections::BTreeSet<Vec<u8>>, rel: &[u8]) -> bool {
    if only.contains(rel) || (rel.is_empty() && !only.is_empty()) {
        return true;
    }
    let mut pre = rel.to_vec();
    pre.push(b'/');
    only.range(pre.clone()..)
        .next()
        .is_some_and(|s| s.starts_with(&pre))
}

fn rel_path(rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(OsString::from_vec(rel.to_vec()))
    }
}

/// The manifest line of one entry of the copy.
pub(super) fn entry(
    rel: &[u8],
    st: &Stat,
    hash: Option<[u8; 32]>,
    link: Option<Vec<u8>>,
    xattrs: super::Xattrs,
    group: Option<u64>,
) -> Entry {
    Entry {
        path: rel_path(rel),
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
        target: link.map(OsString::from_vec),
        inode: None,
        link_group: group,
        xattrs: xattrs
            .into_iter()
            .map(|(n, v)| (OsString::from_vec(n), v))
            .collect(),
        sha256: if st.kind == FileType::File {
            hash
        } else {
            None
        },
    }
}

fn with_path(e: &Entry, rel: &[u8]) -> Entry {
    Entry {
        path: rel_path(rel),
        ..e.clone()
    }
}

/// A temporary name of this engine (`.cm-copy.PID.WORKER.SEQ.tmp`).
pub fn is_temp(name: &[u8]) -> bool {
    name.starts_with(b".cm-copy.") && name.ends_with(b".tmp")
}

/// The folder entries are moved aside into: beside the target, dated.
fn aside_root(dst: &Path) -> PathBuf {
    let name = dst
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "copy".into());
    let mut d = OsString::from("cm-moved-aside-");
    d.push(crate::fsutil::utc_stamp(std::time::SystemTime::now()));
    d.push("-");
    d.push(&name);
    dst.parent().unwrap_or(Path::new("/")).join(d)
}

/// One source entry being decided, with what the copy and the manifest hold at its name.
struct Here {
    rel: Vec<u8>,
    name: Vec<u8>,
    it: Item,
    titem: Option<Item>,
    recorded: Option<Entry>,
    sfd: Arc<OwnedFd>,
    dfd: Option<Arc<OwnedFd>>,
    dacl: bool,
}

/// One directory on the walker's path.
struct Frame {
    rel: Vec<u8>,
    src: Vec<Item>,
    si: usize,
    tgt: Vec<Item>,
    ti: usize,
    sfd: Arc<OwnedFd>,
    dfd: Option<Arc<OwnedFd>>,
    unsure: HashSet<Vec<u8>>,
    ahead: VecDeque<(usize, Ticket, Option<Ticket>)>,
    next_ahead: usize,
    /// Listings of subdirectories the lister prefetched, source and copy.
    ssub: walk::Subs,
    tsub: walk::Subs,
    st: Stat,
    /// The copy's directory as listed (None: created by this run).
    tst: Option<Stat>,
    src_x: super::Xattrs,
    created: bool,
    touched: bool,
    dacl: bool,
}

impl Frame {
    /// The next name of the merge of both listings (in name order): its index in the
    /// source's listing, the copy's, or both; None when both are done.
    fn next_pair(&mut self) -> Option<(Option<usize>, Option<usize>)> {
        let (si, ti) = (self.si, self.ti);
        let order = match (self.src.get(si), self.tgt.get(ti)) {
            (None, None) => return None,
            (Some(a), Some(b)) => a.name.cmp(&b.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
        };
        Some(match order {
            std::cmp::Ordering::Equal => {
                self.si += 1;
                self.ti += 1;
                (Some(si), Some(ti))
            }
            std::cmp::Ordering::Less => {
                self.si += 1;
                (Some(si), None)
            }
            std::cmp::Ordering::Greater => {
                self.ti += 1;
                (None, Some(ti))
            }
        })
    }
}

struct Walker<'a, 's> {
    s: &'a Setup<'a>,
    lister: &'a Lister,
    sroot: Arc<OwnedFd>,
    droot: Option<Arc<OwnedFd>>,
    prev: Prev,
    /// Inodes with several names: the slot and how many names are still to come.
    links: HashMap<(u64, u64), (Arc<LinkSlot>, u64)>,
    next_group: u64,
    /// Carried entries given a link group (see [`links::Linking::regroup`]).
    regroup: HashMap<Vec<u8>, u64>,
    seq: u64,
    counts: Counts,
    problems: Vec<Problem>,
    removals: Vec<Removal>,
    jobs: Option<&'s JobQueue>,
    rec: Option<mpsc::Sender<Msg>>,
    written: &'s Written,
    /// Messages for the recorder not sent yet (see [`Msg::Batch`]).
    outbox: Vec<Msg>,
    aside: Option<(PathBuf, OwnedFd)>,
    aside_err: bool,
    xbuf: Vec<u8>,
    owners: std::collections::BTreeMap<(u32, u32), (u64, String)>,
    devices: Option<(u64, String)>,
    listed: Vec<(String, &'static str)>,
    /// The walk stopped (the target is short of space): nothing more is written.
    stop: bool,
}

impl Walker<'_, '_> {
    /// Charge what the counts need so far against the budget before writing `rel`; false
    /// (and the walk stops, with one error) when it does not fit.
    fn charge(&mut self, rel: &[u8]) -> bool {
        let Some((bytes, inodes)) = self.s.budget else {
            return true;
        };
        let (nb, ni) = (self.counts.need_bytes, self.counts.need_inodes);
        let short = match (nb > bytes, inodes.is_some_and(|i| ni > i)) {
            (false, false) => return true,
            (true, true) => "space and inodes",
            (true, false) => "space",
            (false, true) => "inodes",
        };
        let root = self.s.dst_root;
        let message = format!(
            "not enough {short} on the target's file system: the copy needs more than the {} and {} inodes free there when it started; stopped before writing {}, nothing further written: free space or inodes and run again (only what is missing or changed is copied)",
            super::safety::human(bytes),
            inodes.map_or("uncounted".to_string(), |i| i.to_string()),
            join_show(root, rel),
        );
        self.problem(Severity::Error, root, b"", message);
        self.stop = true;
        false
    }

    fn ids(&self) -> Option<&dyn MapIds> {
        self.s.opts.ids
    }

    fn problem(&mut self, sev: Severity, root: &Path, rel: &[u8], message: String) {
        let p = Problem {
            severity: sev,
            path: join_show(root, rel),
            message,
        };
        if self.s.dry {
            self.problems.push(p);
        } else {
            self.send_item(None, Done::Failed, Some(p));
        }
    }

    fn list(&mut self, rel: &[u8], what: &'static str) {
        if self.s.opts.list {
            // escaped as a printed name is, without the quotes: a listing prefixes the volume
            let p = std::path::Path::new(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(rel),
            );
            self.listed.push((crate::quote::json_path(p), what));
        }
    }

    /// Note a source entry's owner and whether it is a device node (for the caller check).
    fn note_owner(&mut self, rel: &[u8], st: &Stat) {
        let e = self
            .owners
            .entry((st.uid, st.gid))
            .or_insert_with(|| (0, join_show(self.s.src_root, rel)));
        e.0 += 1;
        if matches!(st.kind, FileType::CharDevice | FileType::BlockDevice) {
            let d = self
                .devices
                .get_or_insert_with(|| (0, join_show(self.s.src_root, rel)));
            d.0 += 1;
        }
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        if !self.s.dry && s >= self.written.done.load(SeqCst) + WINDOW {
            self.flush();
            self.written.wait_for(s);
        }
        s
    }

    /// Hand the messages kept back to the recorder.
    fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let v = std::mem::take(&mut self.outbox);
        if let Some(r) = &self.rec {
            let _ = r.send(Msg::Batch(v));
        }
    }

    /// A message for the recorder, kept back until a few are there or the walker waits.
    fn post(&mut self, m: Msg) {
        self.outbox.push(m);
        if self.outbox.len() >= 256 {
            self.flush();
        }
    }

    fn send_item(&mut self, entry: Option<Entry>, done: Done, problem: Option<Problem>) {
        if self.s.dry {
            return;
        }
        let seq = self.next_seq();
        self.post(Msg::Item {
            seq,
            entry: entry.map(Box::new),
            done,
            problem,
        });
    }

    fn dispatch(&mut self, job: Job) {
        if let Some(j) = self.jobs {
            j.push(job);
        }
    }

    fn request(&self, root: &Arc<OwnedFd>, rel: &[u8], noatime: bool) -> Ticket {
        self.lister.request(root, rel, noatime, true)
    }

    /// Walk the whole volume.
    fn run(&mut self) {
        let rst = match sys::fstat(self.sroot.as_raw_fd()) {
            Ok(s) => s,
            Err(e) => {
                self.problem(
                    Severity::Error,
                    self.s.src_root,
                    b"",
                    format!("cannot read: {e}"),
                );
                return;
            }
        };
        let tst = self
            .droot
            .as_ref()
            .and_then(|d| sys::fstat(d.as_raw_fd()).ok());
        let st = self.request(&self.sroot.clone(), b"", true);
        let tt = self.droot.clone().map(|d| self.request(&d, b"", true));
        let _ = self.prev.find(b"");
        let mut stack: Vec<Frame> = Vec::new();
        self.note_owner(b"", &rst);
        let created = self.s.root_created;
        if let Some(f) = self.open_frame(Vec::new(), rst, tst, st, tt, self.droot.clone(), created)
        {
            stack.push(f);
        }
        while let Some(top) = stack.last_mut() {
            if self.stop {
                // Short of space: the directories open stay as they are (a new one private).
                stack.clear();
                break;
            }
            let Some((s, t)) = top.next_pair() else {
                if let Some(f) = stack.pop() {
                    self.close_frame(f);
                }
                continue;
            };
            let depth = stack.len() - 1;
            if let Some(child) = self.step(&mut stack, depth, s, t) {
                stack.push(child);
            }
        }
        self.counts.entries = self.counts.files
            + self.counts.dirs
            + self.counts.symlinks
            + self.counts.specials
            + self.counts.sockets;
    }

    /// Open a directory of the source for walking: wait for its listings, record it.
    #[allow(clippy::too_many_arguments)]
    fn open_frame(
        &mut self,
        rel: Vec<u8>,
        st: Stat,
        tst: Option<Stat>,
        sticket: Ticket,
        tticket: Option<Ticket>,
        dfd: Option<Arc<OwnedFd>>,
        created: bool,
    ) -> Option<Frame> {
        let sl: Listing = sticket.wait();
        let tl: Listing = tticket.map(|t| t.wait()).unwrap_or_default();
        if let Some(e) = sl.error {
            self.problem(
                Severity::Error,
                self.s.src_root,
                &rel,
                format!(
                    "cannot read: {e} (not copied; nothing beneath it is removed from the copy)"
                ),
            );
            return None;
        }
        let sfd = sl.fd?;
        let unsure = self.unreadable(&rel, sl.problems);
        let src_x = self.dir_xattrs(&rel, &sfd);
        let dfd = match (tl.fd, dfd) {
            (Some(f), _) => Some(f),
            (None, d) => d,
        };
        let dacl = dfd
            .as_ref()
            .is_some_and(|d| file::has_default_acl(d.as_raw_fd()));
        self.record_dir(&rel, &st, &src_x);
        let mut f = Frame {
            rel,
            src: sl.items,
            si: 0,
            tgt: tl.items,
            ti: 0,
            sfd,
            dfd,
            unsure,
            ahead: VecDeque::new(),
            next_ahead: 0,
            ssub: sl.sub,
            tsub: tl.sub,
            st,
            tst,
            src_x,
            created,
            touched: false,
            dacl,
        };
        self.look_ahead(&mut f);
        Some(f)
    }

    /// Report the entries of a directory that could not be read; their names (nothing of
    /// the copy is removed under them).
    fn unreadable(&mut self, rel: &[u8], problems: Vec<(Vec<u8>, io::Error)>) -> HashSet<Vec<u8>> {
        let mut unsure = HashSet::new();
        for (name, e) in problems {
            let r = walk::join(rel, &name);
            self.problem(
                Severity::Error,
                self.s.src_root,
                &r,
                format!(
                    "cannot read: {e} (not copied; nothing beneath it is removed from the copy)"
                ),
            );
            unsure.insert(name);
        }
        unsure
    }

    /// A source directory's own xattrs (none, reported, when they cannot be read).
    fn dir_xattrs(&mut self, rel: &[u8], sfd: &OwnedFd) -> super::Xattrs {
        match walk::read_xattrs(&XTarget::Fd(sfd.as_raw_fd()), &mut self.xbuf) {
            Ok(x) => x,
            Err(e) => {
                self.problem(
                    Severity::Error,
                    self.s.src_root,
                    rel,
                    format!("cannot read extended attributes: {e}"),
                );
                Vec::new()
            }
        }
    }

    /// Count a directory and hand its entry (owners and ACLs mapped) to the recorder.
    fn record_dir(&mut self, rel: &[u8], st: &Stat, src_x: &super::Xattrs) {
        self.counts.dirs += 1;
        let mapped_st = map_st(st, self.ids());
        let mut mx = src_x.clone();
        if let Some(m) = self.ids() {
            file::map_acls(&mut mx, m);
        }
        self.send_item(
            Some(entry(rel, &mapped_st, None, None, mx, None)),
            Done::Dir,
            None,
        );
    }

    fn count_kind(&mut self, kind: FileType) {
        match kind {
            FileType::Dir => {}
            FileType::File => self.counts.files += 1,
            FileType::Symlink => self.counts.symlinks += 1,
            FileType::Socket => self.counts.sockets += 1,
            _ => self.counts.specials += 1,
        }
    }

    /// A socket of the source is not copied (its service makes it again); one in the copy
    /// is removed.
    fn skip_socket(&mut self, f: &mut Frame, h: Here) {
        let root = self.s.src_root;
        self.problem(
            Severity::Warning,
            root,
            &h.rel,
            "a socket: not copied (its service creates it again at start)".into(),
        );
        if let (Some(ti), Some(d)) = (h.titem, h.dfd) {
            f.touched = true;
            self.remove(&d, &h.rel, &h.name, &ti, h.recorded);
        }
    }

    /// A copy entry of another type (directory vs not), or one of our temporaries, is out
    /// of the way: removed (or moved aside), and `h.titem` cleared.
    fn out_of_the_way(&mut self, f: &mut Frame, h: &mut Here) {
        let Some(ti) = h.titem.take() else { return };
        let st = h.it.st;
        if (ti.st.kind == FileType::Dir) != (st.kind == FileType::Dir) || is_temp(&h.name) {
            if let Some(d) = &h.dfd {
                f.touched = true;
                self.remove(d, &h.rel, &h.name, &ti, h.recorded.clone());
            }
        } else {
            h.titem = Some(ti);
        }
    }

    /// Request listings of the next child directories.
    fn look_ahead(&self, f: &mut Frame) {
        let src = &self.sroot;
        while f.ahead.len() < AHEAD && f.next_ahead < f.src.len() {
            let i = f.next_ahead;
            f.next_ahead += 1;
            let it = &f.src[i];
            if it.st.kind != FileType::Dir {
                continue;
            }
            let rel = walk::join(&f.rel, &it.name);
            if self.s.only.as_ref().is_some_and(|o| !must_walk(o, &rel)) {
                continue;
            }
            let st = f
                .ssub
                .take(i)
                .unwrap_or_else(|| self.request(src, &rel, true));
            let tt = match (
                &self.droot,
                f.tgt.binary_search_by(|t| t.name.as_slice().cmp(&it.name)),
            ) {
                (Some(d), Ok(j)) if f.tgt[j].st.kind == FileType::Dir => Some(
                    f.tsub
                        .take(j)
                        .unwrap_or_else(|| self.request(d, &rel, true)),
                ),
                _ => None,
            };
            f.ahead.push_back((i, st, tt));
        }
    }

    /// Finish a directory: after everything beneath it, its metadata.
    fn close_frame(&mut self, f: Frame) {
        let Some(dfd) = f.dfd.clone() else {
            return;
        };
        let mapped = map_st(&f.st, self.ids());
        let mut apply = f.created || f.touched;
        if !apply {
            apply = match &f.tst {
                Some(t) => !same_meta(&f.st, t, self.ids()),
                None => true,
            };
        }
        if !apply {
            let tx = walk::read_xattrs(&XTarget::Fd(dfd.as_raw_fd()), &mut self.xbuf)
                .unwrap_or_default();
            apply = !same_xattrs(&f.src_x, &tx, self.ids());
        }
        let _ = mapped;
        if self.s.dry {
            return;
        }
        let seq = self.next_seq();
        self.post(Msg::Close {
            seq,
            close: Box::new(Close {
                rel: f.rel,
                sfd: f.sfd,
                dfd,
                st: f.st,
                apply,
                created: f.created,
            }),
        });
    }

    /// One name of the current directory: source item `s`, copy item `t`. Returns a child
    /// frame to descend into.
    fn step(
        &mut self,
        stack: &mut [Frame],
        depth: usize,
        s: Option<usize>,
        t: Option<usize>,
    ) -> Option<Frame> {
        let f = &mut stack[depth];
        let name = match (s, t) {
            (Some(i), _) => f.src[i].name.clone(),
            (None, Some(j)) => f.tgt[j].name.clone(),
            (None, None) => return None,
        };
        let rel = walk::join(&f.rel, &name);
        let recorded = self.prev.find(&rel);
        let f = &mut stack[depth];
        let titem = t.map(|j| f.tgt[j].clone());
        let Some(si) = s else {
            // Only in the copy.
            if f.unsure.contains(&name) {
                return None;
            }
            let titem = titem?;
            let dfd = f.dfd.clone()?;
            f.touched = true;
            self.remove(&dfd, &rel, &name, &titem, recorded);
            return None;
        };
        // Take the look-ahead listings of this child, if any (a directory).
        let mut tickets = None;
        if f.ahead.front().is_some_and(|a| a.0 == si) {
            tickets = f.ahead.pop_front().map(|(_, a, b)| (a, b));
        }
        let mut h = Here {
            it: f.src[si].clone(),
            sfd: f.sfd.clone(),
            dfd: f.dfd.clone(),
            dacl: f.dacl,
            rel,
            name,
            titem,
            recorded,
        };
        let st = h.it.st;
        self.count_kind(st.kind);
        if st.kind == FileType::Socket {
            self.skip_socket(&mut stack[depth], h);
            return None;
        }
        self.note_owner(&h.rel, &st);
        self.out_of_the_way(&mut stack[depth], &mut h);
        if st.kind == FileType::Dir {
            return self.step_dir(stack, depth, h, tickets);
        }
        if st.nlink > 1 {
            if let Some(slot) = self.links.get(&(st.dev, st.ino)).map(|s| s.0.clone()) {
                self.further_name(stack, depth, h, slot);
                return None;
            }
        }
        self.step_entry(stack, depth, h);
        None
    }

    /// A directory unchanged since the earlier run (the change journal says so): carried
    /// over from its manifest, unread. False when it must be walked.
    fn carry(&mut self, h: &Here) -> bool {
        let (Some(only), Some(rec), Some(ti)) = (&self.s.only, &h.recorded, &h.titem) else {
            return false;
        };
        if must_walk(only, &h.rel) || rec.kind != FileType::Dir || ti.st.kind != FileType::Dir {
            return false;
        }
        let rec = rec.clone();
        self.counts.unchanged += 1;
        self.counts.carried += 1;
        self.send_item(Some(rec), Done::Carried, None);
        while let Some(mut e) = self.prev.next_below(&h.rel) {
            self.counts.unchanged += 1;
            self.counts.carried += 1;
            if !self.regroup.is_empty() {
                use std::os::unix::ffi::OsStrExt;
                if let Some(g) = self.regroup.get(e.path.as_os_str().as_bytes()) {
                    e.link_group = Some(*g);
                }
            }
            self.send_item(Some(e), Done::Carried, None);
        }
        true
    }

    /// A directory of the source: created in the copy (private) when missing, then walked.
    fn step_dir(
        &mut self,
        stack: &mut [Frame],
        depth: usize,
        h: Here,
        tickets: Option<(Ticket, Option<Ticket>)>,
    ) -> Option<Frame> {
        if self.carry(&h) {
            return None;
        }
        let (stk, ttk) = match tickets {
            Some(p) => p,
            None => {
                let a = self.request(&self.sroot, &h.rel, true);
                let b = match (&self.droot, &h.titem) {
                    (Some(d), Some(_)) => Some(self.request(d, &h.rel, true)),
                    _ => None,
                };
                (a, b)
            }
        };
        self.look_ahead(&mut stack[depth]);
        let mut child_dfd = None;
        let mut created = false;
        if h.titem.is_none() {
            self.list(&h.rel, "copy");
            self.counts.copy += 1;
            self.counts.need_inodes += 1;
            self.counts.need_bytes += 4096;
            stack[depth].touched = true;
            if !self.s.dry && !self.charge(&h.rel) {
                drop(stk.wait());
                return None;
            }
            if !self.s.dry {
                let d = h.dfd.as_ref()?;
                match mkdir(d.as_raw_fd(), &h.name) {
                    Ok(fd) => {
                        child_dfd = Some(Arc::new(fd));
                        created = true;
                    }
                    Err(e) => {
                        let root = self.s.src_root;
                        self.problem(
                            Severity::Error,
                            root,
                            &h.rel,
                            format!("cannot create the directory in the copy: {e}; nothing beneath it copied"),
                        );
                        // Release the listings asked for.
                        drop(stk.wait());
                        return None;
                    }
                }
            }
        } else {
            self.counts.unchanged += 1;
        }
        let tst = h.titem.map(|t| t.st);
        self.open_frame(h.rel, h.it.st, tst, stk, ttk, child_dfd, created)
    }

    /// A further name of an inode whose first name was met: kept when the copy links it
    /// already, else linked to the first name's copy by a worker.
    fn further_name(&mut self, stack: &mut [Frame], depth: usize, h: Here, slot: Arc<LinkSlot>) {
        let st = h.it.st;
        let key = (st.dev, st.ino);
        let keep = {
            let g = slot.state.lock().unwrap_or_else(|e| e.into_inner());
            match (&*g, &h.titem) {
                (LinkState::Done { ino, dev, entry }, Some(ti))
                    if ti.st.ino == *ino && ti.st.dev == *dev =>
                {
                    Some(with_path(entry, &h.rel))
                }
                _ => None,
            }
        };
        // Every name seen: forget the inode.
        if let Some(l) = self.links.get_mut(&key) {
            l.1 = l.1.saturating_sub(1);
            if l.1 == 0 {
                self.links.remove(&key);
            }
        }
        if let Some(e) = keep {
            self.counts.unchanged += 1;
            self.send_item(Some(e), Done::Unchanged, None);
            return;
        }
        self.counts.link += 1;
        stack[depth].touched = true;
        self.list(&h.rel, "link");
        let Some(d) = h.dfd else { return };
        let seq = if self.s.dry { 0 } else { self.next_seq() };
        self.dispatch(Job {
            seq,
            act: Act::Link,
            sd: h.sfd,
            dd: d,
            name_at: h.rel.len() - h.name.len(),
            rel: h.rel,
            st,
            dacl: h.dacl,
            group: Some(slot.group),
            slot: Some(slot),
        });
    }

    /// What to do with a file, symlink or node (None: the copy is right).
    fn decide(&self, h: &Here) -> Option<Act> {
        let (st, ids) = (&h.it.st, self.ids());
        let Some(ti) = &h.titem else {
            return Some(Act::Create);
        };
        let same = same_meta(st, &ti.st, ids)
            && same_xattrs(&h.it.xattrs, &ti.xattrs, ids)
            && match st.kind {
                FileType::File => st.size == ti.st.size && (st.nlink > 1 || ti.st.nlink == 1),
                FileType::Symlink => h.it.link == ti.link,
                _ => st.rdev == ti.st.rdev,
            };
        if !same {
            return Some(Act::Create);
        }
        if st.kind != FileType::File {
            return None;
        }
        let rec = h.recorded.as_ref().filter(|e| {
            e.kind == FileType::File
                && e.size == ti.st.size
                && e.mtime == ti.st.mtime
                && e.mode == ti.st.perm
                && e.uid == ti.st.uid
                && e.gid == ti.st.gid
                && e.sha256.is_some()
        });
        match rec {
            _ if self.s.opts.checksum => Some(Act::Checksum),
            Some(_) => None,
            None if self.s.force_checksum => Some(Act::Checksum),
            None => Some(Act::HashTarget),
        }
    }

    /// A file, symlink or node (a first name when it has several): kept, or given to a
    /// worker.
    /// The first name of an inode with several: a new link group and the slot its other
    /// names wait on.
    fn first_name(&mut self, rel: &[u8], st: &Stat) -> Arc<LinkSlot> {
        self.next_group += 1;
        let slot = Arc::new(LinkSlot {
            group: self.next_group,
            first_rel: rel.to_vec(),
            state: Mutex::new(LinkState::Pending),
            cv: Condvar::new(),
        });
        self.links
            .insert((st.dev, st.ino), (slot.clone(), st.nlink - 1));
        slot
    }

    /// An entry whose copy is already right: recorded as the copy holds it.
    fn already_right(&mut self, h: &Here, group: Option<u64>, slot: Option<&LinkSlot>) {
        let Some(ti) = &h.titem else { return };
        let hash = h.recorded.as_ref().and_then(|e| e.sha256);
        let e = entry(
            &h.rel,
            &ti.st,
            hash,
            ti.link.clone(),
            ti.xattrs.clone(),
            group,
        );
        if let Some(slot) = slot {
            slot.set(LinkState::Done {
                ino: ti.st.ino,
                dev: ti.st.dev,
                entry: Box::new(e.clone()),
            });
        }
        self.counts.unchanged += 1;
        self.send_item(Some(e), Done::Unchanged, None);
    }

    fn step_entry(&mut self, stack: &mut [Frame], depth: usize, h: Here) {
        let st = h.it.st;
        let first_slot = (st.nlink > 1).then(|| self.first_name(&h.rel, &st));
        let group = first_slot.as_ref().map(|s| s.group);
        if st.kind == FileType::File {
            self.counts.bytes += st.size;
        }
        let Some(a) = self.decide(&h) else {
            self.already_right(&h, group, first_slot.as_deref());
            return;
        };
        if a == Act::Create {
            self.list(&h.rel, "copy");
            self.counts.copy += 1;
            self.counts.need_inodes += 1;
            if st.kind == FileType::File {
                self.counts.copy_bytes += st.size;
                self.counts.need_bytes += st.blocks * 512;
            }
            if !self.s.dry && !self.charge(&h.rel) {
                if let Some(slot) = &first_slot {
                    slot.set(LinkState::Failed { soft: false });
                }
                return;
            }
        } else {
            self.counts.verify += 1;
            self.counts.verify_bytes += st.size;
        }
        if a != Act::HashTarget {
            stack[depth].touched = true;
        }
        if self.s.dry {
            return;
        }
        let Some(d) = h.dfd else { return };
        let seq = self.next_seq();
        self.dispatch(Job {
            seq,
            act: a,
            sd: h.sfd,
            dd: d,
            name_at: h.rel.len() - h.name.len(),
            rel: h.rel,
            st,
            dacl: h.dacl,
            group,
            slot: first_slot,
        });
    }

    /// An entry of the copy that is in the way or that the source no longer has.
    /// A temporary of an earlier run, left by a kill: removed.
    fn remove_leftover(&mut self, dfd: &Arc<OwnedFd>, rel: &[u8], name: &[u8], t: &Item) {
        self.counts.leftovers += 1;
        self.removals.push(Removal {
            path: join_show(self.s.dst_root, rel),
            action: "remove leftover temporary",
        });
        if self.s.dry {
            return;
        }
        match sys::cstr(name)
            .and_then(|c| sys::unlink_at(dfd.as_raw_fd(), &c, t.st.kind == FileType::Dir))
        {
            Ok(()) => self.send_item(None, Done::Leftover, None),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => self.remove_failed(rel, e),
        }
    }

    /// Empty a recorded directory of the copy before it is removed: its entries that were
    /// recorded are removed, the others moved aside. False when it could not be read
    /// (reported; nothing removed).
    fn empty_recorded_dir(&mut self, dfd: &Arc<OwnedFd>, rel: &[u8], name: &[u8]) -> bool {
        let d = match sys::cstr(name).and_then(|c| {
            sys::open_at(
                dfd.as_raw_fd(),
                &c,
                libc::O_RDONLY | libc::O_DIRECTORY,
                false,
            )
        }) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                self.remove_failed(rel, e);
                return false;
            }
        };
        let l = walk::list(d.as_raw_fd(), b"", false, false, &mut self.xbuf);
        if let Some(e) = l.error {
            self.remove_failed(rel, e);
            return false;
        }
        for it in &l.items {
            let crel = walk::join(rel, &it.name);
            let rec = self.prev.find(&crel);
            self.remove(&d, &crel, &it.name, it, rec);
        }
        true
    }

    fn remove(
        &mut self,
        dfd: &Arc<OwnedFd>,
        rel: &[u8],
        name: &[u8],
        t: &Item,
        recorded: Option<Entry>,
    ) {
        if is_temp(name) {
            self.remove_leftover(dfd, rel, name, t);
            return;
        }
        let ours = recorded.is_some_and(|e| e.kind == t.st.kind);
        if !ours {
            self.move_aside(dfd, rel, name);
            return;
        }
        if t.st.kind == FileType::Dir && !self.empty_recorded_dir(dfd, rel, name) {
            return;
        }
        self.counts.delete += 1;
        self.list(rel, "delete");
        self.removals.push(Removal {
            path: join_show(self.s.dst_root, rel),
            action: "remove (the source no longer has it)",
        });
        if self.s.dry {
            return;
        }
        let r = sys::cstr(name)
            .and_then(|c| sys::unlink_at(dfd.as_raw_fd(), &c, t.st.kind == FileType::Dir));
        match r {
            Ok(()) => self.send_item(None, Done::Removed, None),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => self.remove_failed(rel, e),
        }
    }

    fn remove_failed(&mut self, rel: &[u8], e: io::Error) {
        let root = self.s.dst_root;
        self.problem(
            Severity::Error,
            root,
            rel,
            format!("cannot remove from the copy: {e}"),
        );
    }

    /// Move an entry this suite never recorded out of the copy, into the dated folder.
    /// The folder for entries moved aside (made, private, the first time), open.
    fn aside_folder(&mut self) -> io::Result<(&Path, &OwnedFd)> {
        if self.aside.is_none() {
            if self.aside_err {
                return Err(io::Error::other(
                    "the folder for entries moved aside could not be made",
                ));
            }
            let root = aside_root(self.s.dst_root);
            let made = std::fs::DirBuilder::new()
                .mode_0700()
                .create(&root)
                .and_then(|_| sys::open_dir_path(&root));
            match made {
                Ok(fd) => self.aside = Some((root, fd)),
                Err(e) => {
                    self.aside_err = true;
                    return Err(e);
                }
            }
        }
        match &self.aside {
            Some((root, fd)) => Ok((root.as_path(), fd)),
            None => Err(io::Error::other(
                "the folder for entries moved aside is gone",
            )),
        }
    }

    fn move_aside(&mut self, dfd: &Arc<OwnedFd>, rel: &[u8], name: &[u8]) {
        self.counts.aside += 1;
        if self.s.dry {
            self.removals.push(Removal {
                path: join_show(self.s.dst_root, rel),
                action: "move aside (not written by this suite)",
            });
            return;
        }
        let r = self
            .aside_folder()
            .and_then(|(root, afd)| rename_aside(root, afd, dfd, rel, name));
        match r {
            Ok(to) => {
                let p = Problem {
                    severity: Severity::Warning,
                    path: join_show(self.s.dst_root, rel),
                    message: format!(
                        "not written by this suite and not in the source: moved aside to {} (never deleted)",
                        to.display()
                    ),
                };
                self.send_item(None, Done::Aside, Some(p));
            }
            Err(e) => {
                let root = self.s.dst_root;
                self.problem(
                    Severity::Error,
                    root,
                    rel,
                    format!("not written by this suite and not in the source, and it could not be moved aside: {e}; move it away by hand"),
                );
            }
        }
    }
}

/// Create directory `name` in `dir` privately (0700), or open the one that is there.
fn mkdir(dir: RawFd, name: &[u8]) -> io::Result<OwnedFd> {
    let c = sys::cstr(name)?;
    match sys::mkdir_at(dir, &c, 0o700) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            let st = sys::lstat_at(dir, &c)?;
            if st.kind != FileType::Dir {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists in the copy and is not a directory",
                ));
            }
        }
        Err(e) => return Err(e),
    }
    sys::open_at(dir, &c, libc::O_RDONLY | libc::O_DIRECTORY, false)
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

/// What one job did.
struct JobResult {
    entry: Option<Entry>,
    done: Done,
    problem: Option<Problem>,
}

fn run_job(w: &mut Worker, s: &Setup, droot: RawFd, j: &Job) -> JobResult {
    let name = match sys::cstr(&j.rel[j.name_at..]) {
        Ok(c) => c,
        Err(e) => return fail(s, j, ItemError::Io("name", e)),
    };
    let dd = j.dd.as_raw_fd();
    if j.act == Act::Link {
        return link_job(w, s, droot, j, &name);
    }
    let r: Result<(Entry, Done, (u64, u64)), ItemError> = match j.act {
        Act::Create => copy_job(w, s, j, &name).map(|(e, b, i)| (e, Done::Copied(b), i)),
        Act::HashTarget => match file::hash_at(w, dd, &name, true, true) {
            Ok(c) => {
                let b = c.st.size;
                Ok((
                    entry(&j.rel, &c.st, Some(c.hash), None, c.xattrs, j.group),
                    Done::Verified(b),
                    (c.st.ino, c.st.dev),
                ))
            }
            Err(e) => Err(ItemError::Io("read the copy to checksum it", e)),
        },
        Act::Checksum => checksum_job(w, s, j, &name),
        Act::Link => unreachable!("handled above"),
    };
    settle(s, j, r)
}

/// Copy one entry: its recorded entry, the bytes copied and the copy's (inode, device).
fn copy_job(
    w: &mut Worker,
    s: &Setup,
    j: &Job,
    name: &std::ffi::CStr,
) -> Result<(Entry, u64, (u64, u64)), ItemError> {
    let ids = s.opts.ids;
    let (sd, dd) = (j.sd.as_raw_fd(), j.dd.as_raw_fd());
    if j.st.kind == FileType::File {
        let c = file::copy_file(w, sd, dd, name, ids, j.dacl, j.slot.is_some())?;
        let b = c.st.size;
        let e = entry(
            &j.rel,
            &map_st(&c.st, ids),
            Some(c.hash),
            None,
            c.xattrs,
            j.group,
        );
        Ok((e, b, c.dst))
    } else {
        let (st, link, x) = file::copy_special(w, sd, dd, name, ids)?;
        let tst = sys::lstat_at(dd, name).map_err(|e| ItemError::Io("stat the copy", e))?;
        let e = entry(&j.rel, &map_st(&st, ids), None, link, x, j.group);
        Ok((e, 0, (tst.ino, tst.dev)))
    }
}

/// Compare both sides' contents: the same (with the same metadata) is kept, else copied.
fn checksum_job(
    w: &mut Worker,
    s: &Setup,
    j: &Job,
    name: &std::ffi::CStr,
) -> Result<(Entry, Done, (u64, u64)), ItemError> {
    let (sd, dd) = (j.sd.as_raw_fd(), j.dd.as_raw_fd());
    let src = match file::hash_at(w, sd, name, true, false) {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(ItemError::Vanished),
        Err(e) => return Err(ItemError::Io("read source", e)),
    };
    match file::hash_at(w, dd, name, true, true) {
        Ok(t) if t.hash == src.hash && !changed_meta(&src.st, &j.st) => {
            let b = t.st.size;
            Ok((
                entry(&j.rel, &t.st, Some(t.hash), None, t.xattrs, j.group),
                Done::Same(b),
                (t.st.ino, t.st.dev),
            ))
        }
        _ => copy_job(w, s, j, name).map(|(e, b, i)| (e, Done::Copied(b), i)),
    }
}

/// A job's result: its link slot told (done, or failed), and what the recorder gets.
fn settle(s: &Setup, j: &Job, r: Result<(Entry, Done, (u64, u64)), ItemError>) -> JobResult {
    match r {
        Ok((e, done, (ino, dev))) => {
            if let Some(slot) = &j.slot {
                slot.set(LinkState::Done {
                    ino,
                    dev,
                    entry: Box::new(e.clone()),
                });
            }
            JobResult {
                entry: Some(e),
                done,
                problem: None,
            }
        }
        Err(e) => {
            if let Some(slot) = &j.slot {
                slot.set(LinkState::Failed {
                    soft: matches!(e, ItemError::Vanished | ItemError::Changed),
                });
            }
            fail(s, j, e)
        }
    }
}

fn fail(s: &Setup, j: &Job, e: ItemError) -> JobResult {
    let sev =
        if matches!(e, ItemError::Vanished) || (s.opts.live && matches!(e, ItemError::Changed)) {
            Severity::Warning
        } else {
            Severity::Error
        };
    not_done(s, j, sev, e.to_string())
}

/// A job that did not get done: failed (an error) or left for the next pass (a warning).
fn not_done(s: &Setup, j: &Job, sev: Severity, message: String) -> JobResult {
    JobResult {
        entry: None,
        done: if sev == Severity::Error {
            Done::Failed
        } else {
            Done::Unchanged
        },
        problem: Some(Problem {
            severity: sev,
            path: join_show(s.src_root, &j.rel),
            message,
        }),
    }
}

fn changed_meta(a: &Stat, b: &Stat) -> bool {
    a.size != b.size || a.mtime != b.mtime || a.perm != b.perm || a.uid != b.uid || a.gid != b.gid
}

impl LinkSlot {
    /// Wait for the first name's copy: its (inode, device, entry), or whether its failure
    /// was soft (the first name vanished or changed).
    fn wait_first(&self) -> Result<(u64, u64, Box<Entry>), bool> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while matches!(*g, LinkState::Pending) {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        match &*g {
            LinkState::Done { ino, dev, entry } => Ok((*ino, *dev, entry.clone())),
            LinkState::Failed { soft } => Err(*soft),
            LinkState::Pending => Err(false),
        }
    }
}

/// A further name not linked because its first name was not copied. Under --live (or when
/// the first name vanished) that is a change for the next pass, not a failure.
fn not_linked(s: &Setup, j: &Job, slot: &LinkSlot, soft: bool) -> JobResult {
    let sev = if soft || s.opts.live {
        Severity::Warning
    } else {
        Severity::Error
    };
    let later = if sev == Severity::Warning {
        " (the next run links it)"
    } else {
        ""
    };
    let message = format!(
        "not linked: its other name {} was not copied{later}",
        super::show(&slot.first_rel)
    );
    not_done(s, j, sev, message)
}

/// Move `rel` (named `name` in `dfd`) into the folder `afd` at `root`, below its parent
/// directories made there (private); where it went.
fn rename_aside(
    root: &Path,
    afd: &OwnedFd,
    dfd: &OwnedFd,
    rel: &[u8],
    name: &[u8],
) -> io::Result<PathBuf> {
    let parent = &rel[..rel.len() - name.len()];
    let mut cur: Option<OwnedFd> = None;
    for comp in parent.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        let at = cur.as_ref().map_or(afd.as_raw_fd(), |f| f.as_raw_fd());
        cur = Some(mkdir(at, comp)?);
    }
    let at = cur.as_ref().map_or(afd.as_raw_fd(), |f| f.as_raw_fd());
    let c = sys::cstr(name)?;
    sys::rename_at(dfd.as_raw_fd(), &c, at, &c)?;
    Ok(root.join(rel_path(rel)))
}

fn link_job(w: &mut Worker, s: &Setup, droot: RawFd, j: &Job, name: &CString) -> JobResult {
    let Some(slot) = &j.slot else {
        return fail(s, j, ItemError::Changed);
    };
    let (ino, dev, first) = match slot.wait_first() {
        Ok(x) => x,
        Err(soft) => return not_linked(s, j, slot, soft),
    };
    let e = with_path(&first, &j.rel);
    let dd = j.dd.as_raw_fd();
    if let Ok(t) = sys::lstat_at(dd, name) {
        if t.ino == ino && t.dev == dev {
            return JobResult {
                entry: Some(e),
                done: Done::Unchanged,
                problem: None,
            };
        }
    }
    let (pdir, pname) = walk::split(&slot.first_rel);
    let r = (|| -> Result<(), ItemError> {
        let pd = sys::open_dir_beneath(droot, pdir, false)
            .map_err(|e| ItemError::Io("open directory in the copy", e))?;
        let pn = sys::cstr(pname).map_err(|e| ItemError::Io("name", e))?;
        file::link_into(w, pd.as_raw_fd(), &pn, dd, name)
    })();
    match r {
        Ok(()) => JobResult {
            entry: Some(e),
            done: Done::Linked,
            problem: None,
        },
        Err(err) => fail(s, j, err),
    }
}

/// Apply a finished directory's metadata (the source's as it was listed).
fn close_dir(w: &mut Worker, s: &Setup, c: &Close) -> Result<(), ItemError> {
    if !c.apply {
        return Ok(());
    }
    let ids = s.opts.ids;
    let (sfd, dfd) = (c.sfd.as_raw_fd(), c.dfd.as_raw_fd());
    let (uid, gid) = match ids {
        Some(m) => (m.uid(c.st.uid), m.gid(c.st.gid)),
        None => (c.st.uid, c.st.gid),
    };
    sys::fchown(dfd, uid, gid).map_err(|e| ItemError::Io("chown", e))?;
    sys::fchmod(dfd, c.st.perm).map_err(|e| ItemError::Io("chmod", e))?;
    file::copy_xattrs(w, &XTarget::Fd(sfd), &XTarget::Fd(dfd), ids, true)?;
    sys::futimens(dfd, c.st.atime, c.st.mtime).map_err(|e| ItemError::Io("set times", e))?;
    Ok(())
}

/// Count one finished entry into the outcome; the bytes it read or wrote.
fn count(out: &mut Outcome, done: &Done, recorded: bool, problem: Option<&Problem>) -> u64 {
    match *done {
        Done::Copied(b) => {
            out.copied += 1;
            out.copied_bytes += b;
            return b;
        }
        Done::Verified(b) | Done::Same(b) => {
            out.verified += 1;
            return b;
        }
        Done::Unchanged if recorded => out.unchanged += 1,
        Done::Unchanged | Done::Dir => {}
        Done::Linked => out.linked += 1,
        Done::Removed => out.deleted += 1,
        Done::Leftover => out.leftovers += 1,
        Done::Aside => out.moved_aside += 1,
        Done::Carried => {
            out.unchanged += 1;
            out.carried += 1;
        }
        Done::Failed => {
            if problem.is_some_and(|p| p.severity == Severity::Error) {
                out.failed += 1;
            }
        }
    }
    0
}

/// The recorder: results back in path order, into the manifest and the outcome.
fn record(
    s: &Setup,
    rx: mpsc::Receiver<Msg>,
    writer: Option<manifest::Writer>,
    written: &Written,
) -> (Outcome, Option<manifest::Writer>) {
    let mut r = Recorder {
        s,
        out: Outcome::default(),
        pending: BTreeMap::new(),
        next: 0,
        w: Worker::new(usize::MAX / 2),
        writer,
        werr: None,
    };
    for m in rx {
        match m {
            Msg::Batch(v) => v.into_iter().for_each(|m| r.arrived(m)),
            m => r.arrived(m),
        }
        while let Some(m) = r.pending.remove(&r.next) {
            r.next += 1;
            match m {
                Msg::Item {
                    entry,
                    done,
                    problem,
                    ..
                } => r.item(entry, done, problem),
                // never kept in `pending`: unpacked on arrival
                Msg::Batch(_) => {}
                Msg::Close { close, .. } => r.close(&close),
            }
        }
        written.set(r.next);
    }
    r.finish()
}

/// The recorder's state: messages waiting for their turn, the outcome so far, the manifest.
struct Recorder<'a, 's> {
    s: &'a Setup<'s>,
    out: Outcome,
    pending: BTreeMap<u64, Msg>,
    next: u64,
    w: Worker,
    writer: Option<manifest::Writer>,
    /// The first error writing the manifest.
    werr: Option<String>,
}

impl Recorder<'_, '_> {
    fn arrived(&mut self, m: Msg) {
        match &m {
            Msg::Item { seq, .. } | Msg::Close { seq, .. } => {
                self.pending.insert(*seq, m);
            }
            Msg::Batch(_) => {}
        }
    }

    fn push(&mut self, p: Problem) {
        (self.s.on)(Event::Problem(&p));
        self.out.problems.push(p);
    }

    /// An entry done (or failed): counted, written to the manifest, progress told.
    fn item(&mut self, entry: Option<Box<Entry>>, done: Done, problem: Option<Problem>) {
        let bytes = count(&mut self.out, &done, entry.is_some(), problem.as_ref());
        if let Some(p) = problem {
            self.push(p);
        }
        if let (Some(e), Some(wr)) = (entry, self.writer.as_mut()) {
            if let Err(e) = wr.entry(&e) {
                self.werr.get_or_insert(e.to_string());
            }
        }
        if bytes > 0
            || matches!(
                done,
                Done::Copied(_) | Done::Linked | Done::Unchanged | Done::Failed
            )
        {
            (self.s.on)(Event::Done { bytes });
        }
    }

    /// A directory whose subtree is done: its own metadata set last.
    fn close(&mut self, close: &Close) {
        match close_dir(&mut self.w, self.s, close) {
            Ok(()) if close.created => self.out.copied += 1,
            Ok(()) => self.out.unchanged += 1,
            Err(e) => {
                self.out.failed += 1;
                self.push(Problem {
                    severity: Severity::Error,
                    path: join_show(self.s.src_root, &close.rel),
                    message: e.to_string(),
                });
            }
        }
    }

    /// The outcome, and the manifest's writer unless writing it failed.
    fn finish(mut self) -> (Outcome, Option<manifest::Writer>) {
        if let Some(e) = self.werr.take() {
            self.push(Problem {
                severity: Severity::Error,
                path: self.s.dst_root.display().to_string(),
                message: format!("cannot write the manifest: {e}"),
            });
            self.writer = None;
        }
        (self.out, self.writer)
    }
}

/// The bounded queue from the walker to the workers. Wake-ups only when someone waits: a
/// worker when a job comes, the walker (held back by a full queue) once it is half empty.
struct JobQueue {
    st: Mutex<QueueState>,
    jobs: Condvar,
    room: Condvar,
    cap: usize,
}

#[derive(Default)]
struct QueueState {
    q: VecDeque<Job>,
    closed: bool,
    idle: usize,
    full: bool,
}

impl JobQueue {
    fn new(cap: usize) -> JobQueue {
        JobQueue {
            st: Mutex::new(QueueState::default()),
            jobs: Condvar::new(),
            room: Condvar::new(),
            cap: cap.max(2),
        }
    }

    fn push(&self, job: Job) {
        let mut g = self.st.lock().unwrap_or_else(|e| e.into_inner());
        while g.q.len() >= self.cap {
            g.full = true;
            g = self.room.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g.q.push_back(job);
        if g.idle > 0 {
            self.jobs.notify_one();
        }
    }

    /// The next job; with `wait`, waits for one (None: closed and empty), else None at once
    /// when there is none.
    fn pop(&self, wait: bool) -> Option<Job> {
        let mut g = self.st.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(j) = g.q.pop_front() {
                if g.full && g.q.len() <= self.cap / 2 {
                    g.full = false;
                    self.room.notify_one();
                }
                return Some(j);
            }
            if g.closed || !wait {
                return None;
            }
            g.idle += 1;
            g = self.jobs.wait(g).unwrap_or_else(|e| e.into_inner());
            g.idle -= 1;
        }
    }

    fn close(&self) {
        self.st.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.jobs.notify_all();
    }
}

/// Closes the job queue when dropped.
struct CloseQueue<'a>(&'a JobQueue);

impl Drop for CloseQueue<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A worker's loop: jobs from the queue, results to the recorder, a few at a time (sent before
/// the worker waits for a job, so the recorder never waits on a result kept back).
fn work(s: &Setup, id: usize, dr: RawFd, jobs: &JobQueue, rtx: mpsc::Sender<Msg>) {
    let mut w = Worker::new(id);
    let mut held: Vec<Msg> = Vec::new();
    let send = |held: &mut Vec<Msg>| {
        if !held.is_empty() {
            let _ = rtx.send(Msg::Batch(std::mem::take(held)));
        }
    };
    loop {
        let job = match jobs.pop(false) {
            Some(j) => j,
            None => {
                send(&mut held);
                match jobs.pop(true) {
                    Some(j) => j,
                    None => break,
                }
            }
        };
        let r = run_job(&mut w, s, dr, &job);
        held.push(Msg::Item {
            seq: job.seq,
            entry: r.entry.map(Box::new),
            done: r.done,
            problem: r.problem,
        });
        if held.len() >= 16 {
            send(&mut held);
        }
    }
    send(&mut held);
}

/// The walker's link slots, first group number and regrouped carried entries from a
/// restricted delta's link plan: every known inode's slot is filled (its copy is its
/// carried name's) and kept to the end (the walk never meets all its names).
type Prefilled = (
    HashMap<(u64, u64), (Arc<LinkSlot>, u64)>,
    u64,
    HashMap<Vec<u8>, u64>,
);

fn prefill(l: Option<links::Linking>, notes: &mut Vec<String>) -> Prefilled {
    let Some(l) = l else {
        return (HashMap::new(), 0, HashMap::new());
    };
    notes.extend(l.note);
    let slots = l
        .known
        .into_iter()
        .map(|k| {
            let slot = LinkSlot {
                group: k.group,
                first_rel: k.first_rel,
                state: Mutex::new(LinkState::Done {
                    ino: k.copy.0,
                    dev: k.copy.1,
                    entry: Box::new(k.entry),
                }),
                cv: Condvar::new(),
            };
            (k.src, (Arc::new(slot), u64::MAX))
        })
        .collect();
    (slots, l.next_group, l.regroup)
}

/// Walk (and, unless `dry`, copy) one volume.
pub(super) fn walk_volume(
    s: &Setup,
    sroot: OwnedFd,
    droot: Option<OwnedFd>,
    writer: Option<manifest::Writer>,
) -> Walked {
    // A restricted delta: its hard links first (the restriction may widen, or go).
    let linking = s.only.clone().map(|o| {
        let dr = droot.as_ref().map(|d| d.as_raw_fd());
        let m = manifest::path_for(s.dst_root);
        links::plan(o, &m, sroot.as_raw_fd(), dr, s.opts.ids, !s.force_checksum)
    });
    let (only, known) = match linking {
        Some(l) => (l.only.clone(), Some(l)),
        None => (None, None),
    };
    let s = &Setup { only, ..*s };
    let sroot = Arc::new(sroot);
    let droot = droot.map(Arc::new);
    let lister = lister_for(&s.only);
    let written = Written::default();
    let threads = s.opts.jobs.clamp(2, 8);
    let prev = Prev::open(s.dst_root);
    let mut notes = Vec::new();
    let (links, next_group, regroup) = prefill(known, &mut notes);
    let jobs = JobQueue::new(s.opts.jobs.max(1) * 8);
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| lister.work());
        }
        let _close = walk::CloseOnDrop(&lister);
        // however the walker ends, the workers stop once the queue is empty
        let _hangup = CloseQueue(&jobs);
        let (rtx, rrx) = mpsc::channel::<Msg>();
        let dr = droot.as_ref().map(|d| d.as_raw_fd()).unwrap_or(-1);
        let recorder = if s.dry {
            drop(rrx);
            None
        } else {
            for id in 0..s.opts.jobs.max(1) {
                let (jobs, rtx) = (&jobs, rtx.clone());
                sc.spawn(move || work(s, id, dr, jobs, rtx));
            }
            let written = &written;
            Some(sc.spawn(move || record(s, rrx, writer, written)))
        };
        let mut wk = Walker {
            s,
            lister: &lister,
            sroot: sroot.clone(),
            droot: droot.clone(),
            prev,
            links,
            next_group,
            regroup,
            seq: 0,
            counts: Counts::default(),
            problems: Vec::new(),
            removals: Vec::new(),
            jobs: if s.dry { None } else { Some(&jobs) },
            rec: if s.dry { None } else { Some(rtx) },
            written: &written,
            outbox: Vec::new(),
            aside: None,
            aside_err: false,
            xbuf: vec![0u8; 1024],
            owners: Default::default(),
            devices: None,
            listed: Vec::new(),
            stop: false,
        };
        wk.run();
        wk.flush();
        // Hang up: workers drain the queue, then the recorder ends.
        wk.jobs = None;
        drop(_hangup);
        wk.finish(notes, recorder)
    })
}

/// The lister of a walk: a walk restricted to some directories prefetches only those.
fn lister_for(only: &Option<std::collections::BTreeSet<Vec<u8>>>) -> Lister {
    let lister = Lister::with_prefetch(walk::PREFETCH_DEPTH);
    match only.clone() {
        Some(o) => lister.prefetch_only(Box::new(move |rel| must_walk(&o, rel))),
        None => lister,
    }
}

/// What the recorder gives back when it ends.
type Recorded = (Outcome, Option<manifest::Writer>);

impl Walker<'_, '_> {
    /// The walk is over (the workers told): let the recorder end, and what was found.
    fn finish(
        mut self,
        mut notes: Vec<String>,
        recorder: Option<std::thread::ScopedJoinHandle<'_, Recorded>>,
    ) -> Walked {
        if let Some(n) = self.prev.note.take() {
            notes.push(n);
        }
        let aside = self.aside.take().map(|(p, _)| p);
        self.rec = None;
        let counts = std::mem::take(&mut self.counts);
        let problems = std::mem::take(&mut self.problems);
        let removals = std::mem::take(&mut self.removals);
        let owners = std::mem::take(&mut self.owners);
        let devices = self.devices.take();
        let listed = std::mem::take(&mut self.listed);
        drop(self);
        let (mut outcome, writer) = match recorder {
            Some(h) => h.join().unwrap_or_else(|_| (Outcome::default(), None)),
            None => (Outcome::default(), None),
        };
        outcome.aside_dir = aside;
        Walked {
            counts,
            problems,
            removals,
            outcome,
            writer,
            notes,
            owners,
            devices,
            listed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_outcome(live: bool, soft: bool) -> JobResult {
        let t = tempfile::tempdir().unwrap();
        let d = Arc::new(sys::open_dir_path(t.path()).unwrap());
        let opts = Options {
            live,
            ..Default::default()
        };
        let on = |_: Event| {};
        let s = Setup {
            src_root: t.path(),
            dst_root: t.path(),
            opts: &opts,
            force_checksum: false,
            dry: false,
            root_created: false,
            only: None,
            on: &on,
            budget: None,
        };
        let slot = Arc::new(LinkSlot {
            group: 1,
            first_rel: b"cur/first".to_vec(),
            state: Mutex::new(LinkState::Failed { soft }),
            cv: Condvar::new(),
        });
        let st = sys::fstat(d.as_raw_fd()).unwrap();
        let j = Job {
            seq: 0,
            act: Act::Link,
            sd: d.clone(),
            dd: d.clone(),
            rel: b"cur/second".to_vec(),
            name_at: 4,
            st,
            dacl: false,
            group: Some(1),
            slot: Some(slot),
        };
        let mut w = Worker::new(0);
        run_job(&mut w, &s, d.as_raw_fd(), &j)
    }

    #[test]
    fn a_second_name_whose_first_was_not_copied_is_a_warning_under_live() {
        // --live: the other name renamed away (or changing) is a change for the next pass.
        let r = link_outcome(true, false);
        let p = r.problem.unwrap();
        assert_eq!(p.severity, Severity::Warning, "{}", p.message);
        assert!(p.message.contains("the next run links it"), "{}", p.message);
        assert!(r.entry.is_none(), "never recorded");
        // The first name vanished: a warning in any run.
        assert_eq!(
            link_outcome(false, true).problem.unwrap().severity,
            Severity::Warning
        );
        // Services stopped and the first name failed for another reason: an error.
        let r = link_outcome(false, false);
        assert_eq!(r.problem.unwrap().severity, Severity::Error);
        assert!(matches!(r.done, Done::Failed));
    }
}
