//! Fakes of every part a run drives, logging each call into one shared log, with calls that
//! fail on demand (an `Err` is what a crash looks like to the journal: the step began and
//! never ended); and the unit tests of ordering, resume and rollback built on them.

use super::journal::{Phase, RunIdentity, RunJournal};
use super::preflight::Finding;
use super::steps::{run, Parts, RunEvent, RunOptions, RunReport};
use super::*;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::rc::Rc;

type Shared<T> = Rc<RefCell<T>>;

/// The shared log and the calls that fail (by name: `bulk`, `stop`, `delta`, `verify`,
/// `up`, `wait`, ...). A name in `crash` returns Err (the run stops mid-step); in `fail`,
/// an unsuccessful outcome.
#[derive(Clone, Default)]
struct World {
    log: Shared<Vec<String>>,
    crash: Shared<BTreeSet<&'static str>>,
    fail: Shared<BTreeSet<&'static str>>,
    stopped: Shared<bool>,
}

impl World {
    fn call(&self, name: &'static str, detail: String) -> Result<bool, MigrationError> {
        self.log.borrow_mut().push(if detail.is_empty() {
            name.to_string()
        } else {
            format!("{name} {detail}")
        });
        if self.crash.borrow_mut().remove(name) {
            return Err(MigrationError::step(
                Step::Preflight,
                format!("{name} crashed"),
            ));
        }
        Ok(!self.fail.borrow().contains(name))
    }
    fn outcome(&self, name: &'static str) -> Result<StepOutcome, MigrationError> {
        Ok(if self.call(name, String::new())? {
            StepOutcome::ok(name)
        } else {
            StepOutcome::failed(name, vec![format!("{name} failed")])
        })
    }
}

impl Copier for World {
    fn roots(&self) -> Vec<PathBuf> {
        vec!["/src/home".into()]
    }
    fn estimate(&mut self) -> Result<Estimate, MigrationError> {
        Ok(Estimate::default())
    }
    fn preflight(&mut self) -> Vec<Finding> {
        vec![Finding::ok("space", "plenty")]
    }
    fn copy(
        &mut self,
        pass: Pass,
        changed: &Changed,
        _on: &mut dyn FnMut(String),
    ) -> Result<CopyOutcome, MigrationError> {
        let (name, what) = match (pass, changed) {
            (Pass::Live, _) => ("bulk", "all".to_string()),
            (Pass::Final, Changed::All { .. }) => ("delta", "all".to_string()),
            (Pass::Final, Changed::Dirs(d)) => (
                "delta",
                format!("dirs {:?}", d.values().flatten().collect::<Vec<_>>()),
            ),
        };
        let ok = self.call(name, what)?;
        Ok(CopyOutcome {
            errors: if ok {
                vec![]
            } else {
                vec![format!("{name} failed")]
            },
            ..Default::default()
        })
    }
    fn left_behind(&self) -> Vec<String> {
        vec!["/target/data/chatmail".into()]
    }
}

