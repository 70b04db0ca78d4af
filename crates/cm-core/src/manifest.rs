//! The on-disk record of a tree that cm-copy-data writes and cm-verify reads.
//!
//! One UTF-8 text file per volume; the format is documented in `docs/manifest.md`. In short:
//! a first line `cm-manifest 1`, then `#` comment lines and one line per entry with twelve
//! space-separated fields:
//!
//! ```text
//! path type mode uid gid size mtime atime sha256 target link xattrs
//! a/cur/1.M2:2,S f 0600 5000 5000 1234 1700000000.123456789 1700000001.000000000 9f86...08 - 3 -
//! ```
//!
//! Invariants: [`render`] then [`parse`] gives back the same [`Snapshot`] (minus live inode
//! identities and read errors), for any byte name; the reader never accepts a path that is
//! absolute, contains `..` or is listed twice, so a manifest cannot point a writer outside
//! its tree; every error names the file and line.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use crate::quote::{escape_with, unescape};
use crate::tree::{Entry, FileType, Snapshot, Timestamp};

/// The first line of every manifest this version writes.
pub const HEADER: &str = "cm-manifest 2";

/// The first line of the older format (no header lines, no end line), still read.
pub const HEADER_V1: &str = "cm-manifest 1";

/// The column names, as written in the second line.
pub const COLUMNS: &str = "# path type mode uid gid size mtime atime sha256 target link xattrs";

/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: exists already; remove it or choose another file (a manifest is never overwritten)", .0.display())]
    Exists(PathBuf),
    #[error("{}: entry {} written out of order (an engine bug)", .0.display(), .1.display())]
    Order(PathBuf, PathBuf),
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Escape one field: printable non-space characters as they are, everything else escaped
/// (see [`escape_with`]); a field that would read as `-` (meaning "none") is written `\x2d`.
pub fn escape_field(b: &[u8]) -> String {
    if b == b"-" {
        return "\\x2d".into();
    }
    if b.is_empty() {
        // Cannot happen for names or link targets; keep the line's field count intact.
        return "\\x".into();
    }
    let s = escape_with(b, |c| !c.is_control() && !c.is_whitespace());
    // A line starting with `#` is a comment, one starting with `@` a header or end line:
    // never let a name start one.
    if let Some(rest) = s.strip_prefix('#') {
        format!("\\x23{rest}")
    } else if let Some(rest) = s.strip_prefix('@') {
        format!("\\x40{rest}")
    } else {
        s
    }
}

