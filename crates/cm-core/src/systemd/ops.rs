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
    /// How long each part took (measured, for the report and the downtime clock).
    #[serde(default)]
    pub timing: StopTiming,
}

/// How long the parts of `stop-services` took, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopTiming {
    /// Wall clock (milliseconds since the epoch) of the first stop request: where the
    /// relay's downtime begins. None when nothing was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_stop_unix_ms: Option<u64>,
    /// Listing and reading the units.
    pub discover_ms: u64,
    /// Flushing the postfix queue and waiting for it.
    pub queue_ms: u64,
    /// Recording the prior state and moving cron files aside.
    pub record_ms: u64,
    /// The disable call and the daemon-reload.
    pub disable_ms: u64,
    /// From the first stop request to the last stage stopped.
    pub stop_ms: u64,
    /// Checking units, the queue and the ports afterwards.
    pub verify_ms: u64,
    pub total_ms: u64,
    /// systemctl stop calls made (one per stage with something to stop).
    pub stop_calls: u32,
    /// Each stop call: its units and how long it took.
    #[serde(default)]
    pub stages: Vec<StageTiming>,
}

/// One systemctl call on a stage's units.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTiming {
    pub units: Vec<String>,
    pub ms: u64,
}

/// How long the parts of `start-services --restore` took, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreTiming {
    /// The enable call and the daemon-reload.
    pub enable_ms: u64,
    /// From the first start request to the last stage started.
    pub start_ms: u64,
    /// Checking every unit against its record.
    pub verify_ms: u64,
    pub total_ms: u64,
    /// systemctl start calls made (one per stage with something to start).
    pub start_calls: u32,
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// Milliseconds since the epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
    let start = Instant::now();
    let (_lock, lock_note) = lock_unless_unprivileged_dry_run(
        &opts.lock_file,
        "stop-services",
        opts.dry_run,
        ", and the queue is read only as far as postqueue lets this user",
    )?;
    let plan = discover(sm, &opts.cron_dir)?;
    on(Event::Plan(plan.clone()));
    let mut run = StopRun {
        report: StopReport {
            dry_run: opts.dry_run,
            allow_queued_mail: opts.allow_queued_mail,
            plan,
            state_file: opts.state_file.clone(),
            warnings: lock_note.into_iter().collect(),
            ..Default::default()
        },
        sm,
        mq,
        opts,
        on,
        start,
    };
    run.report.timing.discover_ms = ms_since(start);
    if run.drain_queue()? {
        run.record_prior_state()?;
        run.disable();
        run.stop_stages();
        run.verify()?;
    }
    Ok(run.finish())
}

/// One `stop-services` run past discovery: what every phase shares, a method per phase.
struct StopRun<'a> {
    sm: &'a mut dyn ServiceManager,
    mq: &'a mut dyn MailQueue,
    opts: &'a StopOptions,
    on: &'a mut dyn FnMut(Event),
    /// The report, holding the plan.
    report: StopReport,
    start: Instant,
}

