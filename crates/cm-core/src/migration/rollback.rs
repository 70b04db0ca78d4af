//! `cm-migrate rollback`: the old relay back. A container the run started is stopped first
//! (both must not serve the same ports), then the services come back exactly as recorded
//! (`start-services --restore`); what the run left in the target is listed, never removed.
//!
//! Invariant: nothing of the target is deleted; the services are restored only when the
//! container is down; the journal is kept until everything is back.

use super::journal::{Phase, RunJournal};
use super::steps::run_lock;
use super::{MigrationError, Services, Step, StepOutcome, Target};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    pub journal_file: PathBuf,
    /// Where the journal was moved once everything was back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_moved_to: Option<PathBuf>,
    /// The container, when the run had started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<StepOutcome>,
    pub services: Option<StepOutcome>,
    /// What the run left in the target: the operator decides.
    pub left_behind: Vec<String>,
    pub complete: bool,
}

impl RollbackReport {
    pub fn exit_code(&self) -> i32 {
        if self.complete {
            0
        } else {
            1
        }
    }
}

/// Bring the old relay back; `left` lists what the run wrote into the target.
pub fn rollback(
    journal_file: &Path,
    lock_file: &Path,
    services: &mut dyn Services,
    target: &mut dyn Target,
    left: Vec<String>,
    on: &mut dyn FnMut(String),
) -> Result<RollbackReport, MigrationError> {
    let _lock = run_lock(lock_file, "rollback")?;
    let mut journal = RunJournal::load(journal_file)?;
    if journal.is_none() && !services.recorded() {
        return Err(MigrationError::NothingToResume {
            path: journal_file.to_path_buf(),
        });
    }
    let mut report = RollbackReport {
        journal_file: journal_file.to_path_buf(),
        left_behind: left,
        ..Default::default()
    };
    if journal.as_ref().is_some_and(|j| j.was_begun(Step::Start)) {
        on("stopping the container the run started".into());
        let o = target.down()?;
        let ok = o.ok;
        report.container = Some(o);
        if !ok {
            return Ok(report); // never two relays on the same ports
        }
    }
    on("restoring the old relay's services as recorded".into());
    let o = services.restore(on)?;
    let ok = o.ok;
    report.services = Some(o);
    if !ok {
        return Ok(report);
    }
    if let Some(j) = journal.as_mut() {
        j.push(Step::Stop, Phase::Failed, "rolled back".into());
        j.rolled_back = true;
        j.finished = true;
        j.save(journal_file)?;
        report.journal_moved_to = Some(RunJournal::archive(journal_file, "rolled-back")?);
    }
    report.complete = true;
    Ok(report)
}
