//! The real parts a run drives on this host: cm-core's copy engine ([`LocalCopier`]),
//! systemd ([`SystemdServices`]), the project's .env ([`EnvSettings`]), `cm-verify all`
//! ([`VerifyCommand`]), Docker Compose ([`ComposeTarget`]) and fanotify ([`FanotifyWatch`]).
//!
//! Invariant: each does exactly what the standalone tool does (the same library calls, or
//! the tool itself), so that a run is the documented sequence of tools and nothing else.

use super::preflight::Finding;
use super::transport::Host;
use super::{
    Changed, Copier, CopyOutcome, Estimate, MigrationError, Pass, Services, Settings, Step,
    StepOutcome, Target, Verifier, VolumeEstimate, Watch,
};
use crate::copy::{self, safety, Severity, Volume};
use crate::owners::OwnerMap;
use crate::systemd::{self, Event, Postqueue, RestoreOptions, StopOptions, Systemctl};
use crate::target::compose::COMPOSE_FILES;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Entries and bytes of each source (a walk, no hashing), and a timed sample: a few
/// thousand files read and hashed, for the expected speed of a pass.
pub fn estimate_sources(vols: &[(String, PathBuf, String)]) -> Result<Estimate, MigrationError> {
    let mut est = Estimate::default();
    let mut sample: Vec<PathBuf> = Vec::new();
    let opts = crate::tree::ScanOptions {
        hash: false,
        ..Default::default()
    };
    let walk_start = Instant::now();
    for (name, src, target) in vols {
        let snap = crate::tree::walk(src, &opts, &())
            .map_err(|e| MigrationError::step(Step::Preflight, format!("{name}: {e}")))?;
        let (nfiles, bytes) = snap.file_totals();
        est.files += nfiles;
        let n = snap.entries.len() as u64;
        let files: Vec<&crate::tree::Entry> = snap
            .entries
            .iter()
            .filter(|e| e.kind == crate::tree::FileType::File)
            .collect();
        let step = (files.len() / 2000).max(1);
        sample.extend(files.iter().step_by(step).map(|e| src.join(&e.path)));
        est.volumes.push(VolumeEstimate {
            name: name.clone(),
            source: src.clone(),
            target: target.clone(),
            entries: n,
            bytes,
        });
        est.entries += n;
        est.bytes += bytes;
    }
    let walked = walk_start.elapsed().as_secs_f64();
    let t = Instant::now();
    for p in &sample {
        let _ = crate::tree::hash_file(p);
    }
    let hashed = t.elapsed().as_secs_f64();
    est.sample_files = sample.len() as u64;
    est.walk_per_sec = if walked > 0.0 {
        est.entries as f64 / walked
    } else {
        0.0
    };
    est.read_per_sec = if hashed > 0.0 {
        sample.len() as f64 / hashed
    } else {
        0.0
    };
    Ok(est)
}

/// The copy into this host's target with cm-core's engine (as cm-copy-data).
pub struct LocalCopier {
    pub volumes: Vec<Volume>,
    pub owners: Option<OwnerMap>,
    pub jobs: usize,
    /// The resolved target: its single files are copied after the trees, and its named
    /// volumes that do not exist yet are created by the live pass.
    pub target: Option<TargetFiles>,
    /// Why there is nothing to copy into (the target could not be resolved).
    pub unusable: Option<String>,
}

/// What a copy into a resolved target needs beyond its volumes.
pub struct TargetFiles {
    pub root: PathBuf,
    pub target: crate::target::Target,
    /// Some named volume does not exist yet (the live pass creates it).
    pub pending_volumes: bool,
}

/// (volume, source, where it goes) of every tree a copy reads that is a directory: each of
/// `volumes` as `shown` shows it (where it goes, as the copier names it), then the trees of
/// `target` whose named volume is not one of them and does not exist yet.
pub(super) fn sources<V>(
    volumes: &[V],
    target: Option<&TargetFiles>,
    shown: impl Fn(&V) -> (String, PathBuf, String),
) -> Vec<(String, PathBuf, String)> {
    let mut v: Vec<(String, PathBuf, String)> = volumes.iter().map(shown).collect();
    if let Some(tf) = target {
        let have: Vec<&str> = v.iter().map(|(name, _, _)| name.as_str()).collect();
        let pending = tf.pending(&have);
        v.extend(pending);
    }
    v.retain(|(_, src, _)| src.is_dir());
    v
}