impl StopRun<'_> {
    /// Drain the postfix queue when the plan stops postfix (in a dry run only read it).
    /// False when the run ends here: a dry run, mail queued, or a dry run's queue unread.
    fn drain_queue(&mut self) -> Result<bool, SystemdError> {
        let t = Instant::now();
        if self.report.plan.stops_postfix() {
            let Some(st) = self.queue_status()? else {
                return Ok(false);
            };
            self.judge_queue(st);
            if self.report.blocked_by_queue {
                self.report.timing.queue_ms = ms_since(t);
                return Ok(false);
            }
        }
        self.report.timing.queue_ms = ms_since(t);
        Ok(!self.opts.dry_run)
    }

    /// The queue before postfix stops: flushed and waited for, or (dry run) only read;
    /// None when a dry run could not read it (said in a warning).
    fn queue_status(&mut self) -> Result<Option<QueueStatus>, SystemdError> {
        if !self.opts.dry_run {
            return wait_for_queue(self.mq, self.opts, self.on).map(Some);
        }
        match self.mq.status() {
            Ok(st) => Ok(Some(st)),
            Err(e) => {
                self.report
                    .warnings
                    .push(format!("the postfix queue was not checked: {e}"));
                Ok(None)
            }
        }
    }

    /// Mail still queued blocks the run (not a dry run), unless allowed (then a warning).
    fn judge_queue(&mut self, st: QueueStatus) {
        if st.total > 0 {
            if self.opts.allow_queued_mail {
                self.report.warnings.push(format!(
                    "mail left in the queue (--allow-queued-mail): {} message(s): {}",
                    st.total,
                    st.describe()
                ));
            } else if !self.opts.dry_run {
                self.report.blocked_by_queue = true;
            }
        }
        self.report.queue_before = Some(st);
    }

    /// 1. record the prior state (merging into an earlier run's record), then 2. rename
    ///    the legacy cron jobs aside (cron ignores names with a dot).
    fn record_prior_state(&mut self) -> Result<(), SystemdError> {
        let t = Instant::now();
        let moves = self.write_state()?;
        for m in moves {
            let res = rename_no_replace(&m.from, &m.to);
            let target = m.from.display().to_string();
            let done = Event::CronMoved(m);
            record(&mut self.report, self.on, &target, "move-cron", res, done);
        }
        self.report.timing.record_ms = ms_since(t);
        Ok(())
    }

    /// The state file with the planned units and cron moves merged in; the moves to make.
    fn write_state(&mut self) -> Result<Vec<CronMove>, SystemdError> {
        let opts = self.opts;
        let plan = &self.report.plan;
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
        let moves: Vec<CronMove> = plan.cron_files.iter().map(|f| aside(f)).collect();
        for m in &moves {
            state.record_cron(m.clone());
        }
        state.save(&opts.state_file)?;
        (self.on)(Event::StateWritten(opts.state_file.clone()));
        Ok(moves)
    }

    /// 3. disable everything planned (one call) and reload once, before the first stop: a
    ///    disabled unit keeps running, so the stop (and the downtime) holds only the stops.
    fn disable(&mut self) {
        let units = self.report.plan.units.iter();
        let to_disable: Vec<String> = units
            .filter(|u| u.disable)
            .map(|u| u.unit.clone())
            .collect();
        self.report.timing.disable_ms = switch_then_reload(
            self.sm,
            &mut self.report,
            self.on,
            &to_disable,
            Action::Disable,
        );
    }

    /// 4. stop, one call per stage of the safe order (systemd stops a stage's units in
    ///    parallel, in its own dependency order).
    fn stop_stages(&mut self) {
        let t = Instant::now();
        let stages = by_stage(
            self.report
                .plan
                .units
                .iter()
                .filter(|u| u.stop)
                .map(|u| (u.class.stage, &u.unit)),
        );
        for units in stages {
            let timing = &mut self.report.timing;
            if timing.first_stop_unix_ms.is_none() {
                timing.first_stop_unix_ms = Some(unix_ms());
            }
            let (sm, timeout) = (&mut *self.sm, self.opts.unit_timeout);
            let ms = stage_call(sm, &mut self.report, self.on, &units, Action::Stop, timeout);
            let timing = &mut self.report.timing;
            timing.stop_calls += 1;
            timing.stages.push(StageTiming { units, ms });
        }
        self.report.timing.stop_ms = ms_since(t);
    }

    /// 5. verify: every unit inactive and disabled, the queue read again, the ports free.
    fn verify(&mut self) -> Result<(), SystemdError> {
        let t = Instant::now();
        let plan = &self.report.plan;
        let names: Vec<String> = plan.units.iter().map(|u| u.unit.clone()).collect();
        let has_postfix = plan.units.iter().any(|u| u.class.stage == Stage::Postfix);
        let planned: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        if !names.is_empty() {
            for now in self.sm.show(&names)? {
                if let Some(p) = stop_problem(&now, &planned) {
                    self.report.problems.push(p);
                }
            }
        }
        if has_postfix {
            match self.mq.status() {
                Ok(st) => self.report.queue_after = Some(st),
                Err(e) => self.report.warnings.push(format!(
                    "could not read the postfix queue after stopping: {e}"
                )),
            }
        }
        let opts = self.opts;
        self.report.ports_checked = opts.ports.clone();
        self.report.ports_in_use =
            listeners_on(&opts.proc_root, &opts.ports).map_err(|e| SystemdError::Proc {
                path: e.path,
                source: e.source,
            })?;
        self.report.timing.verify_ms = ms_since(t);
        Ok(())
    }

    fn finish(mut self) -> StopReport {
        self.report.timing.total_ms = ms_since(self.start);
        self.report
    }
}

