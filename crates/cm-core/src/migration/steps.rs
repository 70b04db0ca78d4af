//! The sequence of a run, its resume rules and its downtime clock.
//!
//! ```text
//! preflight -> watch -> bulk-copy -> stop -> delta -> settings -> verify [-> start]
//!              (relay serving)       |<------------- downtime ------------->|
//! ```
//!
//! Resume rules (`--resume`, after a crash, a reboot or Ctrl-C):
//!
//! | step      | on resume                                                                 |
//! |-----------|---------------------------------------------------------------------------|
//! | preflight | always run again (it only reads)                                          |
//! | watch     | started again while the services still run; after the stop there is no   |
//! |           | journal of what changed before, so the delta rescans everything           |
//! | bulk-copy | run again while the services still run (incremental); skipped after stop  |
//! | stop      | done: skipped. begun: stop-services runs again, which does only what is   |
//! |           | left and keeps the first recorded state; the clock keeps the first stop   |
//! | delta     | run again until done                                                      |
//! | settings  | written again until done (the same input writes the same file)            |
//! | verify    | run again until done                                                      |
//! | start     | `compose up` only if it never began; otherwise only waited for            |
//!
//! Invariant: each step's begin is on disk before the step changes anything and its end
//! before the next step begins; a failed step ends the run (exit 1) with the journal saying
//! where, so that `--resume` or `rollback` can follow.

use super::journal::{Phase, RunIdentity, RunJournal};
use super::preflight::{apply_skips, Finding, Level};
use super::{
    Changed, Copier, CopyOutcome, MigrationError, Pass, Services, Settings, Step, StepOutcome,
    Target, Verifier, Watch,
};
use crate::systemd::RunLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the run is asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub journal_file: PathBuf,
    /// The run lock (a file of its own: stop-services takes the services lock itself).
    pub lock_file: PathBuf,
    pub identity: RunIdentity,
    pub resume: bool,
    /// Bring the container up and wait until it serves.
    pub start: bool,
    /// Checks whose blocking findings the user chose to pass over (`--skip-check`).
    pub skip_checks: Vec<String>,
}

/// Where the run lock lives unless told otherwise.
pub const DEFAULT_RUN_LOCK_FILE: &str = "/run/cm-migrate-run.lock";

/// The parts a run drives.
pub struct Parts<'a> {
    /// The host checks of preflight (root, systemd, Docker, cgroup v2, inotify, ports, ini,
    /// queue); the argument says whether the container will be started.
    pub host: &'a mut dyn FnMut(bool) -> Vec<Finding>,
    pub copier: &'a mut dyn Copier,
    pub services: &'a mut dyn Services,
    pub settings: &'a mut dyn Settings,
    pub verifier: &'a mut dyn Verifier,
    pub target: &'a mut dyn Target,
    pub watch: &'a mut dyn Watch,
}

/// Progress, reported while working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEvent {
    /// A step's begin or end is on disk.
    Boundary {
        step: Step,
        phase: Phase,
    },
    /// A step finished (or was skipped): its report.
    Finished(StepReport),
    /// What a step is doing.
    Progress {
        step: Step,
        msg: String,
    },
    Finding(Finding),
}

/// How a step went in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Done,
    /// Not needed now (done by an earlier attempt, or not asked for).
    Skipped,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub step: Step,
    pub status: Status,
    pub summary: String,
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// The downtime: from the first service stopped to the verified copy (or, with --start, to
/// the container serving), from the journal's wall-clock times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downtime {
    pub started_unix_ms: u64,
    pub ended_unix_ms: u64,
    pub ms: u64,
    /// "verified copy" or "container serving".
    pub ends_at: String,
    /// Milliseconds per step inside the downtime (last attempt of each).
    pub parts: BTreeMap<String, u64>,
}

/// Everything a run did and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub run: RunIdentity,
    pub journal_file: PathBuf,
    pub resumed: bool,
    pub findings: Vec<Finding>,
    /// A preflight finding blocks the move: nothing was changed.
    pub blocked: bool,
    pub steps: Vec<StepReport>,
    /// Every step done.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime: Option<Downtime>,
    /// The exact next thing to do.
    pub next_step: String,
}

