//! Hard links of a restricted delta (`Options::changed`): the walk reads only the changed
//! directories and carries every other entry over from the earlier manifest, unread, with
//! the link group that manifest gave it. An inode with names on both sides must stay one
//! inode in the copy and one group in the new manifest, so before the walk:
//!
//! - the earlier manifest's linked entries (only those: memory grows with the linked
//!   entries, not the store) say which groups have names in walked and in carried
//!   directories. A carried name lies in a directory that did not change, so it still names
//!   the inode it named then: one `lstat` of it on each side (and its attributes) tells
//!   whether its copy is right, by the walk's own test. Then the walked names are linked to
//!   its copy and recorded with its group ([`Known`]); otherwise (or after a run a restart
//!   interrupted, whose copies are read again) its directories are walked too (widened), as
//!   the walk cannot rewrite a carried name nor a manifest line written before it.
//! - the walked directories are listed for inodes with more names than the walk will meet
//!   (a name made in a changed directory for an inode whose other names are in carried ones:
//!   the journal names only the new name's directory). Their other names are looked for in
//!   the earlier manifest among the carried files of the same size and time, and confirmed
//!   by their inode. A name that cannot be found so (one outside the volume, unless the
//!   earlier manifest recorded the inode's walked names as a group of their own), or whose
//!   copy is not as the source, cannot be linked without reading every carried directory:
//!   the volume is then walked in full (and said so in a note).
//!
//! New groups are numbered above the earlier manifest's highest, so they never clash with a
//! carried one.

use super::{same_meta, same_xattrs, MapIds, Xattrs};
use crate::manifest;
use crate::sys::{self, Stat, XTarget};
use crate::tree::{Entry, FileType};
use crate::walk;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// An inode with names in carried directories, to which walked names are linked.
pub(super) struct Known {
    /// Its source (dev, ino).
    pub src: (u64, u64),
    pub group: u64,
    /// One of its carried names (the copy's name it is linked from).
    pub first_rel: Vec<u8>,
    /// Its copy's (ino, dev).
    pub copy: (u64, u64),
    /// The manifest line of its names (path aside).
    pub entry: Entry,
}

/// What the walk of a restricted delta does about hard links.
pub(super) struct Linking {
    /// The directories to walk (widened); None: the whole volume.
    pub only: Option<BTreeSet<Vec<u8>>>,
    /// The highest group number taken: new groups are numbered above it.
    pub next_group: u64,
    pub known: Vec<Known>,
    /// Carried entries that get a group (they had a single name when recorded).
    pub regroup: HashMap<Vec<u8>, u64>,
    pub note: Option<String>,
}

/// A linked entry of the earlier manifest.
struct Old {
    group: u64,
    path: Box<[u8]>,
    sha: Option<[u8; 32]>,
}

/// Where a name's directory stands: walked (the root's names always are) or carried.
fn walked(only: &BTreeSet<Vec<u8>>, rel: &[u8]) -> bool {
    let parent = parent_of(rel);
    parent.is_empty() || super::run::must_walk(only, parent)
}

fn parent_of(rel: &[u8]) -> &[u8] {
    walk::split(rel).0
}

fn rel_of(e: &Entry) -> Vec<u8> {
    crate::tree::path_bytes(&e.path).to_vec()
}

/// The entry at `rel` beneath `root`, unfollowed, with its extended attributes.
fn stat_beneath(root: RawFd, rel: &[u8], xbuf: &mut Vec<u8>) -> Option<(Stat, Xattrs)> {
    let (parent, name) = walk::split(rel);
    let d = sys::open_dir_beneath(root, parent, true).ok()?;
    let c = sys::cstr(name).ok()?;
    let st = sys::lstat_at(d.as_raw_fd(), &c).ok()?;
    let x = walk::read_xattrs(&XTarget::At(d.as_raw_fd(), &c), xbuf).ok()?;
    Some((st, x))
}

/// The sides of a volume the resolution reads.
struct Sides<'a> {
    src: RawFd,
    dst: RawFd,
    ids: Option<&'a dyn MapIds>,
    /// A copy as right as its metadata (false after a run a restart interrupted).
    trust: bool,
    xbuf: Vec<u8>,
}

