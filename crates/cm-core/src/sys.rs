//! Thin, safe wrappers over the descriptor-relative system calls the copy engine uses.
//!
//! Everything here works on directory descriptors and single path components, so a path in
//! the tree is never resolved through a symbolic link: directories are opened with
//! `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)` (falling back to a component-by-component
//! walk with `O_NOFOLLOW`), and every entry is created, stat'ed, renamed or removed relative
//! to its parent's descriptor. Names are bytes.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

pub type Result<T> = io::Result<T>;

fn cvt(r: libc::c_int) -> Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_isize(r: isize) -> Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// A NUL-terminated copy of a name or path (names containing NUL cannot exist on Linux).
pub fn cstr(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

/// The type of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl FileType {
    /// From `st_mode`.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::File,
        }
    }

    /// The `S_IF*` bits of `st_mode`.
    pub fn ifmt(self) -> u32 {
        match self {
            FileType::File => libc::S_IFREG,
            FileType::Dir => libc::S_IFDIR,
            FileType::Symlink => libc::S_IFLNK,
            FileType::Fifo => libc::S_IFIFO,
            FileType::CharDevice => libc::S_IFCHR,
            FileType::BlockDevice => libc::S_IFBLK,
            FileType::Socket => libc::S_IFSOCK,
        }
    }

    /// One-letter code, as in the manifest: f d l p c b s.
    pub fn letter(self) -> char {
        match self {
            FileType::File => 'f',
            FileType::Dir => 'd',
            FileType::Symlink => 'l',
            FileType::Fifo => 'p',
            FileType::CharDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Socket => 's',
        }
    }

    /// Inverse of [`FileType::letter`].
    pub fn from_letter(c: char) -> Option<FileType> {
        Some(match c {
            'f' => FileType::File,
            'd' => FileType::Dir,
            'l' => FileType::Symlink,
            'p' => FileType::Fifo,
            'c' => FileType::CharDevice,
            'b' => FileType::BlockDevice,
            's' => FileType::Socket,
            _ => return None,
        })
    }

    /// A word for humans.
    pub fn name(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Dir => "directory",
            FileType::Symlink => "symlink",
            FileType::Fifo => "fifo",
            FileType::CharDevice => "char device",
            FileType::BlockDevice => "block device",
            FileType::Socket => "socket",
        }
    }
}

/// A point in time, seconds since the epoch plus nanoseconds (`0 <= nsec < 1e9`), as `stat`
/// gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:09}", self.sec, self.nsec)
    }
}

impl Timestamp {
    fn spec(self) -> libc::timespec {
        libc::timespec {
            tv_sec: self.sec as libc::time_t,
            tv_nsec: self.nsec as _,
        }
    }

    /// From `stat`'s seconds and nanoseconds.
    fn from_stat(sec: i64, nsec: i64) -> Timestamp {
        Timestamp {
            sec,
            nsec: nsec.clamp(0, 999_999_999) as u32,
        }
    }

    /// For people: UTC with the nanoseconds, `2026-12-03 16:34:34.123456789 UTC` (the
    /// manifest keeps [`std::fmt::Display`]'s `SECONDS.NANOSECONDS`).
    pub fn utc(&self) -> String {
        let (y, m, d, hh, mm, ss) = crate::fsutil::civil(self.sec);
        format!(
            "{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{:09} UTC",
            self.nsec
        )
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Timestamp, String> {
        let (a, b) = s
            .split_once('.')
            .ok_or_else(|| format!("time {s:?} is not SECONDS.NANOSECONDS"))?;
        let sec: i64 = a
            .parse()
            .map_err(|_| format!("time {s:?}: seconds are not a number"))?;
        if b.len() != 9 || !b.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("time {s:?}: nanoseconds must be 9 digits"));
        }
        let nsec: u32 = b
            .parse()
            .map_err(|_| format!("time {s:?}: nanoseconds are not a number"))?;
        Ok(Timestamp { sec, nsec })
    }
}

/// What `lstat` says about an entry, reduced to what the engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: FileType,
    /// Permission bits including setuid, setgid and sticky (`mode & 07777`).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
}

