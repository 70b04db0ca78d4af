//! A move into a target, made ready: the target resolved, its trees as copy volumes, the
//! owners from the image its service runs (read without starting it, mapped by name), and
//! what was found on the way (notes and warnings for the caller to print). cm-copy-data's
//! default plan and `cm-migrate run` both start here, so a run copies exactly where the
//! tool would.
//!
//! Invariant: nothing is written unless `create` is set (then only named volumes are
//! created, with Compose's labels); an image whose users cannot be read is an error unless
//! the caller maps owners itself or only looks (`dry_run`).

use std::path::Path;

use super::engine::{Engine, Ids, Mapped};
use super::{engine_of, plan, Source, Target, TargetError};
use crate::copy::Volume;
use crate::owners::OwnerMap;

/// How to make a move ready.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// `--compose`: the Compose v2 program (words allowed).
    pub compose: Option<&'a str>,
    /// `--layout guide`: the guide's layout by name.
    pub guide: bool,
    /// Trees to copy by name (empty: all the target mounts).
    pub only: &'a [String],
    /// The caller maps owners itself (`--owner-map`): the image's users are not read.
    pub owner_map_given: bool,
    /// Create named volumes that do not exist yet.
    pub create: bool,
    /// Only looking: an image that cannot be read is a note, not an error.
    pub dry_run: bool,
    /// Where the project is (default: this host).
    pub on: super::exec::Runner,
}

/// A move made ready.
#[derive(Debug)]
pub struct Prepared {
    pub target: Target,
    pub volumes: Vec<Volume>,
    /// Owners from the image (None: `--owner-map` given, the guide's layout, or no image).
    pub owners: Option<OwnerMap>,
    /// The owner mapping applied, by name (for reports).
    pub mapped: Vec<Mapped>,
    /// The image's users and groups, when they were read.
    pub image_ids: Option<Ids>,
    /// Trees mounted from the old host's own path: (path, service user owning it).
    pub in_place: Vec<(std::path::PathBuf, String)>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

impl Prepared {
    /// Some tree of the target lands in a named volume that does not exist yet (the copy
    /// creates it).
    pub fn volumes_pending(&self) -> bool {
        self.target.trees().count() > self.volumes.len() + self.in_place.len()
    }
}

/// The warning for state the old host has and the target does not mount.
fn unmounted_warnings(t: &Target, root: &Path) -> Vec<String> {
    t.unmounted_on(root)
        .into_iter()
        .map(|m| {
            format!(
                "the old host has {} ({}) but the target does not mount it: it is not copied; add to the volumes of service {}:\n    {}",
                m.state.host.display(),
                m.state.name,
                t.service(),
                m.line
            )
        })
        .collect()
}

/// Resolve `project_dir` and make the move from the old host under `root` ready.
pub fn prepare(root: &Path, project_dir: &Path, opts: &Options) -> Result<Prepared, TargetError> {
    let t = super::resolve(
        project_dir,
        &super::Options {
            compose: opts.compose,
            guide: opts.guide,
            external_tls: super::external_tls(root),
            on: opts.on.clone(),
        },
    )?;
    let mut p = Prepared {
        notes: t.notes.clone(),
        warnings: unmounted_warnings(&t, root),
        target: t,
        volumes: Vec::new(),
        owners: None,
        mapped: Vec::new(),
        image_ids: None,
        in_place: Vec::new(),
    };
    let engine = engine_of(&p.target);
    if !opts.owner_map_given {
        read_owners(&mut p, engine.as_ref(), root, opts.dry_run)?;
    }
    let needs_engine = p
        .target
        .trees()
        .any(|pl| matches!(pl.source, Source::Volume { .. }));
    let engine = engine.filter(|_| needs_engine);
    let cp = plan::copy_volumes(&p.target, root, engine.as_ref(), opts.create, opts.only)?;
    p.notes.extend(cp.notes.iter().cloned());
    if let Some(ids) = &p.image_ids {
        p.warnings.extend(plan::in_place_fixes(&cp, ids));
    }
    p.volumes = cp.volumes;
    p.in_place = cp.in_place;
    Ok(p)
}

/// The owners of a compose target from its image, into `p`.
fn read_owners(
    p: &mut Prepared,
    engine: Option<&Engine>,
    root: &Path,
    dry_run: bool,
) -> Result<(), TargetError> {
    let Some(engine) = engine else {
        return Ok(());
    };
    let Some(image) = p.target.image.clone() else {
        p.notes.push(format!(
            "service {} names no image: the copy keeps the old host's ids (give --owner-map to map them)",
            p.target.service()
        ));
        return Ok(());
    };
    let read = engine.image_ids(&image).and_then(|ids| {
        let r = super::image_owners_from(&ids, root)?;
        Ok((ids, r))
    });
    match read {
        Ok((ids, (map, shown))) => {
            p.notes.push(format!(
                "owners follow the image {image}: {}",
                if shown.is_empty() {
                    "no service user in common with the old host".to_string()
                } else {
                    shown
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
            p.owners = Some(map);
            p.mapped = shown;
            p.image_ids = Some(ids);
            Ok(())
        }
        Err(err) if dry_run => {
            p.notes.push(format!("{err} (a real run stops here)"));
            Ok(())
        }
        Err(err) => Err(TargetError::Engine(format!(
            "{err}; or give --owner-map to say which ids the copy gets"
        ))),
    }
}