fn unescape_field(s: &str) -> Result<Vec<u8>, String> {
    if s == "\\x" {
        return Ok(Vec::new());
    }
    unescape(s)
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn type_field(e: &Entry) -> String {
    match e.kind {
        FileType::CharDevice | FileType::BlockDevice => format!(
            "{}:{}:{}",
            e.kind.letter(),
            libc::major(e.rdev),
            libc::minor(e.rdev)
        ),
        k => k.letter().to_string(),
    }
}

/// One entry as a manifest line (without the newline).
pub fn render_entry(e: &Entry) -> String {
    let path = escape_field(e.path.as_os_str().as_bytes());
    let sha = e.sha256.map(|h| hex(&h)).unwrap_or_else(|| "-".into());
    let target = e
        .target
        .as_ref()
        .map(|t| escape_field(t.as_bytes()))
        .unwrap_or_else(|| "-".into());
    let link = e
        .link_group
        .map(|g| g.to_string())
        .unwrap_or_else(|| "-".into());
    let xattrs = if e.xattrs.is_empty() {
        "-".to_string()
    } else {
        e.xattrs
            .iter()
            .map(|(n, v)| {
                format!(
                    "{}={}",
                    escape_with(n.as_bytes(), |c| !c.is_control()
                        && !c.is_whitespace()
                        && c != ','
                        && c != '='),
                    hex(v)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{path} {} {:04o} {} {} {} {} {} {sha} {target} {link} {xattrs}",
        type_field(e),
        e.mode,
        e.uid,
        e.gid,
        e.size,
        e.mtime,
        e.atime
    )
}

/// Where a manifest's tree was taken from: its header lines. cm-verify chooses each volume's
/// reference by it (a manifest of another machine is compared, never that machine's tree).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    /// `/etc/machine-id` under the source root, when it has one.
    pub machine_id: Option<String>,
    /// The root the source was found under (`--root`; `/` for the running system).
    pub root: Option<PathBuf>,
    /// The tree recorded, as given.
    pub source: Option<PathBuf>,
}

impl Header {
    /// The header for a tree `source` found under `root` (machine id read from
    /// `root/etc/machine-id`; none when absent or not one line of hex).
    pub fn of(root: &Path, source: &Path) -> Header {
        let id = std::fs::read_to_string(root.join("etc/machine-id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
        Header {
            machine_id: id,
            root: Some(root.to_path_buf()),
            source: Some(source.to_path_buf()),
        }
    }

    fn render(&self, out: &mut String) {
        if let Some(m) = &self.machine_id {
            let _ = writeln!(out, "@machine-id {m}");
        }
        if let Some(r) = &self.root {
            let _ = writeln!(out, "@root {}", escape_field(r.as_os_str().as_bytes()));
        }
        if let Some(r) = &self.source {
            let _ = writeln!(out, "@source {}", escape_field(r.as_os_str().as_bytes()));
        }
    }
}

fn comment_lines(out: &mut String, comments: &[String]) {
    for c in comments {
        for l in c.lines() {
            let _ = writeln!(out, "# {l}");
        }
    }
}

/// The whole manifest text for a snapshot (entries in the snapshot's order, which must be
/// sorted). `comments` are written as `# ` lines after the header (one per line).
pub fn render(snap: &Snapshot, comments: &[String]) -> String {
    let mut out = String::with_capacity(snap.entries.len() * 120 + 64);
    out.push_str(HEADER);
    out.push('\n');
    comment_lines(&mut out, comments);
    out.push_str(COLUMNS);
    out.push('\n');
    for e in &snap.entries {
        out.push_str(&render_entry(e));
        out.push('\n');
    }
    let _ = writeln!(out, "@end {}", snap.entries.len());
    out
}

/// A manifest being written as a stream: a private (0600) temporary beside the final path,
/// entries appended in path order (checked), renamed into place by [`Writer::finish`] after
/// an `@end COUNT` line and an fsync. Dropped unfinished, the temporary is removed.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    count: u64,
    last: Option<PathBuf>,
    no_replace: bool,
    line: String,
}

impl Writer {
    /// Start a manifest that replaces `path` when finished.
    pub fn create(
        path: &Path,
        header: &Header,
        comments: &[String],
    ) -> Result<Writer, ManifestError> {
        Self::open(path, header, comments, false)
    }

    /// Start a manifest at `path`, which must not exist (now, nor when it is finished).
    pub fn create_new(
        path: &Path,
        header: &Header,
        comments: &[String],
    ) -> Result<Writer, ManifestError> {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(ManifestError::Exists(path.to_path_buf()));
        }
        Self::open(path, header, comments, true)
    }

    fn open(
        path: &Path,
        header: &Header,
        comments: &[String],
        no_replace: bool,
    ) -> Result<Writer, ManifestError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = crate::fsutil::temp_path_for(path);
        let _ = std::fs::remove_file(&tmp);
        if !no_replace {
            remove_stale_temps(path);
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io)?;
        let mut w = Writer {
            path: path.to_path_buf(),
            tmp,
            out: Some(std::io::BufWriter::with_capacity(256 * 1024, f)),
            count: 0,
            last: None,
            no_replace,
            line: String::new(),
        };
        let mut head = String::new();
        head.push_str(HEADER);
        head.push('\n');
        header.render(&mut head);
        comment_lines(&mut head, comments);
        head.push_str(COLUMNS);
        head.push('\n');
        if let Some(o) = w.out.as_mut() {
            o.write_all(head.as_bytes()).map_err(io)?;
        }
        Ok(w)
    }

    /// Entries written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Append one entry; its path must sort after the previous entry's.
    pub fn entry(&mut self, e: &Entry) -> Result<(), ManifestError> {
        use std::io::Write;
        if let Some(l) = &self.last {
            if crate::tree::path_cmp(l, &e.path) != std::cmp::Ordering::Less {
                return Err(ManifestError::Order(self.path.clone(), e.path.clone()));
            }
        }
        self.line.clear();
        self.line.push_str(&render_entry(e));
        self.line.push('\n');
        let io = |source| ManifestError::Io {
            path: self.tmp.clone(),
            source,
        };
        if let Some(o) = self.out.as_mut() {
            o.write_all(self.line.as_bytes()).map_err(io)?;
        }
        match &mut self.last {
            Some(l) => {
                l.clear();
                l.push(&e.path);
            }
            None => self.last = Some(e.path.clone()),
        }
        self.count += 1;
        Ok(())
    }

    /// Write trailing comments and the end line, flush to disk, rename into place.
    pub fn finish(mut self, comments: &[String]) -> Result<(), ManifestError> {
        use std::io::Write;
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| ManifestError::Io { path: p, source }
        };
        let mut tail = String::new();
        comment_lines(&mut tail, comments);
        let _ = writeln!(tail, "@end {}", self.count);
        let Some(mut o) = self.out.take() else {
            return Ok(());
        };
        o.write_all(tail.as_bytes()).map_err(io(&self.tmp))?;
        let f = o.into_inner().map_err(|e| ManifestError::Io {
            path: self.tmp.clone(),
            source: e.into_error(),
        })?;
        f.sync_all().map_err(io(&self.tmp))?;
        drop(f);
        let r = if self.no_replace {
            rename_noreplace(&self.tmp, &self.path)
        } else {
            std::fs::rename(&self.tmp, &self.path)
        };
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&self.tmp);
                return Err(ManifestError::Exists(self.path.clone()));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.tmp);
                return Err(io(&self.path)(e));
            }
            Ok(()) => {}
        }
        if let Some(d) = self.path.parent() {
            let d = if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            };
            if let Ok(d) = std::fs::File::open(d) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Temporaries of this manifest that a killed writer left (its process is gone).
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.cm-tmp.", name.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if let Some(pid) = n.strip_prefix(&prefix) {
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    let a = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Write a whole snapshot as a manifest atomically (temp beside + rename), mode 0600.
pub fn write(path: &Path, snap: &Snapshot, comments: &[String]) -> Result<(), ManifestError> {
    write_with(path, &Header::default(), snap, comments)
}

