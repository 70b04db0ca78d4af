//! Copying one entry: data (sparse-aware, hashed while read, read back and checked), then
//! owner, mode, extended attributes and times, on a private temporary that is renamed into
//! place last.

use super::MapIds;
use crate::sys::{self, FileType, Stat, XTarget};
use sha2::{Digest, Sha256};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// How an item failed.
#[derive(Debug)]
pub enum ItemError {
    /// The entry disappeared from the source.
    Vanished,
    /// The entry kept changing while being read (size, times or type moved under us).
    Changed,
    /// An operation failed.
    Io(&'static str, io::Error),
    /// The copy read back does not match what was read from the source.
    Mismatch,
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ItemError::Vanished => write!(f, "vanished from the source during the copy"),
            ItemError::Changed => write!(
                f,
                "kept changing while being copied (retried); not copied: copy again once the services are stopped"
            ),
            ItemError::Io(op, e) => write!(f, "{op}: {e}"),
            ItemError::Mismatch => write!(
                f,
                "the copy read back differs from the source's bytes (disk or memory fault?)"
            ),
        }
    }
}

fn io(op: &'static str) -> impl FnOnce(io::Error) -> ItemError {
    move |e| ItemError::Io(op, e)
}

/// Per-worker state: buffers and a counter for temporary names.
pub struct Worker {
    pub id: usize,
    buf: Vec<u8>,
    /// The copy's bytes read back, compared with `buf`.
    back: Vec<u8>,
    xnames: Vec<u8>,
    seq: u64,
    pid: u32,
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const BUF: usize = 256 * 1024;
static ZEROS: [u8; 65536] = [0; 65536];

impl Worker {
    pub fn new(id: usize) -> Worker {
        Worker {
            id,
            buf: vec![0; BUF],
            back: Vec::new(),
            xnames: vec![0; 4096],
            seq: 0,
            pid: std::process::id(),
        }
    }

    /// A fresh temporary name (short, so it fits beside any name).
    pub fn temp_name(&mut self) -> CString {
        self.seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        CString::new(format!(
            ".cm-copy.{}.{}.{}.tmp",
            self.pid, self.id, self.seq
        ))
        .expect("no NUL in a formatted name")
    }
}

/// Removes the temporary unless disarmed.
struct TempGuard {
    dir: RawFd,
    name: CString,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = sys::unlink_at(self.dir, &self.name, false);
        }
    }
}

