//! The checks of `cm-verify` beyond trees: settings (`env`), the old host's services
//! (`services`) and the Docker project's layout (`layout`).
//!
//! Each check returns [`Finding`]s (what is wrong, about what) and notes (what could not be
//! checked and why); an empty list of findings means the check holds.
//!
//! Invariant: read-only. Nothing here changes a file, a unit or a socket.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::quote::quote_path;
use crate::systemd::ServiceManager;

pub mod project;

/// One thing that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The check: `env`, `services`, `ports`, `layout`, `dkim`, `acme`, `mailbox`, `owner`.
    pub check: String,
    /// What it is about: a setting, a unit, a port, a path.
    pub subject: String,
    /// What is wrong, and what to do where that is known.
    pub problem: String,
}

fn finding(check: &str, subject: impl Into<String>, problem: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        subject: subject.into(),
        problem: problem.into(),
    }
}

/// Findings and notes of one or more checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// Things not checked, and why (not failures).
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
    pub fn extend(&mut self, other: Outcome) {
        self.findings.extend(other.findings);
        self.notes.extend(other.notes);
    }
}

/// What became of one check: it ran and held, it ran and something differs, or it did not
/// run (with the reason, and whether the user's own flag switched it off). A check that did
/// not run is never a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Held,
    Differs,
    NotChecked {
        /// Why it did not run (`--no-services`, `systemctl: Failed to connect to bus`).
        reason: String,
        /// Switched off by a flag the user gave (`--no-services`): the verdict names it, but
        /// it does not make the run fail.
        switched_off: bool,
    },
}

impl Status {
    /// The stable word of `--json`: `held`, `differs`, `not_checked`.
    pub fn key(&self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Differs => "differs",
            Status::NotChecked { .. } => "not_checked",
        }
    }
    /// Held or differs by what was found.
    pub fn of(held: bool) -> Status {
        if held {
            Status::Held
        } else {
            Status::Differs
        }
    }
}