/// Write a whole snapshot as a new manifest: refused when `path` exists (a manifest is
/// never overwritten silently).
pub fn write_new(
    path: &Path,
    header: &Header,
    snap: &Snapshot,
    comments: &[String],
) -> Result<(), ManifestError> {
    let mut w = Writer::create_new(path, header, comments)?;
    for e in &snap.entries {
        w.entry(e)?;
    }
    w.finish(&[])
}

/// [`write`] with header lines.
pub fn write_with(
    path: &Path,
    header: &Header,
    snap: &Snapshot,
    comments: &[String],
) -> Result<(), ManifestError> {
    let mut w = Writer::create(path, header, comments)?;
    for e in &snap.entries {
        w.entry(e)?;
    }
    w.finish(&[])
}

/// Whether a manifest written at `output` would lie inside the tree `root` it records (where
/// every check would list it as extra). Both are resolved through symlinks; a path that
/// cannot be resolved counts as outside.
pub fn inside_tree(root: &Path, output: &Path) -> bool {
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (root.canonicalize(), parent.canonicalize()) {
        (Ok(r), Ok(p)) => p.starts_with(&r),
        _ => false,
    }
}

/// Read a whole manifest file into a snapshot (for small manifests and tests; large ones are
/// read as a stream with [`Reader`]).
pub fn read(path: &Path) -> Result<Snapshot, ManifestError> {
    let mut r = Reader::open(path)?;
    let mut snap = Snapshot::default();
    while let Some(e) = r.next_entry()? {
        snap.entries.push(e);
    }
    Ok(snap)
}

/// The header lines of a manifest (without reading its entries). A version 1 manifest has
/// none: every field is `None`.
pub fn read_header(path: &Path) -> Result<Header, ManifestError> {
    Ok(Reader::open(path)?.header().clone())
}

/// What [`Reader::next_picked`] takes: an entry line's 12 fields, as written.
pub type Pick<'a> = &'a dyn Fn(&[&[u8]; 12]) -> bool;

/// An entry line's 12 fields (None: not 12).
fn fields(line: &[u8]) -> Option<[&[u8]; 12]> {
    let mut f: [&[u8]; 12] = [&[]; 12];
    let mut it = line.split(|&c| c == b' ');
    for x in f.iter_mut() {
        *x = it.next()?;
    }
    it.next().is_none().then_some(f)
}

/// A manifest read as a stream, entry by entry, in path order (checked: an entry out of
/// order or listed twice is an error naming its line). A version 2 manifest must end with
/// its `@end COUNT` line: one cut anywhere, even at a line boundary, is reported truncated.
pub struct Reader<R: std::io::BufRead = std::io::BufReader<std::fs::File>> {
    path: PathBuf,
    r: R,
    line: usize,
    header: Header,
    v2: bool,
    last: Option<PathBuf>,
    count: u64,
    ended: bool,
    pending: Option<String>,
    buf: Vec<u8>,
}

impl Reader {
    /// Open a manifest file and read its first line and header.
    pub fn open(path: &Path) -> Result<Reader, ManifestError> {
        let f = std::fs::File::open(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Reader::new(std::io::BufReader::with_capacity(256 * 1024, f), path)
    }
}

impl<R: std::io::BufRead> Reader<R> {
    /// Read a manifest from `r`; `file` names it in errors.
    pub fn new(r: R, file: &Path) -> Result<Reader<R>, ManifestError> {
        let mut me = Reader {
            path: file.to_path_buf(),
            r,
            line: 0,
            header: Header::default(),
            v2: false,
            last: None,
            count: 0,
            ended: false,
            pending: None,
            buf: Vec::new(),
        };
        let first = me.raw_line()?;
        match first.as_deref() {
            Some(HEADER) => me.v2 = true,
            Some(HEADER_V1) => {}
            Some(h) if h.starts_with("cm-manifest ") => {
                return Err(me.err(format!("manifest version {:?} is not supported (this tool reads versions 1 and 2); use the matching release", &h[12..])))
            }
            _ => return Err(me.err(format!("not a manifest: the first line must be {HEADER:?}"))),
        }
        if me.v2 {
            while let Some(l) = me.raw_line()? {
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                let Some(rest) = l.strip_prefix('@') else {
                    me.pending = Some(l);
                    break;
                };
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                let path =
                    |v: &str| unescape_field(v).map(|b| PathBuf::from(OsString::from_vec(b)));
                match k {
                    "machine-id" => me.header.machine_id = Some(v.to_string()),
                    "root" => {
                        me.header.root = Some(path(v).map_err(|e| me.err(format!("root: {e}")))?)
                    }
                    "source" => {
                        me.header.source =
                            Some(path(v).map_err(|e| me.err(format!("source: {e}")))?)
                    }
                    "end" => {
                        me.pending = Some(l);
                        break;
                    }
                    _ => return Err(me.err(format!("unknown header line @{k}"))),
                }
            }
        }
        Ok(me)
    }

    /// Where the tree was taken from (empty for a version 1 manifest).
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn err(&self, message: String) -> ManifestError {
        ManifestError::Line {
            path: self.path.clone(),
            line: self.line,
            message,
        }
    }

    /// The next line without its newline; None at the end of the file.
    fn raw_line(&mut self) -> Result<Option<String>, ManifestError> {
        self.buf.clear();
        let n = self
            .r
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| ManifestError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.finish_line(n)
    }

