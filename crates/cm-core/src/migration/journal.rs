//! The run journal: which steps of `cm-migrate run` began and finished, written atomically
//! beside the services state file (/var/lib/cm-migrate/) before the next step begins.
//!
//! Invariant: the file on disk is always a complete journal (temp beside + rename, 0600);
//! an entry is never removed or rewritten, only appended; times are wall clock in
//! milliseconds since the epoch, so that the downtime clock survives a crash and a resume.

use super::{MigrationError, Step};
use crate::fsutil::{read_record, write_record, RecordError};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// Where `cm-migrate run` keeps its journal unless told otherwise.
pub const DEFAULT_JOURNAL_FILE: &str = "/var/lib/cm-migrate/run-journal.json";

/// Format version of the journal.
pub const JOURNAL_VERSION: u32 = 1;

/// What a run moves: a resume must move the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// The old host's root.
    pub root: PathBuf,
    /// The compose project directory (on this host or the far one).
    pub project_dir: PathBuf,
    /// `ssh://HOST/DIR` when the Docker host is another machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl RunIdentity {
    pub fn describe(&self) -> String {
        match &self.to {
            Some(to) => format!("{} to {to}", self.root.display()),
            None => format!(
                "{} into {}",
                self.root.display(),
                self.project_dir.display()
            ),
        }
    }
}

/// A step's begin or end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Begun,
    Done,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub step: Step,
    pub phase: Phase,
    pub at_unix_ms: u64,
    /// The process that wrote it.
    pub pid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The whole journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJournal {
    pub version: u32,
    pub run: RunIdentity,
    /// The run was asked to start the container.
    pub start: bool,
    pub created_unix_ms: u64,
    pub entries: Vec<Entry>,
    /// Every step finished (or the run was rolled back).
    pub finished: bool,
    #[serde(default)]
    pub rolled_back: bool,
    /// Wall clock of the first service stopped (where the downtime begins); set once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_start_unix_ms: Option<u64>,
}

impl RunJournal {
    pub fn new(run: RunIdentity, start: bool) -> RunJournal {
        RunJournal {
            version: JOURNAL_VERSION,
            run,
            start,
            created_unix_ms: crate::systemd::ops::unix_ms(),
            entries: Vec::new(),
            finished: false,
            rolled_back: false,
            downtime_start_unix_ms: None,
        }
    }

    /// Read a journal; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<RunJournal>, MigrationError> {
        read_record(path, JOURNAL_VERSION, |j: &RunJournal| j.version).map_err(|e| match e {
            RecordError::Io(source) => MigrationError::JournalIo {
                path: path.to_path_buf(),
                source,
            },
            RecordError::Format(msg) => MigrationError::JournalFormat {
                path: path.to_path_buf(),
                msg,
            },
        })
    }

    /// Write atomically, 0600 (creating the directory, 0700, if needed).
    pub fn save(&self, path: &Path) -> Result<(), MigrationError> {
        write_record(path, self).map_err(|source| MigrationError::JournalIo {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Append an entry (not yet saved).
    pub fn push(&mut self, step: Step, phase: Phase, detail: String) -> &Entry {
        self.entries.push(Entry {
            step,
            phase,
            at_unix_ms: crate::systemd::ops::unix_ms(),
            pid: std::process::id(),
            detail,
        });
        self.entries.last().expect("just pushed")
    }

    fn last(&self, step: Step, phase: Phase) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.step == step && e.phase == phase)
    }

    /// The step finished (its last entry is Done).
    pub fn is_done(&self, step: Step) -> bool {
        self.entries
            .iter()
            .rev()
            .find(|e| e.step == step)
            .is_some_and(|e| e.phase == Phase::Done)
    }

    /// The step began at least once.
    pub fn was_begun(&self, step: Step) -> bool {
        self.first(step, Phase::Begun).is_some()
    }

    /// The first entry of `step` in `phase`.
    pub fn first(&self, step: Step, phase: Phase) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.step == step && e.phase == phase)
    }

    /// When the step last finished.
    pub fn done_at(&self, step: Step) -> Option<u64> {
        if !self.is_done(step) {
            return None;
        }
        self.last(step, Phase::Done).map(|e| e.at_unix_ms)
    }

    /// The last step that began, and whether it finished: for "interrupted at ...".
    pub fn where_it_stopped(&self) -> String {
        match self.entries.last() {
            None => "before its first step".into(),
            Some(e) => match e.phase {
                Phase::Begun => format!("during {}", e.step),
                Phase::Done => format!("after {}", e.step),
                Phase::Failed => format!("{} failed: {}", e.step, e.detail),
            },
        }
    }

    /// Move a journal aside (a finished or rolled-back run), so that the next run starts a
    /// fresh one; returns where it went.
    pub fn archive(path: &Path, why: &str) -> Result<PathBuf, MigrationError> {
        let mut to = path.as_os_str().to_owned();
        to.push(format!(".{why}-{}", crate::systemd::ops::unix_ms()));
        let to = PathBuf::from(to);
        fs::rename(path, &to).map_err(|source| MigrationError::JournalIo {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_round_trips_and_answers_what_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/run-journal.json");
        let mut j = RunJournal::new(RunIdentity::default(), false);
        j.push(Step::Preflight, Phase::Begun, String::new());
        j.push(Step::Preflight, Phase::Done, "ok".into());
        j.push(Step::Stop, Phase::Begun, String::new());
        j.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = RunJournal::load(&path).unwrap().unwrap();
        assert_eq!(back, j);
        assert!(back.is_done(Step::Preflight));
        assert!(back.was_begun(Step::Stop) && !back.is_done(Step::Stop));
        assert_eq!(back.where_it_stopped(), "during stop");
        fs::write(&path, "{\"version\": 7}").unwrap();
        assert!(matches!(
            RunJournal::load(&path),
            Err(MigrationError::JournalFormat { .. })
        ));
        assert!(RunJournal::load(&dir.path().join("none"))
            .unwrap()
            .is_none());
    }
}