/// Why a check could not run at all (unusable input).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Ini(#[from] crate::ini::IniError),
    #[error(transparent)]
    Env(#[from] crate::dotenv::ReadError),
    #[error(transparent)]
    Systemd(#[from] crate::systemd::SystemdError),
    #[error(transparent)]
    Ports(#[from] crate::ports::PortsError),
    #[error("{0}")]
    Other(String),
}

/// `env`: the .env carries exactly the ini's settings, compared as chatmail interprets them
/// (absent = default, `True` = `true` for booleans, `500M` = `500m`, ...).
pub fn check_env(ini: &Path, env: &Path) -> Result<Outcome, CheckError> {
    let parsed = crate::ini::read(ini)?;
    let section = parsed.params()?;
    let vars = crate::dotenv::read_file(env)?;
    let mut out = Outcome::default();
    for d in crate::params::diff_env(section, &vars) {
        let show = |v: &Option<String>| match v {
            Some(v) => format!("{v:?}"),
            None => "absent (default)".into(),
        };
        let at = d.line.map(|l| format!(" (line {l})")).unwrap_or_default();
        out.findings.push(finding(
            "env",
            d.env_key.clone(),
            format!(
                "ini {}{at}: {}; .env {}: {}",
                d.key,
                show(&d.ini),
                d.env_key,
                show(&d.env)
            ),
        ));
    }
    Ok(out)
}

/// `env` of a compose project: [`check_env`] against `env_file`, or a finding when the
/// project has no .env yet.
pub fn check_project_env(ini: &Path, env_file: &Path) -> Result<Outcome, CheckError> {
    if env_file.exists() {
        return check_env(ini, env_file);
    }
    Ok(Outcome {
        findings: vec![finding(
            "env",
            crate::quote::json_path(env_file),
            "missing: write it with cm-ini-to-env",
        )],
        notes: vec![],
    })
}

/// `services`: no chatmail unit is active or enabled (timers, paths and sockets included),
/// no legacy cron job is installed, and the ports the container needs are free (naming what
/// holds each).
pub fn check_services(
    sm: &mut dyn ServiceManager,
    cron_dir: &Path,
    proc_root: &Path,
    ports: &[u16],
) -> Result<Outcome, CheckError> {
    let plan = crate::systemd::discover(sm, cron_dir)?;
    let mut out = Outcome::default();
    for u in &plan.units {
        let b = &u.before;
        let mut what = Vec::new();
        if b.is_active() {
            what.push(format!("active ({}/{})", b.active_state, b.sub_state));
        }
        if b.is_enabled() {
            what.push(format!("enabled ({})", b.unit_file_state));
        }
        if !what.is_empty() {
            out.findings.push(finding(
                "services",
                u.unit.clone(),
                format!(
                    "{}: stop and disable it (cm-migrate stop-services)",
                    what.join(", ")
                ),
            ));
        }
    }
    for l in &plan.leftovers {
        if l.is_active() || l.is_enabled() {
            out.findings.push(finding(
                "services",
                l.id.clone(),
                format!(
                    "looks like chatmail's and is {} / {}: check it by hand",
                    l.active_state, l.unit_file_state
                ),
            ));
        }
    }
    for c in &plan.cron_files {
        out.findings.push(finding(
            "services",
            crate::quote::json_path(c),
            "legacy cron job still installed (it expunges mail or renews certificates)",
        ));
    }
    for l in crate::ports::listeners_on(proc_root, ports)? {
        out.findings.push(finding(
            "ports",
            format!("{} port {}", l.proto, l.port),
            format!("in use: {l}"),
        ));
    }
    Ok(out)
}

/// A bind mount of the compose project: host path -> container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
}

/// The guide's layout, relative to the project directory (from [`crate::state`]).
pub fn default_mounts(project_dir: &Path) -> Vec<Mount> {
    crate::state::guide_trees()
        .into_iter()
        .filter_map(|s| {
            Some(Mount {
                source: project_dir.join(s.guide?),
                target: s.guide_mount?,
            })
        })
        .collect()
}

/// Bind mounts from `docker compose config --format json` output.
pub fn mounts_from_compose_json(json: &str) -> Result<Vec<Mount>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("compose config is not JSON: {e}"))?;
    let mut out = Vec::new();
    if let Some(services) = v.get("services").and_then(|s| s.as_object()) {
        for svc in services.values() {
            for vol in svc
                .get("volumes")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                if vol.get("type").and_then(|t| t.as_str()) != Some("bind") {
                    continue;
                }
                if let (Some(s), Some(t)) = (
                    vol.get("source").and_then(|s| s.as_str()),
                    vol.get("target").and_then(|t| t.as_str()),
                ) {
                    out.push(Mount {
                        source: PathBuf::from(s),
                        target: PathBuf::from(t),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The file names Docker Compose looks for in a project directory.
pub use crate::target::compose::COMPOSE_FILES;

/// What one volume of the project is verified against (see [`volume_checks`]); `why` says
/// why that reference was chosen (printed beside the check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeCheck {
    /// The volume `dst` against its source tree `src`.
    Tree {
        src: PathBuf,
        dst: PathBuf,
        why: String,
    },
    /// The volume `dst` against the manifest cm-copy-data wrote beside it (the copy's owners,
    /// already mapped: compare ids as they are).
    Manifest {
        manifest: PathBuf,
        dst: PathBuf,
        why: String,
    },
    /// No reference can be used: the volume and why (the check is "not checked").
    Unverifiable { dst: PathBuf, why: String },
}

/// Whether `a` and `b` are the same directory (the same inode, however reached).
fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// This machine's identity as manifests record it: /etc/machine-id.
pub fn this_machine() -> Option<String> {
    fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// For each volume of the guide's layout that exists in `project_dir`, what it is verified
/// against. With `root` (the user's `--root`): its source under that root, and nothing else
/// (a source missing there is unverifiable, never replaced by the manifest). Without: what
/// the copy recorded: the manifest's source tree when the manifest was written on this
/// machine and that tree is there, else the manifest; with no manifest, the source on this
/// machine (`/home`, ...). A volume missing in the project is left out (the layout check
/// reports it).
pub fn volume_checks(project_dir: &Path, root: Option<&Path>) -> Vec<VolumeCheck> {
    volume_checks_of(
        default_mounts(project_dir)
            .into_iter()
            .map(|m| (m.target, m.source))
            .collect(),
        root,
    )
}

/// [`volume_checks`] for (container mount, copy here) pairs: a resolved target's trees
/// ([`project::volume_pairs`]); the source is the mount's path on the old host.
pub fn volume_checks_of(mounts: Vec<(PathBuf, PathBuf)>, root: Option<&Path>) -> Vec<VolumeCheck> {
    let here = this_machine();
    mounts
        .into_iter()
        .filter(|(_, dst)| dst.is_dir())
        .map(|(target, dst)| {
            let rel = target.strip_prefix("/").unwrap_or(&target).to_path_buf();
            volume_check(dst, &rel, root, here.as_deref())
        })
        .collect()
}

/// What one copied volume `dst` (at `rel` in the container) is verified against: its source
/// under `--root`, else as its manifest records it (see [`volume_checks`]).
fn volume_check(dst: PathBuf, rel: &Path, root: Option<&Path>, here: Option<&str>) -> VolumeCheck {
    if let Some(root) = root {
        return rooted_check(dst, rel, root);
    }
    let manifest = crate::manifest::path_for(&dst);
    if !manifest.is_file() {
        return unrecorded_check(dst, rel, &manifest);
    }
    recorded_source(dst, rel, manifest, here)
}

/// With `--root`: the source as the old host sees it, resolved inside `root` as a chroot
/// would.
fn rooted_check(dst: PathBuf, rel: &Path, root: &Path) -> VolumeCheck {
    let src = match crate::root::resolve_in(root, &Path::new("/").join(rel)) {
        Ok(s) => s,
        Err(e) => {
            let why = format!("its source cannot be found under --root: {e}");
            return VolumeCheck::Unverifiable { dst, why };
        }
    };
    if src.is_dir() {
        let why = format!("its source under --root {}", quote_path(root));
        return VolumeCheck::Tree { src, dst, why };
    }
    let why = format!(
        "its source {} is not a directory under --root (without --root the manifest the copy wrote is used)",
        quote_path(&src)
    );
    VolumeCheck::Unverifiable { dst, why }
}

/// No `--root` and no manifest: the source at the same path on this machine, if any.
fn unrecorded_check(dst: PathBuf, rel: &Path, manifest: &Path) -> VolumeCheck {
    let src = Path::new("/").join(rel);
    if src.is_dir() {
        let why =
            "its source on this machine (no manifest records where the copy came from)".into();
        return VolumeCheck::Tree { src, dst, why };
    }
    let why = format!(
        "neither its source {} nor a manifest {}",
        quote_path(&src),
        quote_path(manifest)
    );
    VolumeCheck::Unverifiable { dst, why }
}

/// A manifest: the source it records when that is on this machine (and not the copy
/// itself), else the manifest.
fn recorded_source(dst: PathBuf, rel: &Path, manifest: PathBuf, here: Option<&str>) -> VolumeCheck {
    // where the copy was taken from, as the manifest's header records it (a manifest of
    // version 1, or one that cannot be read here, records nothing: the manifest is used)
    let rec = crate::manifest::read_header(&manifest).unwrap_or_default();
    let src = rec
        .source
        .clone()
        .or_else(|| rec.root.as_ref().map(|r| r.join(rel)));
    let why = match (&rec.machine_id, &src) {
        // a manifest of the copy itself (`cm-verify manifest write` of the volume): the copy
        // is never its own reference
        (Some(m), Some(src)) if Some(m.as_str()) == here && same_dir(src, &dst) => {
            "the manifest written of this copy (it records the copy itself, not its source)".into()
        }
        (Some(m), Some(src)) if Some(m.as_str()) == here && src.is_dir() => {
            let why = format!(
                "the source the copy recorded (on this machine, {})",
                quote_path(src)
            );
            return VolumeCheck::Tree {
                src: src.clone(),
                dst,
                why,
            };
        }
        (Some(m), Some(src)) if Some(m.as_str()) == here => format!(
            "the manifest the copy wrote (its source {} is no longer here)",
            quote_path(src)
        ),
        (Some(m), Some(src)) => format!(
            "the manifest the copy wrote (copied from {} on machine {m})",
            quote_path(src)
        ),
        _ => "the manifest the copy wrote (it does not record the machine it came from)".into(),
    };
    VolumeCheck::Manifest { manifest, dst, why }
}

/// The signs of a chatmail host that `root` (an old host's root) lacks: `vmail under /home`,
/// `a DKIM key in /etc/dkimkeys`, `ACME state in /var/lib/acme`.
pub fn missing_chatmail_signs(root: &Path) -> Vec<&'static str> {
    let nonempty = |rel: &str| {
        fs::read_dir(root.join(rel))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    };
    let dkim_key = fs::read_dir(root.join("etc/dkimkeys"))
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".private"))
        })
        .unwrap_or(false);
    let mut missing = Vec::new();
    if !root.join("home/vmail").is_dir() {
        missing.push("no vmail under /home");
    }
    if !dkim_key {
        missing.push("no DKIM key (*.private) in /etc/dkimkeys");
    }
    if !nonempty("var/lib/acme") {
        missing.push("no ACME state in /var/lib/acme");
    }
    missing
}

