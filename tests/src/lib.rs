//! Helpers for the workspace-level end-to-end tests: find the built binaries and run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cm_core::ini::{self, SyntaxKind};

pub mod engine;
pub mod nspawn;
pub mod relay;
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

/// Run `cmd`, log its exit status and output on stderr under `label` (shown when a test
/// fails), and return the output.
pub fn run_logged(label: &str, cmd: &mut Command) -> Output {
    let o = cmd.output().expect("spawn command");
    eprintln!(
        "{label}: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A `cm-copy-data --map` argument: `SRC=DST`.
pub fn map_arg(src: &Path, dst: &Path) -> String {
    format!("{}={}", src.display(), dst.display())
}

/// Root of the repository (for fixtures/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `cm-migrate run`'s checks of what this test machine is not, and a run rightly reports:
/// a host with cgroup v2 and the guide's inotify limits (the container boots here without
/// them); the tests pass over them by name.
pub const SKIP_HOST_CHECKS: [&str; 4] = ["--skip-check", "cgroup", "--skip-check", "inotify"];

/// The sample old host of fixtures/sample-host/make.sh laid out at `dir` (its mail domain
/// `domain`, else the script's own); panics with the script's output when it fails.
pub fn sample_host(dir: &Path, domain: Option<&str>) -> PathBuf {
    let mut c = Command::new("bash");
    c.arg(repo_root().join("fixtures/sample-host/make.sh"))
        .arg(dir);
    c.args(domain);
    let o = c.output().expect("run fixtures/sample-host/make.sh");
    assert!(
        o.status.success(),
        "sample-host/make.sh: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    dir.to_path_buf()
}

/// The real Docker Compose v2 (installed by .ci/install.d/20-compose.sh; it needs no engine
/// for `config`).
pub const COMPOSE: &str = "/usr/local/bin/docker-compose-v2";

/// [`COMPOSE`], failing with what to run when it is missing.
pub fn compose() -> PathBuf {
    let p = PathBuf::from(COMPOSE);
    assert!(
        p.exists(),
        "{COMPOSE} is missing: run .ci/install-deps (it installs Docker Compose v2)"
    );
    p
}

/// `compose config --format json` in the project directory `dir`, with an environment of
/// PATH and HOME only (so that nothing of the test's environment reaches the project).
pub fn compose_config(dir: &Path) -> Output {
    Command::new(compose())
        .args(["config", "--format", "json"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .output()
        .expect("run docker-compose-v2")
}

/// The fixture inis that chatmail can read (fixtures/ini/*.ini but the `err-*` ones), sorted.
pub fn readable_ini_fixtures() -> Vec<PathBuf> {
    let dir = repo_root().join("fixtures/ini");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".ini") && !n.starts_with("err-")
        })
        .collect();
    v.sort();
    assert!(v.len() >= 10, "fixtures/ini has too few inis: {v:?}");
    v
}

/// `cm-ini-to-env [--all] --quiet --accept-invalid INI`, which must succeed: its stdout (the
/// .env). Values chatmail would refuse are carried too (the fixtures test the transport).
pub fn ini_to_env_quiet(ini: &Path, all: bool) -> String {
    let mut cmd = Command::new(bin("cm-ini-to-env"));
    cmd.arg("--accept-invalid");
    if all {
        cmd.arg("--all");
    }
    let out = cmd.arg("--quiet").arg(ini).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "cm-ini-to-env {}: {}",
        ini.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The message iniconfig gives for one of cm-core's ini syntax errors.
pub fn iniconfig_msg(kind: &SyntaxKind) -> String {
    match kind {
        SyntaxKind::UnexpectedLine(l) => format!("unexpected line: {}", ini::py_repr(l)),
        SyntaxKind::UnexpectedContinuation => "unexpected value continuation".into(),
        SyntaxKind::EmptySectionName => "empty section name".into(),
        SyntaxKind::NoSectionHeader(_) => "no section header defined".into(),
        SyntaxKind::DuplicateKey { key, .. } => format!("duplicate name {}", ini::py_repr(key)),
        SyntaxKind::DuplicateSection { name, .. } => {
            format!("duplicate section {}", ini::py_repr(name))
        }
    }
}