/// A pass's start, for either copier: refused when the target is unusable; on the live
/// pass the named volumes not there yet are created (`notes` say so) and the copy's volumes
/// as they are then returned (None: as they were).
pub(super) fn begin_pass(
    pass: Pass,
    unusable: Option<&String>,
    target: Option<&mut TargetFiles>,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<Volume>>, MigrationError> {
    let step = pass.step();
    if let Some(why) = unusable {
        return Err(MigrationError::step(step, why));
    }
    match target {
        Some(t) if pass == Pass::Live => t
            .create_volumes(notes)
            .map_err(|e| MigrationError::step(step, e)),
        _ => Ok(None),
    }
}

/// One volume of a pass copied by the engine, its counts and problems added to `out` (on the
/// live pass an error is a note: the final pass, services stopped, copies what it could not),
/// its manifest written; the volume's detail, None when the manifest could not be written.
fn copy_volume(
    p: &copy::Plan,
    opts: &copy::Options,
    live: bool,
    out: &mut CopyOutcome,
) -> Option<serde_json::Value> {
    let o = copy::execute(p, opts, &|_| {});
    out.entries += o.walked.entries;
    out.scanned += o.walked.entries;
    out.copied += o.copied + o.linked;
    out.copied_bytes += o.copied_bytes;
    out.deleted += o.deleted;
    for pr in &o.problems {
        let line = format!("{}: {}: {}", p.volume.name, pr.path, pr.message);
        match pr.severity {
            // while the relay serves mail, entries change under the copy: what the
            // live pass could not copy, the final pass (services stopped) must
            Severity::Error if live => out.notes.push(format!("{line} (left for the final pass)")),
            Severity::Error => out.errors.push(line),
            _ => out.notes.push(line),
        }
    }
    let comments = vec![format!(
        "written by cm-migrate {} (volume {}, {} pass)",
        env!("CARGO_PKG_VERSION"),
        p.volume.name,
        if live { "live" } else { "final" }
    )];
    match copy::write_manifest(p, &o, &comments) {
        Ok(m) => Some(serde_json::json!({"volume": p.volume.name, "manifest": m, "outcome": o})),
        Err(e) => {
            out.errors
                .push(format!("{}: cannot write the manifest: {e}", p.volume.name));
            None
        }
    }
}

impl TargetFiles {
    /// The trees whose named volume does not exist yet (none of `have`): (volume, source,
    /// where it goes).
    pub fn pending(&self, have: &[&str]) -> Vec<(String, PathBuf, String)> {
        if !self.pending_volumes {
            return Vec::new();
        }
        self.target
            .trees()
            .filter(|p| !have.contains(&p.state.name.as_str()))
            .filter_map(|p| {
                let crate::target::Source::Volume { name, .. } = &p.source else {
                    return None;
                };
                let src = crate::root::resolve_in(&self.root, &p.mount).ok()?;
                let to = format!("volume {name} (the copy creates it)");
                Some((p.state.name.clone(), src, to))
            })
            .collect()
    }

    /// Create the named volumes that do not exist yet (with Compose's labels, through the
    /// engine where the target is); the volumes of the copy as they are then, or None when
    /// nothing was pending.
    pub fn create_volumes(
        &mut self,
        notes: &mut Vec<String>,
    ) -> Result<Option<Vec<Volume>>, String> {
        if !self.pending_volumes {
            return Ok(None);
        }
        let engine = crate::target::engine_of(&self.target);
        let p =
            crate::target::plan::copy_volumes(&self.target, &self.root, engine.as_ref(), true, &[])
                .map_err(|e| e.to_string())?;
        notes.extend(p.notes);
        self.pending_volumes = false;
        Ok(Some(p.volumes))
    }
}

impl LocalCopier {
    pub fn new(volumes: Vec<Volume>, owners: Option<OwnerMap>, target: TargetFiles) -> LocalCopier {
        LocalCopier {
            volumes,
            owners,
            jobs: (crate::tree::default_jobs() * 4).clamp(8, 32),
            target: Some(target),
            unusable: None,
        }
    }

    /// A copier for a target that could not be resolved: its preflight says why, its
    /// copy fails.
    pub fn unusable(why: String) -> LocalCopier {
        LocalCopier {
            volumes: Vec::new(),
            owners: None,
            jobs: 1,
            target: None,
            unusable: Some(why),
        }
    }

    /// What is copied: (volume, source, where it goes) for every tree there, also those
    /// whose named volume the live pass has yet to create.
    fn sources(&self) -> Vec<(String, PathBuf, String)> {
        sources(&self.volumes, self.target.as_ref(), |v| {
            (v.name.clone(), v.src.clone(), v.dst.display().to_string())
        })
    }

    /// The single files the target mounts (self-signed TLS, the account-creation switch,
    /// external TLS), after the trees: one note each, or the error.
    fn copy_files(&self, out: &mut CopyOutcome) {
        let Some(tf) = &self.target else {
            return;
        };
        let ids = self
            .owners
            .as_ref()
            .filter(|m| !m.is_identity())
            .map(|m| m as &dyn copy::MapIds);
        match crate::target::plan::copy_files(&tf.target, &tf.root, ids, false) {
            Ok(files) => out.notes.extend(files.iter().map(|f| {
                format!(
                    "{}: {} -> {}{}",
                    f.name,
                    f.src.display(),
                    f.dst.display(),
                    if f.changed { "" } else { " (unchanged)" }
                )
            })),
            Err(e) => out.errors.push(e.to_string()),
        }
    }

    fn options(&self, live: bool) -> copy::Options<'_> {
        copy::Options {
            jobs: self.jobs,
            checksum: false,
            live,
            ids: self
                .owners
                .as_ref()
                .filter(|m| !m.is_identity())
                .map(|m| m as &dyn copy::MapIds),
            ..Default::default()
        }
    }

    fn plans(&self, live: bool) -> Result<Vec<copy::Plan>, String> {
        self.plans_with(&self.options(live))
    }

    fn plans_with(&self, opts: &copy::Options) -> Result<Vec<copy::Plan>, String> {
        let mut plans = Vec::new();
        for v in &self.volumes {
            plans.push(copy::plan(v, opts).map_err(|e| format!("{}: {e}", v.name))?);
        }
        Ok(plans)
    }
}

