//! Mapping host uids/gids to the container image's.
//!
//! Service users (vmail, opendkim, ...) are created as system users, so their numbers differ
//! between the old host and the image. An [`OwnerMap`] says, for each host id, which id the
//! copy must carry. It is read from a small text file (see [`OwnerMap::parse`]):
//!
//! ```text
//! # name -> container uid gid (the name's host uid/gid come from ROOT/etc/passwd, /etc/group)
//! vmail 999 999
//! opendkim 998 998
//! # or numerically: host-uid:host-gid=uid:gid
//! 5000:5000=999:999
//! ```
//!
//! A `name uid gid` line whose name the old host's /etc/passwd lacks maps nothing (that host
//! has no file of that user) and is skipped; [`OwnerMap::skipped`] lists such lines so that
//! the binaries can warn. So one owner map (docker/users) serves every host, e.g. an
//! IPv4-only relay without opendkim. Numeric lines are always applied. A name line while
//! ROOT/etc/passwd or ROOT/etc/group cannot be read is an error ([`OwnerMapError::NoIdDb`]):
//! then no name could be resolved, and the map would silently map nothing.
//!
//! Invariant: uids and gids are mapped independently (a file owned by `vmail:mail` gets only
//! its uid changed), an id that is not mapped is kept as it is, and one host id never maps to
//! two different ids (a conflicting line is an error with its line number).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why an owner map could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OwnerMapError {
    /// The owner-map file itself could not be read.
    #[error("{path}: cannot read owner map: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `name uid gid` line whose name cannot be looked up at all: the old host's
    /// etc/passwd or etc/group under `--root` cannot be read (a wrong `--root`), so nothing
    /// would be mapped.
    #[error("{path}:{line}: the name {name:?} cannot be resolved: {db}: {source}; point --root at the old host's root (or write the line as host-uid:host-gid=uid:gid)", path = .path.display(), db = .db.display())]
    NoIdDb {
        path: PathBuf,
        line: usize,
        name: String,
        db: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of the owner-map file is wrong.
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Host ids -> container ids, uids and gids separately. The default map is the identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerMap {
    uids: BTreeMap<u32, u32>,
    gids: BTreeMap<u32, u32>,
    skipped: Vec<SkippedName>,
    lines: Vec<Mapping>,
}

/// One applied line of an owner map, for reports: `vmail 1105 -> 901`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mapping {
    /// The user name of a `name uid gid` line (`None` for a numeric line).
    pub name: Option<String>,
    pub host_uid: u32,
    pub host_gid: u32,
    pub uid: u32,
    pub gid: u32,
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.name {
            write!(f, "{n} ")?;
        }
        if self.host_uid == self.host_gid && self.uid == self.gid {
            write!(f, "{} -> {}", self.host_uid, self.uid)
        } else {
            write!(
                f,
                "{}:{} -> {}:{}",
                self.host_uid, self.host_gid, self.uid, self.gid
            )
        }
    }
}

/// A `name uid gid` line of an owner map that was skipped because the old host has no user
/// of that name (so it owns nothing there). Displayed as a warning with file:line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedName {
    /// The owner-map file.
    pub path: PathBuf,
    /// Its 1-based line.
    pub line: usize,
    /// The user name the old host lacks.
    pub name: String,
    /// The passwd file it was looked up in (`ROOT/etc/passwd`).
    pub passwd: PathBuf,
}

impl fmt::Display for SkippedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: no user {:?} in {}: line skipped (that host has no files of {:?} to map; if it should, point --root at the old host)",
            self.path.display(),
            self.line,
            self.name,
            self.passwd.display(),
            self.name
        )
    }
}

/// One line of /etc/passwd or /etc/group that matters here: name -> (id, primary gid).
#[derive(Debug, Default)]
struct IdDb {
    users: BTreeMap<String, (u32, u32)>,
    groups: BTreeMap<String, u32>,
}