/// Whether `root` does not look like a chatmail host: two or more of its signs are missing
/// ([`missing_chatmail_signs`]); the missing ones, for one warning line.
pub fn not_a_chatmail_host(root: &Path) -> Option<String> {
    let m = missing_chatmail_signs(root);
    (m.len() >= 2).then(|| m.join(", "))
}

/// Users and groups of the container image, from its etc/passwd and etc/group.
#[derive(Debug, Clone, Default)]
pub struct ImageIds {
    pub users: BTreeMap<String, u32>,
    pub groups: BTreeMap<String, u32>,
}

impl ImageIds {
    /// Read `root/etc/passwd` and `root/etc/group` (an exported image file system).
    pub fn load(root: &Path) -> Result<ImageIds, CheckError> {
        let mut ids = ImageIds::default();
        for (file, map) in [
            ("etc/passwd", &mut ids.users),
            ("etc/group", &mut ids.groups),
        ] {
            let p = root.join(file);
            let text = fs::read_to_string(&p).map_err(|e| {
                CheckError::Other(format!(
                    "{}: cannot read the image's {file}: {e}",
                    p.display()
                ))
            })?;
            for line in text.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() >= 3 {
                    if let Ok(id) = f[2].parse() {
                        map.entry(f[0].to_string()).or_insert(id);
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Read the image's fixed users from a `docker/users` file: `name uid gid` lines (the
    /// owner-map lines) and `#fixed name uid gid` lines (users that own no migrated data).
    /// Each user's group has the user's name.
    pub fn from_users_file(path: &Path) -> Result<ImageIds, CheckError> {
        let text = fs::read_to_string(path).map_err(|e| {
            CheckError::Other(format!(
                "{}: cannot read the image's users: {e}",
                path.display()
            ))
        })?;
        let mut ids = ImageIds::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.strip_prefix("#fixed").unwrap_or(raw);
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let parsed = match f.as_slice() {
                [name, uid, gid] => uid
                    .parse::<u32>()
                    .ok()
                    .zip(gid.parse::<u32>().ok())
                    .map(|ids| (name, ids)),
                _ => None,
            };
            let Some((name, (uid, gid))) = parsed else {
                return Err(CheckError::Other(format!(
                    "{}:{}: expected `name uid gid`, got {line:?}",
                    path.display(),
                    i + 1
                )));
            };
            ids.users.insert(name.to_string(), uid);
            ids.groups.insert(name.to_string(), gid);
        }
        Ok(ids)
    }
}

/// What `layout` looks at.
#[derive(Debug, Clone)]
pub struct LayoutOptions {
    /// Bind mounts of the project (from the compose file, or [`default_mounts`]).
    pub mounts: Vec<Mount>,
    /// chatmail's mail_domain (from the project's .env or the ini), if known.
    pub mail_domain: Option<String>,
    /// The image's users and groups, if known (owners are checked only then).
    pub image: Option<ImageIds>,
}

/// Where `layout` of a compose project takes its inputs from.
#[derive(Debug, Clone)]
pub struct ProjectLayout<'a> {
    /// The compose project directory.
    pub project_dir: &'a Path,
    /// The Compose v2 program that reads the compose file (None: found as an operator has
    /// it, see [`crate::target::compose::find`]).
    pub compose: Option<&'a str>,
    /// The guide's layout, asked for by name (no compose file read).
    pub guide: bool,
    /// mail_domain as given; else MAIL_DOMAIN of the project's .env, else the ini's.
    pub mail_domain: Option<String>,
    /// The old host's chatmail.ini (for mail_domain).
    pub ini: Option<&'a Path>,
    /// A directory holding the image's etc/passwd and etc/group.
    pub image_root: Option<&'a Path>,
    /// Else the image's docker/users file.
    pub image_users: Option<&'a Path>,
}

/// `layout` of a compose project: gathers the mounts (the target as [`crate::target`] resolves it: [`project::resolve`]), mail_domain and
/// the image's ids as [`ProjectLayout`] says, then runs [`check_layout`]. The notes of
/// gathering come first.
pub fn check_project_layout(p: &ProjectLayout) -> Result<Outcome, CheckError> {
    let want_image = p.image_root.is_none() && p.image_users.is_none();
    let (_, resolved) = project::resolve(p, want_image)?;
    let mut notes = resolved.notes;
    let mounts = resolved.mounts;
    let mut mail_domain = p.mail_domain.clone();
    let env_file = p.project_dir.join(".env");
    if mail_domain.is_none() && env_file.exists() {
        mail_domain = crate::dotenv::read_file(&env_file)?
            .get("MAIL_DOMAIN")
            .cloned();
    }
    if mail_domain.is_none() {
        if let Some(ini) = p.ini.or(resolved.ini.as_deref().filter(|i| i.is_file())) {
            let parsed = crate::ini::read(ini)?;
            mail_domain = parsed.params()?.get("mail_domain").map(str::to_string);
        }
    }
    let image = match (p.image_root, p.image_users) {
        (Some(r), _) => Some(ImageIds::load(r)?),
        (None, Some(f)) => Some(ImageIds::from_users_file(f)?),
        (None, None) => resolved.image,
    };
    let mut o = check_layout(&LayoutOptions {
        mounts,
        mail_domain,
        image,
    });
    let mut found = resolved.findings;
    found.append(&mut o.findings);
    o.findings = found;
    notes.append(&mut o.notes);
    o.notes = notes;
    Ok(o)
}

fn mount_for<'a>(mounts: &'a [Mount], target: &str) -> Option<&'a Mount> {
    mounts.iter().find(|m| m.target == Path::new(target))
}

