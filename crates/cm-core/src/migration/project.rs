//! The target of a run on this host: the compose project resolved once, exactly as
//! cm-copy-data resolves it ([`crate::target::prepare`]: bind mounts, named volumes, the
//! ini's file mount, owners from the image by name), and turned into what the run's parts
//! need: the copy's volumes and single files, the settings as the target takes them
//! (`.env`, or the ini at its mount plus the variables the compose file interpolates), the
//! volumes `--verify changed` compares, and the preflight findings of the target.
//!
//! Invariant: resolving writes nothing (named volumes are created by the live copy, not
//! here); a target that cannot be resolved is a blocking finding, and every part that needs
//! it fails rather than falling back to another layout.

use std::path::{Path, PathBuf};

use super::preflight::Finding;
use super::real::{EnvSettings, LocalCopier, TargetFiles};
use super::{MigrationError, Settings, Step, StepOutcome};
use crate::owners::OwnerMap;
use crate::target::prepare::{self, Prepared};
use crate::target::{self, plan, Layout, Source, Target};

/// What the run knows of its target.
pub struct Inputs<'a> {
    pub root: &'a Path,
    pub project_dir: &'a Path,
    /// `--compose` (words allowed).
    pub compose: Option<&'a str>,
    /// `--layout guide`.
    pub guide: bool,
    /// `--owner-map`, loaded: then the image's users are not read.
    pub owner_map: Option<OwnerMap>,
    /// The relay's chatmail.ini.
    pub ini: &'a Path,
    /// Where the project is: this host, or the Docker host over ssh.
    pub on: target::exec::Runner,
}

/// The parts of a run into a local target.
pub struct Local {
    pub copier: LocalCopier,
    pub settings: Box<dyn Settings>,
    /// The target's preflight findings (resolution, unmounted state, settings, defaults).
    pub findings: Vec<Finding>,
    /// The owners the copy applies (the map given, else the image's by name).
    pub owners: Option<OwnerMap>,
    /// The Compose v2 command that read the compose file (words), for up and stop.
    pub compose: Option<Vec<String>>,
    /// The target, when it was resolved.
    pub target: Option<Target>,
}

/// The move made ready (nothing written), or why it cannot be.
fn prepared(i: &Inputs) -> Result<Prepared, String> {
    prepare::prepare(
        i.root,
        i.project_dir,
        &prepare::Options {
            compose: i.compose,
            guide: i.guide,
            only: &[],
            owner_map_given: i.owner_map.is_some(),
            create: false,
            dry_run: false,
            on: i.on.clone(),
        },
    )
    .map_err(|e| {
        format!(
            "the target {} on {}: {e}",
            i.project_dir.display(),
            i.on.place()
        )
    })
}

fn blocked(why: &str) -> Finding {
    Finding::block(
        "target",
        why,
        "fix the compose project as said, or ask for the guide's layout by name (--layout guide)",
    )
}

/// Resolve the target here and build the parts (nothing written).
pub fn local(i: Inputs) -> Local {
    match prepared(&i) {
        Ok(p) => from_prepared(p, &i),
        Err(why) => Local {
            copier: LocalCopier::unusable(why.clone()),
            settings: Box::new(Unusable { why: why.clone() }),
            findings: vec![blocked(&why)],
            owners: i.owner_map,
            compose: None,
            target: None,
        },
    }
}

/// The parts of a run into a target on the Docker host over ssh.
pub struct Far {
    pub volumes: Vec<super::transport::RemoteVolume>,
    pub target: Option<TargetFiles>,
    pub findings: Vec<Finding>,
    pub owners: Option<OwnerMap>,
    /// The far project's .env, and for an ini-mount target where the ini goes and the
    /// variables the compose file interpolates.
    pub env: PathBuf,
    pub ini_mount: Option<(PathBuf, Vec<String>)>,
    pub compose: Option<Vec<String>>,
    /// Why nothing can be copied there.
    pub unusable: Option<String>,
}

