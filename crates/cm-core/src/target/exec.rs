//! Where the target's programs run: on this host ([`Here`]), or on the Docker host over ssh
//! (the migration's `--to`, which implements [`Exec`] for its connection). Compose, the
//! engine and the checks of the project directory all go through it, so a target on
//! another machine is resolved exactly as one here.
//!
//! Invariant: an argument is passed as one word, never through a shell the caller did not
//! ask for (`in_dir` uses `sh -c` with the directory and the program as positional
//! arguments, never spliced into the script).

use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs programs for a target.
pub trait Exec: Send + Sync {
    /// Run `argv` (argv[0] found in PATH) and take its output; stdin is empty.
    fn output(&self, argv: &[&str]) -> io::Result<Output>;

    /// Where it runs, for messages (`this host`, a host name).
    fn place(&self) -> String;

    /// `argv` run with `dir` as its working directory.
    fn in_dir(&self, dir: &Path, argv: &[&str]) -> io::Result<Output> {
        let d = dir.display().to_string();
        let mut a = vec!["sh", "-c", "cd -- \"$1\" && shift && exec \"$@\"", "sh", &d];
        a.extend_from_slice(argv);
        self.output(&a)
    }

    /// Whether `p` is a directory there (symlinks followed, as Compose does).
    fn is_dir(&self, p: &Path) -> bool {
        let s = p.display().to_string();
        self.output(&["test", "-d", &s])
            .is_ok_and(|o| o.status.success())
    }

    /// Whether `p` is a regular file there (symlinks followed).
    fn is_file(&self, p: &Path) -> bool {
        let s = p.display().to_string();
        self.output(&["test", "-f", &s])
            .is_ok_and(|o| o.status.success())
    }

    /// Whether anything (a dangling symlink too) is at `p` there.
    fn exists(&self, p: &Path) -> bool {
        let s = p.display().to_string();
        self.output(&["sh", "-c", "test -e \"$1\" || test -L \"$1\"", "sh", &s])
            .is_ok_and(|o| o.status.success())
    }

    /// Whether `p` and the target run on this host (paths there are paths here).
    fn is_here(&self) -> bool {
        false
    }
}

/// This host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Here;

impl Exec for Here {
    fn output(&self, argv: &[&str]) -> io::Result<Output> {
        let Some((prog, args)) = argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no program"));
        };
        Command::new(prog).args(args).stdin(Stdio::null()).output()
    }
    fn place(&self) -> String {
        "this host".into()
    }
    fn in_dir(&self, dir: &Path, argv: &[&str]) -> io::Result<Output> {
        let Some((prog, args)) = argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no program"));
        };
        Command::new(prog)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
    }
    fn is_dir(&self, p: &Path) -> bool {
        p.is_dir()
    }
    fn is_file(&self, p: &Path) -> bool {
        p.is_file()
    }
    fn exists(&self, p: &Path) -> bool {
        std::fs::symlink_metadata(p).is_ok()
    }
    fn is_here(&self) -> bool {
        true
    }
}

/// The [`Exec`] a target was resolved through (this host unless said otherwise); shown as
/// where it runs.
#[derive(Clone)]
pub struct Runner(pub std::sync::Arc<dyn Exec>);

impl Default for Runner {
    fn default() -> Runner {
        Runner(std::sync::Arc::new(Here))
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.place())
    }
}

impl serde::Serialize for Runner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.place())
    }
}

impl std::ops::Deref for Runner {
    type Target = dyn Exec;
    fn deref(&self) -> &(dyn Exec + 'static) {
        &*self.0
    }
}