fn hash_zeros(h: &mut Sha256, mut n: u64) {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

fn changed(a: &Stat, b: &Stat) -> bool {
    a.size != b.size || a.mtime != b.mtime || a.ctime != b.ctime || a.ino != b.ino
}

/// The result of copying or hashing one regular file.
pub struct Copied {
    /// The source's metadata as it was while its bytes were read.
    pub st: Stat,
    pub hash: [u8; 32],
    /// Extended attributes the copy carries (ACL ids mapped), sorted by name.
    pub xattrs: Xattrs,
    /// The copy's inode (ino, dev): of the file hashed, or of the copy written.
    pub dst: (u64, u64),
}

/// Extended attributes: (name, value) pairs sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Read every extended attribute of `x`, sorted by name (the engine's one reader).
pub fn read_xattrs(w: &mut Worker, x: &XTarget) -> io::Result<Xattrs> {
    crate::walk::read_xattrs(x, &mut w.xnames)
}

/// Write `w.buf[..n]` at `off` of `dst`, then read it back and compare: the copy's bytes are
/// checked against the source's as they are written (the chunk is still in the buffer, so a
/// byte comparison replaces hashing the copy a second time).
fn write_checked(w: &mut Worker, dst: RawFd, n: usize, off: u64) -> Result<(), ItemError> {
    sys::pwrite_all(dst, &w.buf[..n], off).map_err(io("write copy"))?;
    if w.back.len() < n {
        w.back.resize(w.buf.len(), 0);
    }
    let mut got = 0;
    while got < n {
        let k =
            sys::pread(dst, &mut w.back[got..n], off + got as u64).map_err(io("read back copy"))?;
        if k == 0 {
            return Err(ItemError::Mismatch);
        }
        got += k;
    }
    if w.back[..n] != w.buf[..n] {
        return Err(ItemError::Mismatch);
    }
    Ok(())
}

/// Copy the data of `src` to `dst` (a new empty file), hashing the bytes read and checking
/// every chunk written by reading it back.
fn copy_data(w: &mut Worker, src: RawFd, dst: RawFd, st: &Stat) -> Result<[u8; 32], ItemError> {
    let mut h = Sha256::new();
    if st.is_sparse() {
        let mut pos = 0u64;
        while pos < st.size {
            let data = match sys::seek_data(src, pos, libc::SEEK_DATA).map_err(io("seek"))? {
                Some(d) if d < st.size => d,
                _ => break,
            };
            let hole = sys::seek_data(src, data, libc::SEEK_HOLE)
                .map_err(io("seek"))?
                .unwrap_or(st.size)
                .min(st.size);
            hash_zeros(&mut h, data - pos);
            let mut off = data;
            while off < hole {
                let want = ((hole - off) as usize).min(w.buf.len());
                let n = sys::pread(src, &mut w.buf[..want], off).map_err(io("read source"))?;
                if n == 0 {
                    return Err(ItemError::Changed);
                }
                h.update(&w.buf[..n]);
                write_checked(w, dst, n, off)?;
                off += n as u64;
            }
            pos = hole;
        }
        hash_zeros(&mut h, st.size - pos.min(st.size));
        sys::ftruncate(dst, st.size).map_err(io("extend copy"))?;
    } else {
        let mut off = 0u64;
        // Read exactly the size fstat gave: a file that grows or shrinks meanwhile changes its
        // size/mtime/ctime, which the caller's second fstat catches.
        while off < st.size {
            let want = ((st.size - off) as usize).min(w.buf.len());
            let n = sys::read(src, &mut w.buf[..want]).map_err(io("read source"))?;
            if n == 0 {
                return Err(ItemError::Changed);
            }
            h.update(&w.buf[..n]);
            write_checked(w, dst, n, off)?;
            off += n as u64;
        }
    }
    Ok(h.finalize().into())
}

/// SHA-256 of an open file's content (holes read as zeros, found with SEEK_DATA when the file
/// is sparse so that a huge hole costs no reads).
pub fn hash_fd(w: &mut Worker, fd: RawFd, size: u64, sparse: bool) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut pos = 0u64;
    while pos < size {
        let (data, end) = if sparse {
            match sys::seek_data(fd, pos, libc::SEEK_DATA)? {
                Some(d) if d < size => {
                    let e = sys::seek_data(fd, d, libc::SEEK_HOLE)?.unwrap_or(size);
                    (d, e.min(size))
                }
                _ => (size, size),
            }
        } else {
            (pos, size)
        };
        hash_zeros(&mut h, data - pos);
        let mut off = data;
        while off < end {
            let want = ((end - off) as usize).min(w.buf.len());
            let n = sys::pread(fd, &mut w.buf[..want], off)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than its size",
                ));
            }
            h.update(&w.buf[..n]);
            off += n as u64;
        }
        pos = end;
    }
    Ok(h.finalize().into())
}

/// Hash the file `name` in `dir` (source or copy) as it is now; with `xattrs`, read its
/// extended attributes too.
pub fn hash_at(
    w: &mut Worker,
    dir: RawFd,
    name: &CStr,
    noatime: bool,
    xattrs: bool,
) -> io::Result<Copied> {
    let fd = sys::open_at(dir, name, libc::O_RDONLY, noatime)?;
    let st = sys::fstat(fd.as_raw_fd())?;
    if st.kind != FileType::File {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let hash = hash_fd(w, fd.as_raw_fd(), st.size, st.is_sparse())?;
    let xattrs = if xattrs {
        read_xattrs(w, &XTarget::Fd(fd.as_raw_fd()))?
    } else {
        Vec::new()
    };
    Ok(Copied {
        st,
        hash,
        xattrs,
        dst: (st.ino, st.dev),
    })
}

/// Map the uids/gids named inside a POSIX ACL xattr value (the owner map's one ACL mapper,
/// [`crate::owners::map_acl_ids`]).
pub fn map_acl(value: &mut [u8], ids: &dyn MapIds) {
    crate::owners::map_acl_ids(value, &|u| ids.uid(u), &|g| ids.gid(g));
}

pub use crate::owners::is_acl_xattr as is_acl;

/// Map the ids in the ACLs among `xa` (the other attributes stay as they are).
pub fn map_acls(xa: &mut Xattrs, ids: &dyn MapIds) {
    for (n, v) in xa.iter_mut() {
        if is_acl(n) {
            map_acl(v, ids);
        }
    }
}

/// Copy every extended attribute (ACLs included, their ids mapped) from `src` to `dst`;
/// with `prune`, remove attributes `dst` has that `src` lacks (an inherited default ACL, or
/// a directory's stale attributes).
pub fn copy_xattrs(
    w: &mut Worker,
    src: &XTarget,
    dst: &XTarget,
    ids: Option<&dyn MapIds>,
    prune: bool,
) -> Result<Xattrs, ItemError> {
    let xa = read_xattrs(w, src).map_err(io("read xattrs"))?;
    if prune {
        for c in stale_xattrs(dst, &xa)? {
            match dst.remove(&c) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => return Err(ItemError::Io("remove stale xattr", e)),
            }
        }
    }
    set_xattrs(dst, xa, ids)
}