impl Stat {
    fn from(st: &libc::stat) -> Stat {
        Stat {
            kind: FileType::from_mode(st.st_mode),
            perm: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: Timestamp::from_stat(st.st_atime, st.st_atime_nsec),
            mtime: Timestamp::from_stat(st.st_mtime, st.st_mtime_nsec),
            ctime: Timestamp::from_stat(st.st_ctime, st.st_ctime_nsec),
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            rdev: st.st_rdev,
        }
    }
    /// Sparse: fewer bytes allocated than the file's length.
    pub fn is_sparse(&self) -> bool {
        self.kind == FileType::File && self.blocks.saturating_mul(512) < self.size
    }
}

pub fn fstat(fd: RawFd) -> Result<Stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(Stat::from(&st))
}

/// `lstat` of `name` inside the directory `dir` (never follows a symlink).
pub fn lstat_at(dir: RawFd, name: &CStr) -> Result<Stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(Stat::from(&st))
}

static NOATIME_OK: AtomicBool = AtomicBool::new(true);

/// `openat` that never follows a symlink in the last component; with `noatime`, asks for
/// `O_NOATIME` (reading the source must not change its access times) and falls back without
/// it where the kernel refuses (only the owner or CAP_FOWNER may use it).
pub fn open_at(dir: RawFd, name: &CStr, flags: libc::c_int, noatime: bool) -> Result<OwnedFd> {
    let base = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if noatime && NOATIME_OK.load(Ordering::Relaxed) {
        let fd = unsafe { libc::openat(dir, name.as_ptr(), base | libc::O_NOATIME) };
        if fd >= 0 {
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e);
        }
        NOATIME_OK.store(false, Ordering::Relaxed);
    }
    let fd = cvt(unsafe { libc::openat(dir, name.as_ptr(), base) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Create a new file `name` in `dir`, exclusively, read-write, with `mode`.
pub fn create_at(dir: RawFd, name: &CStr, mode: u32) -> Result<OwnedFd> {
    let fd = cvt(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a directory given by an absolute or relative path; the last component must not be a
/// symlink (the caller resolves the path first when the user named a symlink).
pub fn open_dir_path(path: &Path) -> Result<OwnedFd> {
    let c = cstr(path.as_os_str().as_bytes())?;
    open_at(libc::AT_FDCWD, &c, libc::O_RDONLY | libc::O_DIRECTORY, true)
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

static OPENAT2_OK: AtomicBool = AtomicBool::new(true);

/// Open the directory `rel` (bytes, `/`-separated, relative) beneath `root` without following
/// any symlink on the way and without leaving `root`. `rel` empty opens `root` itself.
pub fn open_dir_beneath(root: RawFd, rel: &[u8], noatime: bool) -> Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if rel.is_empty() {
        return open_at(root, c".", flags, noatime);
    }
    if OPENAT2_OK.load(Ordering::Relaxed) && rel.len() < 4000 {
        let p = cstr(rel)?;
        let mut how = OpenHow {
            flags: (flags | libc::O_NOFOLLOW) as u64,
            mode: 0,
            resolve: libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH,
        };
        for attempt in 0..2 {
            if attempt == 1 {
                how.flags &= !(libc::O_NOATIME as u64);
            } else if noatime && NOATIME_OK.load(Ordering::Relaxed) {
                how.flags |= libc::O_NOATIME as u64;
            }
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    root,
                    p.as_ptr(),
                    &mut how as *mut OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            };
            if fd >= 0 {
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EPERM) if how.flags & libc::O_NOATIME as u64 != 0 => {
                    NOATIME_OK.store(false, Ordering::Relaxed);
                    continue;
                }
                Some(libc::ENOSYS) | Some(libc::EPERM) => {
                    OPENAT2_OK.store(false, Ordering::Relaxed);
                    break;
                }
                _ => return Err(e),
            }
        }
    }
    // Component by component, each opened with O_NOFOLLOW relative to the previous one.
    let mut cur: Option<OwnedFd> = None;
    for comp in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if comp == b".." || comp == b"." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path component . or .. in a tree path",
            ));
        }
        let c = cstr(comp)?;
        let at = cur.as_ref().map(|f| f.as_raw_fd()).unwrap_or(root);
        cur = Some(open_at(at, &c, flags, noatime)?);
    }
    match cur {
        Some(f) => Ok(f),
        None => open_at(root, c".", flags, noatime),
    }
}