/// Follow `rel` inside the tree `root` that the container sees at `mount`, resolving
/// symlinks as the container would (absolute targets under `mount` stay inside; any other
/// absolute target, or `..` past the root, leaves the tree). Returns the final relative path.
pub fn resolve_inside(root: &Path, mount: &Path, rel: &Path) -> Result<PathBuf, String> {
    let mut queue: Vec<OsString> = rel
        .components()
        .rev()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut stack: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = queue.pop() {
        if c == "." || c.is_empty() {
            continue;
        }
        if c == ".." {
            if stack.pop().is_none() {
                return Err("leads out of the tree through `..`".into());
            }
            continue;
        }
        stack.push(c);
        let here: PathBuf = stack.iter().collect();
        let abs = root.join(&here);
        let md = fs::symlink_metadata(&abs)
            .map_err(|_| format!("{} does not exist in the copy", quote_path(&here)))?;
        if md.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err("too many levels of symlinks".into());
            }
            let t = fs::read_link(&abs).map_err(|e| format!("{}: {e}", quote_path(&here)))?;
            stack.pop();
            let rest: Vec<OsString> = if t.is_absolute() {
                let inside = t.strip_prefix(mount).map_err(|_| {
                    format!(
                        "{} points to {}, outside {} (the container will not find it)",
                        quote_path(&here),
                        quote_path(&t),
                        mount.display()
                    )
                })?;
                stack.clear();
                inside
                    .components()
                    .map(|c| c.as_os_str().to_os_string())
                    .collect()
            } else {
                t.components()
                    .filter(|c| !matches!(c, Component::RootDir))
                    .map(|c| c.as_os_str().to_os_string())
                    .collect()
            };
            queue.extend(rest.into_iter().rev());
        }
    }
    Ok(stack.iter().collect())
}

