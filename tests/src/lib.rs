//! Helpers for the workspace-level end-to-end tests: find the built binaries and run them.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Once;

static BUILD: Once = Once::new();

/// The directory cargo puts binaries in (target/debug or target/release), found from the
/// running test executable (target/<profile>/deps/<test>-<hash>).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of one of the suite's binaries, built first (once per test process) so that the
/// tests never run a stale binary.
pub fn bin(name: &str) -> PathBuf {
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--workspace", "--bins"]);
        if bin_dir().file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build --workspace --bins failed");
    });
    let p = bin_dir().join(name);
    assert!(p.exists(), "binary {} not found", p.display());
    p
}

/// Run one of the suite's binaries with arguments; returns its output.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .output()
        .expect("spawn binary")
}

/// Root of the repository (for fixtures/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
