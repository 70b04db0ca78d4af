//! Stopping chatmail's units (with the postfix queue drained first), verifying the result,
//! and restoring what ran before.
//!
//! Invariant: nothing is changed before the state file is written; in dry-run mode nothing
//! is changed at all (the queue is only read, not flushed); a unit that fails to stop does not
//! stop the others, it is reported and makes the run incomplete.

use super::catalog::{Stage, CRON_ASIDE_SUFFIX};
use super::lock::RunLock;
use super::plan::{discover, Plan};
use super::runner::{MailQueue, QueueStatus, ServiceManager};
use super::state::{restored_path, CronMove, ServicesState, UnitRecord};
use super::{is_enabled_state, SystemdError, UnitInfo};
use crate::ports::{listeners_on, Listener, CONTAINER_PORTS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `stop-services`.
#[derive(Clone, Debug)]
pub struct StopOptions {
    pub dry_run: bool,
    /// How long to wait for the postfix queue to empty after a flush.
    pub queue_timeout: Duration,
    /// Pause between two looks at the queue.
    pub queue_poll: Duration,
    pub allow_queued_mail: bool,
    pub state_file: PathBuf,
    /// The run lock ([`RunLock`]) held for the whole run.
    pub lock_file: PathBuf,
    /// How long one unit may take to stop.
    pub unit_timeout: Duration,
    /// Where legacy cron files live (/etc/cron.d).
    pub cron_dir: PathBuf,
    /// /proc of the host whose ports are checked.
    pub proc_root: PathBuf,
    /// Ports that must be free afterwards.
    pub ports: Vec<u16>,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions {
            dry_run: false,
            queue_timeout: Duration::from_secs(60),
            queue_poll: Duration::from_secs(1),
            allow_queued_mail: false,
            state_file: super::DEFAULT_STATE_FILE.into(),
            lock_file: super::DEFAULT_LOCK_FILE.into(),
            unit_timeout: Duration::from_secs(120),
            cron_dir: "/etc/cron.d".into(),
            proc_root: "/proc".into(),
            ports: CONTAINER_PORTS.to_vec(),
        }
    }
}

/// Progress, reported while working (the library never prints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The plan, before anything is done.
    Plan(Plan),
    /// What a restore will do, before anything is done.
    RestorePlan(Vec<RestoreStep>),
    QueueFlushed,
    QueueWaiting(usize),
    QueueFlushFailed(String),
    StateWritten(PathBuf),
    CronMoved(CronMove),
    CronRestored(CronMove),
    /// systemd re-read its unit files after the enables or disables.
    Reloaded,
    Stopping(String),
    Stopped(String),
    Disabled(String),
    Enabled(String),
    Starting(String),
    Started(String),
    Failed {
        unit: String,
        action: String,
        error: String,
    },
}

/// One action taken on a unit or file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub target: String,
    /// `stop`, `disable`, `enable`, `start`, `move-cron`, `restore-cron`.
    pub action: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A unit that is not in the state it should be in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitProblem {
    pub unit: String,
    pub active_state: String,
    pub unit_file_state: String,
    pub problem: String,
}

/// Everything `stop-services` did and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopReport {
    pub dry_run: bool,
    pub allow_queued_mail: bool,
    pub plan: Plan,
    pub state_file: PathBuf,
    /// The queue before postfix was stopped (after the flush and the wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_before: Option<QueueStatus>,
    /// Mail was queued and `--allow-queued-mail` was not given: nothing was changed.
    pub blocked_by_queue: bool,
    /// The queue after postfix was stopped (mail accepted during the wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_after: Option<QueueStatus>,
    pub actions: Vec<ActionResult>,
    /// Units still active or enabled afterwards.
    pub problems: Vec<UnitProblem>,
    /// The ports checked afterwards (those the container needs).
    pub ports_checked: Vec<u16>,
    /// Container ports still in use afterwards.
    pub ports_in_use: Vec<Listener>,
    pub warnings: Vec<String>,
}