    /// The line of `n` bytes just read into the buffer, checked and converted.
    fn finish_line(&mut self, n: usize) -> Result<Option<String>, ManifestError> {
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() != Some(&b'\n') {
            return Err(self.err("the last line has no newline: the manifest is truncated".into()));
        }
        self.buf.pop();
        match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(s) => Ok(Some(s)),
            Err(_) => Err(self.err(
                "not valid UTF-8 (a manifest is UTF-8 text; was it edited or truncated?)".into(),
            )),
        }
    }

    /// [`Reader::raw_line`], passing over (and counting) the entry lines `pick` leaves,
    /// unconverted.
    fn raw_picked_line(&mut self, pick: Pick) -> Result<Option<String>, ManifestError> {
        loop {
            self.buf.clear();
            let n =
                self.r
                    .read_until(b'\n', &mut self.buf)
                    .map_err(|source| ManifestError::Io {
                        path: self.path.clone(),
                        source,
                    })?;
            let b = &self.buf;
            let left = n > 0
                && b.last() == Some(&b'\n')
                && !matches!(b[0], b'#' | b'@' | b'\n')
                && !self.ended
                && fields(&b[..n - 1]).is_some_and(|f| !pick(&f));
            if !left {
                // anything else is read as a whole line, as `raw_line` does
                return self.finish_line(n);
            }
            self.line += 1;
            self.count += 1;
        }
    }

    /// A version 2 line `l` starting with `@` (`rest` after it) among the entries: only the
    /// end line, with the count of the entries read.
    fn end_line(&mut self, rest: &str, l: &str) -> Result<(), ManifestError> {
        match rest
            .strip_prefix("end ")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) if n == self.count => {
                self.ended = true;
                Ok(())
            }
            Some(n) => Err(self.err(format!(
                "manifest truncated or edited: its end line counts {n} entries, {} were read",
                self.count
            ))),
            None => Err(self.err(format!(
                "unknown line {l:?} (only the header and the end line start with @)"
            ))),
        }
    }

    /// `path` comes after the entry before it (entries are sorted by path, each once).
    fn check_order(&self, path: &Path) -> Result<(), ManifestError> {
        let Some(prev) = &self.last else {
            return Ok(());
        };
        match crate::tree::path_cmp(prev, path) {
            std::cmp::Ordering::Less => Ok(()),
            std::cmp::Ordering::Equal => Err(self.err(format!(
                "path {} is listed twice",
                crate::quote::quote_path(path)
            ))),
            std::cmp::Ordering::Greater => Err(self.err(format!(
                "path {} is out of order (after {}): entries are sorted by path",
                crate::quote::quote_path(path),
                crate::quote::quote_path(prev)
            ))),
        }
    }

    /// The next entry, or None after the last one.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ManifestError> {
        self.next_of(None)
    }

    /// The next entry whose line `pick` takes (given its 12 fields as written), passing over
    /// the other entry lines unparsed (so about three times as fast): their order is not
    /// checked here, their count against the end line is; the order of the entries returned
    /// is checked among them. For a reader that needs a few entries (the copy engine's
    /// restricted delta).
    pub fn next_picked(&mut self, pick: Pick) -> Result<Option<Entry>, ManifestError> {
        self.next_of(Some(pick))
    }

    /// The next entry with a hard-link group ([`Reader::next_picked`]).
    pub fn next_linked(&mut self) -> Result<Option<Entry>, ManifestError> {
        self.next_of(Some(&|f| f[10] != b"-"))
    }

    fn next_of(&mut self, pick: Option<Pick>) -> Result<Option<Entry>, ManifestError> {
        loop {
            let l = match (self.pending.take(), pick) {
                (Some(l), _) => Some(l),
                (None, Some(p)) => self.raw_picked_line(p)?,
                (None, None) => self.raw_line()?,
            };
            let Some(l) = l else {
                if self.v2 && !self.ended {
                    return Err(self.err(format!(
                        "manifest truncated: it ends after {} entries without its @end line (was it cut short? write it again)",
                        self.count
                    )));
                }
                return Ok(None);
            };
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if self.ended {
                return Err(self.err("a line after the @end line".into()));
            }
            if self.v2 {
                if let Some(rest) = l.strip_prefix('@') {
                    self.end_line(rest, &l)?;
                    continue;
                }
            }
            let e = parse_line(&l).map_err(|m| self.err(m))?;
            self.check_order(&e.path)?;
            self.last = Some(e.path.clone());
            self.count += 1;
            if pick.is_some_and(|p| fields(l.as_bytes()).is_some_and(|f| !p(&f))) {
                continue;
            }
            return Ok(Some(e));
        }
    }
}

fn check_rel(p: &Path) -> Result<(), String> {
    if p == Path::new(".") {
        return Ok(());
    }
    if p.as_os_str().as_bytes().ends_with(b"/") || p.as_os_str().as_bytes().contains(&0) {
        return Err(format!(
            "path {} is not a clean relative path",
            crate::quote::quote_path(p)
        ));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) => {}
            _ => {
                return Err(format!(
                    "path {} must be relative, without `.` or `..` components",
                    crate::quote::quote_path(p)
                ))
            }
        }
    }
    // `a//b` would collapse to `a/b` and alias another line.
    if p.as_os_str().as_bytes().windows(2).any(|w| w == b"//") {
        return Err(format!(
            "path {} contains `//`",
            crate::quote::quote_path(p)
        ));
    }
    Ok(())
}

