//! Writing the project's `.env` from a converted chatmail.ini: what cm-ini-to-env does with
//! its ENV argument.
//!
//! [`plan`] decides everything before anything is written: which file (a symlinked .env is
//! written through, not replaced), whether an existing one may be touched (only with
//! `force`, which replaces it, or `merge`, which updates the chatmail settings in place and
//! keeps every other line through [`crate::dotenv::merge`]), and the new content. Every
//! refusal is a [`PlanError`] naming the path. [`execute`] then keeps a 0600 backup of the old
//! file beside it and writes the new one atomically, 0600.
//!
//! Invariant: nothing is written unless [`plan`] succeeded; an existing .env is never
//! replaced without a backup; the ini itself is never the target.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::{dotenv, fsutil, params};

/// Why the .env cannot be written (nothing has been).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{}: a symlink whose target cannot be used: {source}", .path.display())]
    BadSymlink {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is the ini itself; give another path for the .env", .0.display())]
    IsTheIni(PathBuf),
    #[error("{}: is a directory; give the path of the .env file", .0.display())]
    IsDir(PathBuf),
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; use --merge to update the chatmail settings in it and keep its other lines, or --force to replace it (a backup is kept)", .0.display())]
    Exists(PathBuf),
    #[error("{}: not valid UTF-8; cannot merge into it (use --force to replace it)", .0.display())]
    NotUtf8(PathBuf),
    /// The existing .env cannot be read as Compose reads it (message with file:line).
    #[error("{0}; cannot merge into it (fix it, or use --force to replace it)")]
    Unparsable(String),
    /// The settings cannot be merged into it (message with file:line).
    #[error("{0}; cannot merge into it (use --force to replace it)")]
    Unmergeable(String),
}

/// Why writing failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}: cannot write backup: {source}", .path.display())]
    Backup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot write: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to do with an existing .env.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Refuse.
    #[default]
    Refuse,
    /// Replace it (keeping a backup).
    Replace,
    /// Merge the settings into it (keeping a backup).
    Merge,
}

/// What [`execute`] will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write a new file.
    Write,
    /// Replace an existing one.
    Replace,
    /// Merge into an existing one.
    Merge(dotenv::MergeReport),
}