impl StopReport {
    /// Did everything that was asked happen?
    pub fn is_complete(&self) -> bool {
        let queued_after =
            !self.allow_queued_mail && self.queue_after.as_ref().is_some_and(|q| q.total > 0);
        !self.blocked_by_queue
            && !queued_after
            && self.actions.iter().all(|a| a.ok)
            && self.problems.is_empty()
            && self.ports_in_use.is_empty()
    }
    /// 0 done (or dry run), 1 incomplete.
    pub fn exit_code(&self) -> i32 {
        if self.is_complete() {
            0
        } else {
            1
        }
    }
}

fn wait_for_queue(
    mq: &mut dyn MailQueue,
    opts: &StopOptions,
    on: &mut dyn FnMut(Event),
) -> Result<QueueStatus, SystemdError> {
    match mq.flush() {
        Ok(()) => on(Event::QueueFlushed),
        Err(e) => on(Event::QueueFlushFailed(e.to_string())),
    }
    let start = Instant::now();
    let mut last = None;
    loop {
        let st = mq.status()?;
        if st.total == 0 || start.elapsed() >= opts.queue_timeout {
            return Ok(st);
        }
        if last != Some(st.total) {
            on(Event::QueueWaiting(st.total)); // only when the count changes
            last = Some(st.total);
        }
        std::thread::sleep(
            opts.queue_poll
                .min(opts.queue_timeout.saturating_sub(start.elapsed())),
        );
    }
}

/// `stop-services`: take the run lock, discover, plan, drain the queue, record, stop and
/// disable in order, verify. Errors are returned only when the host cannot be used at all
/// (another run holds the lock, systemctl missing, unreadable state file); per-unit failures
/// are in the report.
pub fn stop_services(
    sm: &mut dyn ServiceManager,
    mq: &mut dyn MailQueue,
    opts: &StopOptions,
    on: &mut dyn FnMut(Event),
) -> Result<StopReport, SystemdError> {
    let _lock = lock(&opts.lock_file, "stop-services", opts.dry_run)?;
    let plan = discover(sm, &opts.cron_dir)?;
    on(Event::Plan(plan.clone()));
    let mut report = StopReport {
        dry_run: opts.dry_run,
        allow_queued_mail: opts.allow_queued_mail,
        plan: plan.clone(),
        state_file: opts.state_file.clone(),
        ..Default::default()
    };
    let has_postfix = plan.units.iter().any(|u| u.class.stage == Stage::Postfix);

    if plan.stops_postfix() {
        let st = if opts.dry_run {
            mq.status()?
        } else {
            wait_for_queue(mq, opts, on)?
        };
        if st.total > 0 {
            if opts.allow_queued_mail {
                report.warnings.push(format!(
                    "mail left in the queue (--allow-queued-mail): {} message(s): {}",
                    st.total,
                    st.describe()
                ));
            } else if !opts.dry_run {
                report.blocked_by_queue = true;
            }
        }
        report.queue_before = Some(st);
        if report.blocked_by_queue {
            return Ok(report);
        }
    }
    if opts.dry_run {
        return Ok(report);
    }

    // 1. record the prior state (merging into an earlier run's record)
    let mut state = ServicesState::load(&opts.state_file)?.unwrap_or_default();
    for u in &plan.units {
        state.record_unit(UnitRecord {
            unit: u.unit.clone(),
            class: u.class,
            active_state: u.before.active_state.clone(),
            sub_state: u.before.sub_state.clone(),
            unit_file_state: u.before.unit_file_state.clone(),
        });
    }
    let moves: Vec<CronMove> = plan
        .cron_files
        .iter()
        .map(|from| {
            let mut to = from.as_os_str().to_owned();
            to.push(CRON_ASIDE_SUFFIX);
            CronMove {
                from: from.clone(),
                to: PathBuf::from(to),
            }
        })
        .collect();
    for m in &moves {
        state.record_cron(m.clone());
    }
    state.save(&opts.state_file)?;
    on(Event::StateWritten(opts.state_file.clone()));

    // 2. legacy cron jobs: renamed aside (cron ignores names with a dot)
    for m in moves {
        let res = rename_no_replace(&m.from, &m.to);
        let target = m.from.display().to_string();
        record(
            &mut report,
            on,
            &target,
            "move-cron",
            res,
            Event::CronMoved(m),
        );
    }

    // 3. stop and disable, in order
    for u in &plan.units {
        if u.stop {
            on(Event::Stopping(u.unit.clone()));
            let res = sm.stop(&u.unit, opts.unit_timeout);
            record_unit(&mut report, on, &u.unit, "stop", res, Event::Stopped);
        }
        if u.disable {
            let res = sm.disable(&u.unit);
            record_unit(&mut report, on, &u.unit, "disable", res, Event::Disabled);
        }
    }
    reload_after(sm, &mut report, on, "disable");

    // 4. verify: every unit inactive and disabled
    let names: Vec<String> = plan.units.iter().map(|u| u.unit.clone()).collect();
    let planned: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    if !names.is_empty() {
        for now in sm.show(&names)? {
            if let Some(p) = stop_problem(&now, &planned) {
                report.problems.push(p);
            }
        }
    }
    if has_postfix {
        match mq.status() {
            Ok(st) => {
                report.queue_after = Some(st);
            }
            Err(e) => report.warnings.push(format!(
                "could not read the postfix queue after stopping: {e}"
            )),
        }
    }
    report.ports_checked = opts.ports.clone();
    report.ports_in_use =
        listeners_on(&opts.proc_root, &opts.ports).map_err(|e| SystemdError::Proc {
            path: e.path,
            source: e.source,
        })?;
    Ok(report)
}

