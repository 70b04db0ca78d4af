//! The kernel side of the change journal: fanotify with file-handle reporting, and turning
//! file handles back into paths.
//!
//! Invariant: parsing never trusts a length it has not checked against the buffer; a record
//! it does not understand is reported as such, never skipped silently.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The events the journal asks for: every change to a directory entry (create, delete,
/// rename both ends), to content (write; close after writing, which also catches writes
/// through a shared memory map once the writer has gone), and to metadata (mode, owner,
/// times, link count, extended attributes and so POSIX ACLs), for directories too.
pub const MASK: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MODIFY
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_ATTRIB
    | libc::FAN_DELETE_SELF
    | libc::FAN_MOVE_SELF
    | libc::FAN_ONDIR;

/// `fanotify_init` flags: notification only, events identified by file handles of the
/// object and its directory plus the entry name.
pub const INIT_FLAGS: libc::c_uint = libc::FAN_CLASS_NOTIF
    | libc::FAN_REPORT_FID
    | libc::FAN_REPORT_DIR_FID
    | libc::FAN_REPORT_NAME
    | libc::FAN_CLOEXEC
    | libc::FAN_NONBLOCK;

/// A file system id as fanotify reports it (`statfs`'s `f_fsid`).
pub type Fsid = [i32; 2];

/// A file handle: its type and opaque bytes, on the file system `fsid`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    pub fsid: Fsid,
    pub kind: i32,
    pub bytes: Vec<u8>,
}

/// One information record of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Info {
    /// The object itself (file or directory).
    Fid(Handle),
    /// The directory the event happened in (or the directory itself for its own events).
    Dfid(Handle),
    /// The directory and the name of the entry in it.
    DfidName(Handle, OsString),
    /// A record type this journal does not read.
    Other(u8),
}

/// One event as read from the fanotify descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub mask: u64,
    pub infos: Vec<Info>,
}

impl RawEvent {
    pub fn is_dir(&self) -> bool {
        self.mask & libc::FAN_ONDIR != 0
    }
    pub fn has(&self, bits: u64) -> bool {
        self.mask & bits != 0
    }
}

/// The buffer's contents are not what the kernel documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

const META_LEN: usize = std::mem::size_of::<libc::fanotify_event_metadata>();

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    u32_at(b, at) as i32
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

/// Parse the events in `buf` (what one `read` returned). Descriptors carried by events (none
/// with handle reporting, but a kernel could) are closed.
pub fn parse_events(buf: &[u8]) -> Result<Vec<RawEvent>, ParseError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        if buf.len() - at < META_LEN {
            return Err(ParseError(format!(
                "event header cut short ({} bytes left)",
                buf.len() - at
            )));
        }
        let event_len = u32_at(buf, at) as usize;
        let vers = buf[at + 4];
        let meta_len = u16_at(buf, at + 6) as usize;
        let mask = u64_at(buf, at + 8);
        let fd = i32_at(buf, at + 16);
        if vers != libc::FANOTIFY_METADATA_VERSION {
            return Err(ParseError(format!("metadata version {vers}")));
        }
        if event_len < META_LEN || meta_len < META_LEN || meta_len > event_len {
            return Err(ParseError(format!(
                "event length {event_len}, metadata length {meta_len}"
            )));
        }
        if buf.len() - at < event_len {
            return Err(ParseError(format!(
                "event of {event_len} bytes cut short at {}",
                buf.len() - at
            )));
        }
        if fd >= 0 {
            // SAFETY: the kernel handed us this descriptor with the event; we own it now.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let infos = parse_infos(&buf[at + meta_len..at + event_len])?;
        out.push(RawEvent { mask, infos });
        at += event_len;
    }
    Ok(out)
}

fn parse_infos(b: &[u8]) -> Result<Vec<Info>, ParseError> {
    let mut infos = Vec::new();
    let mut at = 0;
    while at < b.len() {
        if b.len() - at < 4 {
            return Err(ParseError("information record header cut short".into()));
        }
        let kind = b[at];
        let len = u16_at(b, at + 2) as usize;
        if len < 4 || len > b.len() - at {
            return Err(ParseError(format!("information record of length {len}")));
        }
        let rec = &b[at..at + len];
        infos.push(match kind {
            libc::FAN_EVENT_INFO_TYPE_FID => Info::Fid(parse_handle(rec)?.0),
            libc::FAN_EVENT_INFO_TYPE_DFID => Info::Dfid(parse_handle(rec)?.0),
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME => {
                let (h, rest) = parse_handle(rec)?;
                let end = rest
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or_else(|| ParseError("entry name without its terminating NUL".into()))?;
                Info::DfidName(h, OsString::from_vec(rest[..end].to_vec()))
            }
            other => Info::Other(other),
        });
        at += len;
    }
    Ok(infos)
}