/// `layout`: the mounted folders exist; the DKIM private key is there, private and owned as
/// the image expects; every ACME `live/<domain>` link (and what is inside it) resolves inside
/// the copied tree; the mailbox folder for mail_domain exists; owners match the image's users.
pub fn check_layout(opts: &LayoutOptions) -> Outcome {
    let mut out = Outcome::default();
    check_mounts(&mut out, &opts.mounts);
    if opts.image.is_none() {
        out.notes.push(
            "owners not compared with the image's users: give --image-users (docker/users) or --image-root (the image's /etc/passwd and /etc/group)".into(),
        );
    }
    check_dkim(&mut out, opts);
    check_acme(&mut out, &opts.mounts);
    check_mailboxes(&mut out, opts);
    out
}

/// Every mounted folder exists.
fn check_mounts(out: &mut Outcome, mounts: &[Mount]) {
    for m in mounts {
        if fs::metadata(&m.source).is_err() {
            out.findings.push(finding(
                "layout",
                crate::quote::json_path(&m.source),
                format!(
                    "mounted at {} but missing: copy it (cm-copy-data)",
                    m.target.display()
                ),
            ));
        }
    }
}

/// `path` is owned by the image's `user` (and its group of that name), when the image's
/// ids are known; a finding of `check` if not.
fn owner_is(out: &mut Outcome, image: Option<&ImageIds>, path: &Path, user: &str, check: &str) {
    let Some(img) = image else { return };
    let Ok(md) = fs::symlink_metadata(path) else {
        return;
    };
    let (Some(&u), g) = (img.users.get(user), img.groups.get(user).copied()) else {
        out.notes.push(format!(
            "the image has no user {user}: owner of {} not checked",
            path.display()
        ));
        return;
    };
    if md.uid() != u || g.is_some_and(|g| md.gid() != g) {
        out.findings.push(finding(
            check,
            crate::quote::json_path(path),
            format!(
                "owned by {}:{}, the image's {user} is {u}:{}: copy with --owner-map (or chown)",
                md.uid(),
                md.gid(),
                g.map(|g| g.to_string()).unwrap_or_else(|| "?".into())
            ),
        ));
    }
}