/// The run lock, saying what holds it.
fn lock(path: &Path, what: &str, dry_run: bool) -> Result<RunLock, SystemdError> {
    let dry = if dry_run { " --dry-run" } else { "" };
    RunLock::acquire(path, &format!("{what}{dry}"))
}

fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

/// Rename `from` to `to` unless `to` exists (then both are left as they are).
fn rename_no_replace(from: &Path, to: &Path) -> Result<(), String> {
    if exists(to) {
        return Err(format!(
            "{} already exists; both are left as they are: move one away and run again",
            to.display()
        ));
    }
    fs::rename(from, to).map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}

/// Record the outcome of one action in the report: on success send `done`, on failure a
/// [`Event::Failed`] with the error.
fn record<R: AsMut<Vec<ActionResult>>>(
    report: &mut R,
    on: &mut dyn FnMut(Event),
    target: &str,
    action: &str,
    res: Result<(), String>,
    done: Event,
) {
    let error = match res {
        Ok(()) => {
            on(done);
            None
        }
        Err(error) => {
            on(Event::Failed {
                unit: target.into(),
                action: action.into(),
                error: error.clone(),
            });
            Some(error)
        }
    };
    report.as_mut().push(ActionResult {
        target: target.into(),
        action: action.into(),
        ok: error.is_none(),
        error,
    });
}

/// [`record`] for an action of systemd on a unit; `done` is the event of its success.
fn record_unit<R: AsMut<Vec<ActionResult>>>(
    report: &mut R,
    on: &mut dyn FnMut(Event),
    unit: &str,
    action: &str,
    res: Result<(), SystemdError>,
    done: fn(String) -> Event,
) {
    let res = res.map_err(|e| e.to_string());
    record(report, on, unit, action, res, done(unit.to_string()));
}

/// One `systemctl daemon-reload` after a batch of `action` (enable or disable), if any
/// happened.
fn reload_after<R: AsMut<Vec<ActionResult>>>(
    sm: &mut dyn ServiceManager,
    report: &mut R,
    on: &mut dyn FnMut(Event),
    action: &str,
) {
    if report.as_mut().iter().any(|a| a.action == action) {
        let res = sm.reload().map_err(|e| e.to_string());
        record(report, on, "systemd", "daemon-reload", res, Event::Reloaded);
    }
}

impl AsMut<Vec<ActionResult>> for StopReport {
    fn as_mut(&mut self) -> &mut Vec<ActionResult> {
        &mut self.actions
    }
}
impl AsMut<Vec<ActionResult>> for RestoreReport {
    fn as_mut(&mut self) -> &mut Vec<ActionResult> {
        &mut self.actions
    }
}