impl Services for World {
    fn plan(&mut self) -> Result<Vec<String>, MigrationError> {
        Ok(vec!["postfix.service".into()])
    }
    fn stop(&mut self, _on: &mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError> {
        *self.stopped.borrow_mut() = true; // the state file is written before any change
        let mut o = self.outcome("stop")?;
        o.first_stop_unix_ms = Some(crate::systemd::ops::unix_ms());
        Ok(o)
    }
    fn restore(&mut self, _on: &mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError> {
        self.outcome("restore")
    }
    fn recorded(&self) -> bool {
        *self.stopped.borrow()
    }
}

impl Settings for World {
    fn plan(&mut self) -> Result<String, MigrationError> {
        Ok("write .env".into())
    }
    fn write(&mut self) -> Result<StepOutcome, MigrationError> {
        self.outcome("settings")
    }
    fn left_behind(&self) -> Vec<String> {
        vec!["/target/.env".into()]
    }
}

impl Verifier for World {
    fn verify(
        &mut self,
        _changed: &Changed,
        _on: &mut dyn FnMut(String),
    ) -> Result<StepOutcome, MigrationError> {
        self.outcome("verify")
    }
}

impl Target for World {
    fn preflight(&mut self, _start: bool) -> Vec<Finding> {
        if self.fail.borrow().contains("target") {
            vec![Finding::block("target", "no compose file", "add one")]
        } else {
            vec![Finding::ok("target", "compose project")]
        }
    }
    fn up(&mut self) -> Result<StepOutcome, MigrationError> {
        self.outcome("up")
    }
    fn wait_healthy(&mut self) -> Result<StepOutcome, MigrationError> {
        self.outcome("wait")
    }
    fn down(&mut self) -> Result<StepOutcome, MigrationError> {
        self.outcome("down")
    }
    fn next_step(&self) -> String {
        "docker compose up -d".into()
    }
}

impl Watch for World {
    fn start(&mut self, _roots: &[PathBuf]) -> Result<String, String> {
        self.call("watch", String::new())
            .map_err(|e| e.to_string())?;
        Ok("watching".into())
    }
    fn finish(&mut self, roots: &[PathBuf]) -> Changed {
        let _ = self.call("watch-finish", String::new());
        Changed::Dirs(
            roots
                .iter()
                .map(|r| (r.clone(), vec![PathBuf::from("vmail/new")]))
                .collect(),
        )
    }
}

/// The calls of a whole run, in order.
const WHOLE_RUN: [&str; 7] = [
    "watch",
    "bulk all",
    "stop",
    "watch-finish",
    "delta dirs [\"vmail/new\"]",
    "settings",
    "verify",
];

struct Env {
    dir: tempfile::TempDir,
    w: World,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            w: World::default(),
        }
    }
    fn opts(&self, resume: bool, start: bool) -> RunOptions {
        RunOptions {
            journal_file: self.dir.path().join("run-journal.json"),
            lock_file: self.dir.path().join("run.lock"),
            identity: RunIdentity {
                root: "/".into(),
                project_dir: "/target".into(),
                to: None,
            },
            resume,
            start,
            skip_checks: vec![],
        }
    }
    fn run(&self, resume: bool, start: bool) -> (Result<RunReport, MigrationError>, Vec<RunEvent>) {
        let (mut c, mut s, mut st, mut v, mut t, mut wa) = (
            self.w.clone(),
            self.w.clone(),
            self.w.clone(),
            self.w.clone(),
            self.w.clone(),
            self.w.clone(),
        );
        let mut host = |_start: bool| vec![Finding::ok("root", "root")];
        let mut p = Parts {
            host: &mut host,
            copier: &mut c,
            services: &mut s,
            settings: &mut st,
            verifier: &mut v,
            target: &mut t,
            watch: &mut wa,
        };
        let mut ev = Vec::new();
        let r = run(&mut p, &self.opts(resume, start), &mut |e| ev.push(e));
        (r, ev)
    }
    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.w.log.borrow_mut())
    }
    fn journal(&self) -> RunJournal {
        RunJournal::load(&self.opts(false, false).journal_file)
            .unwrap()
            .unwrap()
    }
    fn rollback(&self) -> Result<rollback::RollbackReport, MigrationError> {
        let (mut s, mut t) = (self.w.clone(), self.w.clone());
        let o = self.opts(false, false);
        rollback(
            &o.journal_file,
            &o.lock_file,
            &mut s,
            &mut t,
            vec!["left".into()],
            &mut |_| {},
        )
    }
}

