//! Paths inside another machine's root (`--root R`, the old host's file system mounted or
//! copied here), resolved as a chroot into R would resolve them: an absolute symlink target
//! is relative to R, `..` never climbs above R. Used by cm-copy-data's default plan and by
//! cm-verify's default sources, so both read the same trees.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path inside a root cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("--root {}: {source}", root.display())]
    Root { root: PathBuf, source: io::Error },
    #[error("--root {}: not a directory", .0.display())]
    NotDir(PathBuf),
    #[error("{}: cannot resolve inside --root {}: {source}", path.display(), root.display())]
    Io {
        root: PathBuf,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}: too many levels of symlinks inside --root {}", path.display(), root.display())]
    Loop { root: PathBuf, path: PathBuf },
}

/// The root itself, made absolute and resolved (it is a path on this machine); it must be
/// an existing directory.
pub fn open_root(root: &Path) -> Result<PathBuf, RootError> {
    let r = std::fs::canonicalize(root).map_err(|source| RootError::Root {
        root: root.to_path_buf(),
        source,
    })?;
    if !r.is_dir() {
        return Err(RootError::NotDir(root.to_path_buf()));
    }
    Ok(r)
}

fn parts(p: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    p.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .map(|c| c.as_os_str().to_os_string())
}

/// `path` (absolute or not, taken as seen from inside the root) resolved inside `root` as a
/// chroot would: every symlink on the way is followed, an absolute target from the root, a
/// relative one from the link's directory, `..` at the root stays at the root. The final
/// component is followed too. What does not exist is appended as given (`.`/`..` applied
/// lexically). Returns the resolved root joined with a path free of symlinks.
pub fn resolve_in(root: &Path, path: &Path) -> Result<PathBuf, RootError> {
    let base = open_root(root)?;
    let mut queue: Vec<OsString> = parts(path).rev().collect();
    let mut stack: Vec<OsString> = Vec::new();
    let mut hops = 0;
    let mut missing = false;
    while let Some(c) = queue.pop() {
        if c == "." {
            continue;
        }
        if c == ".." {
            stack.pop();
            continue;
        }
        stack.push(c);
        if missing {
            continue;
        }
        let here = base.join(stack.iter().collect::<PathBuf>());
        let err = |source| RootError::Io {
            root: root.to_path_buf(),
            path: path.to_path_buf(),
            source,
        };
        let md = match std::fs::symlink_metadata(&here) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing = true;
                continue;
            }
            Err(e) => return Err(err(e)),
        };
        if !md.file_type().is_symlink() {
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Err(RootError::Loop {
                root: root.to_path_buf(),
                path: path.to_path_buf(),
            });
        }
        let target = std::fs::read_link(&here).map_err(err)?;
        stack.pop();
        if target.is_absolute() {
            stack.clear();
        }
        queue.extend(parts(&target).rev());
    }
    Ok(base.join(stack.iter().collect::<PathBuf>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("old");
        std::fs::create_dir_all(r.join("srv/home")).unwrap();
        std::fs::create_dir_all(r.join("var/lib")).unwrap();
        symlink("/srv/home", r.join("home")).unwrap();
        symlink("../../srv/../../../srv", r.join("var/lib/acme")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let base = std::fs::canonicalize(&r).unwrap();
        assert_eq!(
            resolve_in(&r, Path::new("/home")).unwrap(),
            base.join("srv/home")
        );
        assert_eq!(
            resolve_in(&r, Path::new("home/x/../y")).unwrap(),
            base.join("srv/home/y")
        );
        assert_eq!(
            resolve_in(&r, Path::new("/var/lib/acme")).unwrap(),
            base.join("srv")
        );
        assert_eq!(
            resolve_in(&r, Path::new("/nope/a")).unwrap(),
            base.join("nope/a")
        );
        assert!(matches!(
            resolve_in(&r, Path::new("loop")),
            Err(RootError::Loop { .. })
        ));
        assert!(matches!(
            resolve_in(&r.join("none"), Path::new("home")),
            Err(RootError::Root { .. })
        ));
    }
}
