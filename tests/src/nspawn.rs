//! A Debian 12 container with a real systemd, booted by tests/harness/nspawn.sh in
//! systemd-nspawn: what the tests that need a real systemd (systemd_nspawn, verify_services)
//! share.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// tests/harness/nspawn.sh.
pub fn harness() -> PathBuf {
    crate::repo_root().join("tests/harness/nspawn.sh")
}

/// An output for a failure message: exit status, stdout and stderr.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A daemon that listens on the TCP ports given as arguments, forever (perl-base is in every
/// Debian): a stand-in for chatmail's daemons in the port checks.
pub const LISTEN: &str = r#"#!/usr/bin/perl
# listen on the TCP ports given, forever (a stand-in for chatmail's daemons)
use IO::Socket::INET;
my @s = map { IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $_, Listen => 5, ReuseAddr => 1) or die "port $_: $!\n" } @ARGV;
sleep;
"#;

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid of the process
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A booted container; halted when dropped.
pub struct Container {
    pub name: String,
    leader: u32,
}

impl Container {
    /// Boot a container named `PREFIX<pid>-<seq>-<tag>` (`opts` go to `nspawn.sh up`, e.g.
    /// `--persistent`) and copy the suite's binaries `bins` into its /usr/local/bin.
    pub fn boot(prefix: &str, tag: &str, opts: &[&str], bins: &[&str]) -> Container {
        assert!(
            is_root(),
            "these tests boot systemd-nspawn containers and must run as root (CI does)"
        );
        assert!(
            Command::new("sh")
                .args(["-c", "command -v systemd-nspawn && command -v debootstrap"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false),
            "systemd-nspawn or debootstrap is missing: run .ci/install-deps"
        );
        let name = format!(
            "{prefix}{}-{}-{tag}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = Container { name, leader: 0 };
        c.leader = c.harness_boot("up", opts);
        for b in bins {
            std::fs::copy(crate::bin(b), c.root().join("usr/local/bin").join(b))
                .unwrap_or_else(|e| panic!("copy {b} into the container: {e}"));
        }
        c
    }

    /// Shut the container down cleanly and boot it again, as a reboot of the host would.
    pub fn reboot(&mut self) {
        self.leader = self.harness_boot("reboot", &[]);
    }

    /// Run `nspawn.sh CMD NAME OPTS...`, which boots the container and prints its leader pid.
    fn harness_boot(&self, cmd: &str, opts: &[&str]) -> u32 {
        let o = Command::new("bash")
            .arg(harness())
            .args([cmd, &self.name])
            .args(opts)
            .output()
            .expect("run tests/harness/nspawn.sh");
        assert!(
            o.status.success(),
            "booting the test container failed (run .ci/install-deps; logs under \
             /var/tmp/cm-migrate-test and /run/cm-migrate-test):\n{}",
            text(&o)
        );
        stdout(&o)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("harness printed no leader pid:\n{}", text(&o)))
    }

    /// The container's root directory, seen from the host.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.leader))
    }

    /// Run a command inside.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(harness())
            .args(["exec", &self.name])
            .args(args)
            .output()
            .expect("run nspawn.sh exec")
    }

    /// Run a shell script inside; it must succeed. Its stdout.
    pub fn sh(&self, script: &str) -> String {
        let o = self.exec(&["sh", "-ec", script]);
        assert!(o.status.success(), "in container: {script}\n{}", text(&o));
        stdout(&o)
    }

    /// Write a file inside (through the host's view of its root).
    pub fn write(&self, path: &str, content: &str) {
        let p = self.root().join(path.trim_start_matches('/'));
        std::fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    /// Whether `path` exists inside (a dangling symlink counts).
    pub fn exists(&self, path: &str) -> bool {
        self.root()
            .join(path.trim_start_matches('/'))
            .symlink_metadata()
            .is_ok()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(harness())
            .args(["down", &self.name])
            .output();
    }
}
