//! Discovering, stopping and restoring chatmail's systemd units (`cm-migrate stop-services`
//! and `start-services --restore`).
//!
//! - [`catalog`]: which units are chatmail's and their stop order (pure).
//! - [`parse`]: reading `systemctl` output (pure).
//! - [`runner`]: the [`ServiceManager`] and [`MailQueue`] traits and their real
//!   implementations (`systemctl`, `postqueue`); tests drive the logic with fakes.
//! - [`plan`]: discovery from systemd itself and the ordered plan.
//! - [`state`]: the state file recording what ran before (for the restore).
//! - [`ops`]: stopping, verifying and restoring.
//! - [`lock`]: the run lock that keeps two runs from overlapping.
//!
//! Invariant: a unit that is not chatmail's is never stopped, disabled, enabled or started;
//! nothing is changed before the state file recording the prior state is on disk.

pub mod catalog;
pub mod lock;
pub mod ops;
pub mod parse;
pub mod plan;
pub mod runner;
pub mod state;

pub use catalog::{Class, Origin, Stage};
pub use lock::{LockHolder, RunLock, DEFAULT_LOCK_FILE};
pub use ops::{
    restore_services, stop_services, Event, RestoreOptions, RestoreReport, RestoreTiming,
    StopOptions, StopReport, StopTiming,
};
pub use plan::{discover, Plan, PlannedUnit};
pub use runner::{MailQueue, Postqueue, QueueStatus, ServiceManager, Systemctl};
pub use state::{CronMove, ServicesState, UnitRecord, DEFAULT_STATE_FILE};

use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// What systemd says about one unit (`systemctl show`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitInfo {
    pub id: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub unit_file_state: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggered_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wanted_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_by: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fragment_path: String,
    #[serde(skip)]
    pub exec_start: String,
}

impl UnitInfo {
    /// Running, or on its way there (or a oneshot that remains active).
    pub fn is_active(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading" | "deactivating" | "refreshing"
        )
    }
    /// Enabled persistently (a symlink under /etc): comes back at boot.
    pub fn is_enabled(&self) -> bool {
        is_enabled_state(&self.unit_file_state)
    }
    /// Enabled for this boot only (a symlink under /run, often from a generator).
    pub fn is_enabled_runtime(&self) -> bool {
        matches!(
            self.unit_file_state.as_str(),
            "enabled-runtime" | "linked-runtime"
        )
    }
}

/// UnitFileState values that make a unit start at boot and that `systemctl disable` removes.
pub fn is_enabled_state(s: &str) -> bool {
    matches!(s, "enabled" | "linked")
}

/// Everything that can go wrong; each message says what, where and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cm-migrate must run as root (effective uid is {uid}): it changes system services; run it as root or with sudo (--dry-run changes nothing and needs no root)")]
    NotRoot { uid: u32 },
    #[error("systemd is not running on this host ({marker} is missing): cm-migrate drives the services through systemd and cannot work without it")]
    NotBooted { marker: PathBuf },
    #[error("could not run `{cmd}`: {source}; is it installed and in PATH?")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("`{cmd}` did not finish within {secs} s (systemd keeps working on the job; check `systemctl status` and `journalctl -u` for the unit)")]
    Timeout { cmd: String, secs: u64 },
    #[error("unexpected output from `{cmd}` at line {line}: {text:?}")]
    Parse {
        cmd: String,
        line: usize,
        text: String,
    },
    #[error("state file {}: {source}", path.display())]
    StateIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {} is not a cm-migrate services state: {msg}; it was not changed", path.display())]
    StateFormat { path: PathBuf, msg: String },
    #[error("no state file at {}: nothing to restore (stop-services writes it before changing anything; pass --state-file if it was written elsewhere)", path.display())]
    NoState { path: PathBuf },
    #[error("another cm-migrate run is in progress ({}; it holds the lock {}): wait until it has finished, then run again", lock::describe_holder(holder.as_ref()), path.display())]
    Locked {
        path: PathBuf,
        holder: Option<LockHolder>,
    },
    #[error("lock file {}: {source}", path.display())]
    LockIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cron file {}: {source}", path.display())]
    Cron {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {}: {source}", path.display())]
    Proc {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SystemdError {
    /// Exit code for the binary: 2 for a usage problem or an unusable host, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            SystemdError::NotRoot { .. }
            | SystemdError::NotBooted { .. }
            | SystemdError::StateFormat { .. }
            | SystemdError::NoState { .. }
            | SystemdError::Locked { .. }
            | SystemdError::LockIo { .. } => 2,
            _ => 1,
        }
    }
}

/// The checks before anything else: root, and systemd running as PID 1 (the marker
/// directory systemd creates at boot, as `sd_booted()` does).
pub fn preflight() -> Result<(), SystemdError> {
    preflight_with(
        nix::unistd::geteuid().as_raw(),
        Path::new("/run/systemd/system"),
    )
}

/// The checks before a run that changes nothing (`--dry-run` of stop-services and
/// start-services --restore): systemd
/// running as PID 1; any user may look.
pub fn preflight_read_only() -> Result<(), SystemdError> {
    preflight_with(0, Path::new("/run/systemd/system"))
}

/// [`preflight`] with the uid and marker given (for tests).
pub fn preflight_with(euid: u32, marker: &Path) -> Result<(), SystemdError> {
    if euid != 0 {
        return Err(SystemdError::NotRoot { uid: euid });
    }
    if !marker.is_dir() {
        return Err(SystemdError::NotBooted {
            marker: marker.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_refuses_non_root_then_missing_systemd() {
        let dir = tempfile::tempdir().unwrap();
        let e = preflight_with(1000, dir.path()).unwrap_err();
        assert!(matches!(e, SystemdError::NotRoot { uid: 1000 }));
        assert_eq!(e.exit_code(), 2);
        let e = preflight_with(0, &dir.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("systemd is not running"), "{e}");
        assert_eq!(e.exit_code(), 2);
        preflight_with(0, dir.path()).unwrap();
    }
}