/// The names in an open directory (without `.` and `..`), read with getdents64 from the
/// descriptor's position (a directory just opened: its start).
pub fn read_dir(dir: RawFd) -> Result<Vec<Vec<u8>>> {
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    let mut buf = vec![0u64; 4096];
    let mut out = Vec::new();
    loop {
        let n = retry_eintr(|| unsafe {
            libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len() * 8) as isize
        })?;
        if n == 0 {
            return Ok(out);
        }
        // SAFETY: the kernel wrote n <= buf.len() * 8 bytes into buf.
        let b = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
        let mut off = 0;
        while off + 19 <= n {
            let reclen = u16::from_ne_bytes([b[off + 16], b[off + 17]]) as usize;
            if reclen < 19 || off + reclen > n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed directory entry from getdents64",
                ));
            }
            let raw = &b[off + 19..off + reclen];
            let name = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
            if name != b"." && name != b".." {
                out.push(name.to_vec());
            }
            off += reclen;
        }
    }
}

/// The names in the directory at `path` (its last component not followed if a symlink).
pub fn read_dir_path(path: &Path) -> Result<Vec<Vec<u8>>> {
    let d = open_dir_path(path)?;
    read_dir(d.as_raw_fd())
}

pub fn readlink_at(dir: RawFd, name: &CStr) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = cvt_isize(unsafe {
            libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        })?;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(buf.len() * 4, 0);
    }
}

pub fn mkdir_at(dir: RawFd, name: &CStr, mode: u32) -> Result<()> {
    cvt(unsafe { libc::mkdirat(dir, name.as_ptr(), mode as libc::mode_t) }).map(|_| ())
}

pub fn symlink_at(target: &[u8], dir: RawFd, name: &CStr) -> Result<()> {
    let t = cstr(target)?;
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir, name.as_ptr()) }).map(|_| ())
}

pub fn mknod_at(dir: RawFd, name: &CStr, mode: u32, rdev: u64) -> Result<()> {
    cvt(unsafe {
        libc::mknodat(
            dir,
            name.as_ptr(),
            mode as libc::mode_t,
            rdev as libc::dev_t,
        )
    })
    .map(|_| ())
}

pub fn link_at(odir: RawFd, oname: &CStr, ndir: RawFd, nname: &CStr) -> Result<()> {
    cvt(unsafe { libc::linkat(odir, oname.as_ptr(), ndir, nname.as_ptr(), 0) }).map(|_| ())
}

pub fn rename_at(odir: RawFd, oname: &CStr, ndir: RawFd, nname: &CStr) -> Result<()> {
    cvt(unsafe { libc::renameat(odir, oname.as_ptr(), ndir, nname.as_ptr()) }).map(|_| ())
}