/// Why a unit is not safely down, if it is not: still running, still enabled, or enabled for
/// this boot by a unit outside the plan (a runtime link that only a planned unit pulls in,
/// such as `postfix@-.service` wanted by the disabled `postfix.service`, is fine).
fn stop_problem(now: &UnitInfo, planned: &BTreeSet<&str>) -> Option<UnitProblem> {
    let mut why = Vec::new();
    if now.is_active() {
        why.push(format!("still {} ({})", now.active_state, now.sub_state));
    }
    if now.is_enabled() {
        why.push(format!("still {}", now.unit_file_state));
    }
    if now.is_enabled_runtime() {
        let outside: Vec<&String> = now
            .wanted_by
            .iter()
            .chain(&now.required_by)
            .filter(|w| !planned.contains(w.as_str()))
            .collect();
        if !outside.is_empty() || (now.wanted_by.is_empty() && now.required_by.is_empty()) {
            why.push(format!(
                "{} (pulled in by {})",
                now.unit_file_state,
                if outside.is_empty() {
                    "a runtime link".to_string()
                } else {
                    outside
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
    }
    if why.is_empty() {
        return None;
    }
    Some(UnitProblem {
        unit: now.id.clone(),
        active_state: now.active_state.clone(),
        unit_file_state: now.unit_file_state.clone(),
        problem: why.join("; "),
    })
}

/// Options of `start-services --restore`.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    pub dry_run: bool,
    pub state_file: PathBuf,
    /// The run lock ([`RunLock`]) held for the whole run.
    pub lock_file: PathBuf,
    pub unit_timeout: Duration,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            dry_run: false,
            state_file: super::DEFAULT_STATE_FILE.into(),
            lock_file: super::DEFAULT_LOCK_FILE.into(),
            unit_timeout: Duration::from_secs(120),
        }
    }
}

/// What the restore does to one unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStep {
    pub unit: String,
    pub enable: bool,
    pub start: bool,
    pub prior_active_state: String,
    pub prior_unit_file_state: String,
}

/// Everything `start-services --restore` did and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub dry_run: bool,
    pub state_file: PathBuf,
    pub steps: Vec<RestoreStep>,
    pub cron: Vec<CronMove>,
    pub actions: Vec<ActionResult>,
    /// Units whose state differs from the recorded one afterwards.
    pub mismatches: Vec<UnitProblem>,
    /// Where the state file was moved once everything was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file_moved_to: Option<PathBuf>,
}

impl RestoreReport {
    pub fn is_complete(&self) -> bool {
        self.actions.iter().all(|a| a.ok) && self.mismatches.is_empty()
    }
    pub fn exit_code(&self) -> i32 {
        if self.is_complete() {
            0
        } else {
            1
        }
    }
}

fn was_running(active_state: &str) -> bool {
    matches!(
        active_state,
        "active" | "activating" | "reloading" | "refreshing"
    )
}