/// Resolve the far target through its ssh connection (`i.on`), as [`local`] does here.
pub fn far(i: Inputs) -> Far {
    let p = match prepared(&i) {
        Ok(p) => p,
        Err(why) => {
            return Far {
                volumes: Vec::new(),
                target: None,
                findings: vec![blocked(&why)],
                owners: i.owner_map,
                env: i.project_dir.join(".env"),
                ini_mount: None,
                compose: None,
                unusable: Some(why),
            }
        }
    };
    let mut findings = target_findings(&p, &i);
    let (env, ini_mount) = match &p.target.settings {
        target::Settings::EnvFile { env } => (env.clone(), None),
        target::Settings::IniMount { ini, env, vars } => {
            (env.clone(), Some((ini.clone(), vars.clone())))
        }
        target::Settings::Unknown => {
            let _ = settings_of(&p.target, i.ini, &mut findings);
            (i.project_dir.join(".env"), None)
        }
    };
    let pending = p.volumes_pending();
    Far {
        volumes: p
            .volumes
            .into_iter()
            .map(super::transport::RemoteVolume::of)
            .collect(),
        findings,
        owners: i.owner_map.clone().or(p.owners),
        env,
        ini_mount,
        compose: compose_words(&p.target),
        target: Some(TargetFiles {
            root: i.root.to_path_buf(),
            target: p.target,
            pending_volumes: pending,
        }),
        unusable: None,
    }
}

fn compose_words(t: &Target) -> Option<Vec<String>> {
    match &t.layout {
        Layout::Compose { compose, .. } => {
            Some(compose.split_whitespace().map(String::from).collect())
        }
        Layout::Guide => None,
    }
}

/// The target's preflight findings: what it is, its notes, the state it does not mount, in
/// place trees whose owners differ, defaults that changed between releases.
fn target_findings(p: &Prepared, i: &Inputs) -> Vec<Finding> {
    let mut findings = vec![Finding::ok("target", describe(&p.target))];
    findings.extend(p.notes.iter().map(|n| Finding::ok("target", n.clone())));
    for m in p.target.unmounted_on(i.root) {
        findings.push(Finding::warn(
            "target",
            format!(
                "the old host has {} ({}) but the target does not mount it: the run does not move it",
                m.state.host.display(),
                m.state.name
            ),
            format!(
                "add to the volumes of service {}: {}",
                p.target.service(),
                m.line
            ),
        ));
    }
    if let Some(ids) = &p.image_ids {
        for w in plan::in_place_fixes(
            &plan::CopyPlan {
                in_place: p.in_place.clone(),
                ..Default::default()
            },
            ids,
        ) {
            findings.push(Finding::block(
                "target",
                w,
                "re-own it as said, or mount a volume the run copies into",
            ));
        }
    }
    findings.push(image_finding(&p.target));
    if let Ok(ini) = crate::ini::read(i.ini) {
        for w in target::settings::default_change_warnings(
            p.target.image.as_deref(),
            i.root,
            i.ini,
            &ini,
        ) {
            findings.push(Finding::warn(
                "ini",
                w,
                "keep the old value in chatmail.ini, or accept the target's default",
            ));
        }
    }
    findings
}

/// Whether the image the relay's service runs is on the Docker host.
fn image_finding(t: &Target) -> Finding {
    let (Some(image), Some(engine)) = (&t.image, target::engine_of(t)) else {
        return Finding::ok(
            "target",
            "the service names no image to look for (the guide's layout by name)",
        );
    };
    match engine.has_image(image) {
        Ok(true) => Finding::ok("target", format!("image {image} is on {}", t.on.place())),
        Ok(false) => Finding::warn(
            "target",
            format!("image {image} is not on {} yet", t.on.place()),
            format!(
                "docker compose pull (or build) in {} before the move, so that the start does not wait for it",
                t.project_dir.display()
            ),
        ),
        Err(e) => Finding::not_checked("target", format!("whether image {image} is there: {e}")),
    }
}

fn from_prepared(p: Prepared, i: &Inputs) -> Local {
    let mut findings = target_findings(&p, i);
    let settings = settings_of(&p.target, i.ini, &mut findings);
    let owners = i.owner_map.clone().or_else(|| p.owners.clone());
    let pending = p.volumes_pending();
    let compose = compose_words(&p.target);
    let copier = LocalCopier::new(
        p.volumes,
        owners.clone(),
        TargetFiles {
            root: i.root.to_path_buf(),
            target: p.target.clone(),
            pending_volumes: pending,
        },
    );
    Local {
        copier,
        settings,
        findings,
        owners,
        compose,
        target: Some(p.target),
    }
}