impl Copier for LocalCopier {
    fn roots(&self) -> Vec<PathBuf> {
        self.sources().into_iter().map(|(_, src, _)| src).collect()
    }

    fn estimate(&mut self) -> Result<Estimate, MigrationError> {
        let mut est = estimate_sources(&self.sources())?;
        if let Ok(plans) = self.plans(true) {
            if let Ok(space) = safety::check_space(&plans) {
                est.space = space.iter().map(|s| s.to_string()).collect();
            }
        }
        Ok(est)
    }

    fn preflight(&mut self) -> Vec<Finding> {
        let mut f = Vec::new();
        if let Some(why) = &self.unusable {
            f.push(Finding::not_checked(
                "sources",
                format!("nothing to copy into: {why}"),
            ));
            return f;
        }
        if let Err(e) = safety::check_overlap(&self.volumes) {
            f.push(Finding::block(
                "sources",
                e,
                "give --project-dir a directory outside the sources",
            ));
            return f;
        }
        let plans = match self.plans(true) {
            Ok(p) => p,
            Err(e) => {
                f.push(Finding::block(
                    "sources",
                    e,
                    "see the message; nothing was copied",
                ));
                return f;
            }
        };
        if let Some(tf) = &self.target {
            let have: Vec<&str> = self.volumes.iter().map(|v| v.name.as_str()).collect();
            for (name, _, to) in tf.pending(&have) {
                f.push(Finding::not_checked(
                    "space",
                    format!("{name}: free space for {to}: the volume is made by the copy, its space is not known before"),
                ));
            }
        }
        for p in &plans {
            if let Some(s) = &p.skipped {
                f.push(Finding::ok("sources", format!("{}: {s}", p.volume.name)));
            }
        }
        match safety::check_space(&plans) {
            Ok(space) => {
                for s in space {
                    f.push(if s.ok() {
                        Finding::ok("space", format!("space ok: {s}"))
                    } else {
                        Finding::block(
                            "space",
                            format!("not enough space or inodes for the copy: {s}"),
                            "free space on that file system, or choose another --project-dir",
                        )
                    });
                }
            }
            Err(e) => f.push(Finding::not_checked("space", format!("free space: {e}"))),
        }
        f
    }