/// header (4) + fsid (8) + handle_bytes (4) + handle_type (4) + bytes; returns what follows.
fn parse_handle(rec: &[u8]) -> Result<(Handle, &[u8]), ParseError> {
    const FIXED: usize = 4 + 8 + 8;
    if rec.len() < FIXED {
        return Err(ParseError("file handle record cut short".into()));
    }
    let fsid = [i32_at(rec, 4), i32_at(rec, 8)];
    let n = u32_at(rec, 12) as usize;
    let kind = i32_at(rec, 16);
    if n > rec.len() - FIXED {
        return Err(ParseError(format!("file handle of {n} bytes cut short")));
    }
    let bytes = rec[FIXED..FIXED + n].to_vec();
    Ok((Handle { fsid, kind, bytes }, &rec[FIXED + n..]))
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// A new fanotify group with [`INIT_FLAGS`].
pub fn init() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned descriptor is owned by the caller.
    let fd = unsafe { libc::fanotify_init(INIT_FLAGS, (libc::O_RDONLY | libc::O_CLOEXEC) as _) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Mark the whole file system `path` is on.
pub fn mark_filesystem(group: &OwnedFd, path: &Path) -> io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: valid descriptor and NUL-terminated path.
    let r = unsafe {
        libc::fanotify_mark(
            group.as_raw_fd(),
            libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
            MASK,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Read what is queued; `Ok(0)` when nothing is (the descriptor is non-blocking).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// The id of the file system `path` is on.
pub fn fsid_of(path: &Path) -> io::Result<Fsid> {
    let c = cstring(path)?;
    // SAFETY: statfs fills the struct; zeroed is a valid initial value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsid_t is two c_ints (repr(C)).
    Ok(unsafe { std::ptr::read_unaligned(std::ptr::addr_of!(st.f_fsid).cast::<Fsid>()) })
}

/// Open a directory to serve as the mount descriptor handles are opened against.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: NUL-terminated path; the descriptor is owned by the caller.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The handle of `path` (not following a final symlink).
pub fn handle_of(path: &Path, fsid: Fsid) -> io::Result<Handle> {
    let c = cstring(path)?;
    let mut cap = 128usize;
    loop {
        let mut buf = vec![0u32; (8 + cap).div_ceil(4)];
        buf[0] = cap as u32;
        let mut mnt: libc::c_int = 0;
        // SAFETY: buf holds a file_handle with room for `cap` bytes.
        let r = unsafe {
            libc::name_to_handle_at(
                libc::AT_FDCWD,
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut mnt,
                0,
            )
        };
        if r == 0 {
            let n = buf[0] as usize;
            let kind = buf[1] as i32;
            let bytes: Vec<u8> = buf[2..].iter().flat_map(|w| w.to_ne_bytes()).collect();
            return Ok(Handle {
                fsid,
                kind,
                bytes: bytes[..n].to_vec(),
            });
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EOVERFLOW) && cap < 4096 {
            cap = buf[0] as usize;
            continue;
        }
        return Err(e);
    }
}

/// What a handle names now.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The object exists; one of its paths (a directory has exactly one).
    Path { path: PathBuf, is_dir: bool },
    /// The object no longer exists (every name of it was removed).
    Gone,
}

/// Open `h` against `mount` and read back its path and type.
pub fn resolve(mount: &OwnedFd, h: &Handle) -> io::Result<Resolved> {
    let mut buf = vec![0u32; (8 + h.bytes.len()).div_ceil(4)];
    buf[0] = h.bytes.len() as u32;
    buf[1] = h.kind as u32;
    // SAFETY: buf is large enough for the header and the handle bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            h.bytes.as_ptr(),
            buf.as_mut_ptr().cast::<u8>().add(8),
            h.bytes.len(),
        );
    }
    // SAFETY: valid mount descriptor and a well-formed file_handle.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESTALE) | Some(libc::ENOENT) => Ok(Resolved::Gone),
            _ => Err(e),
        };
    }
    // SAFETY: fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an O_PATH descriptor is allowed.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_nlink == 0 {
        return Ok(Resolved::Gone); // still open somewhere, but no name left
    }
    let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    if !path.is_absolute() {
        // an object not reachable from our root (another mount namespace, a pipe, ...)
        return Err(io::Error::other(format!(
            "the handle resolved to {path:?}, which is not a path"
        )));
    }
    Ok(Resolved::Path {
        path,
        is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
    })
}

