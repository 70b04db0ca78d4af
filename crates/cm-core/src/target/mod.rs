//! The target of a move: a compose project directory, whatever its layout. Where each
//! piece of the relay's state ([`crate::state`]) goes is read from the project's compose
//! file through the real Compose v2 ([`compose`]), never typed into the code; the guide's
//! layout (data/chatmail*, `.env`) is used only when asked for by name ([`guide`]).
//!
//! Invariants: resolving reads, it never writes (named volumes are created only by
//! [`engine::Engine::ensure_volume`], when a copy asks); a directory without a compose file,
//! or a compose file that mounts none of the relay's state, is an error naming what is
//! missing, never a fallback.

pub mod compose;
pub mod engine;
pub mod exec;
pub mod plan;
pub mod prepare;
pub mod settings;

use std::path::{Path, PathBuf};

use crate::state::{self, Form, State};

pub use compose::Compose;

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the project directory {} does not exist (create it with the deployment's compose file)", .0.display())]
    NoProject(PathBuf),
    #[error("no compose file in {} (looked for {}): put the deployment's compose file there, or ask for the guide's layout by name (--layout guide)", .0.display(), compose::COMPOSE_FILES.join(", "))]
    NoComposeFile(PathBuf),
    #[error("{0}")]
    Compose(String),
    #[error("{file}: no service mounts the relay's state ({missing}); add to the relay's service, e.g.:\n{lines}", file = .file.display(), missing = .missing.join(", "), lines = .lines.join("\n"))]
    NoState {
        file: PathBuf,
        missing: Vec<String>,
        lines: Vec<String>,
    },
    #[error("{0}")]
    Engine(String),
    #[error("{0}")]
    Io(String),
}

/// Where the target keeps one piece of state, as its compose file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// A bind mount: the host path.
    Bind {
        #[serde(serialize_with = "crate::quote::serialize_path")]
        path: PathBuf,
    },
    /// A named volume: its key in the compose file and its name in the engine.
    Volume {
        key: String,
        name: String,
        external: bool,
    },
}

/// One piece of state and the mount that carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    pub state: State,
    /// The container path of the mount (`state.container` or one it covers: `/home`).
    #[serde(serialize_with = "crate::quote::serialize_path")]
    pub mount: PathBuf,
    pub source: Source,
}

impl Placement {
    /// The old host's path this mount's content comes from (below `root`).
    pub fn host_source(&self, root: &Path) -> PathBuf {
        if self.state.form == Form::File {
            state::under_root(root, &self.state.host)
        } else {
            state::under_root(root, &self.mount)
        }
    }
}

/// A piece of state the target does not mount, and the compose line that would.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    pub state: State,
    pub line: String,
}

/// How the target takes chatmail's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Settings {
    /// Every setting as an UPPERCASE variable in this `.env` (`env_file`).
    EnvFile {
        #[serde(serialize_with = "crate::quote::serialize_path")]
        env: PathBuf,
    },
    /// The ini itself, bind-mounted from `ini`; `vars` are the variables the compose file
    /// interpolates, written to the project's `.env`.
    IniMount {
        #[serde(serialize_with = "crate::quote::serialize_path")]
        ini: PathBuf,
        #[serde(serialize_with = "crate::quote::serialize_path")]
        env: PathBuf,
        vars: Vec<String>,
    },
    /// Neither: the ini has no way in.
    Unknown,
}

/// Which layout the target is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Layout {
    /// Read from a compose file by Compose v2.
    Compose {
        #[serde(serialize_with = "crate::quote::serialize_path")]
        file: PathBuf,
        project: String,
        service: String,
        compose: String,
        version: String,
    },
    /// The guide's layout, asked for by name.
    Guide,
}