impl fmt::Display for Action {
    /// `wrote`, `replaced`, or `merged (N updated, N added, N removed: KEYS)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Write => f.write_str("wrote"),
            Action::Replace => f.write_str("replaced"),
            Action::Merge(rep) => {
                write!(
                    f,
                    "merged ({} updated, {} added, {} removed",
                    rep.updated.len(),
                    rep.added.len(),
                    rep.removed.len()
                )?;
                if !rep.removed.is_empty() {
                    write!(f, ": {}", rep.removed.join(" "))?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Writing the .env, decided before anything is written.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file to write (a symlink's target).
    pub target: PathBuf,
    /// Its content now, if it exists.
    pub existing: Option<Vec<u8>>,
    /// What it will contain.
    pub content: String,
    pub action: Action,
}

/// Decide how to write `conv` (rendered as `text`, with `all` as for
/// [`params::Conversion::to_env`]) to `env_path`; `ini` is the file converted (never a
/// target). Reads, writes nothing.
pub fn plan(
    conv: &params::Conversion,
    all: bool,
    text: &str,
    ini: &Path,
    env_path: &Path,
    existing_mode: Existing,
) -> Result<Plan, PlanError> {
    // A symlinked .env (e.g. to a secrets directory) is written through, not replaced.
    let target = match env_path.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(env_path).map_err(|source| PlanError::BadSymlink {
                path: env_path.to_path_buf(),
                source,
            })?
        }
        _ => env_path.to_path_buf(),
    };
    let shown = env_path.to_path_buf();
    if same_file(&target, ini) {
        return Err(PlanError::IsTheIni(shown));
    }
    let existing = match target.symlink_metadata() {
        Ok(m) if m.is_dir() => return Err(PlanError::IsDir(shown)),
        Ok(_) => Some(std::fs::read(&target).map_err(|source| PlanError::Read {
            path: shown.clone(),
            source,
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(PlanError::Stat {
                path: shown,
                source,
            })
        }
    };
    let (content, action) = match (&existing, existing_mode) {
        (None, _) => (text.to_string(), Action::Write),
        (Some(_), Existing::Refuse) => return Err(PlanError::Exists(shown)),
        (Some(_), Existing::Replace) => (text.to_string(), Action::Replace),
        (Some(old), Existing::Merge) => {
            let (merged, rep) = merged(conv, all, old, &shown)?;
            (merged, Action::Merge(rep))
        }
    };
    Ok(Plan {
        target,
        existing,
        content,
        action,
    })
}

/// The existing .env `old` (at `shown`) with `conv`'s values merged in: chatmail's keys the
/// conversion no longer writes removed, every other line kept.
fn merged(
    conv: &params::Conversion,
    all: bool,
    old: &[u8],
    shown: &Path,
) -> Result<(String, dotenv::MergeReport), PlanError> {
    let at = shown.display().to_string();
    let old = std::str::from_utf8(old).map_err(|_| PlanError::NotUtf8(shown.to_path_buf()))?;
    let set = conv.env_entries(all);
    let keep: BTreeSet<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
    let existing_keys =
        dotenv::parse(old, &|_| None).map_err(|e| PlanError::Unparsable(e.at(&at)))?;
    let remove: Vec<String> = existing_keys
        .iter()
        .filter(|e| params::from_env_key(&e.key).is_some() && !keep.contains(e.key.as_str()))
        .map(|e| e.key.clone())
        .collect();
    dotenv::merge(old, &set, &remove, &conv.header(all))
        .map_err(|e| PlanError::Unmergeable(e.at(&at)))
}

impl Plan {
    /// The file already holds exactly the new content: nothing to write, no backup.
    pub fn unchanged(&self) -> bool {
        self.existing.as_deref() == Some(self.content.as_bytes())
    }
}

/// Carry out `plan`: the old file (if any) saved beside it as a 0600 backup named by
/// [`dotenv::backup_path`] for `now`, then the new content written atomically, 0600.
/// Returns the backup's path. A plan that changes nothing ([`Plan::unchanged`]) writes
/// nothing and makes no backup.
pub fn execute(plan: &Plan, now: std::time::SystemTime) -> Result<Option<PathBuf>, WriteError> {
    if plan.unchanged() {
        return Ok(None);
    }
    let mut backup = None;
    if let Some(old) = &plan.existing {
        let path = dotenv::backup_path(&plan.target, now);
        fsutil::write_atomic(&path, old, 0o600).map_err(|source| WriteError::Backup {
            path: path.clone(),
            source,
        })?;
        backup = Some(path);
    }
    fsutil::write_atomic(&plan.target, plan.content.as_bytes(), 0o600).map_err(|source| {
        WriteError::Write {
            path: plan.target.clone(),
            source,
        }
    })?;
    Ok(backup)
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn conv(text: &str) -> params::Conversion {
        params::convert(&crate::ini::parse_str("chatmail.ini", text).unwrap()).unwrap()
    }

    #[test]
    fn refuses_before_writing_and_merges_keeping_other_lines() {
        let d = tempfile::tempdir().unwrap();
        let ini = d.path().join("chatmail.ini");
        let text = "[params]\nmail_domain = a.org\nmax_mailbox_size = 1G\n";
        std::fs::write(&ini, text).unwrap();
        let c = conv(text);
        let out = c.to_env(false).unwrap();
        assert!(matches!(
            plan(&c, false, &out, &ini, &ini, Existing::Replace),
            Err(PlanError::IsTheIni(_))
        ));
        assert!(matches!(
            plan(&c, false, &out, &ini, d.path(), Existing::Replace),
            Err(PlanError::IsDir(_))
        ));
        let env = d.path().join(".env");
        let p = plan(&c, false, &out, &ini, &env, Existing::Refuse).unwrap();
        assert_eq!(p.action.to_string(), "wrote");
        assert_eq!(execute(&p, std::time::SystemTime::now()).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&env).unwrap(), out);
        let mode = std::fs::metadata(&env).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        match plan(&c, false, &out, &ini, &env, Existing::Refuse) {
            Err(e @ PlanError::Exists(_)) => assert!(e.to_string().contains("--merge")),
            other => panic!("{other:?}"),
        }
        std::fs::write(
            &env,
            "# mine\nIMAGE_TAG=1\nMAIL_DOMAIN=x\nDISABLE_IPV6=true\n",
        )
        .unwrap();
        let p = plan(&c, false, &out, &ini, &env, Existing::Merge).unwrap();
        assert_eq!(
            p.action.to_string(),
            "merged (1 updated, 1 added, 1 removed: DISABLE_IPV6)"
        );
        let backup = execute(&p, std::time::SystemTime::now()).unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(&backup).unwrap(),
            "# mine\nIMAGE_TAG=1\nMAIL_DOMAIN=x\nDISABLE_IPV6=true\n"
        );
        let merged = std::fs::read_to_string(&env).unwrap();
        assert!(merged.starts_with("# mine\nIMAGE_TAG=1\nMAIL_DOMAIN=\"a.org\"\n"));
        assert!(merged.contains("MAX_MAILBOX_SIZE=\"1G\"\n") && !merged.contains("DISABLE"));
        std::fs::write(&env, b"A=\xff\n").unwrap();
        assert!(matches!(
            plan(&c, false, &out, &ini, &env, Existing::Merge),
            Err(PlanError::NotUtf8(_))
        ));
    }
}