impl RunReport {
    /// 0 done, 1 blocked or incomplete.
    pub fn exit_code(&self) -> i32 {
        if self.complete {
            0
        } else {
            1
        }
    }
}

struct Ctx<'o> {
    journal: RunJournal,
    path: PathBuf,
    report: RunReport,
    on: &'o mut dyn FnMut(RunEvent),
}

impl Ctx<'_> {
    fn mark(&mut self, step: Step, phase: Phase, detail: String) -> Result<(), MigrationError> {
        self.journal.push(step, phase, detail);
        self.journal.save(&self.path)?;
        (self.on)(RunEvent::Boundary { step, phase });
        Ok(())
    }

    fn finish(&mut self, r: StepReport) {
        (self.on)(RunEvent::Finished(r.clone()));
        self.report.steps.push(r);
    }

    fn skip(&mut self, step: Step, why: &str) {
        self.finish(StepReport {
            step,
            status: Status::Skipped,
            summary: why.into(),
            ms: 0,
            problems: vec![],
            notes: vec![],
            detail: serde_json::Value::Null,
        });
    }

    /// Record the end of a step from its outcome; Ok(false) when it failed (the run ends).
    fn end(&mut self, step: Step, started: u64, o: StepOutcome) -> Result<bool, MigrationError> {
        let phase = if o.ok { Phase::Done } else { Phase::Failed };
        if step == Step::Stop && o.ok && self.journal.downtime_start_unix_ms.is_none() {
            // written with the stop's end: the downtime begins at the first service stopped
            // (or, when nothing was stopped, when the stop began); never moved later
            let begun = self
                .journal
                .first(Step::Stop, Phase::Begun)
                .map(|e| e.at_unix_ms);
            self.journal.downtime_start_unix_ms = o.first_stop_unix_ms.or(begun);
        }
        let detail = if o.ok {
            o.summary.clone()
        } else {
            o.problems.join("; ")
        };
        self.mark(step, phase, detail)?;
        self.finish(StepReport {
            step,
            status: if o.ok { Status::Done } else { Status::Failed },
            summary: o.summary,
            ms: crate::systemd::ops::unix_ms().saturating_sub(started),
            problems: o.problems,
            notes: o.notes,
            detail: o.detail,
        });
        Ok(o.ok)
    }

    /// Run `f` as step `step`: begin, outcome, end. Ok(false) when it failed.
    fn step(
        &mut self,
        step: Step,
        f: impl FnOnce(&mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError>,
    ) -> Result<bool, MigrationError> {
        self.mark(step, Phase::Begun, String::new())?;
        let started = crate::systemd::ops::unix_ms();
        let on = &mut *self.on;
        let mut progress = |msg: String| on(RunEvent::Progress { step, msg });
        let o = match f(&mut progress) {
            Ok(o) => o,
            Err(e) => {
                let _ = self.mark(step, Phase::Failed, e.to_string());
                return Err(e);
            }
        };
        self.end(step, started, o)
    }
}

/// A copy's outcome as a step's.
fn copy_outcome(pass: Pass, changed: &Changed, o: CopyOutcome) -> StepOutcome {
    let what = match pass {
        Pass::Live => "bulk copy",
        Pass::Final => "delta",
    };
    let mut summary = format!(
        "{what}: looked at {} {}{}, copied {} ({}), removed {}",
        o.scanned,
        if o.scanned == 1 { "entry" } else { "entries" },
        if o.restricted {
            format!(" in the changed directories ({})", changed.describe())
        } else {
            String::new()
        },
        o.copied,
        crate::report::human_bytes(o.copied_bytes),
        o.deleted
    );
    if let (false, Pass::Final, Changed::All { why }) = (o.restricted, pass, changed) {
        summary.push_str(&format!("; a full rescan: {why}"));
    }
    StepOutcome {
        ok: o.ok(),
        summary,
        problems: o.errors,
        notes: o.notes,
        first_stop_unix_ms: None,
        detail: o.detail,
    }
}