/// Wait until `fd` is readable or `stop` is, at most `timeout_ms`. Returns whether `stop` is.
pub fn wait(fd: RawFd, stop: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: fds is a valid array of two pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if r >= 0 {
            return Ok(fds[1].revents != 0);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Mount points strictly below `root`, from /proc/self/mountinfo (octal escapes decoded).
pub fn mounts_below(root: &Path) -> io::Result<Vec<PathBuf>> {
    let text = std::fs::read("/proc/self/mountinfo")?;
    let mut v = Vec::new();
    for line in text.split(|&c| c == b'\n') {
        let Some(mp) = line.split(|&c| c == b' ').nth(4) else {
            continue;
        };
        let p = PathBuf::from(OsStr::from_bytes(&unescape(mp)));
        if p != root && p.starts_with(root) {
            v.push(p);
        }
    }
    v.sort();
    v.dedup();
    Ok(v)
}

fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (s[i + 1] - b'0') * 64 + (s[i + 2] - b'0') * 8 + (s[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, fsid: Fsid, htype: i32, hb: &[u8], name: Option<&[u8]>) -> Vec<u8> {
        let mut r = vec![kind, 0, 0, 0];
        r.extend(fsid[0].to_ne_bytes());
        r.extend(fsid[1].to_ne_bytes());
        r.extend((hb.len() as u32).to_ne_bytes());
        r.extend(htype.to_ne_bytes());
        r.extend(hb);
        if let Some(n) = name {
            r.extend(n);
            r.push(0);
        }
        while r.len() % 4 != 0 {
            r.push(0);
        }
        let len = r.len() as u16;
        r[2..4].copy_from_slice(&len.to_ne_bytes());
        r
    }

    fn event(mask: u64, infos: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = infos.concat();
        let len = (META_LEN + body.len()) as u32;
        let mut e = Vec::new();
        e.extend(len.to_ne_bytes());
        e.push(libc::FANOTIFY_METADATA_VERSION);
        e.push(0);
        e.extend((META_LEN as u16).to_ne_bytes());
        e.extend(mask.to_ne_bytes());
        e.extend((-1i32).to_ne_bytes());
        e.extend(42i32.to_ne_bytes());
        e.extend(body);
        e
    }

    #[test]
    fn parses_name_and_object_records_and_refuses_cut_buffers() {
        let d = record(
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
            [1, 2],
            1,
            b"dirhandle",
            Some(b"new\nname"),
        );
        let f = record(
            libc::FAN_EVENT_INFO_TYPE_FID,
            [1, 2],
            1,
            b"filehandle",
            None,
        );
        let mut buf = event(libc::FAN_CREATE, &[d, f]);
        buf.extend(event(libc::FAN_Q_OVERFLOW, &[]));
        let ev = parse_events(&buf).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].mask, libc::FAN_CREATE);
        match &ev[0].infos[0] {
            Info::DfidName(h, n) => {
                assert_eq!(h.bytes, b"dirhandle");
                assert_eq!(h.fsid, [1, 2]);
                assert_eq!(n.as_bytes(), b"new\nname");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&ev[0].infos[1], Info::Fid(h) if h.bytes == b"filehandle"));
        assert!(ev[1].has(libc::FAN_Q_OVERFLOW) && ev[1].infos.is_empty());
        for cut in [1, META_LEN - 1, buf.len() - 1] {
            assert!(parse_events(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = event(libc::FAN_CREATE, &[]);
        bad[4] = 99;
        assert!(parse_events(&bad).is_err());
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(br"/a\040b\011c\134d\04"), b"/a b\tc\\d\\04");
    }
}
