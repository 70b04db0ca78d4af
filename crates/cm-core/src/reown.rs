//! Re-owning a tree in place, with an undo record: for a target that mounts the old host's
//! own directory (`/home/vmail:/home/vmail`), nothing is copied, so the owners the image
//! expects have to be set on the old host's files themselves. Every entry whose owner the
//! map changes is first written to an undo record (its path, old uid, gid and mode), the
//! record is complete on disk (fsync, rename) before the first `lchown`, and [`undo`] puts
//! every recorded owner and mode back.
//!
//! Invariants: symlinks are never followed (lchown on the link itself); a setuid or setgid
//! bit the kernel clears on chown is set again; the record is private (0600) and is never
//! overwritten; memory is bounded by the depth of the tree (the walk is depth first and
//! the record is streamed to disk and read back as a stream).

use std::io::{self, BufRead, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::owners::OwnerMap;
use crate::quote;

const MAGIC: &str = "cm-reown 1";

/// Why a re-own (or its undo) failed.
#[derive(Debug, thiserror::Error)]
pub enum ReownError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}: {msg} (not an undo record of cm-copy-data --reown-in-place)", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{} exists already: an undo record is never overwritten", .0.display())]
    Exists(PathBuf),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ReownError + '_ {
    move |source| ReownError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a re-own did (or would do).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Reowned {
    pub root: PathBuf,
    /// Entries looked at.
    pub entries: u64,
    /// Entries whose owner was (or would be) changed.
    pub changed: u64,
    /// The undo record (None when nothing needed changing, or a dry run).
    pub record: Option<PathBuf>,
}

/// Depth-first walk below `root` (root included), never following a symlink: `f` gets the
/// path relative to `root` (empty for the root) and its lstat.
fn walk(
    root: &Path,
    f: &mut dyn FnMut(&Path, &std::fs::Metadata) -> Result<(), ReownError>,
) -> Result<(), ReownError> {
    let md = std::fs::symlink_metadata(root).map_err(io_at(root))?;
    f(Path::new(""), &md)?;
    let mut stack: Vec<(PathBuf, std::fs::ReadDir)> = Vec::new();
    if md.is_dir() {
        stack.push((
            PathBuf::new(),
            std::fs::read_dir(root).map_err(io_at(root))?,
        ));
    }
    while let Some((rel, it)) = stack.last_mut() {
        let Some(e) = it.next() else {
            stack.pop();
            continue;
        };
        let abs_dir = root.join(&*rel);
        let e = e.map_err(io_at(&abs_dir))?;
        let child = rel.join(e.file_name());
        let abs = root.join(&child);
        let md = std::fs::symlink_metadata(&abs).map_err(io_at(&abs))?;
        f(&child, &md)?;
        if md.is_dir() {
            let rd = std::fs::read_dir(&abs).map_err(io_at(&abs))?;
            stack.push((child, rd));
        }
    }
    Ok(())
}