    fn copy(
        &mut self,
        pass: Pass,
        changed: &Changed,
        on: &mut dyn FnMut(String),
    ) -> Result<CopyOutcome, MigrationError> {
        let step = pass.step();
        let mut out = CopyOutcome::default();
        let target = self.target.as_mut();
        if let Some(v) = begin_pass(pass, self.unusable.as_ref(), target, &mut out.notes)? {
            self.volumes = v;
        }
        // The final pass walks only the directories the change journal names (per volume
        // it followed), merging with the live pass's manifest for the rest.
        let journal = match (pass, changed) {
            (Pass::Final, Changed::Dirs(d)) => {
                out.notes.push(format!(
                    "the final pass walks the {} changed directories the change journal named, and carries the rest over from the live pass's manifest",
                    d.values().map(Vec::len).sum::<usize>()
                ));
                Some(d)
            }
            _ => None,
        };
        let live = pass == Pass::Live;
        let opts = copy::Options {
            changed: journal,
            lazy_plan: true,
            ..self.options(live)
        };
        let plans = self
            .plans_with(&opts)
            .map_err(|e| MigrationError::step(step, e))?;
        let mut per_volume = Vec::new();
        for p in plans.iter().filter(|p| p.skipped.is_none()) {
            on(format!(
                "{}: {} -> {}",
                p.volume.name,
                p.volume.src.display(),
                p.volume.dst.display()
            ));
            per_volume.extend(copy_volume(p, &opts, live, &mut out));
        }
        out.detail = serde_json::Value::Array(per_volume);
        if out.errors.is_empty() {
            self.copy_files(&mut out);
        }
        Ok(out)
    }

    fn left_behind(&self) -> Vec<String> {
        let volume_of = |name: &str| {
            let p = self.target.as_ref()?.target.placement(name)?;
            match &p.source {
                crate::target::Source::Volume { name, .. } => Some(name.clone()),
                crate::target::Source::Bind { .. } => None,
            }
        };
        self.volumes
            .iter()
            .filter(|v| v.dst.exists())
            .map(|v| match volume_of(&v.name) {
                Some(vol) => format!(
                    "volume {vol} at {} (the copy of {}, with its manifest; `docker volume rm {vol}` removes it)",
                    v.dst.display(),
                    v.src.display()
                ),
                None => format!(
                    "{} (the copy of {}, with its manifest)",
                    v.dst.display(),
                    v.src.display()
                ),
            })
            .collect()
    }
}

/// The old host's units through `cm_core::systemd` (stop-services, start-services --restore).
pub struct SystemdServices {
    pub stop: StopOptions,
    pub restore: RestoreOptions,
}

fn describe(e: &Event) -> Option<String> {
    Some(match e {
        Event::Stopped(u) => format!("stopped {u}"),
        Event::Started(u) => format!("started {u}"),
        Event::QueueWaiting(n) => format!("waiting for the postfix queue: {n} message(s)"),
        Event::StateWritten(p) => format!("prior state recorded in {}", p.display()),
        Event::Failed {
            unit,
            action,
            error,
        } => format!("{action} {unit} FAILED: {error}"),
        _ => return None,
    })
}