/// Open the journal for this run: a new one, or the interrupted one with --resume.
fn open_journal(opts: &RunOptions) -> Result<(RunJournal, bool), MigrationError> {
    let path = &opts.journal_file;
    match (RunJournal::load(path)?, opts.resume) {
        (Some(j), false) if !j.finished => Err(MigrationError::Interrupted {
            path: path.clone(),
            what: j.where_it_stopped(),
        }),
        (Some(_), false) => {
            RunJournal::archive(path, "finished")?;
            Ok((RunJournal::new(opts.identity.clone(), opts.start), false))
        }
        (None, false) => Ok((RunJournal::new(opts.identity.clone(), opts.start), false)),
        (None, true) => Err(MigrationError::NothingToResume { path: path.clone() }),
        (Some(j), true) if j.finished => {
            Err(MigrationError::NothingToResume { path: path.clone() })
        }
        (Some(j), true) if j.run != opts.identity => Err(MigrationError::OtherRun {
            theirs: j.run.describe(),
            ours: opts.identity.describe(),
        }),
        (Some(j), true) => Ok((j, true)),
    }
}

/// Take the run lock.
pub fn run_lock(path: &Path, what: &str) -> Result<RunLock, MigrationError> {
    RunLock::acquire(path, what).map_err(|e| MigrationError::Locked(e.to_string()))
}

/// `cm-migrate run`: the whole move, or what is left of it with --resume.
pub fn run(
    p: &mut Parts,
    opts: &RunOptions,
    on: &mut dyn FnMut(RunEvent),
) -> Result<RunReport, MigrationError> {
    let _lock = run_lock(&opts.lock_file, "run")?;
    let (journal, resumed) = open_journal(opts)?;
    let start = journal.start;
    let mut cx = Ctx {
        report: RunReport {
            run: journal.run.clone(),
            journal_file: opts.journal_file.clone(),
            resumed,
            ..Default::default()
        },
        journal,
        path: opts.journal_file.clone(),
        on,
    };
    if !preflight(&mut cx, p, opts, start)? {
        if !resumed {
            // nothing was changed: the next run starts afresh, not as a resume
            cx.journal.finished = true;
            cx.journal.save(&cx.path)?;
        }
        cx.report.blocked = true;
        cx.report.next_step = "fix what blocks (above) and run again; nothing was changed".into();
        return Ok(cx.report);
    }
    let roots = p.copier.roots();
    let Some(watching) = live_then_stop(&mut cx, p, &roots)? else {
        return Ok(incomplete(cx));
    };
    let changed = if watching {
        p.watch.finish(&roots)
    } else {
        Changed::All {
            why: "the change journal of an earlier attempt ended with it".into(),
        }
    };
    let unwatched = p.watch.unwatched();
    if !final_steps(&mut cx, p, &changed, &unwatched, start)? {
        return Ok(incomplete(cx));
    }
    cx.journal.finished = true;
    cx.journal.save(&cx.path)?;
    cx.report.complete = true;
    cx.report.downtime = downtime(&cx.journal, start);
    cx.report.next_step = if start {
        "the relay runs in the container; check it, then remove the old host's packages when \
         you are sure (cm-migrate rollback still brings the old relay back until then)"
            .into()
    } else {
        p.target.next_step()
    };
    Ok(cx.report)
}

/// While the relay serves: the change journal started and the bulk copy (unless an earlier
/// attempt stopped the services already), then the stop (unless done before). Whether the
/// journal is watching; None when a step did not hold.
fn live_then_stop(
    cx: &mut Ctx,
    p: &mut Parts,
    roots: &[PathBuf],
) -> Result<Option<bool>, MigrationError> {
    let watching = if cx.journal.was_begun(Step::Stop) {
        let why = "the services were stopped by an earlier attempt";
        cx.skip(Step::Watch, why);
        cx.skip(Step::BulkCopy, why);
        false
    } else {
        match watch_and_bulk_copy(cx, p, roots)? {
            Some(w) => w,
            None => return Ok(None),
        }
    };
    if cx.journal.is_done(Step::Stop) {
        cx.skip(Step::Stop, "done by an earlier attempt");
    } else {
        let services = &mut *p.services;
        if !cx.step(Step::Stop, |on| services.stop(on))? {
            return Ok(None);
        }
    }
    Ok(Some(watching))
}