/// Re-own `root` in place by `map`, the undo record written first to `record` (which must
/// not exist). `dry_run` only counts.
pub fn reown(
    root: &Path,
    map: &OwnerMap,
    record: &Path,
    dry_run: bool,
) -> Result<Reowned, ReownError> {
    let mut r = Reowned {
        root: root.to_path_buf(),
        ..Default::default()
    };
    if !dry_run && std::fs::symlink_metadata(record).is_ok() {
        return Err(ReownError::Exists(record.to_path_buf()));
    }
    let tmp = crate::fsutil::temp_path_for(record);
    let mut out = if dry_run {
        None
    } else {
        Some(begin_record(record, &tmp, root)?)
    };
    let walked = walk(root, &mut |rel, md| {
        r.entries += 1;
        if map.map(md.uid(), md.gid()) == (md.uid(), md.gid()) {
            return Ok(());
        }
        r.changed += 1;
        if let Some(w) = out.as_mut() {
            writeln!(
                w,
                "{} {} {:o} {}",
                md.uid(),
                md.gid(),
                md.mode() & 0o7777,
                quote::quote_path(rel)
            )
            .map_err(io_at(&tmp))?;
        }
        Ok(())
    });
    if let Err(e) = walked {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let Some(w) = out else {
        return Ok(r);
    };
    if !finish_record(w, &tmp, record, r.changed)? {
        return Ok(r);
    }
    r.record = Some(record.to_path_buf());
    apply(record, &mut |abs, uid, gid, mode| {
        let (u, g) = map.map(uid, gid);
        set_owner(abs, u, g, mode)
    })?;
    Ok(r)
}

/// The undo record begun in its private temporary `tmp` beside `record` (0600, never
/// over an existing file): its magic line and the root.
fn begin_record(
    record: &Path,
    tmp: &Path,
    root: &Path,
) -> Result<BufWriter<std::fs::File>, ReownError> {
    if let Some(d) = record.parent() {
        std::fs::create_dir_all(d).map_err(io_at(d))?;
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io_at(tmp))?;
    let mut w = BufWriter::new(f);
    writeln!(w, "{MAGIC}\n@root {}", quote::quote_path(root)).map_err(io_at(tmp))?;
    Ok(w)
}

/// The undo record ended (`@end` with its count) and on disk, then renamed into place;
/// with nothing to change it is removed instead (false).
fn finish_record(
    mut w: BufWriter<std::fs::File>,
    tmp: &Path,
    record: &Path,
    changed: u64,
) -> Result<bool, ReownError> {
    writeln!(w, "@end {changed}").map_err(io_at(tmp))?;
    let f = w.into_inner().map_err(|e| io_at(tmp)(e.into_error()))?;
    f.sync_all().map_err(io_at(tmp))?;
    if changed == 0 {
        std::fs::remove_file(tmp).map_err(io_at(tmp))?;
        return Ok(false);
    }
    std::fs::rename(tmp, record).map_err(io_at(record))?;
    Ok(true)
}

/// lchown `abs` to `u:g`, then put back a setuid/setgid bit the kernel cleared.
fn set_owner(abs: &Path, u: u32, g: u32, mode: u32) -> Result<(), ReownError> {
    std::os::unix::fs::lchown(abs, Some(u), Some(g)).map_err(io_at(abs))?;
    let md = std::fs::symlink_metadata(abs).map_err(io_at(abs))?;
    if !md.file_type().is_symlink() && md.mode() & 0o7777 != mode {
        std::fs::set_permissions(abs, std::fs::Permissions::from_mode(mode)).map_err(io_at(abs))?;
    }
    Ok(())
}

/// What is done with each entry of a record: (absolute path, old uid, old gid, mode).
type OnEntry<'a> = dyn FnMut(&Path, u32, u32, u32) -> Result<(), ReownError> + 'a;

/// Every entry of a record, in order: (absolute path, old uid, old gid, mode); the whole
/// record is read and checked first, so a cut or damaged one changes nothing.
fn apply(record: &Path, f: &mut OnEntry) -> Result<u64, ReownError> {
    entries(record, &mut |_, _, _, _| Ok(()))?;
    entries(record, f)
}

fn entries(record: &Path, f: &mut OnEntry) -> Result<u64, ReownError> {
    let bad = |line: usize, msg: &str| ReownError::Format {
        path: record.to_path_buf(),
        line,
        msg: msg.to_string(),
    };
    let file = std::fs::File::open(record).map_err(io_at(record))?;
    let mut lines = io::BufReader::new(file).lines().enumerate();
    let mut next = || -> Result<Option<(usize, String)>, ReownError> {
        match lines.next() {
            Some((i, Ok(l))) => Ok(Some((i + 1, l))),
            Some((_, Err(e))) => Err(io_at(record)(e)),
            None => Ok(None),
        }
    };
    if next()?.map(|(_, l)| l) != Some(MAGIC.to_string()) {
        return Err(bad(1, "no `cm-reown 1` first line"));
    }
    let root = match next()? {
        Some((_, l)) if l.starts_with("@root ") => PathBuf::from(std::ffi::OsStr::from_bytes(
            &unquote(&l[6..]).map_err(|m| bad(2, &m))?,
        )),
        _ => return Err(bad(2, "no `@root` line")),
    };
    let mut n = 0u64;
    while let Some((i, l)) = next()? {
        if let Some(c) = l.strip_prefix("@end ") {
            return match c.parse::<u64>() {
                Ok(c) if c == n => Ok(n),
                _ => Err(bad(i, "the count at @end does not match the entries")),
            };
        }
        let mut it = l.splitn(4, ' ');
        let (Some(u), Some(g), Some(m), Some(p)) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(bad(i, "not `UID GID MODE PATH`"));
        };
        let num = |s: &str, radix| u32::from_str_radix(s, radix).map_err(|_| bad(i, "a number"));
        let rel = unquote(p).map_err(|m| bad(i, &m))?;
        let abs = root.join(std::ffi::OsStr::from_bytes(&rel));
        f(&abs, num(u, 10)?, num(g, 10)?, num(m, 8)?)?;
        n += 1;
    }
    Err(bad(0, "truncated: no @end line"))
}