impl Services for SystemdServices {
    fn plan(&mut self) -> Result<Vec<String>, MigrationError> {
        let p = systemd::discover(&mut Systemctl::default(), &self.stop.cron_dir)
            .map_err(|e| MigrationError::step(Step::Preflight, e))?;
        Ok(p.units.into_iter().map(|u| u.unit).collect())
    }

    fn stop(&mut self, on: &mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError> {
        let r = systemd::stop_services(
            &mut Systemctl::default(),
            &mut Postqueue,
            &self.stop,
            &mut |e| {
                if let Some(m) = describe(&e) {
                    on(m)
                }
            },
        )
        .map_err(|e| MigrationError::step(Step::Stop, e))?;
        let mut problems = failed(&r.actions);
        problems.extend(
            r.problems
                .iter()
                .map(|p| format!("not down: {}: {}", p.unit, p.problem)),
        );
        problems.extend(r.ports_in_use.iter().map(|l| format!("port in use: {l}")));
        if r.blocked_by_queue {
            let q = r
                .queue_before
                .as_ref()
                .map(|q| q.describe())
                .unwrap_or_default();
            problems.push(format!(
                "mail still queued after the flush ({q}); nothing was stopped"
            ));
        }
        let n = |a: &str| r.actions.iter().filter(|x| x.ok && x.action == a).count();
        Ok(StepOutcome {
            ok: r.is_complete(),
            summary: format!(
                "stopped {} unit(s) in {} call(s), disabled {}, in {:.2} s; prior state in {}",
                n("stop"),
                r.timing.stop_calls,
                n("disable"),
                r.timing.total_ms as f64 / 1000.0,
                r.state_file.display()
            ),
            problems,
            notes: r.warnings.clone(),
            first_stop_unix_ms: r.timing.first_stop_unix_ms,
            detail: serde_json::to_value(&r).unwrap_or_default(),
        })
    }

    fn restore(&mut self, on: &mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError> {
        if !self.recorded() {
            return Ok(StepOutcome::ok(
                "no services were stopped: nothing to restore",
            ));
        }
        let r = systemd::restore_services(&mut Systemctl::default(), &self.restore, &mut |e| {
            if let Some(m) = describe(&e) {
                on(m)
            }
        })
        .map_err(|e| MigrationError::step(Step::Stop, e))?;
        let mut problems = failed(&r.actions);
        problems.extend(
            r.mismatches
                .iter()
                .map(|m| format!("not restored: {}: {}", m.unit, m.problem)),
        );
        Ok(StepOutcome {
            ok: r.is_complete(),
            summary: format!(
                "every recorded unit back in its prior state in {:.2} s",
                r.timing.total_ms as f64 / 1000.0
            ),
            problems,
            detail: serde_json::to_value(&r).unwrap_or_default(),
            ..Default::default()
        })
    }

    fn recorded(&self) -> bool {
        self.stop.state_file.exists()
    }
}

/// The actions that failed, one line each.
fn failed(actions: &[crate::systemd::ops::ActionResult]) -> Vec<String> {
    actions
        .iter()
        .filter(|a| !a.ok)
        .map(|a| {
            format!(
                "{} {}: {}",
                a.action,
                a.target,
                a.error.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// No services to stop (the old host's root is not this machine's, or it runs no systemd):
/// the step says so and changes nothing.
pub struct NoServices {
    pub why: String,
}

impl Services for NoServices {
    fn plan(&mut self) -> Result<Vec<String>, MigrationError> {
        Ok(Vec::new())
    }
    fn stop(&mut self, _on: &mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError> {
        Ok(StepOutcome {
            ok: true,
            summary: format!("skipped: {}", self.why),
            ..Default::default()
        })
    }
    fn restore(&mut self, _on: &mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError> {
        Ok(StepOutcome::ok(format!(
            "nothing to restore ({})",
            self.why
        )))
    }
    fn recorded(&self) -> bool {
        false
    }
}

/// The project's .env from the relay's chatmail.ini (as cm-ini-to-env --merge).
pub struct EnvSettings {
    pub ini: PathBuf,
    pub env: PathBuf,
}

impl EnvSettings {
    fn planned(&self) -> Result<crate::envfile::Plan, MigrationError> {
        let err = |m: String| MigrationError::step(Step::Settings, m);
        let ini = crate::ini::read(&self.ini).map_err(|e| err(e.to_string()))?;
        let conv = crate::params::convert(&ini).map_err(|e| err(e.to_string()))?;
        let text = conv.to_env(false).map_err(|e| err(e.to_string()))?;
        crate::envfile::plan(
            &conv,
            false,
            &text,
            &self.ini,
            &self.env,
            crate::envfile::Existing::Merge,
        )
        .map_err(|e| err(e.to_string()))
    }
}

impl Settings for EnvSettings {
    fn plan(&mut self) -> Result<String, MigrationError> {
        let p = self.planned()?;
        if p.existing.as_deref() == Some(p.content.as_bytes()) {
            return Ok(format!(
                "{} already holds these settings",
                p.target.display()
            ));
        }
        let what = match &p.action {
            crate::envfile::Action::Write => "write".to_string(),
            crate::envfile::Action::Replace => "replace".to_string(),
            m => format!("{m}, a backup beside it: merge into").replacen("merged", "", 1),
        };
        Ok(format!(
            "{} {} from {}",
            what.trim(),
            p.target.display(),
            self.ini.display()
        ))
    }

    fn write(&mut self) -> Result<StepOutcome, MigrationError> {
        let p = self.planned()?;
        if p.existing.as_deref() == Some(p.content.as_bytes()) {
            return Ok(StepOutcome::ok(format!(
                "{} already holds these settings",
                p.target.display()
            )));
        }
        let backup = crate::envfile::execute(&p, std::time::SystemTime::now())
            .map_err(|e| MigrationError::step(Step::Settings, e))?;
        Ok(StepOutcome::ok(format!(
            "{} {}{}",
            p.action,
            p.target.display(),
            backup
                .map(|b| format!(" (backup {})", b.display()))
                .unwrap_or_default()
        )))
    }

    fn left_behind(&self) -> Vec<String> {
        if self.env.exists() {
            vec![format!(
                "{} (written from {})",
                self.env.display(),
                self.ini.display()
            )]
        } else {
            vec![]
        }
    }
}

/// `cm-verify all` (the suite's own binary) with the run's arguments.
pub struct VerifyCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// What one cm-verify call said: whether everything held, its stdout lines and its stderr
/// lines (non-empty); Err when it could not check (not run, or exit 2).
pub fn run_cm_verify(
    program: &Path,
    args: &[OsString],
) -> Result<(bool, Vec<String>, Vec<String>), MigrationError> {
    let err = |m: String| MigrationError::step(Step::Verify, m);
    let o = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("running {}: {e}", program.display())))?;
    let lines = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let (out, errs) = (lines(&o.stdout), lines(&o.stderr));
    let what = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    match o.status.code() {
        Some(0) => Ok((true, out, errs)),
        Some(1) => Ok((false, out, errs)),
        c => Err(err(format!(
            "cm-verify {what} exited {c:?}: {}",
            errs.join("; ")
        ))),
    }
}

impl Verifier for VerifyCommand {
    fn verify(
        &mut self,
        _changed: &Changed,
        on: &mut dyn FnMut(String),
    ) -> Result<StepOutcome, MigrationError> {
        on(format!("{} all", self.program.display()));
        let mut args: Vec<OsString> = vec!["all".into()];
        args.extend(self.args.iter().cloned());
        let (held, out, errs) = run_cm_verify(&self.program, &args)?;
        let summary = format!(
            "cm-verify all: {}",
            out.last().map(String::as_str).unwrap_or("")
        );
        Ok(if held {
            StepOutcome::ok(summary)
        } else {
            StepOutcome::failed(summary, out.into_iter().chain(errs).collect())
        })
    }
}

/// The compose project (here, or on the Docker host over ssh).
pub struct ComposeTarget {
    pub host: Host,
    pub project_dir: PathBuf,
    /// The compose command (`docker compose`, or a standalone v2 binary).
    pub compose: Vec<String>,
    /// How long `--start` waits for the container to serve.
    pub health_timeout: Duration,
    /// The target as resolved on this host (its findings replace the compose-file checks
    /// made over ssh for a far Docker host).
    pub resolved: Option<Vec<Finding>>,
}

impl ComposeTarget {
    fn compose(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        let dir = self.project_dir.display().to_string();
        let mut argv: Vec<&str> = self.compose.iter().map(String::as_str).collect();
        argv.extend(["--project-directory", &dir]);
        argv.extend(args);
        self.host.run(&argv)
    }

    fn exists(&self, p: &Path) -> bool {
        let s = p.display().to_string();
        self.host
            .run(&["test", "-e", &s])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Whether `port` answers on the container's own loopback: inside its network
    /// namespace, so that it holds for `network_mode: host` (the shipped compose file) and for
    /// a container of its own network alike, on this host or on the Docker host over ssh.
    fn port_answers(&self, id: &str, port: u16) -> bool {
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
        self.host
            .run(&["docker", "exec", id, "timeout", "3", "bash", "-c", &probe])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

impl Target for ComposeTarget {
    fn preflight(&mut self, start: bool) -> Vec<Finding> {
        let mut f = super::transport::docker_host_findings(self.host.exec(), start);
        if let Some(r) = &self.resolved {
            f.extend(r.iter().cloned());
            return f;
        }
        let on = self.host.name();
        if !self.exists(&self.project_dir) {
            f.push(Finding::block(
                "target",
                format!("the project directory {} does not exist on {on}", self.project_dir.display()),
                "create it with the deployment's compose file (or give --project-dir the right one)",
            ));
            return f;
        }
        let Some(file) = COMPOSE_FILES
            .iter()
            .map(|n| self.project_dir.join(n))
            .find(|p| self.exists(p))
        else {
            f.push(Finding::block(
                "target",
                format!(
                    "no compose file in {} on {on} (looked for {})",
                    self.project_dir.display(),
                    COMPOSE_FILES.join(", ")
                ),
                "put the deployment's compose file there",
            ));
            return f;
        };
        let env_missing = !self.exists(&self.project_dir.join(".env"));
        f.push(match self.compose(&["config", "--quiet"]) {
            Ok(o) if o.status.success() => Finding::ok(
                "target",
                format!("{} reads as a compose project", file.display()),
            ),
            // the run writes the .env (settings step): a compose file that needs it is fine
            Ok(o) if env_missing && String::from_utf8_lossy(&o.stderr).contains("/.env") => {
                Finding::ok(
                    "target",
                    format!(
                        "{} is a compose project that reads the .env the run writes",
                        file.display()
                    ),
                )
            }
            Ok(o) => Finding::block(
                "target",
                format!(
                    "{}: {}",
                    file.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                "fix the compose file",
            ),
            Err(e) => Finding::not_checked("target", format!("running compose on {on}: {e}")),
        });
        f
    }

    fn up(&mut self) -> Result<StepOutcome, MigrationError> {
        let o = self
            .compose(&["up", "-d"])
            .map_err(|e| MigrationError::step(Step::Start, format!("running compose: {e}")))?;
        if o.status.success() {
            Ok(StepOutcome::ok(format!(
                "compose up -d in {}",
                self.project_dir.display()
            )))
        } else {
            Ok(StepOutcome::failed(
                "compose up -d failed",
                vec![String::from_utf8_lossy(&o.stderr).trim().to_string()],
            ))
        }
    }

    fn wait_healthy(&mut self) -> Result<StepOutcome, MigrationError> {
        let t = Instant::now();
        let mut last = String::new();
        while t.elapsed() < self.health_timeout {
            let ids = self
                .compose(&["ps", "-q"])
                .ok()
                .filter(|o| o.status.success());
            let id = ids
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            if id.is_empty() {
                last = "no container is running".into();
            } else {
                let st = self
                    .host
                    .run(&["docker", "exec", &id, "systemctl", "is-system-running"])
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_default();
                let ports: Vec<u16> = [25u16, 143, 993]
                    .into_iter()
                    .filter(|p| !self.port_answers(&id, *p))
                    .collect();
                if matches!(st.as_str(), "running" | "degraded") && ports.is_empty() {
                    return Ok(StepOutcome::ok(format!(
                        "the container serves: systemd {st}, ports 25, 143, 993 answer ({:.1} s)",
                        t.elapsed().as_secs_f64()
                    )));
                }
                last = format!("systemd in the container: {st:?}; not answering: {ports:?}");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(StepOutcome::failed(
            format!(
                "the container did not serve within {} s",
                self.health_timeout.as_secs()
            ),
            vec![last],
        ))
    }

    fn down(&mut self) -> Result<StepOutcome, MigrationError> {
        let o = self
            .compose(&["stop"])
            .map_err(|e| MigrationError::step(Step::Start, format!("running compose: {e}")))?;
        if o.status.success() {
            Ok(StepOutcome::ok(format!(
                "the container in {} is stopped",
                self.project_dir.display()
            )))
        } else {
            Ok(StepOutcome::failed(
                "compose stop failed",
                vec![String::from_utf8_lossy(&o.stderr).trim().to_string()],
            ))
        }
    }

    fn next_step(&self) -> String {
        let cmd = format!("cd {} && docker compose up -d", self.project_dir.display());
        match &self.host {
            Host::Local => cmd,
            Host::Remote(r) => format!("on {}: {cmd}", r.host),
        }
    }
}

/// The fanotify change journal of [`crate::watch`]: one journal per file system holding
/// source roots (roots on one file system share it: one reader per stream of events), so
/// that a root on a file system fanotify cannot follow (an overlay, say) is rescanned in full
/// while the others are not.
#[derive(Default)]
pub struct FanotifyWatch {
    watchers: Vec<(Vec<PathBuf>, crate::watch::Watcher)>,
    not_watched: Vec<String>,
}

/// Roots grouped by the file system they are on (in order of first appearance).
fn by_filesystem(roots: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let mut groups: Vec<(Option<u64>, Vec<PathBuf>)> = Vec::new();
    for r in roots {
        let dev = std::fs::metadata(r).ok().map(|m| m.dev());
        match groups.iter_mut().find(|(d, _)| d.is_some() && *d == dev) {
            Some((_, v)) => v.push(r.clone()),
            None => groups.push((dev, vec![r.clone()])),
        }
    }
    groups.into_iter().map(|(_, v)| v).collect()
}

impl Watch for FanotifyWatch {
    fn start(&mut self, roots: &[PathBuf]) -> Result<String, String> {
        for group in by_filesystem(roots) {
            match crate::watch::Watcher::start(&group, crate::watch::Options::default()) {
                Ok(w) => self.watchers.push((group, w)),
                Err(e) => self.not_watched.extend(
                    group
                        .iter()
                        .map(|r| format!("{} not journaled ({e})", r.display())),
                ),
            }
        }
        let n: usize = self.watchers.iter().map(|(g, _)| g.len()).sum();
        let mut msg = format!(
            "change journal on {n} of {} root(s) (fanotify, whole file systems)",
            roots.len()
        );
        for w in &self.not_watched {
            msg.push_str(&format!("; {w}: rescanned in full"));
        }
        if self.watchers.is_empty() {
            return Err(msg);
        }
        Ok(msg)
    }

    fn finish(&mut self, _roots: &[PathBuf]) -> Changed {
        let mut dirs = BTreeMap::new();
        for (group, w) in self.watchers.drain(..) {
            let changes = w.finish();
            for r in group {
                match changes.below(&r) {
                    Ok(d) => {
                        dirs.insert(r, d);
                    }
                    Err(e) => self.not_watched.push(format!(
                        "{}: the change journal is incomplete: {e}",
                        r.display()
                    )),
                }
            }
        }
        if dirs.is_empty() {
            return Changed::All {
                why: if self.not_watched.is_empty() {
                    "no change journal ran".into()
                } else {
                    self.not_watched.join("; ")
                },
            };
        }
        Changed::Dirs(dirs)
    }

    fn unwatched(&self) -> Vec<String> {
        self.not_watched.clone()
    }
}