pub fn unlink_at(dir: RawFd, name: &CStr, is_dir: bool) -> Result<()> {
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(|_| ())
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> Result<()> {
    cvt(unsafe { libc::fchown(fd, uid, gid) }).map(|_| ())
}

pub fn fchmod(fd: RawFd, perm: u32) -> Result<()> {
    cvt(unsafe { libc::fchmod(fd, perm as libc::mode_t) }).map(|_| ())
}

/// chown of `name` in `dir`, never following a symlink (a symlink's own owner is set).
pub fn lchown_at(dir: RawFd, name: &CStr, uid: u32, gid: u32) -> Result<()> {
    cvt(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
        .map(|_| ())
}

/// chmod of a non-symlink `name` in `dir` (the caller created it, so it is not a symlink).
pub fn chmod_at(dir: RawFd, name: &CStr, perm: u32) -> Result<()> {
    cvt(unsafe { libc::fchmodat(dir, name.as_ptr(), perm as libc::mode_t, 0) }).map(|_| ())
}

pub fn futimens(fd: RawFd, atime: Timestamp, mtime: Timestamp) -> Result<()> {
    let t = [atime.spec(), mtime.spec()];
    cvt(unsafe { libc::futimens(fd, t.as_ptr()) }).map(|_| ())
}

/// Set the times of `name` in `dir` itself (a symlink's own times).
pub fn lutimens_at(dir: RawFd, name: &CStr, atime: Timestamp, mtime: Timestamp) -> Result<()> {
    let t = [atime.spec(), mtime.spec()];
    cvt(unsafe { libc::utimensat(dir, name.as_ptr(), t.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
        .map(|_| ())
}

/// Run a read/write-like system call until it is not interrupted (EINTR); its byte count.
fn retry_eintr(mut call: impl FnMut() -> libc::ssize_t) -> Result<usize> {
    loop {
        let r = call();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Run an xattr read into `buf`, growing `buf` while the call says it is too small (ERANGE).
fn grow_on_erange(
    buf: &mut Vec<u8>,
    mut call: impl FnMut(&mut Vec<u8>) -> libc::ssize_t,
) -> Result<usize> {
    loop {
        let r = call(buf);
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
        let n = buf.len().max(1024) * 4;
        buf.resize(n, 0);
    }
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize> {
    retry_eintr(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

pub fn pread(fd: RawFd, buf: &mut [u8], off: u64) -> Result<usize> {
    retry_eintr(|| unsafe {
        libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t)
    })
}

pub fn pwrite_all(fd: RawFd, mut buf: &[u8], mut off: u64) -> Result<()> {
    while !buf.is_empty() {
        let n = retry_eintr(|| unsafe {
            libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off as libc::off_t)
        })?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        buf = &buf[n..];
        off += n as u64;
    }
    Ok(())
}

pub fn ftruncate(fd: RawFd, len: u64) -> Result<()> {
    cvt(unsafe { libc::ftruncate(fd, len as libc::off_t) }).map(|_| ())
}

/// `lseek` with SEEK_DATA / SEEK_HOLE; `Ok(None)` when there is no more data (ENXIO).
pub fn seek_data(fd: RawFd, off: u64, whence: libc::c_int) -> Result<Option<u64>> {
    let r = unsafe { libc::lseek(fd, off as libc::off_t, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// Start writing a file's dirty pages to disk without waiting (so the final syncfs has
/// little left to do); errors are ignored: it is only a hint.
pub fn start_writeback(fd: RawFd) {
    unsafe { libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

pub fn syncfs(fd: RawFd) -> Result<()> {
    cvt(unsafe { libc::syncfs(fd) }).map(|_| ())
}

// listxattrat(2) and getxattrat(2) (Linux 6.13; one number on every architecture): an
// entry's attributes read relative to its directory's descriptor, without the /proc path.
const SYS_GETXATTRAT: libc::c_long = 464;
const SYS_LISTXATTRAT: libc::c_long = 465;
static XATTRAT_OK: AtomicBool = AtomicBool::new(true);

#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// An xattr read through the `*xattrat` call `at` (grown on ERANGE), or, on a kernel (or
/// seccomp filter) without it, through `proc` from then on.
fn at_or_proc(
    buf: &mut Vec<u8>,
    at: impl FnMut(&mut Vec<u8>) -> libc::ssize_t,
    proc: impl FnOnce(&mut Vec<u8>) -> Result<usize>,
) -> Result<usize> {
    if XATTRAT_OK.load(Ordering::Relaxed) {
        match grow_on_erange(buf, at) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
                let r = proc(buf);
                if e.raw_os_error() == Some(libc::ENOSYS) || r.is_ok() {
                    XATTRAT_OK.store(false, Ordering::Relaxed);
                }
                return r;
            }
            r => return r,
        }
    }
    proc(buf)
}

/// Where an entry's extended attributes are read and written: an open descriptor, or (for
/// symlinks and device nodes, which cannot be opened safely) the entry itself through the
/// descriptor of its directory: read with listxattrat/getxattrat(AT_SYMLINK_NOFOLLOW) where
/// the kernel has them, else (and always for writes) through `/proc/self/fd/N/name` with the
/// l* calls, which do not follow the last component.
pub enum XTarget<'a> {
    Fd(RawFd),
    At(RawFd, &'a CStr),
}

impl XTarget<'_> {
    fn proc_path(dir: RawFd, name: &CStr) -> Result<CString> {
        let mut p = format!("/proc/self/fd/{dir}/").into_bytes();
        p.extend_from_slice(name.to_bytes());
        cstr(&p)
    }

    /// The attribute names, NUL-separated, into `buf` (grown as needed). A file system
    /// without xattr support has none.
    pub fn list(&self, buf: &mut Vec<u8>) -> Result<usize> {
        let r = match self {
            XTarget::Fd(fd) => grow_on_erange(buf, |buf| unsafe {
                libc::flistxattr(*fd, buf.as_mut_ptr().cast(), buf.len())
            }),
            XTarget::At(d, n) => at_or_proc(
                buf,
                |buf| unsafe {
                    libc::syscall(
                        SYS_LISTXATTRAT,
                        *d,
                        n.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                        buf.as_mut_ptr(),
                        buf.len(),
                    ) as libc::ssize_t
                },
                |buf| {
                    let p = Self::proc_path(*d, n)?;
                    grow_on_erange(buf, |buf| unsafe {
                        libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                    })
                },
            ),
        };
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(0),
            r => r,
        }
    }

    /// The value of attribute `name` into `buf` (grown as needed).
    pub fn get(&self, name: &CStr, buf: &mut Vec<u8>) -> Result<usize> {
        match self {
            XTarget::Fd(fd) => grow_on_erange(buf, |buf| unsafe {
                libc::fgetxattr(*fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
            }),
            XTarget::At(d, n) => at_or_proc(
                buf,
                |buf| {
                    let mut args = XattrArgs {
                        value: buf.as_mut_ptr() as u64,
                        size: buf.len().min(u32::MAX as usize) as u32,
                        flags: 0,
                    };
                    unsafe {
                        libc::syscall(
                            SYS_GETXATTRAT,
                            *d,
                            n.as_ptr(),
                            libc::AT_SYMLINK_NOFOLLOW,
                            name.as_ptr(),
                            &mut args as *mut XattrArgs,
                            std::mem::size_of::<XattrArgs>(),
                        ) as libc::ssize_t
                    }
                },
                |buf| {
                    let p = Self::proc_path(*d, n)?;
                    grow_on_erange(buf, |buf| unsafe {
                        libc::lgetxattr(
                            p.as_ptr(),
                            name.as_ptr(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                        )
                    })
                },
            ),
        }
    }

    pub fn set(&self, name: &CStr, value: &[u8]) -> Result<()> {
        let r = unsafe {
            match self {
                XTarget::Fd(fd) => {
                    libc::fsetxattr(*fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0)
                }
                XTarget::At(d, n) => {
                    let p = Self::proc_path(*d, n)?;
                    libc::lsetxattr(
                        p.as_ptr(),
                        name.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    )
                }
            }
        };
        cvt(r).map(|_| ())
    }

    pub fn remove(&self, name: &CStr) -> Result<()> {
        let r = unsafe {
            match self {
                XTarget::Fd(fd) => libc::fremovexattr(*fd, name.as_ptr()),
                XTarget::At(d, n) => {
                    let p = Self::proc_path(*d, n)?;
                    libc::lremovexattr(p.as_ptr(), name.as_ptr())
                }
            }
        };
        cvt(r).map(|_| ())
    }
}

/// Free bytes and inodes for an unprivileged... no: for root (f_bavail is what is left for
/// non-root; the engine asks for the conservative figure) on the file system holding `path`.
pub fn statvfs(path: &Path) -> Result<(u64, u64, u64)> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
    Ok((
        s.f_bavail as u64 * s.f_frsize as u64,
        s.f_favail as u64,
        s.f_files as u64,
    ))
}

/// Is this process root (effective uid 0)?
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Bytes and inodes in use on the file system holding `path`, for file systems whose figures
/// bound what any tree on them holds (ext2/3/4, XFS, tmpfs: every entry's blocks and inode
/// are counted as used); None for others (a union, network or compressing file system) and
/// when the file system does not count inodes.
pub fn statfs_used(path: &Path) -> Result<Option<(u64, u64)>> {
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const TMPFS: i64 = 0x0102_1994;
    let c = cstr(path.as_os_str().as_bytes())?;
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::statfs(c.as_ptr(), &mut s) })?;
    if !matches!(s.f_type as i64, EXT4 | XFS | TMPFS) || s.f_files == 0 {
        return Ok(None);
    }
    let bytes = (s.f_blocks as u64).saturating_sub(s.f_bfree as u64) * s.f_frsize as u64;
    let inodes = (s.f_files as u64).saturating_sub(s.f_ffree as u64);
    Ok(Some((bytes, inodes)))
}
