//! The run lock: two `stop-services` / `start-services` runs on one host never overlap.
//!
//! An exclusive `flock(2)` on a lock file (by default [`DEFAULT_LOCK_FILE`], host-wide and
//! gone at reboot). The kernel drops the lock when the holder exits, however it exits, so a
//! crashed run never leaves a stale lock behind. The holder writes its pid and what it is
//! doing into the file, so that a second run can name it.
//!
//! Invariant: the lock is taken before the first look at systemd and held until the report
//! is complete; a second run never waits, it fails at once with [`SystemdError::Locked`].
//! The lock file is the one file written in place (not temp + rename): a rename would give
//! the next run a different inode to lock.

use super::SystemdError;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where the run lock lives unless told otherwise.
pub const DEFAULT_LOCK_FILE: &str = "/run/cm-migrate.lock";

/// The run holding the lock, as it described itself in the lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    /// What it is doing (`stop-services`, `start-services --restore`).
    pub what: String,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.what.is_empty() {
            write!(f, ", {}", self.what)?;
        }
        Ok(())
    }
}

/// The held lock; released (and the file emptied) when dropped.
#[derive(Debug)]
pub struct RunLock {
    file: Option<Flock<File>>,
    path: PathBuf,
}

impl RunLock {
    /// Take the lock at `path` for `what`, or fail at once if another run holds it.
    pub fn acquire(path: &Path, what: &str) -> Result<RunLock, SystemdError> {
        let io_err = |source| SystemdError::LockIo {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false) // truncating before holding the lock would erase the holder's pid
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io_err)?;
        let ft = file.metadata().map_err(io_err)?.file_type();
        if !ft.is_file() {
            return Err(io_err(io::Error::other(
                "not a regular file; remove it and run again",
            )));
        }
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(SystemdError::Locked {
                    path: path.to_path_buf(),
                    holder: read_holder(path),
                })
            }
            Err((_, e)) => return Err(io_err(io::Error::from(e))),
        };
        file.set_len(0).map_err(io_err)?;
        writeln!(file, "{} {what}", std::process::id()).map_err(io_err)?;
        Ok(RunLock {
            file: Some(file),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = f.set_len(0); // while still held: no pid of a finished run is left behind
            drop(f); // unlocks
        }
    }
}

/// "pid 1234, stop-services; `ps -p 1234` shows it", or how to find an unnamed holder.
pub fn describe_holder(holder: Option<&LockHolder>) -> String {
    match holder {
        Some(h) => format!("{h}; `ps -p {}` shows it", h.pid),
        None => "pid unknown; `ps -C cm-migrate` shows it".into(),
    }
}

/// The pid and activity written by the holder, if the file says so.
fn read_holder(path: &Path) -> Option<LockHolder> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().next()?;
    let (pid, what) = line.split_once(' ').unwrap_or((line, ""));
    Some(LockHolder {
        pid: pid.trim().parse().ok()?,
        what: what.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_fails_at_once_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cm-migrate.lock");
        let held = RunLock::acquire(&p, "stop-services").unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            format!("{} stop-services\n", std::process::id())
        );
        // flock belongs to the open file description: a second open conflicts even in the
        // same process, just as a second cm-migrate process would
        let e = RunLock::acquire(&p, "start-services --restore").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        match &e {
            SystemdError::Locked { holder, .. } => assert_eq!(
                holder.as_ref(),
                Some(&LockHolder {
                    pid: std::process::id(),
                    what: "stop-services".into()
                })
            ),
            other => panic!("{other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}, stop-services", std::process::id()))
                && msg.contains(&p.display().to_string()),
            "{msg}"
        );
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            format!("{} stop-services\n", std::process::id()),
            "the refused run does not erase the holder's pid"
        );
        drop(held);
        assert_eq!(fs::read_to_string(&p).unwrap(), "", "emptied on release");
        let again = RunLock::acquire(&p, "start-services --restore").unwrap();
        assert_eq!(again.path(), p);
    }

    #[test]
    fn a_lock_file_left_by_a_dead_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cm-migrate.lock");
        fs::write(&p, "999999 stop-services\n").unwrap(); // the kernel dropped its flock
        let _l = RunLock::acquire(&p, "stop-services").unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            format!("{} stop-services\n", std::process::id())
        );
    }

    #[test]
    fn an_unknown_holder_and_a_symlink_are_reported_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cm-migrate.lock");
        let held = Flock::lock(File::create(&p).unwrap(), FlockArg::LockExclusive).unwrap();
        let e = RunLock::acquire(&p, "stop-services").unwrap_err();
        assert!(
            matches!(&e, SystemdError::Locked { holder: None, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("pid unknown"), "{e}");
        drop(held);

        let link = dir.path().join("link.lock");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = RunLock::acquire(&link, "stop-services").unwrap_err();
        assert!(matches!(e, SystemdError::LockIo { .. }), "{e:?}");
        assert!(e.to_string().contains("link.lock"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
