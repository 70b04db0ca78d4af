//! The whole move in one run (`cm-migrate run`): preflight, a live bulk copy while the relay
//! still serves mail (with the change journal of [`crate::watch`] running), the stop, the
//! delta of what changed meanwhile, the settings, the verification, and optionally the
//! container's start; a journal of finished steps so that a crashed run resumes where it
//! stopped, and a rollback that brings the old relay back.
//!
//! - [`preflight`]: the checks before anything changes, each a [`preflight::Finding`].
//! - [`journal`]: the run journal on disk (atomic writes, beside the services state file).
//! - [`steps`]: the sequencing over the [`Copier`], [`Services`], [`Settings`], [`Verifier`],
//!   [`Target`] and [`Watch`] traits, the resume rules, the downtime clock.
//! - [`rollback`]: the old relay back, exactly as recorded.
//! - [`real`]: the implementations on this host (cm-core's copy engine, systemd, the .env
//!   writer, `cm-verify all`, Docker Compose, fanotify).
//! - [`transport`]: the data sent to another host with rsync over ssh and proven there with
//!   manifests (`--to ssh://HOST/DIR`).
//!
//! Invariant: nothing is changed before preflight passed; every step is journaled when it
//! begins and when it ends, before the next one begins; a step that must not repeat (the
//! stop, the container's start) is never run again blindly on resume.

pub mod journal;
pub mod preflight;
pub mod project;
pub mod real;
pub mod rollback;
pub mod steps;
pub mod transport;
pub mod verify;

#[cfg(test)]
mod fake;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use journal::{RunJournal, DEFAULT_JOURNAL_FILE};
pub use preflight::{Finding, Level};
pub use rollback::{rollback, RollbackReport};
pub use steps::{
    dry_run, findings, run, DryRun, Parts, RunEvent, RunOptions, RunReport, StepReport,
};

/// The steps of a run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The checks before anything changes.
    Preflight,
    /// The change journal started (before the bulk copy).
    Watch,
    /// The copy while the relay still serves mail.
    BulkCopy,
    /// stop-services: queue drained, state recorded, units stopped and disabled.
    Stop,
    /// The copy of what changed during the bulk copy.
    Delta,
    /// The target's settings written (.env).
    Settings,
    /// cm-verify all (or the manifests checked on the far side).
    Verify,
    /// The container started and healthy (`--start`).
    Start,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Preflight,
        Step::Watch,
        Step::BulkCopy,
        Step::Stop,
        Step::Delta,
        Step::Settings,
        Step::Verify,
        Step::Start,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Watch => "watch",
            Step::BulkCopy => "bulk-copy",
            Step::Stop => "stop",
            Step::Delta => "delta",
            Step::Settings => "settings",
            Step::Verify => "verify",
            Step::Start => "start",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that stops a run; each message says what, where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("run journal {}: {source}", path.display())]
    JournalIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run journal {} is not a cm-migrate run journal: {msg}; it was not changed", path.display())]
    JournalFormat { path: PathBuf, msg: String },
    #[error("a run was interrupted ({}; journal {}): continue it with `cm-migrate run --resume`, or bring the old relay back with `cm-migrate rollback`", what, path.display())]
    Interrupted { path: PathBuf, what: String },
    #[error("nothing to resume: no run journal at {} (start a run without --resume)", path.display())]
    NothingToResume { path: PathBuf },
    #[error("the interrupted run moved {theirs}, not {ours}: resume it with the same --project-dir/--to/--root, or roll it back first")]
    OtherRun { theirs: String, ours: String },
    #[error("another cm-migrate run is in progress: {0}")]
    Locked(String),
    #[error("{step}: {msg}")]
    Step { step: Step, msg: String },
}

impl MigrationError {
    /// 2 for what the user must sort out before anything can run, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            MigrationError::Step { .. } => 1,
            _ => 2,
        }
    }
    pub fn step(step: Step, msg: impl fmt::Display) -> MigrationError {
        MigrationError::Step {
            step,
            msg: msg.to_string(),
        }
    }
}

/// The outcome of one step that is not a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    pub ok: bool,
    /// One line for people.
    pub summary: String,
    /// What is wrong, one item each (empty when ok).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Said but not wrong (notes, warnings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Wall clock (ms since the epoch) of the first service stopped, for the stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_stop_unix_ms: Option<u64>,
    /// The step's own report, for --json.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl StepOutcome {
    pub fn ok(summary: impl Into<String>) -> StepOutcome {
        StepOutcome {
            ok: true,
            summary: summary.into(),
            ..Default::default()
        }
    }
    pub fn failed(summary: impl Into<String>, problems: Vec<String>) -> StepOutcome {
        StepOutcome {
            ok: false,
            summary: summary.into(),
            problems,
            ..Default::default()
        }
    }
}

/// Which part of the store the final pass must look at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Changed {
    /// Everything (no journal, or it may be incomplete: why).
    All { why: String },
    /// Per source root: the directories, relative to it, that changed. A root that is not
    /// in the map was not journaled (completely): it is rescanned in full.
    Dirs(BTreeMap<PathBuf, Vec<PathBuf>>),
}

impl Changed {
    pub fn describe(&self) -> String {
        match self {
            Changed::All { why } => format!("full rescan ({why})"),
            Changed::Dirs(m) => format!(
                "{} changed director{} from the change journal",
                m.values().map(Vec::len).sum::<usize>(),
                if m.values().map(Vec::len).sum::<usize>() == 1 {
                    "y"
                } else {
                    "ies"
                }
            ),
        }
    }
}

