//! What a copy into a resolved target does: each tree the target mounts becomes a
//! [`crate::copy::Volume`] (a bind mount's host path, or a named volume's mountpoint), each
//! single file it mounts (self-signed TLS, the account-creation switch, external TLS) is
//! copied with its metadata.
//!
//! Invariant: a named volume is created (with Compose's labels) only when `create` is set;
//! a mount whose host path IS the old host's path is never copied onto itself.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::engine::Engine;
use super::{Layout, Placement, Source, Target, TargetError};
use crate::copy::{safety, Volume};
use crate::state::Form;

/// The trees to copy, and what was noted on the way.
#[derive(Debug, Default)]
pub struct CopyPlan {
    pub volumes: Vec<Volume>,
    /// Notes: volumes created, volumes not there yet (dry run), mounts in place.
    pub notes: Vec<String>,
    /// Trees mounted from the old host's own path: nothing to copy (their owners are
    /// checked by cm-verify layout): the path and the service user owning it.
    pub in_place: Vec<(PathBuf, String)>,
}

/// Where a placement's data is on this machine: the bind path, or the volume's
/// mountpoint (created when `create`; None when absent and not created).
pub fn location(
    t: &Target,
    p: &Placement,
    engine: Option<&Engine>,
    create: bool,
    notes: &mut Vec<String>,
) -> Result<Option<PathBuf>, TargetError> {
    let (name, key, external) = match &p.source {
        Source::Bind { path } => return Ok(Some(path.clone())),
        Source::Volume {
            name,
            key,
            external,
        } => (name, key, *external),
    };
    let Some(engine) = engine else {
        return Err(TargetError::Engine(format!(
            "{} is the named volume {name}: the Docker engine is needed to find it",
            p.mount.display()
        )));
    };
    let (project, version) = match &t.layout {
        Layout::Compose {
            project, version, ..
        } => (project.as_str(), version.as_str()),
        Layout::Guide => ("", ""),
    };
    if external || !create {
        let mp = engine.mountpoint(name)?;
        if mp.is_none() && external {
            return Err(TargetError::Engine(format!(
                "the external volume {name} does not exist: create it (docker volume create {name})"
            )));
        }
        if mp.is_none() {
            notes.push(format!(
                "volume {name} does not exist yet (a copy creates it)"
            ));
        }
        return Ok(mp);
    }
    let (mp, created) = engine.ensure_volume(name, project, key, version)?;
    if created {
        notes.push(format!(
            "created volume {name} (labels of Compose project {project}, volume {key}) at {}",
            mp.display()
        ));
    }
    Ok(Some(mp))
}

/// The copy into `t` from the old host under `root`: `only` selects trees by name (empty:
/// all).
pub fn copy_volumes(
    t: &Target,
    root: &Path,
    engine: Option<&Engine>,
    create: bool,
    only: &[String],
) -> Result<CopyPlan, TargetError> {
    let mut plan = CopyPlan::default();
    for p in t.trees() {
        if !only.is_empty() && !only.contains(&p.state.name) {
            continue;
        }
        // the source as the old host sees it: resolved inside `root` as a chroot would
        let src =
            crate::root::resolve_in(root, &p.mount).map_err(|e| TargetError::Io(e.to_string()))?;
        let Some(dst) = location(t, p, engine, create, &mut plan.notes)? else {
            continue;
        };
        // a path of another machine is never this one's, whatever its name
        if t.on.is_here() && safety::resolve(&src) == safety::resolve(&dst) {
            plan.notes.push(format!(
                "{}: {} is mounted in place (the old host's own directory): nothing to copy",
                p.state.name,
                dst.display()
            ));
            plan.in_place.push((dst, p.state.owner.clone()));
            continue;
        }
        plan.volumes.push(Volume {
            name: p.state.name.clone(),
            src,
            dst,
            optional: p.state.optional,
            mail_store: p.state.mail_store,
        });
    }
    Ok(plan)
}

