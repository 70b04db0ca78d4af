//! The state file: what ran before stop-services changed anything, so that
//! `start-services --restore` can bring back exactly that.
//!
//! Invariant: written atomically (temp beside + rename) before the first change; a later run
//! merges into it and never overwrites a unit's first recorded state, so stopping twice and
//! restoring once still restores what ran before the first stop.

use super::catalog::{order_key, Class};
use super::SystemdError;
use crate::fsutil::{read_record, write_record, RecordError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where stop-services records the prior state unless told otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/cm-migrate/services-state.json";

/// Format version of the state file.
pub const STATE_VERSION: u32 = 1;

/// One unit as it was before the first stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    pub unit: String,
    pub class: Class,
    pub active_state: String,
    pub sub_state: String,
    pub unit_file_state: String,
}

/// A legacy cron file moved aside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronMove {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// The whole state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesState {
    pub version: u32,
    /// Seconds since the epoch of the first stop-services run recorded here.
    pub created_unix: u64,
    /// Units in stop order.
    pub units: Vec<UnitRecord>,
    pub cron: Vec<CronMove>,
}

impl ServicesState {
    pub fn new() -> Self {
        ServicesState {
            version: STATE_VERSION,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            units: Vec::new(),
            cron: Vec::new(),
        }
    }

    /// Read a state file; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, SystemdError> {
        read_record(path, STATE_VERSION, |s: &ServicesState| s.version).map_err(|e| match e {
            RecordError::Io(source) => SystemdError::StateIo {
                path: path.to_path_buf(),
                source,
            },
            RecordError::Format(msg) => SystemdError::StateFormat {
                path: path.to_path_buf(),
                msg,
            },
        })
    }

    /// Write atomically (creating the directory, mode 0700, if needed).
    pub fn save(&self, path: &Path) -> Result<(), SystemdError> {
        write_record(path, self).map_err(|source| SystemdError::StateIo {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Add a unit's prior state unless it is already recorded (the first record wins), and
    /// keep the records in stop order.
    pub fn record_unit(&mut self, rec: UnitRecord) {
        if self.units.iter().any(|u| u.unit == rec.unit) {
            return;
        }
        self.units.push(rec);
        self.units.sort_by_key(|u| order_key(&u.class, &u.unit));
    }

    /// Add a cron move unless already recorded.
    pub fn record_cron(&mut self, m: CronMove) {
        if !self.cron.iter().any(|c| c.from == m.from) {
            self.cron.push(m);
        }
    }
}

impl Default for ServicesState {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a restored state file is kept (so that the next stop starts afresh).
pub fn restored_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".restored");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::catalog::classify;
    use std::fs;

    fn rec(unit: &str, active: &str, file: &str) -> UnitRecord {
        UnitRecord {
            unit: unit.into(),
            class: classify(unit).unwrap(),
            active_state: active.into(),
            sub_state: "x".into(),
            unit_file_state: file.into(),
        }
    }

    #[test]
    fn save_load_roundtrip_and_first_record_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.json");
        let mut st = ServicesState::new();
        st.record_unit(rec("unbound.service", "active", "enabled"));
        st.record_unit(rec("postfix.service", "active", "enabled"));
        st.record_unit(rec("postfix.service", "inactive", "disabled"));
        st.record_cron(CronMove {
            from: "/etc/cron.d/expunge".into(),
            to: "/etc/cron.d/expunge.cm-migrate-disabled".into(),
        });
        st.save(&p).unwrap();
        let back = ServicesState::load(&p).unwrap().unwrap();
        assert_eq!(back, st);
        assert_eq!(back.units[0].unit, "postfix.service", "kept in stop order");
        assert_eq!(back.units[0].active_state, "active", "first record wins");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(ServicesState::load(&dir.path().join("none"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        fs::write(&p, "{\"hello\": 1}").unwrap();
        let e = ServicesState::load(&p).unwrap_err();
        assert!(
            e.to_string().contains("not a cm-migrate services state"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
    }
}