/// Where a legacy cron file is moved aside to.
fn aside(from: &Path) -> CronMove {
    let mut to = from.as_os_str().to_owned();
    to.push(CRON_ASIDE_SUFFIX);
    CronMove {
        from: from.to_path_buf(),
        to: PathBuf::from(to),
    }
}

/// The run lock, saying what holds it.
fn lock(path: &Path, what: &str, dry_run: bool) -> Result<RunLock, SystemdError> {
    let dry = if dry_run { " --dry-run" } else { "" };
    RunLock::acquire(path, &format!("{what}{dry}"))
}

/// The run lock, or (for a dry run by a user who is not root, who cannot create it and
/// changes nothing anyway) no lock and a note saying so.
fn lock_unless_unprivileged_dry_run(
    lock_file: &Path,
    what: &str,
    dry_run: bool,
    also: &str,
) -> Result<(Option<RunLock>, Option<String>), SystemdError> {
    if dry_run && !nix::unistd::geteuid().is_root() {
        return Ok((
            None,
            Some(format!(
                "not root: the run lock {} was not taken (a run in progress is not detected){also}",
                lock_file.display()
            )),
        ));
    }
    Ok((Some(lock(lock_file, what, dry_run)?), None))
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

/// What is done to a batch of units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Stop,
    Start,
    Disable,
    Enable,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Disable => "disable",
            Action::Enable => "enable",
        }
    }
    fn done(self, unit: String) -> Event {
        match self {
            Action::Stop => Event::Stopped(unit),
            Action::Start => Event::Started(unit),
            Action::Disable => Event::Disabled(unit),
            Action::Enable => Event::Enabled(unit),
        }
    }
}

