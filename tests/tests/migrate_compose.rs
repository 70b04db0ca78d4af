//! `cm-migrate run --start` into a real compose target, with a real Docker engine
//! (tests/harness/docker.sh, as root): the sample old host (fixtures/sample-host) is moved
//! into a compose project of docker/ (the `mailstack` stage, with an override that gives the
//! container a network of its own), the run brings the container up itself and waits until
//! it serves, and the test then shows: the run's verdict and measured downtime, systemd
//! running in the container, dovecot reading every migrated message (doveadm) and the
//! migrated files owned by the image's users (nothing chowned at start).
//!
//! The old host here is a tree (`--root`), so the run skips the stop (the services are not
//! this machine's); the stop on a real systemd is tests/tests/migrate_nspawn.rs.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DOCKER: &str = "/usr/bin/docker";
const COMPOSE: &str = "/usr/local/bin/docker-compose-v2";
const CONTAINER: &str = "chatmail";
const DOMAIN: &str = "start.example.org";
const IMAGE: &str = "chatmail-relay:mailstack";

fn harness(arg: &str) -> Output {
    Command::new("bash")
        .arg(cm_tests::repo_root().join("tests/harness/docker.sh"))
        .arg(arg)
        .output()
        .expect("run tests/harness/docker.sh")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The engine, stopped when dropped.
struct Engine;
impl Drop for Engine {
    fn drop(&mut self) {
        let out = harness("stop");
        if !out.status.success() {
            eprintln!("docker.sh stop: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The compose project the run started, taken down when dropped.
struct Project(PathBuf);
impl Drop for Project {
    fn drop(&mut self) {
        let compose = |args: &[&str]| {
            Command::new(COMPOSE)
                .args(args)
                .current_dir(&self.0)
                .output()
        };
        if std::thread::panicking() {
            if let Ok(l) = compose(&["logs", "--no-color", "--tail", "60"]) {
                eprintln!("container log:\n{}", String::from_utf8_lossy(&l.stdout));
            }
        }
        if let Ok(o) = compose(&["down", "--timeout", "30"]) {
            if !o.status.success() {
                eprintln!("compose down: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
    }
}

fn exec_ok(args: &[&str]) -> String {
    let out = Command::new(DOCKER)
        .arg("exec")
        .args(args)
        .output()
        .expect("docker exec");
    ok(&out, &format!("docker exec {}", args.join(" ")))
}

/// docker/ as a compose project: the shipped compose file, and an override (read by Compose
/// itself, as docker-compose.override.yaml) for a test: the mailstack stage, no host network.
fn project(proj: &Path) {
    let repo = cm_tests::repo_root();
    fs::create_dir_all(proj.join("bin")).unwrap();
    fs::create_dir_all(proj.join("files")).unwrap();
    for f in ["Dockerfile", "users", "docker-compose.yaml"] {
        fs::copy(repo.join("docker").join(f), proj.join(f)).unwrap();
    }
    for e in fs::read_dir(repo.join("docker/files")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), proj.join("files").join(e.file_name())).unwrap();
    }
    fs::copy(cm_tests::bin("cm-env-apply"), proj.join("bin/cm-env-apply")).unwrap();
    fs::copy(
        repo.join("tests/data/docker/dovecot-e2e.conf"),
        proj.join("dovecot-e2e.conf"),
    )
    .unwrap();
    fs::write(
        proj.join("docker-compose.override.yaml"),
        format!(
            "services:\n  chatmail:\n    image: {IMAGE}\n    build:\n      target: mailstack\n    \
             network_mode: none\n    restart: \"no\"\n    sysctls:\n      \
             net.ipv6.conf.all.disable_ipv6: \"0\"\n      net.ipv6.conf.lo.disable_ipv6: \"0\"\n    \
             volumes:\n      - ./dovecot-e2e.conf:/etc/dovecot/conf.d/99-e2e.conf:ro\n"
        ),
    )
    .unwrap();
}

/// Each message of the sample host (fixtures/sample-host/make.sh): its mailbox, user and
/// body marker. Three per user in INBOX, the last also (hard-linked) in DeltaChat.
fn messages() -> Vec<(String, &'static str, String)> {
    let mut m = Vec::new();
    let mut n = 0;
    for user in ["alice0test", "bob00test", "carol0test"] {
        for _ in 0..3 {
            n += 1;
            m.push((format!("{user}@{DOMAIN}"), "INBOX", format!("body {n}")));
        }
        m.push((format!("{user}@{DOMAIN}"), "DeltaChat", format!("body {n}")));
    }
    m
}

#[test]
fn run_with_start_brings_the_container_up_on_the_moved_data_and_it_serves() {
    assert_eq!(
        fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX),
        0,
        "this test starts dockerd: run it as root, after .ci/install-deps"
    );
    for p in [DOCKER, COMPOSE, "/usr/sbin/dockerd"] {
        assert!(Path::new(p).exists(), "{p} missing: run .ci/install-deps");
    }
    let repo = cm_tests::repo_root();
    let work = tempfile::Builder::new()
        .prefix("cm-migrate-compose.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (host, proj) = (work.path().join("old-host"), work.path().join("project"));
    ok(
        &Command::new(repo.join("fixtures/sample-host/make.sh"))
            .arg(&host)
            .arg(DOMAIN)
            .output()
            .unwrap(),
        "sample-host/make.sh",
    );
    project(&proj);

    ok(&harness("start"), "docker.sh start");
    let _engine = Engine;
    ok(&harness("base"), "docker.sh base");
    ok(
        &Command::new(DOCKER)
            .args([
                "build",
                "-q",
                "--network",
                "host",
                "--target",
                "mailstack",
                "-t",
                IMAGE,
            ])
            .arg(&proj)
            .output()
            .unwrap(),
        "docker build (mailstack)",
    );
    let _project = Project(proj.clone());

    // docker's client on PATH must be Debian's (the engine's), as an operator's would be
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    let out = Command::new(cm_tests::bin("cm-migrate"))
        .env("PATH", path)
        .arg("run")
        .arg("--root")
        .arg(&host)
        .arg("--project-dir")
        .arg(&proj)
        .arg("--owner-map")
        .arg(repo.join("docker/users"))
        .arg("--state-dir")
        .arg(work.path().join("state"))
        .args([
            "--compose",
            COMPOSE,
            "--start",
            "--health-timeout",
            "240",
            "--json",
        ])
        // what this test machine is not, and the run rightly reports: a host with cgroup v2
        // and the guide's inotify limits (the container boots here without them)
        .args(["--skip-check", "cgroup", "--skip-check", "inotify"])
        .output()
        .unwrap();
    let text = ok(&out, "cm-migrate run --start");
    let r: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("run --json is not JSON ({e}):\n{text}"));
    let steps = r["steps"].as_array().expect("steps in the run's JSON");
    let start = steps
        .iter()
        .find(|s| s["step"] == "start")
        .unwrap_or_else(|| panic!("no start step in {r:#}"));
    assert_eq!(start["status"], "done", "the start step: {start:#}");
    assert!(
        start.to_string().contains("the container serves"),
        "the start step waited for the container to serve: {start:#}"
    );
    assert_eq!(
        r["downtime"]["ends_at"], "container serving",
        "with --start the downtime ends when the container serves: {r:#}"
    );
    assert!(
        r["downtime"]["ms"].as_u64().is_some_and(|ms| ms > 0),
        "the run measured its downtime: {r:#}"
    );

    // the container the run started serves the moved relay
    let state = exec_ok(&[CONTAINER, "systemctl", "is-system-running"]);
    assert_eq!(state.trim(), "running");
    for (addr, mailbox, marker) in messages() {
        let fetched = exec_ok(&[
            CONTAINER, "doveadm", "fetch", "-u", &addr, "text", "mailbox", mailbox, "ALL",
        ]);
        assert!(
            fetched.contains(&marker),
            "{addr} {mailbox}: dovecot did not read {marker:?}:\n{fetched}"
        );
    }
    // owners are the image's: vmail's mailboxes, opendkim's key, by name inside
    let owner = exec_ok(&[
        CONTAINER,
        "stat",
        "-c",
        "%U",
        &format!("/home/vmail/mail/{DOMAIN}/alice0test@{DOMAIN}/cur"),
    ]);
    assert_eq!(owner.trim(), "vmail");
    let key = exec_ok(&[CONTAINER, "sh", "-c", "stat -c %U /etc/dkimkeys/*.private"]);
    assert!(
        key.lines().all(|l| l.trim() == "opendkim") && !key.trim().is_empty(),
        "DKIM keys owned by opendkim: {key}"
    );
}