/// Preflight: the findings of the host, the target and the copy. Ok(false) when one blocks.
fn preflight(
    cx: &mut Ctx,
    p: &mut Parts,
    opts: &RunOptions,
    start: bool,
) -> Result<bool, MigrationError> {
    cx.mark(Step::Preflight, Phase::Begun, String::new())?;
    let t = crate::systemd::ops::unix_ms();
    let findings = findings(p, start, &opts.skip_checks);
    for f in &findings {
        (cx.on)(RunEvent::Finding(f.clone()));
    }
    let blocking: Vec<String> = findings
        .iter()
        .filter(|f| f.level == Level::Block)
        .map(|f| format!("{}: {}", f.check, f.message))
        .collect();
    let n = findings.len();
    cx.report.findings = findings;
    let o = if blocking.is_empty() {
        StepOutcome::ok(format!("{n} checks, none blocks the move"))
    } else {
        StepOutcome::failed(
            format!("{} of {n} checks block the move", blocking.len()),
            blocking,
        )
    };
    cx.end(Step::Preflight, t, o)
}

/// Every preflight finding: the host's, the target's, the copy's; skips applied.
pub fn findings(p: &mut Parts, start: bool, skip: &[String]) -> Vec<Finding> {
    let mut f = (p.host)(start);
    f.extend(p.target.preflight(start));
    f.extend(p.copier.preflight());
    apply_skips(&mut f, skip);
    f
}

/// What `run --dry-run` shows: the findings, the data, the steps, the expected downtime.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    pub findings: Vec<Finding>,
    pub blocked: bool,
    pub estimate: super::Estimate,
    /// The chatmail units the stop takes down, in stop order.
    pub units: Vec<String>,
    pub settings: String,
    pub change_journal: String,
    pub expected: Expected,
    pub next_step: String,
}

/// The expected durations, in seconds, from the timed sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// The bulk copy (while the relay serves): every entry walked, every file read.
    pub bulk_copy_s: f64,
    /// The delta when the change journal is complete: the changed directories only
    /// (what changes is not known ahead; per 1000 changed files).
    pub delta_per_1000_changed_s: f64,
    /// The delta when the journal is incomplete: every entry walked again.
    pub delta_full_rescan_s: f64,
    /// The verification (cm-verify all reads and hashes every file of source and copy).
    pub verify_s: f64,
    /// Downtime with a complete journal (stop not included: its length is the daemons'
    /// own), and without one.
    pub downtime_s: f64,
    pub downtime_without_journal_s: f64,
}

/// `run --dry-run`: read-only.
pub fn dry_run(p: &mut Parts, start: bool, skip: &[String]) -> Result<DryRun, MigrationError> {
    let findings = findings(p, start, skip);
    let blocked = findings.iter().any(|f| f.level == Level::Block);
    let estimate = p.copier.estimate()?;
    let units = p.services.plan().unwrap_or_default();
    let settings = p
        .settings
        .plan()
        .unwrap_or_else(|e| format!("not planned: {e}"));
    let e = &estimate;
    let verify = 2.0 * e.seconds(e.entries, e.files);
    let per_1000 = e.seconds(1000, 1000);
    let full = e.seconds(e.entries, 0);
    Ok(DryRun {
        blocked,
        expected: Expected {
            bulk_copy_s: e.seconds(e.entries, e.files),
            delta_per_1000_changed_s: per_1000,
            delta_full_rescan_s: full,
            verify_s: verify,
            downtime_s: per_1000 + verify,
            downtime_without_journal_s: full + verify,
        },
        change_journal: "fanotify on the sources' file systems, from before the bulk copy to \
                         after the stop (a full rescan when it may be incomplete)"
            .into(),
        findings,
        estimate,
        units,
        settings,
        next_step: p.target.next_step(),
    })
}

/// The change journal and the live bulk copy. Some(watching) when the copy succeeded.
fn watch_and_bulk_copy(
    cx: &mut Ctx,
    p: &mut Parts,
    roots: &[PathBuf],
) -> Result<Option<bool>, MigrationError> {
    let watch = &mut *p.watch;
    let mut watching = false;
    cx.step(Step::Watch, |_| {
        Ok(match watch.start(roots) {
            Ok(msg) => {
                watching = true;
                StepOutcome::ok(msg)
            }
            Err(why) => StepOutcome {
                ok: true,
                summary: "no change journal: the delta will rescan everything".into(),
                notes: vec![why],
                ..Default::default()
            },
        })
    })?;
    let copier = &mut *p.copier;
    let all = Changed::All {
        why: "the bulk copy looks at everything".into(),
    };
    let ok = cx.step(Step::BulkCopy, |on| {
        Ok(copy_outcome(
            Pass::Live,
            &all,
            copier.copy(Pass::Live, &all, on)?,
        ))
    })?;
    if !ok && watching {
        let _ = p.watch.finish(roots);
    }
    Ok(ok.then_some(watching))
}