fn parse_line(l: &str) -> Result<Entry, String> {
    let f: Vec<&str> = l.split(' ').collect();
    if f.len() != 12 {
        return Err(format!(
            "expected 12 space-separated fields ({}), found {}",
            &COLUMNS[2..],
            f.len()
        ));
    }
    let path = PathBuf::from(OsString::from_vec(
        unescape_field(f[0]).map_err(|e| format!("path: {e}"))?,
    ));
    check_rel(&path)?;
    let (kind, rdev) = parse_type(f[1])?;
    let mode = u32::from_str_radix(f[2], 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("mode {:?} is not octal permission bits (0000-7777)", f[2]))?;
    let num = |s: &str, what: &str| -> Result<u64, String> {
        s.parse::<u64>()
            .map_err(|_| format!("{what} {s:?} is not a number"))
    };
    let uid = u32::try_from(num(f[3], "uid")?).map_err(|_| format!("uid {} too large", f[3]))?;
    let gid = u32::try_from(num(f[4], "gid")?).map_err(|_| format!("gid {} too large", f[4]))?;
    let size = num(f[5], "size")?;
    let mtime: Timestamp = f[6].parse().map_err(|e| format!("mtime: {e}"))?;
    let atime: Timestamp = f[7].parse().map_err(|e| format!("atime: {e}"))?;
    let sha256 = parse_sha256(f[8])?;
    if sha256.is_some() && kind != FileType::File {
        return Err("only regular files have a sha256".into());
    }
    let target = match f[9] {
        "-" => None,
        t => Some(OsString::from_vec(
            unescape_field(t).map_err(|e| format!("target: {e}"))?,
        )),
    };
    if (kind == FileType::Symlink) != target.is_some() {
        return Err("a symlink needs a target, and only a symlink has one".into());
    }
    let link_group = match f[10] {
        "-" => None,
        g => Some(
            g.parse::<u64>()
                .map_err(|_| format!("link group {g:?} is not a number or -"))?,
        ),
    };
    Ok(Entry {
        path,
        kind,
        mode,
        uid,
        gid,
        size,
        mtime,
        atime,
        rdev,
        target,
        inode: None,
        link_group,
        xattrs: parse_xattrs(f[11])?,
        sha256,
    })
}

/// The type field: a letter of `f d l p c b s`, `c:MAJOR:MINOR` or `b:MAJOR:MINOR` for a
/// device (its rdev; 0 for the rest).
fn parse_type(field: &str) -> Result<(FileType, u64), String> {
    let mut t = field.split(':');
    let letter = t.next().unwrap_or("");
    let kind = letter
        .chars()
        .next()
        .filter(|_| letter.len() == 1)
        .and_then(FileType::from_letter)
        .ok_or_else(|| format!("type {field:?} is not one of f d l p c b s"))?;
    let rdev = match kind {
        FileType::CharDevice | FileType::BlockDevice => {
            let mut number = || -> Result<u32, String> {
                t.next().and_then(|x| x.parse().ok()).ok_or_else(|| {
                    format!("device type {field:?} must be c:MAJOR:MINOR or b:MAJOR:MINOR")
                })
            };
            let maj = number()?;
            let min = number()?;
            libc::makedev(maj, min)
        }
        _ => 0,
    };
    if t.next().is_some() {
        return Err(format!("type {field:?} has extra parts"));
    }
    Ok((kind, rdev))
}

/// The sha256 field: 64 hex digits, or `-`.
fn parse_sha256(field: &str) -> Result<Option<[u8; 32]>, String> {
    if field == "-" {
        return Ok(None);
    }
    let v = unhex(field)
        .filter(|v| v.len() == 32)
        .ok_or_else(|| format!("sha256 {field:?} is not 64 hex digits or -"))?;
    let mut h = [0u8; 32];
    h.copy_from_slice(&v);
    Ok(Some(h))
}

/// The xattrs field: `-`, or `NAME=HEXVALUE` items joined by `,` (sorted as read).
fn parse_xattrs(field: &str) -> Result<Vec<(OsString, Vec<u8>)>, String> {
    let mut xattrs = Vec::new();
    if field == "-" {
        return Ok(xattrs);
    }
    for item in field.split(',') {
        let (n, v) = item
            .split_once('=')
            .ok_or_else(|| format!("xattr {item:?} is not NAME=HEXVALUE"))?;
        let name = OsString::from_vec(unescape(n).map_err(|e| format!("xattr name: {e}"))?);
        let value = unhex(v).ok_or_else(|| format!("xattr {n} value is not hex"))?;
        xattrs.push((name, value));
    }
    xattrs.sort();
    Ok(xattrs)
}

/// Parse manifest text; `file` only names the source in errors.
pub fn parse(text: &str, file: &Path) -> Result<Snapshot, ManifestError> {
    let mut r = Reader::new(text.as_bytes(), file)?;
    let mut snap = Snapshot::default();
    while let Some(e) = r.next_entry()? {
        snap.entries.push(e);
    }
    Ok(snap)
}