impl IdDb {
    /// Read `root`'s etc/passwd and etc/group; either missing or unreadable is an error
    /// (with the file that failed): names cannot be resolved without them.
    fn load(root: &Path) -> Result<IdDb, (PathBuf, std::io::Error)> {
        let read = |f: &str| {
            let p = root.join(f);
            std::fs::read(&p).map_err(|e| (p, e))
        };
        let mut db = IdDb::default();
        for line in String::from_utf8_lossy(&read("etc/passwd")?).lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 {
                if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                    db.users.entry(f[0].to_string()).or_insert((uid, gid));
                }
            }
        }
        for line in String::from_utf8_lossy(&read("etc/group")?).lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 {
                if let Ok(gid) = f[2].parse() {
                    db.groups.entry(f[0].to_string()).or_insert(gid);
                }
            }
        }
        Ok(db)
    }
}

impl OwnerMap {
    /// The identity map: every id kept.
    pub fn identity() -> OwnerMap {
        OwnerMap::default()
    }

    /// The `name uid gid` lines skipped because the old host has no such user (in file
    /// order). They map nothing; the binaries print each as a warning.
    pub fn skipped(&self) -> &[SkippedName] {
        &self.skipped
    }

    /// The lines that map something (host ids differ from the copy's), in file order.
    pub fn mappings(&self) -> Vec<&Mapping> {
        self.lines
            .iter()
            .filter(|m| m.host_uid != m.uid || m.host_gid != m.gid)
            .collect()
    }

    /// True when nothing is mapped.
    pub fn is_identity(&self) -> bool {
        self.uids.iter().all(|(a, b)| a == b) && self.gids.iter().all(|(a, b)| a == b)
    }