/// Delta, settings, verify and (with --start) the container. Ok(false) when one failed.
fn final_steps(
    cx: &mut Ctx,
    p: &mut Parts,
    changed: &Changed,
    unwatched: &[String],
    start: bool,
) -> Result<bool, MigrationError> {
    if cx.journal.is_done(Step::Delta) {
        cx.skip(Step::Delta, "done by an earlier attempt");
    } else {
        let copier = &mut *p.copier;
        let ok = cx.step(Step::Delta, |on| {
            let mut o = copy_outcome(Pass::Final, changed, copier.copy(Pass::Final, changed, on)?);
            o.notes
                .extend(unwatched.iter().map(|w| format!("rescanned in full: {w}")));
            Ok(o)
        })?;
        if !ok {
            return Ok(false);
        }
    }
    if cx.journal.is_done(Step::Settings) {
        cx.skip(Step::Settings, "done by an earlier attempt");
    } else {
        let settings = &mut *p.settings;
        if !cx.step(Step::Settings, |_| settings.write())? {
            return Ok(false);
        }
    }
    if cx.journal.is_done(Step::Verify) {
        cx.skip(Step::Verify, "done by an earlier attempt");
    } else {
        let verifier = &mut *p.verifier;
        if !cx.step(Step::Verify, |on| verifier.verify(changed, on))? {
            return Ok(false);
        }
    }
    if !start {
        cx.skip(Step::Start, "not asked for (--start)");
        return Ok(true);
    }
    let began = cx.journal.was_begun(Step::Start);
    let target = &mut *p.target;
    cx.step(Step::Start, |on| {
        if began {
            on("the container was started by an earlier attempt: waiting for it".into());
        } else {
            let up = target.up()?;
            if !up.ok {
                return Ok(up);
            }
            on(up.summary);
        }
        target.wait_healthy()
    })
}

/// The report of a run that stopped at a failed step, with what to do next.
fn incomplete(mut cx: Ctx) -> RunReport {
    cx.report.downtime = None;
    let stopped = cx.journal.was_begun(Step::Stop);
    cx.report.next_step = if stopped {
        "the old relay is stopped: fix the cause above, then `cm-migrate run --resume`; or \
         bring the old relay back with `cm-migrate rollback`"
            .into()
    } else {
        "the old relay still serves mail: fix the cause above, then `cm-migrate run --resume`"
            .into()
    };
    cx.report
}

/// The downtime from the journal, once the run finished.
pub fn downtime(j: &RunJournal, start: bool) -> Option<Downtime> {
    let started = j.downtime_start_unix_ms?;
    let (end_step, ends_at) = if start {
        (Step::Start, "container serving")
    } else {
        (Step::Verify, "verified copy")
    };
    let ended = j.done_at(end_step)?;
    let mut parts = BTreeMap::new();
    for s in [
        Step::Stop,
        Step::Delta,
        Step::Settings,
        Step::Verify,
        Step::Start,
    ] {
        let (Some(b), Some(d)) = (last_begun(j, s), j.done_at(s)) else {
            continue;
        };
        let b = if s == Step::Stop { b.max(started) } else { b };
        parts.insert(s.as_str().to_string(), d.saturating_sub(b));
    }
    Some(Downtime {
        started_unix_ms: started,
        ended_unix_ms: ended,
        ms: ended.saturating_sub(started),
        ends_at: ends_at.into(),
        parts,
    })
}

fn last_begun(j: &RunJournal, s: Step) -> Option<u64> {
    j.entries
        .iter()
        .rev()
        .find(|e| e.step == s && e.phase == Phase::Begun)
        .map(|e| e.at_unix_ms)
}