impl Sides<'_> {
    /// The inode the carried names `names` share, when its copy is right: each side's names
    /// one regular file, source and copy with the same metadata, size and attributes (the
    /// walk's own test), its content hash recorded. Its source stat and manifest line; None:
    /// walk them.
    fn carried(&mut self, names: &[&Old], group: u64) -> Option<(Stat, Known)> {
        let first = names.first().filter(|_| self.trust)?;
        let sha = first.sha?;
        let (mut s0, mut c0) = (None::<(Stat, Xattrs)>, None::<(Stat, Xattrs)>);
        for n in names {
            let s = stat_beneath(self.src, &n.path, &mut self.xbuf)?;
            let c = stat_beneath(self.dst, &n.path, &mut self.xbuf)?;
            if s.0.kind != FileType::File || c.0.kind != FileType::File {
                return None;
            }
            let same = |a: &Option<(Stat, Xattrs)>, b: &Stat| {
                a.as_ref()
                    .map_or(true, |a| (a.0.dev, a.0.ino) == (b.dev, b.ino))
            };
            if !same(&s0, &s.0) || !same(&c0, &c.0) {
                return None;
            }
            s0.get_or_insert(s);
            c0.get_or_insert(c);
        }
        let ((s, sx), (c, cx)) = (s0?, c0?);
        let unchanged =
            same_meta(&s, &c, self.ids) && s.size == c.size && same_xattrs(&sx, &cx, self.ids);
        if !unchanged {
            return None;
        }
        let entry = super::run::entry(&first.path, &c, Some(sha), None, cx, Some(group));
        let known = Known {
            src: (s.dev, s.ino),
            group,
            first_rel: first.path.to_vec(),
            copy: (c.ino, c.dev),
            entry,
        };
        Some((s, known))
    }
}

/// Plan the hard links of a delta restricted to `only` (see the module's text).
pub(super) fn plan(
    only: BTreeSet<Vec<u8>>,
    manifest: &Path,
    src: RawFd,
    dst: Option<RawFd>,
    ids: Option<&dyn MapIds>,
    trust: bool,
) -> Linking {
    let full = |note: Option<String>| Linking {
        only: None,
        next_group: 0,
        known: Vec::new(),
        regroup: HashMap::new(),
        note,
    };
    let Some(dst) = dst else {
        return full(None);
    };
    // No earlier manifest: nothing is carried. One that cannot be read: the walk's own
    // reader says why, and what it would carry is walked.
    let Some(old) = read_linked(manifest) else {
        return full(None);
    };
    let mut l = Linking {
        only: Some(only),
        next_group: old.iter().map(|o| o.group).max().unwrap_or(0),
        known: Vec::new(),
        regroup: HashMap::new(),
        note: None,
    };
    let mut sides = Sides {
        src,
        dst,
        ids,
        trust,
        xbuf: vec![0u8; 1024],
    };
    let carried = spanning(&mut l, &old, &mut sides);
    if let Err(n) = unseen(&mut l, &carried, &old, manifest, &mut sides) {
        return full(Some(format!(
            "{n} {} with several names reach{} from the changed directories to names the change journal did not name (or outside the volume): walked in full",
            if n == 1 { "inode" } else { "inodes" },
            if n == 1 { "es" } else { "" }
        )));
    }
    l
}

/// The earlier manifest's linked entries, in group order; None without a readable one.
fn read_linked(manifest: &Path) -> Option<Vec<Old>> {
    let mut r = manifest::Reader::open(manifest).ok()?;
    let mut v = Vec::new();
    while let Some(e) = r.next_linked().ok()? {
        // (a linked symlink or node is never known from a carried name: walked)
        if let (Some(g), true) = (e.link_group, e.kind != FileType::Dir) {
            v.push(Old {
                group: g,
                path: rel_of(&e).into_boxed_slice(),
                sha: e.sha256,
            });
        }
    }
    v.sort_by_key(|o| o.group);
    v.shrink_to_fit();
    Some(v)
}

