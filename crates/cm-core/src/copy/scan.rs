//! A fast, parallel, descriptor-relative walk of one tree: one `lstat` per entry, symlinks
//! never followed (each directory is opened beneath the root with RESOLVE_NO_SYMLINKS), names
//! as bytes; the result is laid out parents before children (pre-order), siblings sorted.

use super::sys::{self, Kind, Stat};
use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// No parent: the root of the tree.
pub const NO_PARENT: usize = usize::MAX;

/// One entry of a scanned tree.
#[derive(Clone, Debug)]
pub struct Node {
    /// Path relative to the tree's root, `/`-separated bytes; empty for the root itself.
    pub rel: Vec<u8>,
    /// Index of the parent directory's node ([`NO_PARENT`] for the root).
    pub parent: usize,
    /// Offset of the last component in `rel`.
    pub name_at: usize,
    pub st: Stat,
    /// A symlink's target, as bytes.
    pub link: Option<Vec<u8>>,
    /// Extended attributes of a non-directory (directories get theirs synced every run).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Node {
    pub fn name(&self) -> &[u8] {
        &self.rel[self.name_at..]
    }
}

/// A problem met while scanning (the entry is left out of the scan).
#[derive(Debug)]
pub struct ScanProblem {
    pub rel: Vec<u8>,
    pub error: io::Error,
}

/// Walk the tree under `root` (which must be a directory; it may be given through symlinks,
/// the walk below it never follows one) with `threads` workers, one directory at a time
/// each (a cold walk waits on the disk for every inode: several in flight go faster).
/// `noatime`: open with O_NOATIME where allowed.
pub fn scan(
    root: &Path,
    noatime: bool,
    threads: usize,
) -> io::Result<(Vec<Node>, Vec<ScanProblem>)> {
    let fd = sys::open_dir_path(root)?;
    let st = sys::fstat(fd.as_raw_fd())?;
    let shared = Shared {
        queue: Mutex::new((vec![(0u64, Vec::new())], 1usize)),
        cv: Condvar::new(),
        next_id: AtomicU64::new(1),
        results: Mutex::new(HashMap::new()),
        problems: Mutex::new(Vec::new()),
    };
    let root_fd = fd.as_raw_fd();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| worker(&shared, root_fd, noatime));
        }
    });
    let mut results = shared
        .results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let problems = shared
        .problems
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let mut nodes = vec![Node {
        rel: Vec::new(),
        parent: NO_PARENT,
        name_at: 0,
        st,
        link: None,
        xattrs: Vec::new(),
    }];
    assemble(0, 0, &mut results, &mut nodes);
    Ok((nodes, problems))
}

struct Entry {
    name: Vec<u8>,
    st: Stat,
    link: Option<Vec<u8>>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Id of the directory's own listing (directories only).
    child: Option<u64>,
}

/// Directories to list (id, relative path) and how many are queued or being listed.
type Queue = (Vec<(u64, Vec<u8>)>, usize);

struct Shared {
    queue: Mutex<Queue>,
    cv: Condvar,
    next_id: AtomicU64,
    results: Mutex<HashMap<u64, Vec<Entry>>>,
    problems: Mutex<Vec<ScanProblem>>,
}

fn worker(sh: &Shared, root: RawFd, noatime: bool) {
    loop {
        let job = {
            let mut q = sh.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(j) = q.0.pop() {
                    break Some(j);
                }
                if q.1 == 0 {
                    break None;
                }
                q = sh.cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some((id, rel)) = job else {
            sh.cv.notify_all();
            return;
        };
        let mut subdirs = Vec::new();
        let mut probs = Vec::new();
        let entries = list(root, &rel, noatime, sh, &mut subdirs, &mut probs);
        sh.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entries);
        if !probs.is_empty() {
            sh.problems
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(probs);
        }
        let mut q = sh.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.1 += subdirs.len();
        q.1 -= 1;
        q.0.extend(subdirs);
        drop(q);
        sh.cv.notify_all();
    }
}

