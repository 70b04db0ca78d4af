//! Listing directories for a streaming walk: one directory at a time, entries sorted by name
//! (bytes), each with its `lstat`, a symlink's target and (for non-directories, when asked)
//! its extended attributes. Listings are made by a small pool of threads ahead of the walker
//! (a cold walk waits on the disk for every inode: several directories in flight go faster),
//! and handed over through [`Ticket`]s, so only the directories requested and not yet
//! consumed are held in memory.
//!
//! Invariant: no symlink is followed (directories are opened beneath their root with
//! RESOLVE_NO_SYMLINKS, entries are `lstat`ed relative to their directory's descriptor).

use crate::sys::{self, Kind, Stat};
use std::collections::VecDeque;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};

/// One entry of a listed directory.
#[derive(Clone, Debug)]
pub struct Item {
    pub name: Vec<u8>,
    pub st: Stat,
    /// A symlink's target.
    pub link: Option<Vec<u8>>,
    /// Extended attributes (non-directories; directories' are read when they are closed).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One directory's listing.
#[derive(Debug, Default)]
pub struct Listing {
    /// The directory, open (None when it could not be opened).
    pub fd: Option<Arc<OwnedFd>>,
    pub items: Vec<Item>,
    /// Entries that could not be read (name, error): left out of `items`.
    pub problems: Vec<(Vec<u8>, io::Error)>,
    /// The directory itself could not be opened or read.
    pub error: Option<io::Error>,
}

struct Slot {
    done: Mutex<Option<Listing>>,
    cv: Condvar,
}

/// A listing requested and not yet taken.
pub struct Ticket(Arc<Slot>);

impl Ticket {
    /// Wait for the listing.
    pub fn wait(self) -> Listing {
        let mut g = self.0.done.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(l) = g.take() {
                return l;
            }
            g = self.0.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

struct Req {
    root: Arc<OwnedFd>,
    rel: Vec<u8>,
    noatime: bool,
    xattrs: bool,
    slot: Arc<Slot>,
}

/// The pool's queue: workers run [`Lister::work`] inside a thread scope until
/// [`Lister::close`].
#[derive(Default)]
pub struct Lister {
    q: Mutex<(VecDeque<Req>, bool)>,
    cv: Condvar,
}

impl Lister {
    pub fn new() -> Lister {
        Lister::default()
    }

    /// Ask for the listing of `rel` beneath `root`.
    pub fn request(&self, root: &Arc<OwnedFd>, rel: &[u8], noatime: bool, xattrs: bool) -> Ticket {
        let slot = Arc::new(Slot {
            done: Mutex::new(None),
            cv: Condvar::new(),
        });
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        q.0.push_back(Req {
            root: root.clone(),
            rel: rel.to_vec(),
            noatime,
            xattrs,
            slot: slot.clone(),
        });
        drop(q);
        self.cv.notify_one();
        Ticket(slot)
    }

    /// No more requests: workers end once the queue is empty.
    pub fn close(&self) {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.cv.notify_all();
    }

    /// A worker's loop.
    pub fn work(&self) {
        let mut xbuf = vec![0u8; 1024];
        loop {
            let req = {
                let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(r) = q.0.pop_front() {
                        break Some(r);
                    }
                    if q.1 {
                        break None;
                    }
                    q = self.cv.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some(r) = req else { return };
            let l = list(r.root.as_raw_fd(), &r.rel, r.noatime, r.xattrs, &mut xbuf);
            *r.slot.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
            r.slot.cv.notify_all();
        }
    }
}

/// Closes the lister when dropped (so a walker that returns early does not leave the pool's
/// threads waiting).
pub struct CloseOnDrop<'a>(pub &'a Lister);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// List one directory now.
pub fn list(root: RawFd, rel: &[u8], noatime: bool, xattrs: bool, xbuf: &mut Vec<u8>) -> Listing {
    let mut out = Listing::default();
    let dir = match sys::open_dir_beneath(root, rel, noatime) {
        Ok(d) => d,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let d = dir.as_raw_fd();
    let mut names = match sys::read_dir(d) {
        Ok(n) => n,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    names.sort_unstable();
    out.items.reserve(names.len());
    for name in names {
        let r = (|| -> io::Result<Item> {
            let c = sys::cstr(&name)?;
            let st = sys::lstat_at(d, &c)?;
            let link = if st.kind == Kind::Symlink {
                Some(sys::readlink_at(d, &c)?)
            } else {
                None
            };
            let x = if xattrs && st.kind != Kind::Dir && st.kind != Kind::Socket {
                read_xattrs_at(d, &c, xbuf)?
            } else {
                Vec::new()
            };
            Ok(Item {
                name: Vec::new(),
                st,
                link,
                xattrs: x,
            })
        })();
        match r {
            Ok(mut it) => {
                it.name = name;
                out.items.push(it);
            }
            // Vanished between readdir and lstat: not an entry any more.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => out.problems.push((name, e)),
        }
    }
    out.fd = Some(Arc::new(dir));
    out
}

/// The one reader of extended attributes: the entry's own (never following a symlink),
/// sorted by name; one system call when it has none; a file system without xattrs has none.
pub fn read_xattrs(x: &sys::XTarget, buf: &mut Vec<u8>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
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

fn read_xattrs_at(
    dir: RawFd,
    name: &CStr,
    buf: &mut Vec<u8>,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    read_xattrs(&sys::XTarget::At(dir, name), buf)
}

/// `parent/name` (or `name` at the root).
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        let mut v = Vec::with_capacity(parent.len() + 1 + name.len());
        v.extend_from_slice(parent);
        v.push(b'/');
        v.extend_from_slice(name);
        v
    }
}