/// A resolved target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    /// Where its programs run and its paths are (this host, or the Docker host over ssh).
    pub on: exec::Runner,
    #[serde(serialize_with = "crate::quote::serialize_path")]
    pub project_dir: PathBuf,
    pub layout: Layout,
    /// The image the relay's service runs (`ghcr.io/chatmail/docker:1.12.0`), if named.
    pub image: Option<String>,
    pub placements: Vec<Placement>,
    /// State the target does not mount (whether or not the old host has it: see
    /// [`Target::unmounted_on`]).
    pub missing: Vec<Missing>,
    pub settings: Settings,
    /// The variables its compose file interpolates.
    pub interpolated: Vec<String>,
    /// Every bind mount of the relay's service: (host path, container path).
    #[serde(serialize_with = "crate::quote::serialize_path_pairs")]
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// How it was read (which Compose, a `.env` read empty, ...).
    pub notes: Vec<String>,
}

/// What resolution needs besides the directory.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// `--compose`: the Compose v2 program (words allowed: `docker compose`).
    pub compose: Option<&'a str>,
    /// `--layout guide`: the guide's layout, without a compose file.
    pub guide: bool,
    /// The value of the old host's `tls_external_cert_and_key`, if set.
    pub external_tls: Option<String>,
    /// Where the project is (default: this host).
    pub on: exec::Runner,
}

impl Target {
    /// The placement of state `name`, if the target mounts it.
    pub fn placement(&self, name: &str) -> Option<&Placement> {
        self.placements.iter().find(|p| p.state.name == name)
    }

    /// The trees (dkim, acme, mail) it mounts, in copy order.
    pub fn trees(&self) -> impl Iterator<Item = &Placement> {
        self.placements
            .iter()
            .filter(|p| p.state.form == Form::Tree)
    }

    /// State that the old host under `root` has and the target does not mount: to report
    /// before anything is copied.
    pub fn unmounted_on(&self, root: &Path) -> Vec<&Missing> {
        self.missing
            .iter()
            .filter(|m| m.state.name != "ini" || self.settings == Settings::Unknown)
            .filter(|m| std::fs::symlink_metadata(state::under_root(root, &m.state.host)).is_ok())
            .collect()
    }

    /// The compose service name (`chatmail` for the guide).
    pub fn service(&self) -> &str {
        match &self.layout {
            Layout::Compose { service, .. } => service,
            Layout::Guide => "chatmail",
        }
    }
}

/// The engine behind a compose target (the Docker CLI its Compose is a plugin of: the
/// `docker` of `docker compose`, else `docker`); None for the guide's layout.
pub fn engine_of(t: &Target) -> Option<engine::Engine> {
    match &t.layout {
        Layout::Compose { compose, .. } => {
            let w: Vec<&str> = compose.split_whitespace().collect();
            let docker = match w.as_slice() {
                [d, "compose"] => d.to_string(),
                _ => "docker".to_string(),
            };
            Some(engine::Engine::on(docker, t.on.0.clone()))
        }
        Layout::Guide => None,
    }
}

/// The owner map of a move into `t`: the old host's (under `root`) service users mapped by
/// name to the users of the image `t` runs, read through `engine` without starting it.
/// Returns the map and its lines (for printing).
pub fn image_owners(
    t: &Target,
    engine: &engine::Engine,
    root: &Path,
) -> Result<(crate::owners::OwnerMap, Vec<engine::Mapped>), TargetError> {
    let Some(image) = &t.image else {
        return Err(TargetError::Engine(format!(
            "service {} names no image: give --owner-map",
            t.service()
        )));
    };
    let img = engine.image_ids(image)?;
    image_owners_from(&img, root)
}

/// [`image_owners`] from the image's ids already read.
pub fn image_owners_from(
    img: &engine::Ids,
    root: &Path,
) -> Result<(crate::owners::OwnerMap, Vec<engine::Mapped>), TargetError> {
    let image = "the image";
    let host = engine::Ids::load(root)?;
    let (text, shown) = engine::owner_map_text(&host, img);
    let src = PathBuf::from(format!("(users of image {image})"));
    let map = crate::owners::OwnerMap::parse(&text, &src, root)
        .map_err(|e| TargetError::Io(e.to_string()))?;
    Ok((map, shown))
}

/// The value of `tls_external_cert_and_key` in the old host's ini under `root`, if set.
pub fn external_tls(root: &Path) -> Option<String> {
    let ini = crate::ini::read(&state::under_root(root, Path::new(state::HOST_INI))).ok()?;
    let v = ini
        .params()
        .ok()?
        .get("tls_external_cert_and_key")?
        .trim()
        .to_string();
    (!v.is_empty()).then_some(v)
}