/// The DKIM private key under the /etc/dkimkeys mount: there, a regular file, private,
/// owned by the image's opendkim.
fn check_dkim(out: &mut Outcome, opts: &LayoutOptions) {
    let m = match mount_for(&opts.mounts, "/etc/dkimkeys") {
        None => {
            out.notes
                .push("no mount for /etc/dkimkeys: DKIM not checked".into());
            return;
        }
        Some(m) if m.source.is_dir() => m,
        Some(_) => return,
    };
    let key = m.source.join("opendkim.private");
    let problem = |p: String| finding("dkim", crate::quote::json_path(&key), p);
    match fs::symlink_metadata(&key) {
        Err(_) => out.findings.push(problem(
            "the DKIM private key is missing: mail would go out unsigned".into(),
        )),
        Ok(md) if !md.file_type().is_file() => {
            out.findings.push(problem("is not a regular file".into()))
        }
        Ok(md) => {
            if md.mode() & 0o077 != 0 {
                out.findings.push(problem(format!(
                    "mode {:04o}: a private key must not be readable by group or others (chmod 600)",
                    md.mode() & 0o7777
                )));
            }
            owner_is(out, opts.image.as_ref(), &key, "opendkim", "dkim");
        }
    }
}

/// The names in a directory, sorted; None when it cannot be read.
fn sorted_names(dir: &Path) -> Option<Vec<OsString>> {
    let rd = fs::read_dir(dir).ok()?;
    let mut names: Vec<OsString> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    Some(names)
}

/// Every `live/<domain>` link under the /var/lib/acme mount, and everything the
/// certificate directory holds, resolves inside the copied tree.
fn check_acme(out: &mut Outcome, mounts: &[Mount]) {
    let Some(m) = mount_for(mounts, "/var/lib/acme") else {
        return;
    };
    for n in sorted_names(&m.source.join("live")).unwrap_or_default() {
        let rel = Path::new("live").join(&n);
        match resolve_inside(&m.source, &m.target, &rel) {
            Err(e) => out
                .findings
                .push(finding("acme", crate::quote::json_path(&rel), e)),
            Ok(dir) => {
                for i in sorted_names(&m.source.join(&dir)).unwrap_or_default() {
                    let r = rel.join(&i);
                    if let Err(e) = resolve_inside(&m.source, &m.target, &r) {
                        out.findings
                            .push(finding("acme", crate::quote::json_path(&r), e));
                    }
                }
            }
        }
    }
}

