//! The default plan of cm-copy-data: the target resolved from the project's compose file
//! (cm_core::target), its trees as copy volumes, the owner map from the target's image.

use std::path::Path;

use cm_core::copy::Volume;
use cm_core::owners::OwnerMap;
use cm_core::target::{self, engine::Engine, plan, Target};

/// What the default plan copies, and what was found on the way.
pub struct Resolved {
    pub target: Target,
    pub volumes: Vec<Volume>,
    /// Owners from the image (None: --owner-map was given, or the guide's layout).
    pub owners: Option<OwnerMap>,
    /// Lines for stderr (notes and warnings, already prefixed).
    pub said: Vec<String>,
}

/// Resolve `project_dir` (`guide`: the guide's layout by name) and plan the copy from
/// `root`; `owner_map_given` skips reading the image's users; `dry_run` creates no volume.
pub fn resolve(
    root: &Path,
    project_dir: &Path,
    compose: Option<&str>,
    guide: bool,
    only: &[String],
    owner_map_given: bool,
    dry_run: bool,
) -> Result<Resolved, String> {
    let t = target::resolve(
        project_dir,
        &target::Options {
            compose,
            guide,
            external_tls: target::external_tls(root),
        },
    )
    .map_err(|e| e.to_string())?;
    let mut said: Vec<String> = t.notes.iter().map(|n| format!("note: {n}")).collect();
    for m in t.unmounted_on(root) {
        said.push(format!(
            "warning: the old host has {} ({}) but the target does not mount it: it is not copied; add to the volumes of service {}:\n    {}",
            m.state.host.display(),
            m.state.name,
            t.service(),
            m.line
        ));
    }
    let engine = match &t.layout {
        target::Layout::Compose { compose, .. } => {
            let docker = match compose.split_whitespace().collect::<Vec<_>>().as_slice() {
                [d, "compose"] => d.to_string(),
                _ => "docker".to_string(),
            };
            Some(Engine::new(docker))
        }
        target::Layout::Guide => None,
    };
    let needs_engine = t
        .trees()
        .any(|p| matches!(p.source, target::Source::Volume { .. }));
    let mut owners = None;
    let mut image_ids = None;
    if !owner_map_given {
        if let (Some(e), Some(image)) = (&engine, &t.image) {
            let read = e.image_ids(image).and_then(|ids| {
                let r = target::image_owners_from(&ids, root)?;
                image_ids = Some(ids);
                Ok(r)
            });
            match read {
                Ok((m, shown)) => {
                    said.push(format!(
                        "note: owners follow the image {image}: {}",
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
                    owners = Some(m);
                }
                Err(err) if dry_run => said.push(format!("note: {err} (a real run stops here)")),
                Err(err) => {
                    return Err(format!(
                        "{err}; or give --owner-map to say which ids the copy gets"
                    ))
                }
            }
        }
    }
    if !owner_map_given && engine.is_some() && t.image.is_none() {
        said.push(format!(
            "note: service {} names no image: the copy keeps the old host's ids (give --owner-map to map them)",
            t.service()
        ));
    }
    let engine = if needs_engine { engine } else { None };
    let p =
        plan::copy_volumes(&t, root, engine.as_ref(), !dry_run, only).map_err(|e| e.to_string())?;
    said.extend(p.notes.iter().map(|n| format!("note: {n}")));
    if let Some(ids) = &image_ids {
        said.extend(
            plan::in_place_fixes(&p, ids)
                .into_iter()
                .map(|f| format!("warning: {f}")),
        );
    }
    Ok(Resolved {
        target: t,
        volumes: p.volumes,
        owners,
        said,
    })
}