    /// Read an owner-map file. Names are resolved against `root`'s `etc/passwd` and
    /// `etc/group` (the SOURCE root: the old host, possibly mounted elsewhere).
    pub fn load(file: &Path, root: &Path) -> Result<OwnerMap, OwnerMapError> {
        let text = std::fs::read(file).map_err(|source| OwnerMapError::Read {
            path: file.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(text).map_err(|e| OwnerMapError::Line {
            path: file.to_path_buf(),
            line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            message: "not valid UTF-8".into(),
        })?;
        OwnerMap::parse(&text, file, root)
    }

    /// Parse owner-map text; `file` only names the source in errors.
    ///
    /// Lines: `name uid gid` (host user `name` -> uid, host group `name` -> gid; when no group
    /// has that name, the user's primary group is mapped; when `root` has no user `name`, the
    /// line is skipped and recorded in [`OwnerMap::skipped`]) or `host-uid:host-gid=uid:gid`.
    /// `#` starts a comment; blank lines are ignored.
    pub fn parse(text: &str, file: &Path, root: &Path) -> Result<OwnerMap, OwnerMapError> {
        let mut p = MapParser {
            file,
            root,
            db: None,
            map: OwnerMap::default(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = match raw.find('#') {
                Some(p) => &raw[..p],
                None => raw,
            }
            .trim();
            if !line.is_empty() {
                p.line(i + 1, line)?;
            }
        }
        Ok(p.map)
    }

    /// Add one numeric mapping (host uid/gid -> uid/gid). Later calls for the same host id
    /// replace earlier ones.
    pub fn insert(&mut self, host_uid: u32, host_gid: u32, uid: u32, gid: u32) {
        self.uids.insert(host_uid, uid);
        self.gids.insert(host_gid, gid);
    }

    /// Map a host uid (unmapped: kept).
    pub fn uid(&self, uid: u32) -> u32 {
        self.uids.get(&uid).copied().unwrap_or(uid)
    }

    /// Map a host gid (unmapped: kept).
    pub fn gid(&self, gid: u32) -> u32 {
        self.gids.get(&gid).copied().unwrap_or(gid)
    }

    /// Map a host owner pair.
    pub fn map(&self, uid: u32, gid: u32) -> (u32, u32) {
        (self.uid(uid), self.gid(gid))
    }

    /// Every mapped (host uid, uid), for tools that take the map as pairs (rsync --usermap).
    pub fn uid_pairs(&self) -> Vec<(u32, u32)> {
        self.uids.iter().map(|(a, b)| (*a, *b)).collect()
    }

    /// Every mapped (host gid, gid) (rsync --groupmap).
    pub fn gid_pairs(&self) -> Vec<(u32, u32)> {
        self.gids.iter().map(|(a, b)| (*a, *b)).collect()
    }
}

/// Is this extended attribute a POSIX ACL (whose value names uids and gids)?
/// Map, in place, the uids and gids named inside a POSIX ACL xattr value
/// (linux/posix_acl_xattr.h: a u32 version, then (u16 tag, u16 perm, u32 id) entries; ids
/// matter for ACL_USER (2) and ACL_GROUP (8)); a value of another shape is left as it is.
/// The one ACL id mapper: the copy engine and the owner map both use it.
pub fn map_acl_ids(value: &mut [u8], uid: &dyn Fn(u32) -> u32, gid: &dyn Fn(u32) -> u32) {
    const ACL_USER: u16 = 0x02;
    const ACL_GROUP: u16 = 0x08;
    if value.len() < 4 || (value.len() - 4) % 8 != 0 {
        return;
    }
    for e in value[4..].chunks_exact_mut(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let new = match tag {
            ACL_USER => uid(id),
            ACL_GROUP => gid(id),
            _ => continue,
        };
        e[4..8].copy_from_slice(&new.to_le_bytes());
    }
}

pub fn is_acl_xattr(name: &[u8]) -> bool {
    name == b"system.posix_acl_access" || name == b"system.posix_acl_default"
}

impl OwnerMap {
    /// Map the uids and gids named inside a POSIX ACL xattr value (linux/posix_acl_xattr.h:
    /// a 4-byte version header, then (u16 tag, u16 perm, u32 id) entries; ids matter for
    /// ACL_USER (2) and ACL_GROUP (8)). A value of another shape is returned unchanged.
    pub fn map_acl(&self, value: &[u8]) -> Vec<u8> {
        let mut v = value.to_vec();
        map_acl_ids(&mut v, &|u| self.uid(u), &|g| self.gid(g));
        v
    }
}

impl fmt::Display for OwnerMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u: Vec<String> = self.uids.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        let g: Vec<String> = self.gids.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        write!(f, "uids [{}], gids [{}]", u.join(", "), g.join(", "))
    }
}

/// [`OwnerMap::parse`] under way: the map so far, and the source root's users and groups
/// once a name line needed them.
struct MapParser<'a> {
    file: &'a Path,
    root: &'a Path,
    db: Option<IdDb>,
    map: OwnerMap,
}

/// A mapping line's ids: host uid, host gid, uid, gid.
type Ids = (u32, u32, u32, u32);