/// The value of one step of listing an entry, or None to skip the entry: one that vanished
/// between readdir and lstat (ENOENT) is simply not part of this scan; any other failure is
/// a problem reported under its path.
fn keep<T>(
    r: io::Result<T>,
    problems: &mut Vec<ScanProblem>,
    rel: &[u8],
    name: &[u8],
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(error) => {
            problems.push(ScanProblem {
                rel: join(rel, name).0,
                error,
            });
            None
        }
    }
}

/// List one directory: every entry's lstat (and symlink target); subdirectories are queued.
fn list(
    root: RawFd,
    rel: &[u8],
    noatime: bool,
    sh: &Shared,
    subdirs: &mut Vec<(u64, Vec<u8>)>,
    problems: &mut Vec<ScanProblem>,
) -> Vec<Entry> {
    let dir = match sys::open_dir_beneath(root, rel, noatime) {
        Ok(d) => d,
        Err(error) => {
            problems.push(ScanProblem {
                rel: rel.to_vec(),
                error,
            });
            return Vec::new();
        }
    };
    let d = dir.as_raw_fd();
    let names = match sys::read_dir(d) {
        Ok(n) => n,
        Err(error) => {
            problems.push(ScanProblem {
                rel: rel.to_vec(),
                error,
            });
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(names.len());
    let mut xbuf = vec![0u8; 1024];
    for name in names {
        let Some(c) = keep(sys::cstr(&name), problems, rel, &name) else {
            continue;
        };
        let Some(st) = keep(sys::lstat_at(d, &c), problems, rel, &name) else {
            continue;
        };
        let link = if st.kind == Kind::Symlink {
            let Some(t) = keep(sys::readlink_at(d, &c), problems, rel, &name) else {
                continue;
            };
            Some(t)
        } else {
            None
        };
        let xattrs = if st.kind == Kind::Dir {
            Vec::new()
        } else {
            let Some(x) = keep(read_xattrs(d, &c, &mut xbuf), problems, rel, &name) else {
                continue;
            };
            x
        };
        let child = (st.kind == Kind::Dir).then(|| {
            let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
            subdirs.push((id, join(rel, &name).0));
            id
        });
        out.push(Entry {
            name,
            st,
            link,
            xattrs,
            child,
        });
    }
    out
}

/// Lay the listings out in pre-order (a directory's entries sorted by name, then each
/// subdirectory's subtree).
fn assemble(id: u64, idx: usize, results: &mut HashMap<u64, Vec<Entry>>, nodes: &mut Vec<Node>) {
    let Some(mut entries) = results.remove(&id) else {
        return;
    };
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let mut subs = Vec::new();
    for e in entries {
        let (rel, name_at) = join(&nodes[idx].rel, &e.name);
        if let Some(c) = e.child {
            subs.push((c, nodes.len()));
        }
        nodes.push(Node {
            rel,
            parent: idx,
            name_at,
            st: e.st,
            link: e.link,
            xattrs: e.xattrs,
        });
    }
    for (c, i) in subs {
        assemble(c, i, results, nodes);
    }
}

/// The entry's extended attributes (never following a symlink), sorted by name; one
/// syscall when it has none.
fn read_xattrs(dir: RawFd, name: &CStr, buf: &mut Vec<u8>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let x = sys::XTarget::At(dir, name);
    let n = x.list(buf)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let names: Vec<Vec<u8>> = buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| s.to_vec())
        .collect();
    let mut out = Vec::with_capacity(names.len());
    let mut val = vec![0u8; 256];
    for nm in names {
        let c = sys::cstr(&nm)?;
        match x.get(&c, &mut val) {
            Ok(l) => out.push((nm, val[..l].to_vec())),
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

fn join(parent: &[u8], name: &[u8]) -> (Vec<u8>, usize) {
    if parent.is_empty() {
        (name.to_vec(), 0)
    } else {
        let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
        v.extend_from_slice(parent);
        v.push(b'/');
        v.extend_from_slice(name);
        (v, parent.len() + 1)
    }
}