/// Resolve the target in `dir`: the guide's layout when `opts.guide`, else its compose file
/// read by Compose v2.
pub fn resolve(dir: &Path, opts: &Options) -> Result<Target, TargetError> {
    let on = &opts.on;
    // Compose runs in the directory: a relative one would be taken twice
    let abs = match on.is_here() {
        true => std::path::absolute(dir)
            .map_err(|e| TargetError::Io(format!("{}: {e}", dir.display())))?,
        false => dir.to_path_buf(),
    };
    let dir = abs.as_path();
    if !on.is_dir(dir) {
        return Err(TargetError::NoProject(dir.to_path_buf()));
    }
    if opts.guide {
        return Ok(Target {
            on: on.clone(),
            ..guide(dir, opts.external_tls.as_deref())
        });
    }
    let Some(file) = compose::compose_file(&**on, dir) else {
        return Err(TargetError::NoComposeFile(dir.to_path_buf()));
    };
    let mut notes = Vec::new();
    let c = compose::find(&**on, opts.compose, &mut notes)?;
    let (model, raw) = compose::model(&**on, &c, dir, &mut notes)?;
    let mut t = from_model(dir, &file, &model, &raw, opts.external_tls.as_deref())?;
    t.on = on.clone();
    if let Layout::Compose {
        compose, version, ..
    } = &mut t.layout
    {
        *compose = c.display();
        *version = c.version.clone();
    }
    notes.append(&mut t.notes);
    t.notes = notes;
    Ok(t)
}

/// The guide's layout in `dir`: data/chatmail -> /home, data/chatmail-dkimkeys ->
/// /etc/dkimkeys, data/chatmail-acme -> /var/lib/acme, settings in `.env`.
pub fn guide(dir: &Path, external_tls: Option<&str>) -> Target {
    let mut placements = Vec::new();
    let mut missing = Vec::new();
    for s in state::table(external_tls) {
        match (&s.guide, &s.guide_mount) {
            (Some(g), Some(m)) => placements.push(Placement {
                mount: m.clone(),
                source: Source::Bind { path: dir.join(g) },
                state: s,
            }),
            _ if s.name == "ini" => {}
            _ => missing.push(Missing {
                line: add_line(&s),
                state: s,
            }),
        }
    }
    Target {
        on: exec::Runner::default(),
        project_dir: dir.to_path_buf(),
        layout: Layout::Guide,
        image: None,
        placements,
        missing,
        settings: Settings::EnvFile {
            env: dir.join(".env"),
        },
        interpolated: vec![],
        binds: vec![],
        notes: vec!["the guide's layout, as asked (no compose file read)".into()],
    }
}

/// The compose line that would mount `s` (for reports).
pub fn add_line(s: &State) -> String {
    let c = s.container.display();
    match (s.form, s.name.as_str()) {
        (Form::Tree, n) => format!("- {n}:{c}   (and `{n}:` under the top-level `volumes:`)"),
        (Form::File, "ini") => format!("- ./chatmail.ini:{c}"),
        (Form::File, _) => {
            let base = s
                .container
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| s.name.clone());
            format!("- ./state/{base}:{c}:ro")
        }
    }
}

struct Mount {
    kind: String,
    source: String,
    target: PathBuf,
}

fn mounts_of(svc: &serde_json::Value) -> Vec<Mount> {
    svc.get("volumes")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some(Mount {
                kind: v.get("type")?.as_str()?.to_string(),
                source: v.get("source")?.as_str()?.to_string(),
                target: PathBuf::from(v.get("target")?.as_str()?),
            })
        })
        .collect()
}