/// Which pass of the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pass {
    /// While the relay serves mail: files changing while read are left for the next pass.
    Live,
    /// With the services stopped: everything must be copied.
    Final,
}

impl Pass {
    /// The step that runs this pass.
    pub fn step(self) -> Step {
        match self {
            Pass::Live => Step::BulkCopy,
            Pass::Final => Step::Delta,
        }
    }
}

/// The outcome of a copy pass over every volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOutcome {
    /// Entries in the sources (as far as this pass looked).
    pub entries: u64,
    /// Entries looked at by this pass (all of them for a full pass).
    pub scanned: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    pub deleted: u64,
    /// The pass looked only at the changed directories.
    pub restricted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl CopyOutcome {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What `--dry-run` shows of the copy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Per volume: name, source, target, entries, bytes.
    pub volumes: Vec<VolumeEstimate>,
    /// Entries, regular files and bytes in every source.
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// What the first copy writes (bytes, inodes) and what the targets have free.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space: Vec<String>,
    /// Measured now: entries walked per second (lstat, as a pass that finds nothing changed).
    pub walk_per_sec: f64,
    /// Measured now on a sample of files: files read and hashed per second (as a pass that
    /// copies or verifies them).
    pub read_per_sec: f64,
    pub sample_files: u64,
}

impl Estimate {
    /// Seconds to walk `entries` and read `files` at the measured rates.
    pub fn seconds(&self, entries: u64, files: u64) -> f64 {
        let w = if self.walk_per_sec > 0.0 {
            entries as f64 / self.walk_per_sec
        } else {
            0.0
        };
        let r = if self.read_per_sec > 0.0 {
            files as f64 / self.read_per_sec
        } else {
            0.0
        };
        w + r
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeEstimate {
    pub name: String,
    pub source: PathBuf,
    pub target: String,
    pub entries: u64,
    pub bytes: u64,
}

/// The data: copying the volumes (locally or to another host).
pub trait Copier {
    /// The source roots (for the change journal).
    fn roots(&self) -> Vec<PathBuf>;
    /// Sizes and a timed sample (for --dry-run and the space check).
    fn estimate(&mut self) -> Result<Estimate, MigrationError>;
    /// Findings about the targets (space, inodes, writability) before anything is copied.
    fn preflight(&mut self) -> Vec<Finding>;
    /// One pass over every volume.
    fn copy(
        &mut self,
        pass: Pass,
        changed: &Changed,
        on: &mut dyn FnMut(String),
    ) -> Result<CopyOutcome, MigrationError>;
    /// What a rollback leaves in the target (the copies, manifests).
    fn left_behind(&self) -> Vec<String>;
}

/// The old host's services.
pub trait Services {
    /// The chatmail units that would be stopped (their names), for preflight and --dry-run.
    fn plan(&mut self) -> Result<Vec<String>, MigrationError>;
    /// stop-services (idempotent: does what is left, keeps the first recorded state).
    fn stop(&mut self, on: &mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError>;
    /// start-services --restore (nothing recorded: nothing to do).
    fn restore(&mut self, on: &mut dyn FnMut(String)) -> Result<StepOutcome, MigrationError>;
    /// Whether a stop was recorded (a state file exists).
    fn recorded(&self) -> bool;
}

/// The target's settings (.env and/or chatmail.ini, as the target takes them).
pub trait Settings {
    /// What would be written (for --dry-run).
    fn plan(&mut self) -> Result<String, MigrationError>;
    /// Write them (idempotent: the same input writes the same file, or nothing).
    fn write(&mut self) -> Result<StepOutcome, MigrationError>;
    fn left_behind(&self) -> Vec<String>;
}

/// The proof that the copy is the old relay's state.
pub trait Verifier {
    /// Verify the copy; `changed` is what the final pass looked at (a verification may cost
    /// what changed when the journal vouches for the rest).
    fn verify(
        &mut self,
        changed: &Changed,
        on: &mut dyn FnMut(String),
    ) -> Result<StepOutcome, MigrationError>;
}

/// The compose project that runs the relay.
pub trait Target {
    /// Findings about the project (readable, its compose file, the image) and the Docker host.
    fn preflight(&mut self, start: bool) -> Vec<Finding>;
    /// `docker compose up -d`.
    fn up(&mut self) -> Result<StepOutcome, MigrationError>;
    /// Wait until the container serves: systemd running in it, the mail ports answering.
    fn wait_healthy(&mut self) -> Result<StepOutcome, MigrationError>;
    /// Stop the container (for a rollback).
    fn down(&mut self) -> Result<StepOutcome, MigrationError>;
    /// The exact next step when the run does not start the container.
    fn next_step(&self) -> String;
}

/// The change journal of the live phase.
pub trait Watch {
    /// Start before the bulk copy; Err says why there is none (the delta then rescans all).
    fn start(&mut self, roots: &[PathBuf]) -> Result<String, String>;
    /// Stop (after the services) and say what changed; a root it could not follow is left
    /// out of [`Changed::Dirs`] (rescanned in full).
    fn finish(&mut self, roots: &[PathBuf]) -> Changed;
    /// After [`Watch::finish`]: why roots left out of [`Changed::Dirs`] were not followed.
    fn unwatched(&self) -> Vec<String> {
        Vec::new()
    }
}