impl MapParser<'_> {
    fn err(&self, line: usize, message: String) -> OwnerMapError {
        OwnerMapError::Line {
            path: self.file.to_path_buf(),
            line,
            message,
        }
    }

    /// One line (comment cut, trimmed, not empty).
    fn line(&mut self, lineno: usize, line: &str) -> Result<(), OwnerMapError> {
        let (name, ids) = match line.split_once('=') {
            Some((host, target)) => {
                let bad = || {
                    self.err(
                        lineno,
                        format!("expected host-uid:host-gid=uid:gid, got {line:?}"),
                    )
                };
                let (hu, hg) = parse_pair(host.trim()).ok_or_else(bad)?;
                let (u, g) = parse_pair(target.trim()).ok_or_else(bad)?;
                (None, (hu, hg, u, g))
            }
            None => match self.named(lineno, line)? {
                Some((name, ids)) => (Some(name), ids),
                None => return Ok(()),
            },
        };
        let (host_uid, host_gid, uid, gid) = ids;
        insert(&mut self.map.uids, host_uid, uid).map_err(|prev| {
            self.err(
                lineno,
                format!("host uid {host_uid} is already mapped to {prev}"),
            )
        })?;
        insert(&mut self.map.gids, host_gid, gid).map_err(|prev| {
            self.err(
                lineno,
                format!("host gid {host_gid} is already mapped to {prev}"),
            )
        })?;
        self.map.lines.push(Mapping {
            name,
            host_uid,
            host_gid,
            uid,
            gid,
        });
        Ok(())
    }

    /// A `name uid gid` line: the name and its ids, the host's resolved in the source root
    /// (its user's primary group when no group has the name); None when the root has no
    /// such user (the line is skipped and recorded).
    fn named(&mut self, lineno: usize, line: &str) -> Result<Option<(String, Ids)>, OwnerMapError> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            return Err(self.err(
                lineno,
                format!("expected `name uid gid` or `host-uid:host-gid=uid:gid`, got {line:?}"),
            ));
        }
        let u: u32 = f[1]
            .parse()
            .map_err(|_| self.err(lineno, format!("uid {:?} is not a number", f[1])))?;
        let g: u32 = f[2]
            .parse()
            .map_err(|_| self.err(lineno, format!("gid {:?} is not a number", f[2])))?;
        let uname = f[0];
        if self.db.is_none() {
            let db = IdDb::load(self.root).map_err(|(p, source)| OwnerMapError::NoIdDb {
                path: self.file.to_path_buf(),
                line: lineno,
                name: uname.to_string(),
                db: p,
                source,
            })?;
            self.db = Some(db);
        }
        let Some(db) = self.db.as_ref() else {
            return Ok(None);
        };
        let Some(&(hu, primary)) = db.users.get(uname) else {
            self.map.skipped.push(SkippedName {
                path: self.file.to_path_buf(),
                line: lineno,
                name: uname.to_string(),
                passwd: self.root.join("etc/passwd"),
            });
            return Ok(None);
        };
        let hg = db.groups.get(uname).copied().unwrap_or(primary);
        Ok(Some((uname.to_string(), (hu, hg, u, g))))
    }
}