/// The attributes `dst` has that `keep` lacks.
fn stale_xattrs(dst: &XTarget, keep: &Xattrs) -> Result<Vec<CString>, ItemError> {
    let mut dbuf = vec![0u8; 1024];
    let m = dst.list(&mut dbuf).map_err(io("list xattrs of copy"))?;
    dbuf[..m]
        .split(|&b| b == 0)
        .filter(|dn| !dn.is_empty() && !keep.iter().any(|(n, _)| n == dn))
        .map(|dn| sys::cstr(dn).map_err(io("xattr name")))
        .collect()
}

/// Set each of `xa` on `dst` (ACL ids mapped); what was set, sorted by name.
fn set_xattrs(
    dst: &XTarget,
    mut xa: Xattrs,
    ids: Option<&dyn MapIds>,
) -> Result<Xattrs, ItemError> {
    if let Some(ids) = ids {
        map_acls(&mut xa, ids);
    }
    let mut done = Vec::with_capacity(xa.len());
    for (name, v) in xa {
        let c = sys::cstr(&name).map_err(io("xattr name"))?;
        dst.set(&c, &v).map_err(|e| {
            ItemError::Io(
                "set xattr (does the target file system support extended attributes and ACLs?)",
                e,
            )
        })?;
        done.push((name, v));
    }
    done.sort();
    Ok(done)
}

fn owner(st: &Stat, ids: Option<&dyn MapIds>) -> (u32, u32) {
    match ids {
        Some(m) => (m.uid(st.uid), m.gid(st.gid)),
        None => (st.uid, st.gid),
    }
}

/// Copy regular file `name` from `sdir` into `ddir`. `default_acl`: `ddir` has a default
/// ACL, so the new file inherits entries that must be pruned. `want_ino`: the copy's inode
/// is needed (its other names are linked to it); else `Copied::dst` is (0, 0).
pub fn copy_file(
    w: &mut Worker,
    sdir: RawFd,
    ddir: RawFd,
    name: &CStr,
    ids: Option<&dyn MapIds>,
    default_acl: bool,
    want_ino: bool,
) -> Result<Copied, ItemError> {
    let job = FileCopy {
        sdir,
        ddir,
        name,
        ids,
        default_acl,
        want_ino,
    };
    for _attempt in 0..3 {
        if let Some(c) = job.attempt(w)? {
            return Ok(c);
        }
    }
    Err(ItemError::Changed)
}

/// One regular file to copy: the arguments of [`copy_file`].
struct FileCopy<'a> {
    sdir: RawFd,
    ddir: RawFd,
    name: &'a CStr,
    ids: Option<&'a dyn MapIds>,
    default_acl: bool,
    want_ino: bool,
}