#[test]
fn a_run_goes_in_order_and_the_delta_gets_the_journal_of_changes() {
    let e = Env::new();
    let (r, ev) = e.run(false, false);
    let r = r.unwrap();
    assert!(r.complete, "{r:#?}");
    assert_eq!(r.exit_code(), 0);
    assert_eq!(e.take_log(), WHOLE_RUN);
    let d = r.downtime.expect("downtime measured");
    assert_eq!(d.ends_at, "verified copy");
    assert!(d.ms >= d.parts.values().copied().max().unwrap_or(0));
    assert!(d.parts.contains_key("delta") && d.parts.contains_key("verify"));
    assert_eq!(r.next_step, "docker compose up -d");
    // every boundary is on disk before the next step: begin/done pairs, in order
    let b: Vec<(Step, Phase)> = ev
        .iter()
        .filter_map(|x| match x {
            RunEvent::Boundary { step, phase } => Some((*step, *phase)),
            _ => None,
        })
        .collect();
    assert_eq!(b.len(), 14, "{b:?}");
    assert_eq!(b[0], (Step::Preflight, Phase::Begun));
    assert_eq!(b[13], (Step::Verify, Phase::Done));
    assert!(e.journal().finished);
    // a finished run does not block the next one: its journal is archived
    let (r, _) = e.run(false, false);
    assert!(r.unwrap().complete);
}

#[test]
fn with_start_the_container_comes_up_and_the_downtime_ends_when_it_serves() {
    let e = Env::new();
    let r = e.run(false, true).0.unwrap();
    assert!(r.complete);
    assert_eq!(e.take_log()[7..], ["up", "wait"]);
    assert_eq!(r.downtime.unwrap().ends_at, "container serving");
}

#[test]
fn a_blocking_finding_stops_the_run_before_anything_changes() {
    let e = Env::new();
    e.w.fail.borrow_mut().insert("target");
    let r = e.run(false, false).0.unwrap();
    assert!(r.blocked && !r.complete);
    assert_eq!(r.exit_code(), 1);
    assert!(e.take_log().is_empty(), "nothing ran");
    assert!(r.next_step.contains("nothing was changed"));
    // nothing was changed: the next run starts afresh (no --resume needed, none possible)
    assert!(matches!(
        e.run(true, false).0,
        Err(MigrationError::NothingToResume { .. })
    ));
    e.w.fail.borrow_mut().clear();
    assert!(e.run(false, false).0.unwrap().complete);
}

#[test]
fn a_crash_before_the_stop_resumes_with_a_new_journal_of_changes_and_one_stop() {
    let e = Env::new();
    e.w.crash.borrow_mut().insert("bulk");
    assert!(e.run(false, false).0.is_err());
    assert_eq!(
        e.journal().where_it_stopped(),
        "bulk-copy failed: preflight: bulk crashed"
    );
    e.take_log();
    let err = e.run(false, false).0.unwrap_err();
    assert!(err.to_string().contains("cm-migrate run --resume"), "{err}");
    assert_eq!(err.exit_code(), 2);
    let r = e.run(true, false).0.unwrap();
    assert!(r.complete && r.resumed);
    assert_eq!(e.take_log(), WHOLE_RUN);
}

#[test]
fn a_crash_during_the_stop_reruns_the_idempotent_stop_and_keeps_the_first_stop_time() {
    let e = Env::new();
    e.w.crash.borrow_mut().insert("stop");
    assert!(e.run(false, false).0.is_err());
    let began = e
        .journal()
        .first(Step::Stop, Phase::Begun)
        .unwrap()
        .at_unix_ms;
    std::thread::sleep(std::time::Duration::from_millis(20));
    e.take_log();
    let r = e.run(true, false).0.unwrap();
    assert!(r.complete);
    assert_eq!(
        e.take_log(),
        ["stop", "delta all", "settings", "verify"],
        "no bulk copy after a stop began; stop-services again (it does only what is left); \
         the changes journal of the dead process is gone: a full delta"
    );
    let j = e.journal();
    assert!(j.downtime_start_unix_ms.unwrap() >= began);
    assert_eq!(
        r.downtime.unwrap().started_unix_ms,
        j.downtime_start_unix_ms.unwrap()
    );
}