fn parse_pair(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

fn insert(m: &mut BTreeMap<u32, u32>, from: u32, to: u32) -> Result<(), u32> {
    match m.get(&from) {
        Some(&prev) if prev != to => Err(prev),
        _ => {
            m.insert(from, to);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_ids() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nvmail:x:5000:5000::/home/vmail:/bin/false\nopendkim:x:110:120::/run/opendkim:/usr/sbin/nologin\necho:x:111:65534::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nvmail:x:5000:\nopendkim:x:120:postfix\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn names_resolve_against_the_source_root() {
        let root = root_with_ids();
        let text = "# service users\n\nvmail 999 998  # comment\nopendkim 101 102\necho 7 8\n";
        let m = OwnerMap::parse(text, Path::new("map"), root.path()).unwrap();
        assert_eq!(m.map(5000, 5000), (999, 998));
        assert_eq!(m.map(110, 120), (101, 102));
        // echo has no group of its own: its primary gid (65534) is mapped.
        assert_eq!(m.map(111, 65534), (7, 8));
        // independent: vmail-owned file in group opendkim
        assert_eq!(m.map(5000, 120), (999, 102));
        // unmapped ids kept
        assert_eq!(m.map(0, 0), (0, 0));
        assert_eq!(m.map(1234, 4321), (1234, 4321));
        let shown: Vec<String> = m.mappings().iter().map(|l| l.to_string()).collect();
        assert_eq!(
            shown,
            [
                "vmail 5000:5000 -> 999:998",
                "opendkim 110:120 -> 101:102",
                "echo 111:65534 -> 7:8"
            ]
        );
    }

    #[test]
    fn names_the_host_lacks_are_skipped_and_recorded() {
        let root = root_with_ids();
        let text = "vmail 999 998\n\n# x\nnobody-here 1 2\nopendkim 101 102\nghost 3 4 # c\n";
        let m = OwnerMap::parse(text, Path::new("owners.txt"), root.path()).unwrap();
        assert_eq!(m.map(5000, 5000), (999, 998));
        assert_eq!(m.map(110, 120), (101, 102));
        // the skipped lines map nothing
        assert_eq!(m.map(1, 2), (1, 2));
        let names: Vec<(usize, &str)> = m
            .skipped()
            .iter()
            .map(|s| (s.line, s.name.as_str()))
            .collect();
        assert_eq!(names, [(4, "nobody-here"), (6, "ghost")]);
        let w = m.skipped()[0].to_string();
        assert!(
            w.starts_with("owners.txt:4: no user \"nobody-here\" in "),
            "{w}"
        );
        assert!(w.contains("etc/passwd"), "{w}");
        // a root without /etc/passwd at all: a name line cannot be resolved, unusable input;
        // numeric lines alone need no passwd
        let e = OwnerMap::parse(
            "5000:5000=3:4\nvmail 1 2\n",
            Path::new("m"),
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        let w = e.to_string();
        assert!(
            w.starts_with("m:2: the name \"vmail\" cannot be resolved: /nonexistent/etc/passwd: "),
            "{w}"
        );
        let m =
            OwnerMap::parse("5000:5000=3:4\n", Path::new("m"), Path::new("/nonexistent")).unwrap();
        assert_eq!(m.map(5000, 5000), (3, 4));
        // a skipped line is still checked for its shape and numbers
        let e = OwnerMap::parse("ghost x 2\n", Path::new("m"), root.path()).unwrap_err();
        assert!(e.to_string().contains("uid \"x\""), "{e}");
        assert!(OwnerMap::parse("vmail 1 2\n", Path::new("m"), root.path())
            .unwrap()
            .skipped()
            .is_empty());
    }

    #[test]
    fn numeric_lines() {
        let m = OwnerMap::parse(
            "5000:5001=999:998\n",
            Path::new("m"),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(m.map(5000, 5001), (999, 998));
        assert!(!m.is_identity());
        assert!(OwnerMap::identity().is_identity());
    }

    #[test]
    fn errors_name_file_and_line() {
        let root = root_with_ids();
        let cases = [
            ("vmail 999\n", 1, "expected"),
            ("vmail x 2\n", 1, "uid \"x\""),
            (
                "5000:5000=1:2\n5000:1=3:2\n",
                2,
                "host uid 5000 is already mapped to 1",
            ),
            ("1:2=3\n", 1, "expected host-uid"),
        ];
        for (text, line, msg) in cases {
            let e = OwnerMap::parse(text, Path::new("owners.txt"), root.path()).unwrap_err();
            let s = e.to_string();
            assert!(s.starts_with(&format!("owners.txt:{line}: ")), "{s}");
            assert!(s.contains(msg), "{s}");
        }
    }

    #[test]
    fn acl_entries_are_mapped() {
        let mut m = OwnerMap::identity();
        m.insert(5000, 5001, 999, 998);
        // version 2; USER_OBJ rw; USER 5000 r; GROUP 5001 r; MASK r; OTHER none
        let mut acl = vec![2, 0, 0, 0];
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 5000),
            (8, 4, 5001),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&perm.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        let out = m.map_acl(&acl);
        assert_eq!(&out[4 + 8 + 4..4 + 16], &999u32.to_le_bytes());
        assert_eq!(&out[4 + 16 + 4..4 + 24], &998u32.to_le_bytes());
        assert_eq!(out[..12], acl[..12]);
        assert_eq!(m.map_acl(b"odd"), b"odd");
    }

    #[test]
    fn load_reads_a_file() {
        let root = root_with_ids();
        let f = root.path().join("map");
        std::fs::write(&f, "vmail 1 2\n").unwrap();
        assert_eq!(
            OwnerMap::load(&f, root.path()).unwrap().map(5000, 5000),
            (1, 2)
        );
        let e = OwnerMap::load(&root.path().join("missing"), root.path()).unwrap_err();
        assert!(e.to_string().contains("cannot read owner map"));
    }
}