/// Groups with names on both sides: resolved from a carried name ([`Known`]) or walked
/// whole (the restriction widened, until no group is left with a changed inode on both
/// sides). Returns how many carried names each known inode has.
fn spanning(l: &mut Linking, old: &[Old], sides: &mut Sides) -> HashMap<(u64, u64), u64> {
    let mut done: HashSet<u64> = HashSet::new();
    let mut carried_names = HashMap::new();
    loop {
        let mut widened = false;
        for g in old.chunk_by(|a, b| a.group == b.group) {
            let group = g[0].group;
            let Some(only) = l.only.as_mut() else { break };
            if done.contains(&group) {
                continue;
            }
            let (w, c): (Vec<&Old>, Vec<&Old>) = g.iter().partition(|o| walked(only, &o.path));
            if w.is_empty() || c.is_empty() {
                continue;
            }
            done.insert(group);
            // (an inode two groups name, as a manifest of a release before this fix may
            // record it: the second group's names are walked and take the first's group)
            let known = sides
                .carried(&c, group)
                .filter(|(_, k)| !carried_names.contains_key(&k.src));
            match known {
                Some((st, k)) => {
                    // a link count no higher than the carried names: no walked name is left
                    if st.nlink > c.len() as u64 {
                        carried_names.insert(k.src, c.len() as u64);
                        l.known.push(k);
                    }
                }
                None => {
                    // Changed (or not as recorded): a carried name would keep the old inode
                    // while the walk copies the new, so its directory is walked.
                    for o in &c {
                        only.insert(parent_of(&o.path).to_vec());
                    }
                    widened = true;
                }
            }
        }
        if !widened {
            break;
        }
    }
    carried_names
}

/// A walked inode whose names are not all met by the walk.
struct Unseen {
    st: Stat,
    /// How many of its names the walk will not meet.
    missing: u64,
    /// Its walked names.
    names: Vec<Vec<u8>>,
    /// The groups the earlier manifest gave its walked names, where it recorded them as
    /// they are (same size and time).
    recorded: Vec<u64>,
    /// Its carried names found.
    found: Vec<Found>,
}

/// A carried name of an unseen inode, as the earlier manifest records it.
struct Found {
    path: Vec<u8>,
    sha: Option<[u8; 32]>,
    group: Option<u64>,
}

impl Unseen {
    /// Recorded alone: its walked names were a whole group of the earlier manifest, as they
    /// are now, so its other names were outside the volume then (and a carried directory
    /// has no new ones).
    fn alone(&self, old: &[Old]) -> bool {
        let [g, rest @ ..] = self.recorded.as_slice() else {
            return false;
        };
        let members = old.iter().filter(|o| o.group == *g).count();
        self.found.is_empty()
            && rest.iter().all(|r| r == g)
            && self.recorded.len() == self.names.len()
            && members == self.names.len()
    }
}

/// Inodes of the walked directories with names the walk will not meet and the earlier
/// manifest's groups do not explain: their carried names found by size, time and inode
/// ([`Known`], numbered anew when they had one name), else `Err(how many)`.
fn unseen(
    l: &mut Linking,
    carried: &HashMap<(u64, u64), u64>,
    old: &[Old],
    manifest: &Path,
    sides: &mut Sides,
) -> Result<(), usize> {
    let Some(only) = l.only.as_ref() else {
        return Ok(());
    };
    let mut seen: HashMap<(u64, u64), Unseen> = HashMap::new();
    for d in walked_dirs(only) {
        let ls = walk::list(sides.src, &d, true, false, &mut sides.xbuf);
        for it in ls.items {
            if it.st.kind == FileType::Dir || it.st.nlink < 2 {
                continue;
            }
            let u = seen.entry((it.st.dev, it.st.ino)).or_insert(Unseen {
                st: it.st,
                missing: it.st.nlink,
                names: Vec::new(),
                recorded: Vec::new(),
                found: Vec::new(),
            });
            u.missing = u.missing.saturating_sub(1);
            u.names.push(walk::join(&d, &it.name));
        }
    }
    seen.retain(|k, u| {
        u.missing = u
            .missing
            .saturating_sub(carried.get(k).copied().unwrap_or(0));
        // a known inode's other names were outside the volume when it was recorded
        u.missing > 0 && !carried.contains_key(k)
    });
    if seen.is_empty() {
        return Ok(());
    }
    find_carried(&mut seen, only, manifest, sides);
    let mut lost = 0;
    for u in seen.into_values() {
        if u.alone(old) {
            continue;
        }
        match adopt(l, u, sides) {
            Some(k) => l.known.push(k),
            None => lost += 1,
        }
    }
    if lost > 0 {
        return Err(lost);
    }
    Ok(())
}