fn place(s: &State, mounts: &[Mount], model: &serde_json::Value) -> Option<Placement> {
    // the most specific mount wins (Compose merges an override by container path)
    let m = mounts
        .iter()
        .filter(|m| state::mounted_by(s, &m.target))
        .max_by_key(|m| m.target.as_os_str().len())?;
    let source = match m.kind.as_str() {
        "bind" => Source::Bind {
            path: PathBuf::from(&m.source),
        },
        "volume" => {
            let decl = model.get("volumes").and_then(|v| v.get(&m.source));
            Source::Volume {
                key: m.source.clone(),
                name: decl
                    .and_then(|d| d.get("name"))
                    .and_then(|n| n.as_str())
                    .unwrap_or(&m.source)
                    .to_string(),
                external: decl
                    .and_then(|d| d.get("external"))
                    .and_then(|e| e.as_bool())
                    .unwrap_or(false),
            }
        }
        _ => return None,
    };
    // a single file is carried by a bind mount of that file only
    if s.form == Form::File && !matches!(source, Source::Bind { .. }) {
        return None;
    }
    Some(Placement {
        state: s.clone(),
        mount: m.target.clone(),
        source,
    })
}

/// The target from Compose's model (`model`: interpolated, `raw`: `--no-interpolate`).
pub fn from_model(
    dir: &Path,
    file: &Path,
    model: &serde_json::Value,
    raw: &serde_json::Value,
    external_tls: Option<&str>,
) -> Result<Target, TargetError> {
    let table = state::table(external_tls);
    let services = model
        .get("services")
        .and_then(|s| s.as_object())
        .cloned()
        .unwrap_or_default();
    let Some(service) = state_service(&services, &table, model) else {
        return Err(no_state(file, &table));
    };
    let svc = &services[&service];
    let mounts = mounts_of(svc);
    let (placements, missing) = placements(table, &mounts, model);
    let interpolated = compose::interpolated(raw);
    let settings = settings::mode(
        dir,
        &placements,
        raw.get("services").and_then(|s| s.get(&service)),
        &interpolated,
    );
    Ok(Target {
        on: exec::Runner::default(),
        project_dir: dir.to_path_buf(),
        layout: Layout::Compose {
            file: file.to_path_buf(),
            project: model
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string(),
            service,
            compose: String::new(),
            version: String::new(),
        },
        image: svc.get("image").and_then(|i| i.as_str()).map(String::from),
        binds: mounts
            .iter()
            .filter(|m| m.kind == "bind")
            .map(|m| (PathBuf::from(&m.source), m.target.clone()))
            .collect(),
        placements,
        missing,
        settings,
        interpolated,
        notes: vec![],
    })
}

/// The service that mounts the most of the relay's state (a tie: `chatmail`, else the
/// first by name); None when none mounts any.
fn state_service(
    services: &serde_json::Map<String, serde_json::Value>,
    table: &[State],
    model: &serde_json::Value,
) -> Option<String> {
    let mut best: Option<(usize, bool, String)> = None;
    for (name, svc) in services {
        let mounts = mounts_of(svc);
        let n = table
            .iter()
            .filter(|s| place(s, &mounts, model).is_some())
            .count();
        let key = (n, name == "chatmail", name.clone());
        if n > 0 && best.as_ref().map_or(true, |b| (key.0, key.1) > (b.0, b.1)) {
            best = Some(key);
        }
    }
    best.map(|(_, _, service)| service)
}

/// No service of `file` mounts the relay's state: the trees and the ini it needs, with the
/// lines that would mount them.
fn no_state(file: &Path, table: &[State]) -> TargetError {
    let want: Vec<&State> = table
        .iter()
        .filter(|s| s.form == Form::Tree || s.name == "ini")
        .collect();
    TargetError::NoState {
        file: file.to_path_buf(),
        missing: want
            .iter()
            .map(|s| format!("{} at {}", s.name, s.container.display()))
            .collect(),
        lines: want
            .iter()
            .map(|s| format!("    {}", add_line(s)))
            .collect(),
    }
}

/// Each state entry placed on one of `mounts`, or missing (with the line that would mount
/// it).
fn placements(
    table: Vec<State>,
    mounts: &[Mount],
    model: &serde_json::Value,
) -> (Vec<Placement>, Vec<Missing>) {
    let mut placements = Vec::new();
    let mut missing = Vec::new();
    for s in table {
        match place(&s, mounts, model) {
            Some(p) => placements.push(p),
            None => missing.push(Missing {
                line: add_line(&s),
                state: s,
            }),
        }
    }
    (placements, missing)
}

#[cfg(test)]
mod tests;