impl FileCopy<'_> {
    /// One attempt: data onto a temporary, then its metadata, then the rename into place;
    /// None when the source changed while it was read (the temporary is removed).
    fn attempt(&self, w: &mut Worker) -> Result<Option<Copied>, ItemError> {
        let sfd = self.open_source()?;
        let s = sfd.as_raw_fd();
        let st0 = sys::fstat(s).map_err(io("stat source"))?;
        if st0.kind != FileType::File {
            return Err(ItemError::Changed);
        }
        let tmp = w.temp_name();
        let tfd = sys::create_at(self.ddir, &tmp, 0o600).map_err(io("create temporary"))?;
        let mut guard = TempGuard {
            dir: self.ddir,
            name: tmp,
            armed: true,
        };
        let t = tfd.as_raw_fd();
        let hash = match copy_data(w, s, t, &st0) {
            Ok(h) => h,
            Err(ItemError::Changed) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Read the source's attributes before the second fstat, so a change to them counts.
        let xa = read_xattrs(w, &XTarget::Fd(s)).map_err(io("read xattrs"))?;
        let st1 = sys::fstat(s).map_err(io("stat source"))?;
        if changed(&st0, &st1) {
            return Ok(None);
        }
        drop(sfd);
        let xattrs = self.set_metadata(t, &st1, xa)?;
        if st1.size >= 1 << 20 {
            sys::start_writeback(t);
        }
        let dst = if self.want_ino {
            let tst = sys::fstat(t).map_err(io("stat the copy"))?;
            (tst.ino, tst.dev)
        } else {
            (0, 0)
        };
        drop(tfd);
        sys::rename_at(self.ddir, &guard.name, self.ddir, self.name)
            .map_err(io("rename into place"))?;
        guard.armed = false;
        crate::copy::run::renamed();
        Ok(Some(Copied {
            st: st1,
            hash,
            xattrs,
            dst,
        }))
    }

    fn open_source(&self) -> Result<OwnedFd, ItemError> {
        match sys::open_at(self.sdir, self.name, libc::O_RDONLY, true) {
            Ok(f) => Ok(f),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(ItemError::Vanished),
            // ELOOP: replaced by a symlink since the scan.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(ItemError::Changed),
            Err(e) => Err(ItemError::Io("open source", e)),
        }
    }

    /// Owner (mapped), mode, the source's attributes `xa` (what the directory's default
    /// ACL gave the temporary pruned first) and times, onto the temporary `t`.
    fn set_metadata(&self, t: RawFd, st: &Stat, xa: Xattrs) -> Result<Xattrs, ItemError> {
        let (uid, gid) = owner(st, self.ids);
        sys::fchown(t, uid, gid).map_err(io("chown"))?;
        sys::fchmod(t, st.perm).map_err(io("chmod"))?;
        let dst = XTarget::Fd(t);
        if self.default_acl {
            for c in stale_xattrs(&dst, &xa)? {
                let _ = dst.remove(&c);
            }
        }
        let xattrs = set_xattrs(&dst, xa, self.ids)?;
        sys::futimens(t, st.atime, st.mtime).map_err(io("set times"))?;
        Ok(xattrs)
    }
}

/// Copy a symlink, FIFO or device node `name` (never opened: created anew beside, owner,
/// mode, xattrs and its own times set, renamed into place). Returns the source's metadata and,
/// for a symlink, its target.
pub fn copy_special(
    w: &mut Worker,
    sdir: RawFd,
    ddir: RawFd,
    name: &CStr,
    ids: Option<&dyn MapIds>,
) -> Result<(Stat, Option<Vec<u8>>, Xattrs), ItemError> {
    for _attempt in 0..3 {
        let st0 = lstat_source(sdir, name)?;
        let tmp = w.temp_name();
        let link = make_special(sdir, ddir, name, &tmp, &st0)?;
        let mut guard = TempGuard {
            dir: ddir,
            name: tmp,
            armed: true,
        };
        let (uid, gid) = owner(&st0, ids);
        sys::lchown_at(ddir, &guard.name, uid, gid).map_err(io("chown"))?;
        if st0.kind != FileType::Symlink {
            sys::chmod_at(ddir, &guard.name, st0.perm).map_err(io("chmod"))?;
        }
        let xattrs = copy_xattrs(
            w,
            &XTarget::At(sdir, name),
            &XTarget::At(ddir, &guard.name),
            ids,
            false,
        )?;
        let st1 = lstat_source(sdir, name)?;
        if changed(&st0, &st1) || st0.kind != st1.kind {
            continue;
        }
        sys::lutimens_at(ddir, &guard.name, st1.atime, st1.mtime).map_err(io("set times"))?;
        sys::rename_at(ddir, &guard.name, ddir, name).map_err(io("rename into place"))?;
        guard.armed = false;
        return Ok((st1, link, xattrs));
    }
    Err(ItemError::Changed)
}

