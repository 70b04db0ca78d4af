//! A fast, descriptor-relative walk of one tree: one `lstat` per entry, symlinks never
//! followed, names as bytes, parents before children (pre-order), siblings sorted by name.

use super::sys::{self, Kind, Stat};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

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
/// the walk below it never follows one). `noatime`: open with O_NOATIME where allowed.
pub fn scan(root: &Path, noatime: bool) -> io::Result<(Vec<Node>, Vec<ScanProblem>)> {
    let fd = sys::open_dir_path(root)?;
    let st = sys::fstat(fd.as_raw_fd())?;
    let mut nodes = vec![Node {
        rel: Vec::new(),
        parent: NO_PARENT,
        name_at: 0,
        st,
        link: None,
    }];
    let mut problems = Vec::new();
    visit(fd, 0, &mut nodes, &mut problems, noatime);
    Ok((nodes, problems))
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

fn visit(
    dir: OwnedFd,
    idx: usize,
    nodes: &mut Vec<Node>,
    problems: &mut Vec<ScanProblem>,
    noatime: bool,
) {
    let d: RawFd = dir.as_raw_fd();
    let mut names = match sys::read_dir(d) {
        Ok(n) => n,
        Err(error) => {
            problems.push(ScanProblem {
                rel: nodes[idx].rel.clone(),
                error,
            });
            return;
        }
    };
    names.sort_unstable();
    let mut subdirs = Vec::new();
    for name in names {
        let (rel, name_at) = join(&nodes[idx].rel, &name);
        let c = match sys::cstr(&name) {
            Ok(c) => c,
            Err(error) => {
                problems.push(ScanProblem { rel, error });
                continue;
            }
        };
        let st = match sys::lstat_at(d, &c) {
            Ok(st) => st,
            // Vanished between readdir and lstat: it is simply not part of this scan.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(error) => {
                problems.push(ScanProblem { rel, error });
                continue;
            }
        };
        let link = if st.kind == Kind::Symlink {
            match sys::readlink_at(d, &c) {
                Ok(t) => Some(t),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(error) => {
                    problems.push(ScanProblem { rel, error });
                    continue;
                }
            }
        } else {
            None
        };
        if st.kind == Kind::Dir {
            subdirs.push((nodes.len(), c));
        }
        nodes.push(Node {
            rel,
            parent: idx,
            name_at,
            st,
            link,
        });
    }
    for (child, c) in subdirs {
        match sys::open_at(d, &c, libc::O_RDONLY | libc::O_DIRECTORY, noatime) {
            Ok(fd) => {
                // The directory may have been replaced since lstat: trust what we opened.
                if let Ok(st) = sys::fstat(fd.as_raw_fd()) {
                    nodes[child].st = st;
                }
                visit(fd, child, nodes, problems, noatime)
            }
            Err(error) => problems.push(ScanProblem {
                rel: nodes[child].rel.clone(),
                error,
            }),
        }
    }
}
