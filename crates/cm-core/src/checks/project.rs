//! The inputs of `layout` and of `all`'s volume checks, from the target as
//! [`crate::target`] resolves it: the same mounts, named volumes and owners the copy used.
//!
//! Invariant: read-only. A named volume that does not exist is a finding (nothing was
//! copied there), never created here.

use std::path::{Path, PathBuf};

use super::{finding, CheckError, Finding, ImageIds, Mount, ProjectLayout};
use crate::target::{self, Settings, Source, Target};

/// The resolved project: each tree's mount with where its data is on this machine.
#[derive(Debug, Default)]
pub struct Resolved {
    pub mounts: Vec<Mount>,
    pub notes: Vec<String>,
    pub findings: Vec<Finding>,
    /// The image's ids read through the engine (when neither --image-root nor
    /// --image-users says).
    pub image: Option<ImageIds>,
    /// The mounted ini (ini-mount targets).
    pub ini: Option<PathBuf>,
}

pub use crate::target::engine_of;

/// Resolve the target of `p` (exit 2 when it cannot be: no directory, no compose file,
/// no state mounted, no Compose v2) and find each tree's data.
pub fn resolve(p: &ProjectLayout, want_image: bool) -> Result<(Target, Resolved), CheckError> {
    let t = target::resolve(
        p.project_dir,
        &target::Options {
            compose: p.compose,
            guide: p.guide,
            external_tls: None,
            on: Default::default(),
        },
    )
    .map_err(|e| CheckError::Other(e.to_string()))?;
    let mut r = Resolved {
        notes: t.notes.clone(),
        ..Default::default()
    };
    let engine = engine_of(&t);
    r.add_trees(&t, engine.as_ref());
    r.add_binds(&t);
    if let Settings::IniMount { ini, .. } = &t.settings {
        r.ini = Some(ini.clone());
        if !ini.is_file() {
            r.findings.push(finding(
                "layout",
                ini.display().to_string(),
                "mounted as chatmail.ini but missing: write it (cm-ini-to-env --project-dir)",
            ));
        }
    }
    if let (true, Some(e), Some(image)) = (want_image, &engine, &t.image) {
        r.add_image(e, image);
    }
    Ok((t, r))
}

impl Resolved {
    /// Each tree's data on this machine, or a finding: a named volume that does not exist,
    /// a mount that cannot be placed.
    fn add_trees(&mut self, t: &Target, engine: Option<&target::engine::Engine>) {
        for pl in t.trees() {
            let mut notes = Vec::new();
            match target::plan::location(t, pl, engine, false, &mut notes) {
                Ok(Some(source)) => self.mounts.push(Mount {
                    source,
                    target: pl.mount.clone(),
                }),
                Ok(None) => {
                    if let Source::Volume { name, .. } = &pl.source {
                        self.findings.push(finding(
                            "layout",
                            format!("volume {name}"),
                            format!(
                                "mounted at {} but does not exist: copy it (cm-copy-data)",
                                pl.mount.display()
                            ),
                        ));
                    }
                }
                Err(e) => self.findings.push(finding(
                    "layout",
                    pl.mount.display().to_string(),
                    e.to_string(),
                )),
            }
        }
    }

    /// Every other bind mount of the service: its host path must exist (Docker would create
    /// an empty directory owned by root).
    fn add_binds(&mut self, t: &Target) {
        for (source, target) in &t.binds {
            let ini = matches!(&t.settings, Settings::IniMount { ini, .. } if ini == source);
            if !ini && !self.mounts.iter().any(|m| &m.target == target) {
                self.mounts.push(Mount {
                    source: source.clone(),
                    target: target.clone(),
                });
            }
        }
    }

    /// The image's users and groups, read through the engine (a note when they cannot be).
    fn add_image(&mut self, e: &target::engine::Engine, image: &str) {
        match e.image_ids(image) {
            Ok(ids) => {
                self.notes
                    .push(format!("owners compared with the users of image {image}"));
                self.image = Some(ImageIds {
                    users: ids.users.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
                    groups: ids.groups,
                });
            }
            Err(err) => self
                .notes
                .push(format!("owners not compared with the image's users: {err}")),
        }
    }
}

/// The trees of the target: (container mount, data here) for each tree mounted and present
/// (for [`super::volume_checks_of`]).
pub fn volume_pairs(t: &Target, r: &Resolved) -> Vec<(PathBuf, PathBuf)> {
    t.trees()
        .filter_map(|pl| {
            let m = r.mounts.iter().find(|m| m.target == pl.mount)?;
            Some((pl.mount.clone(), m.source.clone()))
        })
        .collect()
}

/// `env` of an ini-mount target: the mounted ini means what the old host's `old` means
/// (every setting compared as chatmail reads it) and the project's `.env` carries the
/// values of the variables the compose file interpolates.
pub fn check_ini_mount(
    old: &Path,
    mounted: &Path,
    env: &Path,
    vars: &[String],
) -> Result<super::Outcome, CheckError> {
    let mut out = super::Outcome::default();
    if !mounted.is_file() {
        out.findings.push(finding(
            "env",
            mounted.display().to_string(),
            "missing: write it with cm-ini-to-env --project-dir",
        ));
        return Ok(out);
    }
    let (a, b) = (crate::ini::read(old)?, crate::ini::read(mounted)?);
    let (pa, pb) = (a.params()?, b.params()?);
    for p in crate::params::PARAMS {
        let (x, y) = (pa.get(p.name), pb.get(p.name));
        if !crate::params::values_equal(p.name, x, y) {
            out.findings.push(finding(
                "env",
                p.name,
                format!("old host {x:?}, mounted ini {y:?}"),
            ));
        }
    }
    let have = if env.is_file() {
        crate::dotenv::read_file(env)?
    } else {
        Default::default()
    };
    for (k, v) in crate::target::settings::interpolated_values(vars, pa) {
        if have.get(&k) != Some(&v) {
            out.findings.push(finding(
                "env",
                k.clone(),
                format!(
                    "the compose file interpolates it: {} has {:?}, the old host's ini {v:?}",
                    env.display(),
                    have.get(&k)
                ),
            ));
        }
    }
    Ok(out)
}