/// The walked directories: those named and their ancestors.
fn walked_dirs(only: &BTreeSet<Vec<u8>>) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    out.insert(Vec::new());
    for d in only {
        let mut p = d.as_slice();
        while !p.is_empty() && out.insert(p.to_vec()) {
            p = parent_of(p);
        }
    }
    out
}

/// The carried files of the earlier manifest that are the unseen inodes: same size and
/// modification time (a new name changes neither), then the same inode.
fn find_carried(
    seen: &mut HashMap<(u64, u64), Unseen>,
    only: &BTreeSet<Vec<u8>>,
    manifest: &Path,
    sides: &mut Sides,
) {
    let mut by_meta: HashMap<(u64, i64, u32), Vec<(u64, u64)>> = HashMap::new();
    let mut by_name: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
    for (k, u) in seen.iter() {
        let m = (u.st.size, u.st.mtime.sec, u.st.mtime.nsec);
        by_meta.entry(m).or_default().push(*k);
        by_name.extend(u.names.iter().map(|n| (n.clone(), *k)));
    }
    let Ok(mut r) = manifest::Reader::open(manifest) else {
        return;
    };
    // only the lines of those sizes are parsed
    let sizes: HashSet<Vec<u8>> = seen
        .values()
        .map(|u| u.st.size.to_string().into())
        .collect();
    while let Ok(Some(e)) = r.next_picked(&|f| sizes.contains(f[5])) {
        let m = (e.size, e.mtime.sec, e.mtime.nsec);
        let Some(keys) = by_meta.get(&m) else {
            continue;
        };
        let rel = rel_of(&e);
        if e.kind != FileType::File {
            continue;
        }
        if walked(only, &rel) {
            let u = by_name.get(&rel).and_then(|k| seen.get_mut(k));
            if let (Some(u), Some(g)) = (u, e.link_group) {
                if keys.contains(&(u.st.dev, u.st.ino)) {
                    u.recorded.push(g);
                }
            }
            continue;
        }
        let Some((st, _)) = stat_beneath(sides.src, &rel, &mut sides.xbuf) else {
            continue;
        };
        let k = (st.dev, st.ino);
        if let (true, Some(u)) = (keys.contains(&k), seen.get_mut(&k)) {
            u.found.push(Found {
                path: rel,
                sha: e.sha256,
                group: e.link_group,
            });
        }
    }
}

/// An unseen inode whose carried names were all found, as a [`Known`] (its group kept, or a
/// new one given to its single carried name); None when it cannot be linked so.
fn adopt(l: &mut Linking, u: Unseen, sides: &mut Sides) -> Option<Known> {
    if u.found.len() as u64 != u.missing {
        return None;
    }
    let groups: BTreeSet<Option<u64>> = u.found.iter().map(|f| f.group).collect();
    let group = match groups.into_iter().collect::<Vec<_>>().as_slice() {
        [Some(g)] => *g,
        [None] if u.found.len() == 1 => {
            l.next_group += 1;
            l.next_group
        }
        _ => return None,
    };
    let names: Vec<Old> = u
        .found
        .iter()
        .map(|f| Old {
            group,
            path: f.path.clone().into_boxed_slice(),
            sha: f.sha,
        })
        .collect();
    let refs: Vec<&Old> = names.iter().collect();
    let (_, k) = sides.carried(&refs, group)?;
    if u.found[0].group.is_none() {
        l.regroup.insert(u.found[0].path.clone(), group);
    }
    Some(k)
}