/// A path as [`quote::quote_path`] printed it.
fn unquote(s: &str) -> Result<Vec<u8>, String> {
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => quote::unescape(inner),
        None => Ok(s.as_bytes().to_vec()),
    }
}

/// Put back every owner and mode an undo record holds; the number of entries restored.
pub fn undo(record: &Path) -> Result<u64, ReownError> {
    apply(record, &mut |abs, uid, gid, mode| {
        set_owner(abs, uid, gid, mode)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_tree_is_reowned_after_its_record_and_the_record_undoes_it() {
        if !nix::unistd::geteuid().is_root() {
            return; // chown needs root; CI runs as root
        }
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("vmail");
        fs::create_dir_all(root.join("mail/a b")).unwrap();
        fs::write(root.join("mail/a b/m\n1"), "x").unwrap();
        fs::write(root.join("other"), "y").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("mail/link")).unwrap();
        for p in ["", "mail", "mail/a b", "mail/a b/m\n1", "other"] {
            std::os::unix::fs::lchown(root.join(p), Some(1105), Some(1105)).unwrap();
        }
        fs::set_permissions(root.join("other"), fs::Permissions::from_mode(0o2755)).unwrap();
        std::os::unix::fs::lchown(root.join("mail/link"), Some(1105), Some(1105)).unwrap();
        let map = OwnerMap::parse("1105:1105=801:801\n", Path::new("m"), Path::new("/")).unwrap();
        let rec = t.path().join("undo/vmail.undo");
        let dry = reown(&root, &map, &rec, true).unwrap();
        assert_eq!((dry.entries, dry.changed, dry.record), (6, 6, None));
        assert!(!rec.exists());
        let r = reown(&root, &map, &rec, false).unwrap();
        assert_eq!(r.changed, 6);
        assert_eq!(fs::metadata(&rec).unwrap().mode() & 0o777, 0o600);
        for p in ["", "mail/a b/m\n1", "other"] {
            let md = fs::symlink_metadata(root.join(p)).unwrap();
            assert_eq!((md.uid(), md.gid()), (801, 801), "{p:?}");
        }
        assert_eq!(
            fs::metadata(root.join("other")).unwrap().mode() & 0o7777,
            0o2755,
            "setgid kept"
        );
        assert_eq!(
            fs::metadata("/etc/passwd").unwrap().uid(),
            0,
            "link not followed"
        );
        // the record is never overwritten
        assert!(matches!(
            reown(&root, &map, &rec, false),
            Err(ReownError::Exists(_))
        ));
        assert_eq!(undo(&rec).unwrap(), 6);
        for p in ["", "mail/a b/m\n1", "mail/link"] {
            let md = fs::symlink_metadata(root.join(p)).unwrap();
            assert_eq!((md.uid(), md.gid()), (1105, 1105), "{p:?}");
        }
        // a cut record is refused, nothing changed
        let text = fs::read_to_string(&rec).unwrap();
        let cut = t.path().join("cut.undo");
        fs::write(&cut, &text[..text.rfind("@end").unwrap()]).unwrap();
        reown(&root, &map, &t.path().join("again.undo"), false).unwrap();
        let e = undo(&cut).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let md = fs::symlink_metadata(root.join("mail")).unwrap();
        assert_eq!(md.uid(), 801, "a cut record changed nothing");
    }
}