/// `start-services --restore`: take the run lock, re-enable and start exactly what ran before,
/// in reverse stop order, move the legacy cron files back, then check every unit against its
/// record.
pub fn restore_services(
    sm: &mut dyn ServiceManager,
    opts: &RestoreOptions,
    on: &mut dyn FnMut(Event),
) -> Result<RestoreReport, SystemdError> {
    let _lock = lock(&opts.lock_file, "start-services --restore", opts.dry_run)?;
    let state = ServicesState::load(&opts.state_file)?.ok_or_else(|| SystemdError::NoState {
        path: opts.state_file.clone(),
    })?;
    let names: Vec<String> = state.units.iter().map(|u| u.unit.clone()).collect();
    let now: Vec<UnitInfo> = if names.is_empty() {
        Vec::new()
    } else {
        sm.show(&names)?
    };
    let current = |unit: &str| now.iter().find(|i| i.id == unit);
    let steps: Vec<RestoreStep> = state
        .units
        .iter()
        .rev()
        .map(|r| {
            let cur = current(&r.unit);
            RestoreStep {
                unit: r.unit.clone(),
                enable: is_enabled_state(&r.unit_file_state)
                    && !cur.is_some_and(|c| c.is_enabled()),
                start: was_running(&r.active_state) && !cur.is_some_and(|c| c.is_active()),
                prior_active_state: r.active_state.clone(),
                prior_unit_file_state: r.unit_file_state.clone(),
            }
        })
        .collect();
    on(Event::RestorePlan(steps.clone()));
    let mut report = RestoreReport {
        dry_run: opts.dry_run,
        state_file: opts.state_file.clone(),
        steps: steps.clone(),
        cron: state.cron.clone(),
        ..Default::default()
    };
    if opts.dry_run {
        return Ok(report);
    }

    for m in &state.cron {
        if exists(&m.from) && !exists(&m.to) {
            continue; // already back
        }
        let res = rename_no_replace(&m.to, &m.from);
        let target = m.from.display().to_string();
        let done = Event::CronRestored(m.clone());
        record(&mut report, on, &target, "restore-cron", res, done);
    }

    for s in &steps {
        if s.enable {
            let res = sm.enable(&s.unit);
            record_unit(&mut report, on, &s.unit, "enable", res, Event::Enabled);
        }
        if s.start {
            on(Event::Starting(s.unit.clone()));
            let res = sm.start(&s.unit, opts.unit_timeout);
            record_unit(&mut report, on, &s.unit, "start", res, Event::Started);
        }
    }
    reload_after(sm, &mut report, on, "enable");

    if !names.is_empty() {
        let after = sm.show(&names)?;
        for r in &state.units {
            let Some(a) = after.iter().find(|i| i.id == r.unit) else {
                continue;
            };
            let mut why = Vec::new();
            if was_running(&r.active_state) != a.is_active() {
                why.push(format!("was {}, is {}", r.active_state, a.active_state));
            }
            if is_enabled_state(&r.unit_file_state) != a.is_enabled() {
                why.push(format!(
                    "was {}, is {}",
                    r.unit_file_state, a.unit_file_state
                ));
            }
            if !why.is_empty() {
                report.mismatches.push(UnitProblem {
                    unit: r.unit.clone(),
                    active_state: a.active_state.clone(),
                    unit_file_state: a.unit_file_state.clone(),
                    problem: why.join("; "),
                });
            }
        }
    }
    if report.is_complete() {
        let to = restored_path(&opts.state_file);
        fs::rename(&opts.state_file, &to).map_err(|source| SystemdError::StateIo {
            path: opts.state_file.clone(),
            source,
        })?;
        report.state_file_moved_to = Some(to);
    }
    Ok(report)
}