/// The source entry's own metadata (a symlink not followed).
fn lstat_source(sdir: RawFd, name: &CStr) -> Result<Stat, ItemError> {
    match sys::lstat_at(sdir, name) {
        Ok(s) => Ok(s),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(ItemError::Vanished),
        Err(e) => Err(ItemError::Io("stat source", e)),
    }
}

/// The temporary `tmp` made anew in `ddir` as the source `name` (`st`) is: a symlink to its
/// target (returned), a FIFO or a device node (0600 until its mode is set).
fn make_special(
    sdir: RawFd,
    ddir: RawFd,
    name: &CStr,
    tmp: &CStr,
    st: &Stat,
) -> Result<Option<Vec<u8>>, ItemError> {
    match st.kind {
        FileType::Symlink => {
            let t = match sys::readlink_at(sdir, name) {
                Ok(t) => t,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(ItemError::Vanished)
                }
                Err(e) => return Err(ItemError::Io("read symlink", e)),
            };
            sys::symlink_at(&t, ddir, tmp).map_err(io("create symlink"))?;
            Ok(Some(t))
        }
        FileType::Fifo | FileType::CharDevice | FileType::BlockDevice => {
            sys::mknod_at(ddir, tmp, st.kind.ifmt() | 0o600, st.rdev).map_err(io("create node"))?;
            Ok(None)
        }
        FileType::File | FileType::Dir | FileType::Socket => Err(ItemError::Changed),
    }
}

/// Make `name` in `ddir` another name of the inode at `pname` in `pdir` (a hard link), via a
/// temporary so an existing entry is replaced atomically.
pub fn link_into(
    w: &mut Worker,
    pdir: RawFd,
    pname: &CStr,
    ddir: RawFd,
    name: &CStr,
) -> Result<(), ItemError> {
    let tmp = w.temp_name();
    sys::link_at(pdir, pname, ddir, &tmp).map_err(io("hard link"))?;
    let guard = TempGuard {
        dir: ddir,
        name: tmp,
        armed: true,
    };
    sys::rename_at(ddir, &guard.name, ddir, name).map_err(io("rename into place"))?;
    // rename() between two names of one inode does nothing: the guard removes the temporary.
    Ok(())
}

/// Does the open directory carry a default ACL (inherited by entries created in it)?
pub fn has_default_acl(dir: RawFd) -> bool {
    let mut b = vec![0u8; 256];
    XTarget::Fd(dir)
        .get(c"system.posix_acl_default", &mut b)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plus(u32);
    impl MapIds for Plus {
        fn uid(&self, u: u32) -> u32 {
            u + self.0
        }
        fn gid(&self, g: u32) -> u32 {
            g + 2 * self.0
        }
    }

    #[test]
    fn acl_ids_of_named_users_and_groups_are_mapped_others_kept() {
        // version 2; USER_OBJ rw-; USER 1234 rw-; GROUP 2345 r--; MASK rw-; OTHER r--
        let mut v = vec![2, 0, 0, 0];
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 6, 1234),
            (8, 4, 2345),
            (0x10, 6, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        map_acl(&mut v, &Plus(10));
        let ids: Vec<u32> = v[4..]
            .chunks(8)
            .map(|e| u32::from_le_bytes([e[4], e[5], e[6], e[7]]))
            .collect();
        assert_eq!(ids, vec![u32::MAX, 1244, 2365, u32::MAX, u32::MAX]);
        // A malformed value is left alone.
        let mut bad = vec![2, 0, 0, 0, 1];
        map_acl(&mut bad, &Plus(1));
        assert_eq!(bad, vec![2, 0, 0, 0, 1]);
    }

    #[test]
    fn changed_detects_size_time_and_inode_moves() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let d = sys::open_dir_path(t.path()).unwrap();
        let a = sys::lstat_at(d.as_raw_fd(), c"f").unwrap();
        assert!(!changed(&a, &a));
        std::fs::write(&p, b"abcd").unwrap();
        let b = sys::lstat_at(d.as_raw_fd(), c"f").unwrap();
        assert!(changed(&a, &b));
    }
}