/// Compare a manifest with the live tree at `dst`, both read as streams (the manifest is
/// never held whole): `dst` is walked in path order and merged with the manifest chunk by
/// chunk; files whose size matches a recorded file with a hash are hashed.
pub fn check(
    path: &Path,
    dst: &Path,
    opts: &crate::tree::CompareOptions,
    progress: &dyn crate::tree::Progress,
) -> Result<(Vec<crate::tree::Difference>, crate::tree::TreeStats), ManifestError> {
    use crate::tree::{ScanOptions, Walked};
    let mut reader = Reader::open(path)?;
    let sopts = ScanOptions {
        xattrs: opts.xattrs,
        hash: false,
        jobs: opts.jobs,
        exclude: opts.exclude.clone(),
    };
    let mut merr: Option<ManifestError> = None;
    let r = std::thread::scope(|sc| {
        let mut b = crate::tree::stream_in_thread(sc, dst, &sopts, progress);
        let excluded = |p: &Path| opts.exclude.iter().any(|x| p.starts_with(x));
        let mut a = std::iter::from_fn(|| {
            if merr.is_some() {
                return None;
            }
            loop {
                match reader.next_entry() {
                    Ok(Some(e)) if excluded(&e.path) => continue,
                    Ok(Some(e)) => return Some(Ok(Walked::Entry(e))),
                    Ok(None) => return None,
                    Err(e) => {
                        merr = Some(e);
                        return None;
                    }
                }
            }
        });
        crate::tree::compare_streams(&mut a, &mut b, opts, true, &mut |ca, cb| {
            if opts.content {
                let mut filter = Snapshot::default();
                filter.entries = ca
                    .entries
                    .iter()
                    .filter(|e| e.sha256.is_some())
                    .cloned()
                    .collect();
                let mut items = vec![(dst, cb, Some(&filter))];
                crate::tree::hash_snapshots(&mut items, opts.jobs, progress);
            }
            (0, 0)
        })
    });
    if let Some(e) = merr {
        return Err(e);
    }
    r.map_err(ManifestError::Tree)
}

/// What [`write_tree`] recorded.
#[derive(Debug, Default)]
pub struct Written {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// Entries that could not be read: when any, nothing was written.
    pub errors: Vec<crate::tree::ScanError>,
}

/// Record the tree `root` in a new manifest at `output` as a stream (walked in path order,
/// hashed chunk by chunk in parallel, written line by line): memory is bounded by a chunk and
/// the hard-linked inodes. A hard-link group is numbered when its inode is first met, so an
/// inode whose other names lie outside the tree has a number of its own. When an entry
/// cannot be read nothing is written (the errors are returned). `output` must not exist.
pub fn write_tree(
    root: &Path,
    output: &Path,
    header: &Header,
    comments: &[String],
    opts: &crate::tree::ScanOptions,
    progress: &dyn crate::tree::Progress,
) -> Result<Written, ManifestError> {
    write_tree_mapped(root, output, header, comments, opts, None, progress)
}

/// [`write_tree`] with owners (and the ids in ACLs) recorded as `owners` maps them: the
/// manifest a copy made with that map must match.
pub fn write_tree_mapped(
    root: &Path,
    output: &Path,
    header: &Header,
    comments: &[String],
    opts: &crate::tree::ScanOptions,
    owners: Option<&crate::owners::OwnerMap>,
    progress: &dyn crate::tree::Progress,
) -> Result<Written, ManifestError> {
    let mut r = TreeRecorder {
        root,
        opts,
        owners,
        progress,
        w: Writer::create_new(output, header, comments)?,
        done: Written::default(),
        groups: Default::default(),
        next_group: 0,
        chunk: Snapshot::default(),
        werr: None,
    };
    crate::tree::walk_stream(root, opts, progress, &mut |it| match it {
        crate::tree::Walked::Error(e) => r.chunk.errors.push(e),
        crate::tree::Walked::Entry(e) => r.entry(e),
    })?;
    r.finish()
}

/// [`write_tree_mapped`] under way: the entries walked, a chunk at a time.
struct TreeRecorder<'a> {
    root: &'a Path,
    opts: &'a crate::tree::ScanOptions,
    owners: Option<&'a crate::owners::OwnerMap>,
    progress: &'a dyn crate::tree::Progress,
    w: Writer,
    done: Written,
    /// (dev, ino) of a hard-linked inode -> (its group, names of it met so far).
    groups: std::collections::HashMap<(u64, u64), (u64, u64)>,
    next_group: u64,
    chunk: Snapshot,
    /// The first error writing the manifest.
    werr: Option<ManifestError>,
}

impl TreeRecorder<'_> {
    fn entry(&mut self, mut e: Entry) {
        if e.kind == FileType::File {
            self.done.files += 1;
            self.done.bytes += e.size;
        }
        self.done.entries += 1;
        if let Some(i) = e.inode.filter(|i| i.nlink > 1 && e.kind != FileType::Dir) {
            e.link_group = Some(self.link_group(i.dev, i.ino, i.nlink));
        }
        self.chunk.entries.push(e);
        if self.chunk.entries.len() >= crate::tree::CHUNK {
            self.flush();
        }
    }

    /// The hard-link group of inode (dev, ino) with `nlink` names, numbered when first met
    /// (and forgotten once all its names were met).
    fn link_group(&mut self, dev: u64, ino: u64, nlink: u64) -> u64 {
        let k = (dev, ino);
        match self.groups.get_mut(&k) {
            Some(g) => {
                g.1 += 1;
                let n = g.0;
                if g.1 >= nlink {
                    self.groups.remove(&k);
                }
                n
            }
            None => {
                self.next_group += 1;
                self.groups.insert(k, (self.next_group, 1));
                self.next_group
            }
        }
    }

    /// The chunk hashed, its owners mapped, written.
    fn flush(&mut self) {
        if self.opts.hash {
            let mut items = vec![(self.root, &mut self.chunk, None)];
            crate::tree::hash_snapshots(&mut items, self.opts.jobs, self.progress);
        }
        for mut e in self.chunk.entries.drain(..) {
            if let Some(m) = self.owners {
                (e.uid, e.gid) = m.map(e.uid, e.gid);
                for (n, val) in &mut e.xattrs {
                    if crate::owners::is_acl_xattr(n.as_bytes()) {
                        *val = m.map_acl(val);
                    }
                }
            }
            if self.werr.is_none() {
                if let Err(x) = self.w.entry(&e) {
                    self.werr = Some(x);
                }
            }
        }
        self.done.errors.append(&mut self.chunk.errors);
    }

    /// The last chunk written, and the manifest finished when every entry was read.
    fn finish(mut self) -> Result<Written, ManifestError> {
        self.flush();
        if let Some(e) = self.werr {
            return Err(e);
        }
        let d = self.done;
        if d.errors.is_empty() {
            self.w.finish(&[format!(
                "entries: {}, files: {}, bytes: {}",
                d.entries, d.files, d.bytes
            )])?;
        }
        Ok(d)
    }
}