/// Consecutive units of the same stage, in order: one batch per stage.
fn by_stage<'a>(units: impl Iterator<Item = (Stage, &'a String)>) -> Vec<Vec<String>> {
    let mut out: Vec<(Stage, Vec<String>)> = Vec::new();
    for (stage, u) in units {
        match out.last_mut() {
            Some((s, v)) if *s == stage => v.push(u.clone()),
            _ => out.push((stage, vec![u.clone()])),
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}

/// Enable or disable `units` in one call; if that call fails, once per unit, so that each
/// unit's own error is reported and the others still happen.
fn batch_or_each<R: AsMut<Vec<ActionResult>>>(
    sm: &mut dyn ServiceManager,
    report: &mut R,
    on: &mut dyn FnMut(Event),
    units: &[String],
    action: Action,
) {
    let call = |sm: &mut dyn ServiceManager, us: &[String]| match action {
        Action::Disable => sm.disable(us),
        _ => sm.enable(us),
    };
    if units.is_empty() {
        return;
    }
    if call(sm, units).is_ok() {
        for u in units {
            record(report, on, u, action.name(), Ok(()), action.done(u.clone()));
        }
        return;
    }
    for u in units {
        let res = call(sm, std::slice::from_ref(u)).map_err(|e| e.to_string());
        record(report, on, u, action.name(), res, action.done(u.clone()));
    }
}

/// Enable or disable `units` ([`batch_or_each`]), then one daemon-reload if any was; the
/// milliseconds that took.
fn switch_then_reload<R: AsMut<Vec<ActionResult>>>(
    sm: &mut dyn ServiceManager,
    report: &mut R,
    on: &mut dyn FnMut(Event),
    units: &[String],
    action: Action,
) -> u64 {
    let t = Instant::now();
    batch_or_each(sm, report, on, units, action);
    reload_after(sm, report, on, action.name());
    ms_since(t)
}

/// One stop or start call on a stage's units: each announced, the call, each settled; the
/// milliseconds the call took.
fn stage_call<R: AsMut<Vec<ActionResult>>>(
    sm: &mut dyn ServiceManager,
    report: &mut R,
    on: &mut dyn FnMut(Event),
    units: &[String],
    action: Action,
    timeout: Duration,
) -> u64 {
    for u in units {
        on(match action {
            Action::Stop => Event::Stopping(u.clone()),
            _ => Event::Starting(u.clone()),
        });
    }
    let call = Instant::now();
    let res = match action {
        Action::Stop => sm.stop(units, timeout),
        _ => sm.start(units, timeout),
    };
    let ms = ms_since(call);
    settle(sm, report, on, units, action, res);
    ms
}

/// Record the outcome of one stop or start call for each of its units: when the call
/// failed (a deadline passed, a unit refused), systemd says which units got there anyway;
/// the others carry the call's error.
fn settle<R: AsMut<Vec<ActionResult>>>(
    sm: &mut dyn ServiceManager,
    report: &mut R,
    on: &mut dyn FnMut(Event),
    units: &[String],
    action: Action,
    res: Result<(), SystemdError>,
) {
    let err = match res {
        Ok(()) => {
            for u in units {
                record(report, on, u, action.name(), Ok(()), action.done(u.clone()));
            }
            return;
        }
        Err(e) => e.to_string(),
    };
    let now = sm.show(units).unwrap_or_default();
    for u in units {
        let arrived = now
            .iter()
            .find(|i| &i.id == u)
            .is_some_and(|i| match action {
                Action::Stop => !i.is_active(),
                _ => i.is_active(),
            });
        let r = if arrived { Ok(()) } else { Err(err.clone()) };
        record(report, on, u, action.name(), r, action.done(u.clone()));
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
    /// What was not checked (a dry run by a user who is not root: the run lock).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Units whose state differs from the recorded one afterwards.
    pub mismatches: Vec<UnitProblem>,
    /// Where the state file was moved once everything was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file_moved_to: Option<PathBuf>,
    /// How long each part took (measured).
    #[serde(default)]
    pub timing: RestoreTiming,
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
    let start = Instant::now();
    let (_lock, lock_note) = lock_unless_unprivileged_dry_run(
        &opts.lock_file,
        "start-services --restore",
        opts.dry_run,
        "",
    )?;
    let state = ServicesState::load(&opts.state_file)?.ok_or_else(|| SystemdError::NoState {
        path: opts.state_file.clone(),
    })?;
    let steps = restore_steps(sm, &state)?;
    on(Event::RestorePlan(steps.clone()));
    let report = RestoreReport {
        dry_run: opts.dry_run,
        state_file: opts.state_file.clone(),
        steps,
        cron: state.cron.clone(),
        warnings: lock_note.into_iter().collect(),
        ..Default::default()
    };
    if opts.dry_run {
        return Ok(report);
    }
    let mut run = RestoreRun {
        sm,
        opts,
        on,
        state,
        report,
    };
    run.restore_cron();
    run.enable();
    run.start_stages();
    run.verify()?;
    run.report.timing.total_ms = ms_since(start);
    Ok(run.report)
}

/// Recorded units' names, in stop order.
fn recorded_names(state: &ServicesState) -> Vec<String> {
    state.units.iter().map(|u| u.unit.clone()).collect()
}

/// What the restore does to each recorded unit (in reverse stop order), given how it is now:
/// enable what was enabled and is not, start what ran and does not.
fn restore_steps(
    sm: &mut dyn ServiceManager,
    state: &ServicesState,
) -> Result<Vec<RestoreStep>, SystemdError> {
    let names = recorded_names(state);
    let now: Vec<UnitInfo> = if names.is_empty() {
        Vec::new()
    } else {
        sm.show(&names)?
    };
    let current = |unit: &str| now.iter().find(|i| i.id == unit);
    let steps = state.units.iter().rev().map(|r| {
        let cur = current(&r.unit);
        RestoreStep {
            unit: r.unit.clone(),
            enable: is_enabled_state(&r.unit_file_state) && !cur.is_some_and(|c| c.is_enabled()),
            start: was_running(&r.active_state) && !cur.is_some_and(|c| c.is_active()),
            prior_active_state: r.active_state.clone(),
            prior_unit_file_state: r.unit_file_state.clone(),
        }
    });
    Ok(steps.collect())
}

/// Why a restored unit differs from its record, if it does.
fn restore_mismatch(r: &UnitRecord, a: &UnitInfo) -> Option<UnitProblem> {
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
    if why.is_empty() {
        return None;
    }
    Some(UnitProblem {
        unit: r.unit.clone(),
        active_state: a.active_state.clone(),
        unit_file_state: a.unit_file_state.clone(),
        problem: why.join("; "),
    })
}

/// One `start-services --restore` run past its plan: what every phase shares, a method per
/// phase.
struct RestoreRun<'a> {
    sm: &'a mut dyn ServiceManager,
    opts: &'a RestoreOptions,
    on: &'a mut dyn FnMut(Event),
    state: ServicesState,
    /// The report, holding the steps.
    report: RestoreReport,
}

impl RestoreRun<'_> {
    /// Move the legacy cron files back (those not back already).
    fn restore_cron(&mut self) {
        for m in &self.state.cron {
            if exists(&m.from) && !exists(&m.to) {
                continue; // already back
            }
            let res = rename_no_replace(&m.to, &m.from);
            let target = m.from.display().to_string();
            let done = Event::CronRestored(m.clone());
            record(
                &mut self.report,
                self.on,
                &target,
                "restore-cron",
                res,
                done,
            );
        }
    }

    /// Enable (one call) and reload once.
    fn enable(&mut self) {
        let steps = self.report.steps.iter();
        let to_enable: Vec<String> = steps.filter(|s| s.enable).map(|s| s.unit.clone()).collect();
        self.report.timing.enable_ms = switch_then_reload(
            self.sm,
            &mut self.report,
            self.on,
            &to_enable,
            Action::Enable,
        );
    }

    /// Start one stage at a time in reverse stop order (unbound first, timers last).
    fn start_stages(&mut self) {
        let t = Instant::now();
        let stage_of = |unit: &str| {
            self.state
                .units
                .iter()
                .find(|r| r.unit == unit)
                .map(|r| r.class.stage)
                .unwrap_or(Stage::Triggers)
        };
        let stages = by_stage(
            self.report
                .steps
                .iter()
                .filter(|s| s.start)
                .map(|s| (stage_of(&s.unit), &s.unit)),
        );
        for units in stages {
            let (sm, timeout) = (&mut *self.sm, self.opts.unit_timeout);
            stage_call(
                sm,
                &mut self.report,
                self.on,
                &units,
                Action::Start,
                timeout,
            );
            self.report.timing.start_calls += 1;
        }
        self.report.timing.start_ms = ms_since(t);
    }

    /// Check every unit against its record; when all is as it was, move the state file
    /// aside (a later restore has nothing to do).
    fn verify(&mut self) -> Result<(), SystemdError> {
        let t = Instant::now();
        let names = recorded_names(&self.state);
        if !names.is_empty() {
            let after = self.sm.show(&names)?;
            for r in &self.state.units {
                let Some(a) = after.iter().find(|i| i.id == r.unit) else {
                    continue;
                };
                self.report.mismatches.extend(restore_mismatch(r, a));
            }
        }
        if self.report.is_complete() {
            let state_file = &self.opts.state_file;
            let to = restored_path(state_file);
            fs::rename(state_file, &to).map_err(|source| SystemdError::StateIo {
                path: state_file.clone(),
                source,
            })?;
            self.report.state_file_moved_to = Some(to);
        }
        self.report.timing.verify_ms = ms_since(t);
        Ok(())
    }
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
        // one disable for everything (before the first stop: a disabled unit keeps
        // running), one daemon-reload, then one stop per stage in the safe order
        assert_eq!(
            sd.log[1..],
            [
                "disable chatmail-expire.timer fcgiwrap.socket postfix.service \
                 filtermail.service filtermail-incoming.service dovecot.service \
                 doveauth.service lastlogin.service chatmail-metadata.service \
                 echobot.service opendkim.service nginx.service unbound.service",
                "reload",
                "stop chatmail-expire.timer fcgiwrap.socket",
                "stop postfix@-.service postfix.service",
                "stop filtermail.service filtermail-incoming.service",
                "stop dovecot.service",
                "stop doveauth.service chatmail-metadata.service echobot.service",
                "stop opendkim.service",
                "stop nginx.service turnserver.service",
                "stop unbound.service",
            ]
        );
        assert_eq!(sd.log[0], "list");
        let n = |a: &str| r.actions.iter().filter(|x| x.ok && x.action == a).count();
        assert_eq!((n("stop"), n("disable")), (14, 13), "one result per unit");
        assert_eq!(r.timing.stop_calls, 8);
        assert!(r.timing.first_stop_unix_ms.is_some());
        assert!(r.timing.total_ms >= r.timing.stop_ms);
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
    fn a_failing_disable_batch_is_retried_unit_by_unit_and_only_the_refused_one_fails() {
        let e = env();
        let mut sd = relay();
        sd.refuse_disable.insert("nginx.service".into());
        let mut q = FakeQueue::default();
        let (r, _) = stop(&mut sd, &mut q, &e.opts);
        assert_eq!(r.exit_code(), 1);
        let failed: Vec<_> = r.actions.iter().filter(|a| !a.ok).collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(
            (failed[0].target.as_str(), failed[0].action.as_str()),
            ("nginx.service", "disable")
        );
        assert!(failed[0]
            .error
            .as_deref()
            .unwrap()
            .contains("Failed to disable unit nginx"));
        assert_eq!(sd.state("dovecot.service").1, "disabled");
        assert_eq!(
            sd.state("nginx.service"),
            ("inactive".into(), "enabled".into())
        );
        assert!(r.problems.iter().any(|p| p.unit == "nginx.service"));
        assert!(
            sd.log.contains(&"disable dovecot.service".to_string()),
            "{:?}",
            sd.log
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
        assert_eq!(
            sd.log,
            [
                "enable unbound.service nginx.service opendkim.service echobot.service \
                 chatmail-metadata.service lastlogin.service doveauth.service \
                 dovecot.service filtermail-incoming.service filtermail.service \
                 postfix.service fcgiwrap.socket chatmail-expire.timer",
                "reload",
                "start unbound.service",
                "start turnserver.service nginx.service",
                "start opendkim.service",
                "start echobot.service chatmail-metadata.service doveauth.service",
                "start dovecot.service",
                "start filtermail-incoming.service filtermail.service",
                "start postfix.service postfix@-.service",
                "start fcgiwrap.socket chatmail-expire.timer",
            ],
            "enable once, reload once, start one stage at a time in reverse order; \
             turnserver was not enabled, lastlogin was not running"
        );
        assert_eq!(rr.timing.start_calls, 8);
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