/// The mailbox folder for mail_domain under the vmail mount exists, it and vmail owned by
/// the image's vmail.
fn check_mailboxes(out: &mut Outcome, opts: &LayoutOptions) {
    let vmail_mount = mount_for(&opts.mounts, "/home/vmail")
        .map(|m| m.source.clone())
        .or_else(|| mount_for(&opts.mounts, "/home").map(|m| m.source.join("vmail")));
    match (vmail_mount, &opts.mail_domain) {
        (None, _) => out.notes.push("no mount for /home/vmail or /home: mailboxes not checked".into()),
        (_, None) => out.notes.push(
            "mail_domain unknown (no MAIL_DOMAIN in the project's .env, no --ini): mailbox folder not checked".into(),
        ),
        (Some(vmail), Some(domain)) => {
            let dir = vmail.join("mail").join(domain);
            if !dir.is_dir() {
                out.findings.push(finding(
                    "mailbox",
                    crate::quote::json_path(&dir),
                    format!("no mailbox folder for mail_domain {domain:?}"),
                ));
            } else {
                owner_is(out, opts.image.as_ref(), &vmail, "vmail", "owner");
                owner_is(out, opts.image.as_ref(), &dir, "vmail", "owner");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn image_users_file_reads_owner_map_and_fixed_lines() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("users");
        fs::write(
            &f,
            "# comment\nvmail 901 901 # mail\n#fixed iroh 903 904\n\nopendkim\t902 902\n",
        )
        .unwrap();
        let ids = ImageIds::from_users_file(&f).unwrap();
        assert_eq!(ids.users.get("vmail"), Some(&901));
        assert_eq!(ids.users.get("opendkim"), Some(&902));
        assert_eq!(ids.users.get("iroh"), Some(&903));
        assert_eq!(ids.groups.get("iroh"), Some(&904));
        fs::write(&f, "vmail 901\n").unwrap();
        let e = ImageIds::from_users_file(&f).unwrap_err().to_string();
        assert!(e.contains("users:1:"), "{e}");
    }

    #[test]
    fn acme_links_resolve_inside_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("certs/abc")).unwrap();
        fs::create_dir_all(r.join("keys/abc")).unwrap();
        fs::create_dir_all(r.join("live")).unwrap();
        fs::write(r.join("keys/abc/privkey"), b"k").unwrap();
        symlink("../../keys/abc/privkey", r.join("certs/abc/privkey")).unwrap();
        symlink("../certs/abc", r.join("live/a.example")).unwrap();
        symlink("/var/lib/acme/certs/abc", r.join("live/b.example")).unwrap();
        symlink("/etc/ssl/x", r.join("live/c.example")).unwrap();
        symlink("../certs/nope", r.join("live/d.example")).unwrap();
        symlink("../../../outside", r.join("live/e.example")).unwrap();
        let m = Path::new("/var/lib/acme");
        assert_eq!(
            resolve_inside(r, m, Path::new("live/a.example/privkey")).unwrap(),
            Path::new("keys/abc/privkey")
        );
        assert_eq!(
            resolve_inside(r, m, Path::new("live/b.example")).unwrap(),
            Path::new("certs/abc")
        );
        assert!(resolve_inside(r, m, Path::new("live/c.example"))
            .unwrap_err()
            .contains("outside"));
        assert!(resolve_inside(r, m, Path::new("live/d.example"))
            .unwrap_err()
            .contains("does not exist"));
        assert!(resolve_inside(r, m, Path::new("live/e.example"))
            .unwrap_err()
            .contains("out of the tree"));
    }

    #[test]
    fn compose_bind_mounts_are_read() {
        let j = r#"{"services":{"chatmail":{"volumes":[
            {"type":"bind","source":"/p/data/chatmail","target":"/home"},
            {"type":"tmpfs","target":"/tmp"},
            {"type":"bind","source":"/sys/fs/cgroup","target":"/sys/fs/cgroup"}]}}}"#;
        let m = mounts_from_compose_json(j).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].target, Path::new("/home"));
    }
}