/// One line that says what the target is and where each piece of state goes.
pub fn describe(t: &Target) -> String {
    let place = |s: &Source| match s {
        Source::Bind { path } => path.display().to_string(),
        Source::Volume { name, .. } => format!("volume {name}"),
    };
    let placed: Vec<String> = t
        .placements
        .iter()
        .map(|p| format!("{} -> {}", p.state.name, place(&p.source)))
        .collect();
    let what = match &t.layout {
        Layout::Compose {
            file,
            project,
            service,
            compose,
            version,
        } => format!(
            "{}: service {service} of Compose project {project} (read by {compose} {version})",
            file.display()
        ),
        Layout::Guide => format!(
            "the guide's layout in {} (asked for by name)",
            t.project_dir.display()
        ),
    };
    format!("{what}; {}", placed.join(", "))
}

/// The settings part for how `t` takes chatmail's settings.
fn settings_of(t: &Target, ini: &Path, findings: &mut Vec<Finding>) -> Box<dyn Settings> {
    match &t.settings {
        target::Settings::EnvFile { env } => Box::new(EnvSettings {
            ini: ini.to_path_buf(),
            env: env.clone(),
        }),
        target::Settings::IniMount {
            ini: dst,
            env,
            vars,
        } => Box::new(IniMountSettings {
            ini: ini.to_path_buf(),
            dst: dst.clone(),
            env: env.clone(),
            vars: vars.clone(),
        }),
        target::Settings::Unknown => {
            let why = format!(
                "the compose file takes chatmail's settings neither from `env_file: .env` nor from a mounted {}",
                crate::state::CONTAINER_INI
            );
            findings.push(Finding::block(
                "target",
                why.clone(),
                format!(
                    "add `- ./chatmail.ini:{}` to the relay service's volumes",
                    crate::state::CONTAINER_INI
                ),
            ));
            Box::new(Unusable { why })
        }
    }
}

/// An ini-mount target's settings: the old host's chatmail.ini, byte for byte, at the
/// mount's source, and the variables the compose file interpolates in the project's .env.
pub struct IniMountSettings {
    /// The old host's chatmail.ini.
    pub ini: PathBuf,
    /// Where the compose file mounts it from.
    pub dst: PathBuf,
    pub env: PathBuf,
    pub vars: Vec<String>,
}

impl IniMountSettings {
    fn write_it(&self, dry_run: bool) -> Result<target::settings::Written, MigrationError> {
        let err = |m: String| MigrationError::step(Step::Settings, m);
        let parsed = crate::ini::read(&self.ini).map_err(|e| err(e.to_string()))?;
        let p = parsed.params().map_err(|e| err(e.to_string()))?;
        let values = target::settings::interpolated_values(&self.vars, p);
        target::settings::write_ini_mount(&self.ini, &self.dst, &self.env, &values, dry_run)
            .map_err(|e| err(e.to_string()))
    }

    fn say(&self, w: &target::settings::Written, verb: &str) -> String {
        let mut s = if w.ini_changed {
            format!(
                "{verb} {} (the old host's chatmail.ini, unchanged, mounted at {})",
                self.dst.display(),
                crate::state::CONTAINER_INI
            )
        } else {
            format!(
                "{} already is the old host's chatmail.ini",
                self.dst.display()
            )
        };
        if !w.env_set.is_empty() {
            s.push_str(&format!(
                "; {verb} {} in {}",
                w.env_set.join(", "),
                self.env.display()
            ));
        }
        s
    }
}

impl Settings for IniMountSettings {
    fn plan(&mut self) -> Result<String, MigrationError> {
        let w = self.write_it(true)?;
        Ok(self.say(&w, "write"))
    }

    fn write(&mut self) -> Result<StepOutcome, MigrationError> {
        let w = self.write_it(false)?;
        let mut o = StepOutcome::ok(self.say(&w, "wrote"));
        o.notes = w
            .backups
            .iter()
            .map(|b| format!("backup: {}", b.display()))
            .collect();
        Ok(o)
    }

    fn left_behind(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.dst.exists() {
            v.push(format!(
                "{} (the old host's chatmail.ini, for the container)",
                self.dst.display()
            ));
        }
        if self.env.exists() {
            v.push(format!(
                "{} (the interpolated variables)",
                self.env.display()
            ));
        }
        v
    }
}

/// Settings for a target that cannot take them: every use fails with why.
pub struct Unusable {
    pub why: String,
}

impl Settings for Unusable {
    fn plan(&mut self) -> Result<String, MigrationError> {
        Err(MigrationError::step(Step::Settings, &self.why))
    }
    fn write(&mut self) -> Result<StepOutcome, MigrationError> {
        Err(MigrationError::step(Step::Settings, &self.why))
    }
    fn left_behind(&self) -> Vec<String> {
        Vec::new()
    }
}