/// The state file's record, for `--json` consumers and tests.
pub fn read_state(path: &Path) -> Result<Option<ServicesState>, SystemdError> {
    ServicesState::load(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::plan::fake::*;

    struct Env {
        dir: tempfile::TempDir,
        opts: StopOptions,
    }

    impl Env {
        /// Restore options reading this environment's state file and lock.
        fn restore_opts(&self) -> RestoreOptions {
            RestoreOptions {
                state_file: self.opts.state_file.clone(),
                lock_file: self.opts.lock_file.clone(),
                ..Default::default()
            }
        }

        /// `action` on the cron file failed because the other name exists, and both files
        /// are left with their contents.
        fn assert_cron_conflict_left_alone(&self, actions: &[ActionResult], action: &str) {
            let a = actions.iter().find(|a| a.action == action).unwrap();
            assert!(
                !a.ok && a.error.as_deref().unwrap().contains("already exists"),
                "{a:?}"
            );
            let read = |n: &str| fs::read(self.opts.cron_dir.join(n)).unwrap();
            assert_eq!(read("expunge"), b"new\n");
            assert_eq!(read("expunge.cm-migrate-disabled"), b"old\n");
        }
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cron = dir.path().join("cron.d");
        let proc_root = dir.path().join("proc"); // no net/ files: no listeners
        fs::create_dir_all(&cron).unwrap();
        fs::create_dir_all(&proc_root).unwrap();
        let opts = StopOptions {
            queue_timeout: Duration::ZERO,
            queue_poll: Duration::ZERO,
            state_file: dir.path().join("state/services-state.json"),
            lock_file: dir.path().join("cm-migrate.lock"),
            cron_dir: cron,
            proc_root,
            ..Default::default()
        };
        Env { dir, opts }
    }

    fn stop(
        sd: &mut FakeSystemd,
        q: &mut FakeQueue,
        opts: &StopOptions,
    ) -> (StopReport, Vec<Event>) {
        let mut ev = Vec::new();
        let r = stop_services(sd, q, opts, &mut |e| ev.push(e)).unwrap();
        (r, ev)
    }

    fn changes(log: &[String]) -> Vec<&str> {
        log.iter()
            .map(String::as_str)
            .filter(|l| *l != "list" && *l != "reload")
            .collect()
    }

    #[test]
    fn stops_and_disables_in_safe_order_and_never_touches_foreign_units() {
        let e = env();
        let mut sd = relay();
        let mut q = FakeQueue::default();
        let (r, ev) = stop(&mut sd, &mut q, &e.opts);
        assert!(r.is_complete(), "{r:#?}");
        assert_eq!(r.exit_code(), 0);
        assert!(matches!(ev[0], Event::Plan(_)), "plan comes first");
        assert!(q.flushed, "queue flushed before postfix stops");
        assert_eq!(
            changes(&sd.log),
            vec![
                "stop chatmail-expire.timer",
                "disable chatmail-expire.timer",
                "stop fcgiwrap.socket",
                "disable fcgiwrap.socket",
                "stop postfix@-.service",
                "stop postfix.service",
                "disable postfix.service",
                "stop filtermail.service",
                "disable filtermail.service",
                "stop filtermail-incoming.service",
                "disable filtermail-incoming.service",
                "stop dovecot.service",
                "disable dovecot.service",
                "stop doveauth.service",
                "disable doveauth.service",
                "disable lastlogin.service",
                "stop chatmail-metadata.service",
                "disable chatmail-metadata.service",
                "stop echobot.service",
                "disable echobot.service",
                "stop opendkim.service",
                "disable opendkim.service",
                "stop nginx.service",
                "disable nginx.service",
                "stop turnserver.service",
                "stop unbound.service",
                "disable unbound.service",
            ]
        );
        let reloads: Vec<usize> = (0..sd.log.len())
            .filter(|&i| sd.log[i] == "reload")
            .collect();
        assert_eq!(reloads.len(), 1, "one daemon-reload after all disables");
        assert_eq!(sd.log[reloads[0] - 1], "disable unbound.service");
        for foreign in ["ssh.service", "cron.service", "chatmail-custom.service"] {
            assert_eq!(sd.state(foreign), ("active".into(), "enabled".into()));
        }
        assert_eq!(r.plan.leftovers.len(), 1);
        assert_eq!(r.queue_after.as_ref().unwrap().total, 0);
        let st = ServicesState::load(&e.opts.state_file).unwrap().unwrap();
        let turn = st
            .units
            .iter()
            .find(|u| u.unit == "turnserver.service")
            .unwrap();
        assert_eq!(
            (turn.active_state.as_str(), turn.unit_file_state.as_str()),
            ("active", "disabled")
        );
    }

    #[test]
    fn dry_run_changes_nothing_and_writes_no_state() {
        let mut e = env();
        e.opts.dry_run = true;
        let mut sd = relay();
        let before = sd.units.clone();
        let mut q = FakeQueue {
            messages: 3,
            ..Default::default()
        };
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert_eq!(r.exit_code(), 0);
        assert!(changes(&sd.log).is_empty());
        assert_eq!(sd.units, before);
        assert!(!q.flushed, "dry run does not even flush");
        assert_eq!(r.queue_before.unwrap().total, 3, "but it reports the queue");
        assert!(!e.opts.state_file.exists());
    }

    #[test]
    fn queued_mail_blocks_before_anything_changes() {
        let e = env();
        let mut sd = relay();
        let mut q = FakeQueue {
            messages: 2,
            ..Default::default()
        };
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert!(r.blocked_by_queue);
        assert_eq!(r.exit_code(), 1);
        assert_eq!(r.queue_before.as_ref().unwrap().total, 2);
        assert!(r
            .queue_before
            .unwrap()
            .describe()
            .contains("/var/spool/postfix/deferred"));
        assert!(changes(&sd.log).is_empty(), "{:?}", sd.log);
        assert!(!e.opts.state_file.exists());
    }

    #[test]
    fn allow_queued_mail_proceeds_and_says_so() {
        let mut e = env();
        e.opts.allow_queued_mail = true;
        let mut sd = relay();
        let mut q = FakeQueue {
            messages: 2,
            ..Default::default()
        };
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert!(!r.blocked_by_queue);
        assert!(r.is_complete(), "{r:#?}");
        assert!(r.warnings.iter().any(|w| w.contains("2 message(s)")));
        assert_eq!(sd.state("postfix.service").0, "inactive");
    }

    #[test]
    fn a_queue_that_drains_within_the_timeout_does_not_block() {
        let mut e = env();
        e.opts.queue_timeout = Duration::from_secs(30);
        let mut sd = relay();
        let mut q = FakeQueue {
            messages: 2,
            drains_after: Some(3),
            ..Default::default()
        };
        let (r, ev) = stop(&mut sd, &mut q, &e.opts);
        assert!(r.is_complete(), "{r:#?}");
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::QueueWaiting(2)))
                .count(),
            1,
            "reported once while the count stays the same"
        );
        assert_eq!(
            r.queue_before.as_ref().map(|q| q.total),
            Some(0),
            "polled until empty"
        );
    }

    #[test]
    fn a_unit_that_does_not_stop_is_reported_and_the_rest_still_stop() {
        let e = env();
        let mut sd = relay();
        sd.hang_on_stop.insert("dovecot.service".into());
        let mut q = FakeQueue::default();
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert_eq!(r.exit_code(), 1);
        let failed: Vec<_> = r.actions.iter().filter(|a| !a.ok).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].target, "dovecot.service");
        assert_eq!(r.problems.len(), 1);
        assert!(
            r.problems[0].problem.contains("deactivating"),
            "{:?}",
            r.problems
        );
        assert_eq!(sd.state("dovecot.service").1, "disabled", "still disabled");
        assert_eq!(
            sd.state("unbound.service").0,
            "inactive",
            "later units still stopped"
        );
    }

    #[test]
    fn restore_brings_back_exactly_the_prior_state_in_reverse_order() {
        let e = env();
        let mut sd = relay();
        let original = sd.units.clone();
        fs::write(e.opts.cron_dir.join("expunge"), "2 0 * * * vmail /x\n").unwrap();
        let mut q = FakeQueue::default();
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert!(r.is_complete(), "{r:#?}");
        assert!(!e.opts.cron_dir.join("expunge").exists());
        assert!(e.opts.cron_dir.join("expunge.cm-migrate-disabled").exists());

        // a second stop (nothing left to do) must not overwrite the first record
        let (r2, _) = stop(&mut sd, &mut q, &e.opts);
        assert!(r2.is_complete(), "{r2:#?}");

        sd.log.clear();
        let ropts = e.restore_opts();
        let rr = restore_services(&mut sd, &ropts, &mut |_| {}).unwrap();
        assert!(rr.is_complete(), "{rr:#?}");
        let log = changes(&sd.log);
        assert_eq!(log.first(), Some(&"enable unbound.service"));
        assert_eq!(log.last(), Some(&"start chatmail-expire.timer"));
        let pos = |s: &str| log.iter().position(|l| *l == s).unwrap();
        assert!(pos("start postfix.service") < pos("start postfix@-.service"));
        assert!(pos("start dovecot.service") < pos("start postfix.service"));
        assert!(
            !log.contains(&"enable turnserver.service"),
            "was not enabled"
        );
        assert!(!log.contains(&"start lastlogin.service"), "was not running");
        for (id, u) in &original {
            let now = &sd.units[id];
            assert_eq!(
                (&now.active_state, &now.unit_file_state),
                (&u.active_state, &u.unit_file_state),
                "{id}"
            );
        }
        assert!(e.opts.cron_dir.join("expunge").exists());
        assert!(!e.opts.state_file.exists());
        assert!(rr.state_file_moved_to.unwrap().exists());
        drop(e.dir);
    }

    #[test]
    fn restore_dry_run_changes_nothing_and_without_state_is_a_usage_error() {
        let e = env();
        let mut sd = relay();
        let ropts = RestoreOptions {
            dry_run: true,
            ..e.restore_opts()
        };
        let err = restore_services(&mut sd, &ropts, &mut |_| {}).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let mut q = FakeQueue::default();
        stop(&mut sd, &mut q, &e.opts);
        sd.log.clear();
        let rr = restore_services(&mut sd, &ropts, &mut |_| {}).unwrap();
        assert!(changes(&sd.log).is_empty());
        assert!(rr
            .steps
            .iter()
            .any(|s| s.unit == "postfix.service" && s.start && s.enable));
        assert!(e.opts.state_file.exists());
    }

    #[test]
    fn mail_left_in_the_queue_of_an_already_stopped_postfix_is_reported() {
        let e = env();
        let mut sd = relay();
        sd.add("postfix.service", "inactive", "enabled");
        sd.add("postfix@-.service", "inactive", "enabled-runtime");
        let mut q = FakeQueue {
            messages: 4,
            ..Default::default()
        };
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert!(
            r.queue_before.is_none(),
            "postfix not running: nothing to drain"
        );
        assert_eq!(r.queue_after.as_ref().unwrap().total, 4);
        assert_eq!(r.exit_code(), 1, "queued mail would be left behind");
        assert_eq!(sd.state("postfix.service").1, "disabled");
    }

    #[test]
    fn a_cron_file_whose_aside_name_is_taken_is_left_and_reported() {
        let e = env();
        let mut sd = FakeSystemd::default();
        fs::write(e.opts.cron_dir.join("expunge"), "new\n").unwrap();
        fs::write(e.opts.cron_dir.join("expunge.cm-migrate-disabled"), "old\n").unwrap();
        let mut q = FakeQueue::default();
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert_eq!(r.exit_code(), 1);
        e.assert_cron_conflict_left_alone(&r.actions, "move-cron");
    }

    #[test]
    fn restore_leaves_a_cron_file_recreated_meanwhile_and_keeps_the_state_file() {
        let e = env();
        let mut sd = relay();
        fs::write(e.opts.cron_dir.join("expunge"), "old\n").unwrap();
        let mut q = FakeQueue::default();
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert!(r.is_complete(), "{r:#?}");
        fs::write(e.opts.cron_dir.join("expunge"), "new\n").unwrap();
        let ropts = e.restore_opts();
        let rr = restore_services(&mut sd, &ropts, &mut |_| {}).unwrap();
        assert_eq!(rr.exit_code(), 1);
        e.assert_cron_conflict_left_alone(&rr.actions, "restore-cron");
        assert_eq!(
            sd.state("postfix.service"),
            ("active".into(), "enabled".into())
        );
        assert!(e.opts.state_file.exists(), "kept for another run");
        assert!(rr.state_file_moved_to.is_none());
    }

    #[test]
    fn a_second_run_while_one_holds_the_lock_is_refused_and_changes_nothing() {
        let e = env();
        let mut sd = relay();
        let mut q = FakeQueue::default();
        let held = RunLock::acquire(&e.opts.lock_file, "stop-services").unwrap();
        let mut ev = Vec::new();
        let err = stop_services(&mut sd, &mut q, &e.opts, &mut |x| ev.push(x)).unwrap_err();
        assert!(matches!(err, SystemdError::Locked { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains(&format!("pid {}, stop-services", std::process::id())),
            "{err}"
        );
        assert!(ev.is_empty(), "refused before the first look: {ev:?}");
        assert!(sd.log.is_empty(), "systemd not even asked: {:?}", sd.log);
        assert!(!q.flushed);
        assert!(!e.opts.state_file.exists());
        let ropts = e.restore_opts();
        let err = restore_services(&mut sd, &ropts, &mut |_| {}).unwrap_err();
        assert!(matches!(err, SystemdError::Locked { .. }), "{err:?}");
        drop(held);

        // released after each run: stop, then restore, then stop again all go through
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert!(r.is_complete(), "{r:#?}");
        let rr = restore_services(&mut sd, &ropts, &mut |_| {}).unwrap();
        assert!(rr.is_complete(), "{rr:#?}");
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert!(r.is_complete(), "{r:#?}");
    }

    #[test]
    fn runtime_enabled_unit_is_fine_only_when_pulled_in_by_a_planned_unit() {
        let planned: BTreeSet<&str> = ["postfix.service", "postfix@-.service"].into();
        let mut u = UnitInfo {
            id: "postfix@-.service".into(),
            active_state: "inactive".into(),
            unit_file_state: "enabled-runtime".into(),
            wanted_by: vec!["postfix.service".into()],
            ..Default::default()
        };
        assert!(stop_problem(&u, &planned).is_none());
        u.wanted_by.push("multi-user.target".into());
        let p = stop_problem(&u, &planned).unwrap();
        assert!(p.problem.contains("multi-user.target"), "{p:?}");
    }
}