/// Where a volume's manifest lives: `<parent of target>/.cm-manifest/<target name>.manifest`
/// (outside every volume, see docs/manifest.md).
pub fn path_for(dst: &Path) -> PathBuf {
    state_path(dst, ".manifest")
}

/// The marker an unfinished run leaves beside the manifest (it holds the boot id).
pub fn marker_path_for(dst: &Path) -> PathBuf {
    state_path(dst, ".running")
}

fn state_path(dst: &Path, ext: &str) -> PathBuf {
    let mut name = dst
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "copy".into());
    name.push(ext);
    dst.parent()
        .unwrap_or(Path::new("/"))
        .join(".cm-manifest")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{scan, ScanOptions};
    use std::ffi::OsStr;
    use std::os::unix::fs::symlink;

    fn entry(path: &[u8]) -> Entry {
        Entry {
            path: PathBuf::from(OsStr::from_bytes(path)),
            kind: FileType::File,
            mode: 0o4755,
            uid: 5000,
            gid: 5001,
            size: 3,
            mtime: Timestamp {
                sec: 1_700_000_000,
                nsec: 123_456_789,
            },
            atime: Timestamp { sec: -1, nsec: 5 },
            rdev: 0,
            target: None,
            inode: None,
            link_group: Some(7),
            xattrs: vec![
                (
                    OsString::from("system.posix_acl_access"),
                    vec![2, 0, 0, 0, 1, 0, 6, 0],
                ),
                (OsString::from("user.a=b,c d"), vec![]),
            ],
            sha256: Some([0xab; 32]),
        }
    }

    #[test]
    fn any_byte_name_round_trips() {
        let mut snap = Snapshot::default();
        for name in [
            &b"."[..],
            b"a b",
            b"new\nline",
            b"-",
            b"back\\slash",
            b"\xff\xfe",
            b"cur/1700000000.M1P2.host,S=1234,W=1300:2,S",
            b"#hash",
            "t\u{e4}b\tle".as_bytes(),
        ] {
            snap.entries.push(entry(name));
        }
        let mut l = entry(b"link");
        l.kind = FileType::Symlink;
        l.sha256 = None;
        l.target = Some(OsString::from_vec(b"-".to_vec()));
        snap.entries.push(l);
        let mut l = entry(b"link2");
        l.kind = FileType::Symlink;
        l.sha256 = None;
        l.xattrs.clear();
        l.link_group = None;
        l.target = Some(OsString::from_vec(b"../x y\n\x01".to_vec()));
        snap.entries.push(l);
        let mut d = entry(b"dev/null");
        d.kind = FileType::CharDevice;
        d.rdev = libc::makedev(1, 3);
        d.sha256 = None;
        snap.entries.push(d);
        snap.sort();
        let text = render(&snap, &["written by a test\nsecond line".into()]);
        assert_eq!(text.lines().count(), 2 + 2 + snap.entries.len() + 1);
        let back = parse(&text, Path::new("m")).unwrap();
        assert_eq!(back, snap);
        assert!(text.contains(" c:1:3 "), "{text}");
        assert!(
            text.contains("\n\\x2d f 4755 5000 5001 3 1700000000.123456789 -1.000000005 "),
            "{text}"
        );
    }

    #[test]
    fn scanned_tree_round_trips_through_a_file() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("t");
        std::fs::create_dir(&r).unwrap();
        std::fs::write(r.join("f"), b"abc").unwrap();
        std::fs::hard_link(r.join("f"), r.join("g")).unwrap();
        symlink("f", r.join("l")).unwrap();
        let snap = scan(&r, &ScanOptions::default(), &()).unwrap();
        let m = d.path().join("t.manifest");
        write(&m, &snap, &[]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&m).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut back = read(&m).unwrap();
        let mut expect = snap.clone();
        for e in expect.entries.iter_mut() {
            e.inode = None;
        }
        for e in back.entries.iter_mut() {
            e.inode = None;
        }
        assert_eq!(back, expect);
    }

    #[test]
    fn errors_have_line_numbers() {
        let good = render_entry(&entry(b"ok"));
        let cases: Vec<(String, usize, &str)> = vec![
            ("hello\n".into(), 1, "not a manifest"),
            ("cm-manifest 9\n".into(), 1, "not supported"),
            (format!("{HEADER}\n# c\n{good}\nx f\n"), 4, "expected 12"),
            (
                format!("{HEADER}\n{}\n", good.replace("ok f", "../up f")),
                2,
                "relative",
            ),
            (
                format!("{HEADER}\n{}\n", good.replace("ok f", "/abs f")),
                2,
                "relative",
            ),
            (
                format!("{HEADER}\n{}\n", good.replace("ok f", "ok q")),
                2,
                "type",
            ),
            (
                format!("{HEADER}\n{}\n", good.replace("4755", "9999")),
                2,
                "mode",
            ),
            (
                format!("{HEADER}\n{}\n", good.replace(".123456789", ".12")),
                2,
                "mtime",
            ),
            (
                format!("{HEADER}\n{}\n", good.replace("abab", "zz")),
                2,
                "sha256",
            ),
            (format!("{HEADER}\n{}\n{good}\n", good), 3, "listed twice"),
            (format!("{HEADER}\n{good}"), 2, "truncated"),
            (
                format!("{HEADER}\n{}\n", good.replace("ok f", "o\\q f")),
                2,
                "escape",
            ),
        ];
        for (text, line, msg) in cases {
            let e = parse(&text, Path::new("v.manifest"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("v.manifest:{line}: ")), "{e}");
            assert!(e.contains(msg), "{e}");
        }
    }

    #[test]
    fn header_round_trips_and_a_cut_at_a_line_boundary_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("v.manifest");
        let h = Header {
            machine_id: Some("0123456789abcdef0123456789abcdef".into()),
            root: Some(PathBuf::from("/old root")),
            source: Some(PathBuf::from("/old root/home")),
        };
        let mut w = Writer::create(&m, &h, &["a comment".into()]).unwrap();
        for p in [&b"."[..], b"a", b"a/x", b"a-b", b"b"] {
            let mut e = entry(p);
            e.link_group = None;
            w.entry(&e).unwrap();
        }
        // Out of order is refused by the writer.
        assert!(matches!(
            w.entry(&entry(b"a")),
            Err(ManifestError::Order(..))
        ));
        w.finish(&["trailing".into()]).unwrap();
        assert_eq!(read_header(&m).unwrap(), h);
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(text.ends_with("# trailing\n@end 5\n"), "{text}");
        assert_eq!(read(&m).unwrap().entries.len(), 5);
        // Cut after the fourth line of entries, at a line boundary.
        let cut: String = text.lines().take(9).map(|l| format!("{l}\n")).collect();
        let e = parse(&cut, Path::new("v.manifest"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("manifest truncated"), "{e}");
        // A version 1 manifest (no header, no end line) is still read.
        let v1 = text
            .replacen(HEADER, HEADER_V1, 1)
            .lines()
            .filter(|l| !l.starts_with('@'))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        assert_eq!(parse(&v1, Path::new("v1")).unwrap().entries.len(), 5);
        // create_new never replaces a file.
        assert!(matches!(
            Writer::create_new(&m, &h, &[]),
            Err(ManifestError::Exists(_))
        ));
    }

    #[test]
    fn linked_entries_are_read_alone_and_the_end_line_still_counts_them_all() {
        let names: [&[u8]; 6] = [b".", b"a", b"a/1", b"a/2", b"b", b"b/1"];
        let mut snap = Snapshot::default();
        for (i, p) in names.iter().enumerate() {
            let mut e = entry(p);
            e.link_group = (i % 2 == 0 && i > 0).then_some(i as u64);
            snap.entries.push(e);
        }
        let text = render(&snap, &[]);
        let linked = |t: &str| -> Result<Vec<PathBuf>, ManifestError> {
            let mut r = Reader::new(t.as_bytes(), Path::new("m"))?;
            let mut v = Vec::new();
            while let Some(e) = r.next_linked()? {
                v.push(e.path);
            }
            Ok(v)
        };
        assert_eq!(
            linked(&text).unwrap(),
            [PathBuf::from("a/1"), PathBuf::from("b")]
        );
        // any other choice of lines, made on their fields as written
        let mut r = Reader::new(text.as_bytes(), Path::new("m")).unwrap();
        let pick = |f: &[&[u8]; 12]| f[0] == b"a/2" || f[0] == b"b/1";
        let mut picked = Vec::new();
        while let Some(e) = r.next_picked(&pick).unwrap() {
            picked.push(e.path);
        }
        assert_eq!(picked, [PathBuf::from("a/2"), PathBuf::from("b/1")]);
        // an unlinked line dropped (the count no longer matches) or the end cut off
        let fewer = text.replacen(&format!("{}\n", render_entry(&snap.entries[3])), "", 1);
        assert_ne!(fewer, text);
        let e = linked(&fewer).unwrap_err().to_string();
        assert!(e.contains("end line counts 6 entries, 5 were read"), "{e}");
        let cut: String = text
            .lines()
            .filter(|l| !l.starts_with("@end"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(linked(&cut).unwrap_err().to_string().contains("truncated"));
    }

    #[test]
    fn inside_tree_resolves_both_paths() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("tree");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(&root, d.path().join("link")).unwrap();
        assert!(inside_tree(&root, &root.join("m")));
        assert!(inside_tree(&root, &d.path().join("link/sub/m")));
        assert!(!inside_tree(&root, &d.path().join("m")));
        assert!(!inside_tree(&root, &d.path().join("missing/m")));
    }
}