/// For trees mounted in place: the owner the image expects (`ids`: the image's users) where
/// the tree's top is owned otherwise, with the exact command that re-owns it.
pub fn in_place_fixes(plan: &CopyPlan, ids: &super::engine::Ids) -> Vec<String> {
    let mut out = Vec::new();
    for (path, owner) in &plan.in_place {
        let (Some(&(u, pg)), Ok(md)) = (ids.users.get(owner), std::fs::symlink_metadata(path))
        else {
            continue;
        };
        let g = ids.groups.get(owner).copied().unwrap_or(pg);
        if (md.uid(), md.gid()) != (u, g) {
            out.push(format!(
                "{} is owned by {}:{}, the image's {owner} is {u}:{g}: the container cannot use it as it is; re-own it (this changes the old host's files): chown -R {u}:{g} {}, or cm-copy-data --reown-in-place (keeps an undo record)",
                path.display(),
                md.uid(),
                md.gid(),
                path.display()
            ));
        }
    }
    out
}

/// A single file the target mounts (not the ini: settings write that), copied from the
/// old host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileCopy {
    pub name: String,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub changed: bool,
}

/// The single files `t` bind-mounts (not the ini: settings write that) that the old host
/// under `root` has: (placement, where it goes, the old host's file, its lstat).
pub fn single_files<'a>(
    t: &'a Target,
    root: &Path,
) -> Vec<(&'a Placement, PathBuf, PathBuf, std::fs::Metadata)> {
    t.placements
        .iter()
        .filter(|p| p.state.form == Form::File && p.state.name != "ini")
        .filter_map(|p| {
            let Source::Bind { path: dst } = &p.source else {
                return None;
            };
            let src = crate::root::resolve_in(root, &p.state.host).ok()?;
            let md = std::fs::symlink_metadata(&src).ok()?;
            Some((p, dst.clone(), src, md))
        })
        .collect()
}

/// Copy each single file `t` mounts that the old host has: content, mode, owner (mapped
/// by `ids`) and mtime; atomic, never readable by others on the way.
pub fn copy_files(
    t: &Target,
    root: &Path,
    ids: Option<&dyn crate::copy::MapIds>,
    dry_run: bool,
) -> Result<Vec<FileCopy>, TargetError> {
    let mut out = Vec::new();
    for (p, dst, src, md) in single_files(t, root) {
        let io = |p: &Path, e: std::io::Error| TargetError::Io(format!("{}: {e}", p.display()));
        if !t.on.is_here() {
            return Err(TargetError::Io(format!(
                "{}: the target is on {}: send it there (the copy over ssh does)",
                dst.display(),
                t.on.place()
            )));
        }
        if !md.is_file() {
            return Err(TargetError::Io(format!(
                "{} is not a regular file: copy it by hand",
                src.display()
            )));
        }
        let data = std::fs::read(&src).map_err(|e| io(&src, e))?;
        let dst = &dst;
        let changed = std::fs::read(dst).ok().as_deref() != Some(&data[..]);
        if !dry_run {
            if let Some(d) = dst.parent() {
                std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
            }
            crate::fsutil::write_atomic(dst, &data, md.mode() & 0o7777).map_err(|e| io(dst, e))?;
            let (u, g) = match ids {
                Some(m) => (m.uid(md.uid()), m.gid(md.gid())),
                None => (md.uid(), md.gid()),
            };
            std::os::unix::fs::lchown(dst, Some(u), Some(g)).map_err(|e| io(dst, e))?;
            let mtime = filetime::FileTime::from_last_modification_time(&md);
            filetime::set_file_mtime(dst, mtime).map_err(|e| io(dst, e))?;
        }
        out.push(FileCopy {
            name: p.state.name.clone(),
            src,
            dst: dst.clone(),
            changed,
        });
    }
    Ok(out)
}