#[test]
fn after_the_stop_a_resume_never_stops_again_and_repeats_only_what_did_not_finish() {
    let e = Env::new();
    e.w.crash.borrow_mut().insert("verify");
    assert!(e.run(false, false).0.is_err());
    e.take_log();
    let r = e.run(true, false).0.unwrap();
    assert!(r.complete);
    assert_eq!(
        e.take_log(),
        ["verify"],
        "stop, delta and settings were done"
    );
    let skipped: Vec<Step> = r
        .steps
        .iter()
        .filter(|s| s.status == steps::Status::Skipped)
        .map(|s| s.step)
        .collect();
    assert_eq!(
        skipped,
        [
            Step::Watch,
            Step::BulkCopy,
            Step::Stop,
            Step::Delta,
            Step::Settings,
            Step::Start
        ]
    );
}

#[test]
fn a_container_start_that_began_is_never_repeated() {
    let e = Env::new();
    e.w.crash.borrow_mut().insert("wait");
    assert!(e.run(false, true).0.is_err());
    e.take_log();
    let r = e.run(true, false).0.unwrap();
    assert!(r.complete, "--start is the interrupted run's: {r:#?}");
    assert_eq!(e.take_log(), ["wait"], "compose up ran once");
}

#[test]
fn a_failed_step_ends_the_run_with_what_to_do() {
    let e = Env::new();
    e.w.fail.borrow_mut().insert("delta");
    let r = e.run(false, false).0.unwrap();
    assert!(!r.complete);
    assert_eq!(r.exit_code(), 1);
    assert!(r.downtime.is_none());
    assert!(r.next_step.contains("--resume") && r.next_step.contains("rollback"));
    assert_eq!(
        e.take_log().last().map(String::as_str),
        Some("delta dirs [\"vmail/new\"]")
    );
    assert_eq!(e.journal().where_it_stopped(), "delta failed: delta failed");
}

#[test]
fn resume_refuses_another_run_and_nothing() {
    let e = Env::new();
    assert!(matches!(
        e.run(true, false).0,
        Err(MigrationError::NothingToResume { .. })
    ));
    e.w.crash.borrow_mut().insert("bulk");
    let _ = e.run(false, false);
    let mut o = e.opts(true, false);
    o.identity.project_dir = "/elsewhere".into();
    let (mut c, mut s, mut st, mut v, mut t, mut wa) = (
        e.w.clone(),
        e.w.clone(),
        e.w.clone(),
        e.w.clone(),
        e.w.clone(),
        e.w.clone(),
    );
    let mut host = |_: bool| vec![];
    let mut p = Parts {
        host: &mut host,
        copier: &mut c,
        services: &mut s,
        settings: &mut st,
        verifier: &mut v,
        target: &mut t,
        watch: &mut wa,
    };
    let err = run(&mut p, &o, &mut |_| {}).unwrap_err();
    assert!(matches!(err, MigrationError::OtherRun { .. }), "{err}");
}

#[test]
fn rollback_stops_a_started_container_first_then_restores_the_services() {
    let e = Env::new();
    e.w.crash.borrow_mut().insert("wait");
    let _ = e.run(false, true);
    e.take_log();
    let r = e.rollback().unwrap();
    assert!(r.complete, "{r:#?}");
    assert_eq!(e.take_log(), ["down", "restore"]);
    assert_eq!(r.left_behind, ["left"]);
    assert!(r.journal_moved_to.unwrap().exists());
    assert!(matches!(
        e.run(true, false).0,
        Err(MigrationError::NothingToResume { .. })
    ));
}

#[test]
fn rollback_before_any_container_only_restores_and_a_failed_down_restores_nothing() {
    let e = Env::new();
    e.w.crash.borrow_mut().insert("delta");
    let _ = e.run(false, false);
    e.take_log();
    assert!(e.rollback().unwrap().complete);
    assert_eq!(e.take_log(), ["restore"]);

    let e = Env::new();
    e.w.crash.borrow_mut().insert("wait");
    let _ = e.run(false, true);
    e.take_log();
    e.w.fail.borrow_mut().insert("down");
    let r = e.rollback().unwrap();
    assert!(!r.complete && r.services.is_none());
    assert_eq!(
        e.take_log(),
        ["down"],
        "the services stay down while the container may serve"
    );
    assert!(e.journal().was_begun(Step::Start), "the journal is kept");
}
