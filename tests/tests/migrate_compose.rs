//! `cm-migrate run --start` into a real compose target, with a real Docker engine
//! (tests/harness/docker.sh, as root): the sample old host (fixtures/sample-host) is moved
//! into a compose project of docker/ (the `mailstack` stage, with an override that gives the
//! container a network of its own), the run brings the container up itself and waits until
//! it serves, and the test then shows: the run's verdict and measured downtime, systemd
//! running in the container, dovecot reading every migrated message (doveadm) and the
//! migrated files owned by the image's users (nothing chowned at start).
//!
//! Second: the whole move of a relay on a REAL systemd (nspawn, tests/src/relay.rs) with a
//! writer delivering during the live phase, run inside it into a project directory that is a
//! directory of this host (bind-mounted); the container is then booted here on what the run
//! left, and dovecot reads exactly the messages the stopped relay had.

use cm_tests::engine::{exec_ok, ok, wait_for_systemd, Engine, Project, COMPOSE, CONTAINER};
use cm_tests::nspawn::text;
use cm_tests::relay::serving_relay;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

const DOMAIN: &str = "start.example.org";

fn as_root() {
    assert_eq!(
        fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX),
        0,
        "this test starts dockerd: run it as root, after .ci/install-deps"
    );
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
    as_root();
    let repo = cm_tests::repo_root();
    let work = tempfile::Builder::new()
        .prefix("cm-migrate-compose.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (host, proj) = (work.path().join("old-host"), work.path().join("project"));
    cm_tests::sample_host(&host, Some(DOMAIN));
    let _engine = Engine::start();
    let project = Project::lay_out(&proj);
    project.build_image();
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
        .args(cm_tests::SKIP_HOST_CHECKS)
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

/// A real DKIM key, as opendkim keeps it (the image's opendkim refuses a key it cannot load).
const DKIM_KEY: &str = "K=/etc/dkimkeys
rm -f $K/*
( umask 077; openssl genrsa -out $K/opendkim.private 2048 2>/dev/null )
printf 'opendkim %s:opendkim:/etc/dkimkeys/opendkim.private\\n' chat.example.org > $K/KeyTable
printf '*@%s opendkim\\n' chat.example.org > $K/SigningTable
chown opendkim:opendkim $K/*
chmod 0600 $K/opendkim.private; chmod 0644 $K/KeyTable $K/SigningTable";

#[test]
fn a_relay_moved_off_a_real_systemd_with_a_writer_boots_in_the_image_with_every_message() {
    as_root();
    let work = tempfile::Builder::new()
        .prefix("cm-migrate-compose.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let proj = work.path().join("project");
    fs::create_dir_all(&proj).unwrap();
    let bind = format!("--bind={}:/srv/proj", proj.display());
    // the real Compose v2 inside the old host, as an operator moving on one machine has it:
    // the run reads where each piece of state goes from the project's compose file
    let compose = format!("--bind={COMPOSE}:/usr/local/bin/docker-compose-v2");
    // dropped last: the project is taken down first, then the relay
    let _engine = Engine::start();
    let c = serving_relay("boot", 20, 50, &[&bind, &compose]);
    let project = Project::lay_out(&proj);
    c.sh(DKIM_KEY);

    let o = c.exec(&[
        "cm-migrate",
        "run",
        "--project-dir",
        "/srv/proj",
        "--owner-map",
        "/srv/proj/users",
        "--verify",
        "changed",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["complete"], true, "{r:#}");
    let said = r["findings"].to_string();
    assert!(
        said.contains("service chatmail of Compose project")
            && said.contains("mail -> /srv/proj/data/chatmail"),
        "the run read the target from its compose file: {said}"
    );
    // the final state passes the full cm-verify all (every tree by content, env, layout,
    // services), as the target resolves it, before the container starts
    let v = c.exec(&[
        "cm-verify",
        "all",
        "--project-dir",
        "/srv/proj",
        "--owner-map",
        "/srv/proj/users",
        "--ini",
        "/usr/local/lib/chatmaild/chatmail.ini",
    ]);
    assert_eq!(v.status.code(), Some(0), "cm-verify all: {}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("ALL OK"),
        "{}",
        text(&v)
    );

    // what the stopped relay holds, user by user (cur + new: what dovecot lists)
    let domain = cm_tests::relay::DOMAIN;
    let count = |u: usize| -> usize {
        c.sh(&format!(
            "find /home/vmail/mail/{domain}/u{u}@{domain}/cur /home/vmail/mail/{domain}/u{u}@{domain}/new -type f | wc -l"
        ))
        .trim()
        .parse()
        .unwrap()
    };
    let want: Vec<usize> = (0..20).map(count).collect();
    assert!(
        want.iter().sum::<usize>() > 20 * 50,
        "the writer delivered: {want:?}"
    );

    project.build_image();
    ok(&project.compose(&["up", "-d"]), "compose up");
    let state = wait_for_systemd();
    let failed = exec_ok(&[CONTAINER, "systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(
        state, "running",
        "systemd in the container; failed units:\n{failed}"
    );
    for (u, n) in want.iter().enumerate() {
        let addr = format!("u{u}@{domain}");
        let st = exec_ok(&[
            CONTAINER, "doveadm", "mailbox", "status", "-u", &addr, "messages", "INBOX",
        ]);
        assert_eq!(
            st.trim(),
            format!("INBOX messages={n}"),
            "{addr}: dovecot's count"
        );
    }
    let owner = exec_ok(&[
        CONTAINER,
        "stat",
        "-c",
        "%U",
        &format!("/home/vmail/mail/{domain}/u0@{domain}/cur"),
    ]);
    assert_eq!(owner.trim(), "vmail");
}
