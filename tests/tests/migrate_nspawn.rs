//! `cm-migrate run`, `--resume` and `rollback` against a REAL systemd (Debian 12 in
//! systemd-nspawn, tests/harness/nspawn.sh) running the real postfix, dovecot, opendkim,
//! nginx and unbound plus chatmail-like units, one of which keeps writing mail into the store
//! while the live bulk copy runs. The store is a tmpfs of its own inside the container (the
//! container's root is an overlay, which fanotify cannot resolve handles on: the DKIM keys
//! there are rescanned in full, the store is journaled). Docker is not in the container: the
//! run copies into the project directory and says what to start.
//!
//! Crash tests: the run kills itself (SIGKILL, through CM_MIGRATE_TEST_CRASH_AT) at every step
//! boundary and in the middle of the copies; `run --resume` must then reach the same verified
//! end state, and `rollback` must bring every unit back to its recorded state.
//!
//! Needs root, systemd-container and debootstrap: run .ci/install-deps first.

use cm_tests::nspawn::{self, stdout, text};
use cm_tests::relay::{all_units, serving_relay, states, summary, CHATMAIL_UNITS};
use std::collections::BTreeMap;
use std::process::Output;

const DOMAIN: &str = cm_tests::relay::DOMAIN;

fn relay(tag: &str, users: usize, per_user: usize) -> nspawn::Container {
    serving_relay(tag, users, per_user, &[])
}

fn cm_migrate(c: &nspawn::Container, env: Option<&str>, args: &[&str]) -> Output {
    let mut a = vec!["env"];
    let crash;
    if let Some(e) = env {
        crash = format!("CM_MIGRATE_TEST_CRASH_AT={e}");
        a.push(&crash);
    }
    a.push("cm-migrate");
    a.extend_from_slice(args);
    // the relay in nspawn has no Compose v2 to read a compose file with: the project below
    // /srv/proj is the guide's layout, asked for by name
    if matches!(args.first(), Some(&("run" | "rollback" | "preflight"))) {
        a.extend(["--layout", "guide"]);
    }
    c.exec(&a)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", text(o)))
}

fn step<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["steps"]
        .as_array()
        .and_then(|s| s.iter().rev().find(|s| s["step"] == name))
        .unwrap_or_else(|| panic!("no step {name}: {r:#}"))
}

fn run_args(state: &str) -> Vec<String> {
    ["--project-dir", "/srv/proj", "--state-dir", state, "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn rollback(c: &nspawn::Container, state: &str) -> Output {
    cm_migrate(
        c,
        None,
        &[
            "rollback",
            "--project-dir",
            "/srv/proj",
            "--state-dir",
            state,
        ],
    )
}

fn assert_down(c: &nspawn::Container, when: &str) {
    let now = states(c, CHATMAIL_UNITS);
    for u in CHATMAIL_UNITS {
        let a = &now[*u];
        assert!(!a.is_active(), "{when}: {u} still {a:?}");
    }
}

fn assert_restored(c: &nspawn::Container, before: &BTreeMap<String, (String, String)>, when: &str) {
    assert_eq!(
        &summary(&states(c, &all_units())),
        before,
        "{when}: rollback must bring every unit back to its recorded state"
    );
}

/// The store's hard links (the writer's, made as dovecot makes them, also between a
/// mailbox the final delta walked and one it carried over) are the copy's, and its manifest
/// records them.
fn assert_links_kept(c: &nspawn::Container) {
    let groups = |root: &str| {
        c.sh(&format!(
            "cd {root} && find . -type f -links +1 -printf '%i %P\\n' | sort -k1,1n -k2 |
             awk '$1 != i {{ if (g != \"\") print g; g = \"\" }} {{ i = $1; g = g \" \" $2 }}
                  END {{ if (g != \"\") print g }}' | sort"
        ))
    };
    let (src, copy) = (groups("/home"), groups("/srv/proj/data/chatmail"));
    assert!(
        src.lines().count() > 10,
        "the writer linked messages:\n{src}"
    );
    assert_eq!(src, copy, "hard links of the store and of the copy");
    let o = c.exec(&[
        "cm-verify",
        "manifest",
        "check",
        "/srv/proj/data/.cm-manifest/chatmail.manifest",
        "/srv/proj/data/chatmail",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn run_moves_a_serving_relay_with_a_writer_verifies_it_and_rollback_brings_it_back() {
    let c = relay("run", 20, 50);
    let before = summary(&states(&c, &all_units()));
    // the writer is running: the store changes during the live phase
    let n0: usize = c
        .sh("find /home/vmail -type f | wc -l")
        .trim()
        .parse()
        .unwrap();

    let o = cm_migrate(
        &c,
        None,
        &["run", "--dry-run", "--project-dir", "/srv/proj"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan = stdout(&o);
    assert!(
        plan.contains("entries") && plan.contains("Expected downtime"),
        "{plan}"
    );
    assert!(plan.contains("postfix.service"), "{plan}");
    assert!(!c.exists("/srv/proj/data"), "dry run writes nothing");

    let a = run_args("/var/lib/cm-migrate");
    let mut ra = vec!["run", "--verify", "changed"];
    ra.extend(args(&a));
    let o = cm_migrate(&c, None, &ra);
    let r = json(&o);
    assert_eq!(o.status.code(), Some(0), "{r:#}\n{}", text(&o));
    assert_eq!(r["complete"], true);
    let n1: usize = c
        .sh("find /home/vmail -type f | wc -l")
        .trim()
        .parse()
        .unwrap();
    assert!(
        n1 > n0,
        "the writer wrote during the live phase ({n0} -> {n1})"
    );
    let watch = step(&r, "watch")["summary"].as_str().unwrap().to_string();
    assert!(
        watch.contains("change journal on 1 of 3 root(s)"),
        "{watch}"
    );
    let delta = step(&r, "delta");
    let notes = delta["notes"].to_string();
    assert!(
        notes.contains("change journal named") && !notes.contains("named 0 "),
        "the journal saw the writer's changes: {delta:#}"
    );
    assert!(
        step(&r, "verify")["summary"]
            .as_str()
            .unwrap()
            .contains("ALL OK"),
        "{r:#}"
    );
    let d = &r["downtime"];
    assert!(d["ms"].as_u64().unwrap() > 0, "{r:#}");
    // measured, not asserted: the downtime of a run on this relay, for the record
    eprintln!("downtime: {d}");
    eprintln!("stop: {}", step(&r, "stop")["summary"]);
    eprintln!("stop timing: {}", step(&r, "stop")["detail"]["timing"]);
    assert!(r["next_step"]
        .as_str()
        .unwrap()
        .contains("docker compose up -d"));
    assert_down(&c, "after run");
    assert_links_kept(&c);
    assert!(c.exists("/srv/proj/.env"));
    assert!(c.sh("cat /srv/proj/.env").contains(DOMAIN));

    // a second run is a new run (the first finished); resume has nothing to do
    let o = cm_migrate(&c, None, &["run", "--resume", "--project-dir", "/srv/proj"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let o = cm_migrate(&c, None, &["rollback", "--project-dir", "/srv/proj"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("Left in the target"), "{}", text(&o));
    assert_restored(&c, &before, "after run + rollback");
    assert!(
        c.exists("/srv/proj/data/chatmail"),
        "nothing of the target is removed"
    );
}

#[test]
fn a_run_killed_at_every_step_boundary_and_mid_copy_resumes_to_the_same_end_and_rolls_back() {
    let c = relay("crash", 20, 40);
    let before = summary(&states(&c, &all_units()));
    let crashes = [
        "preflight:done",
        "watch:done",
        "bulk-copy:progress:mail",
        "bulk-copy:done",
        "stop:begun",
        "stop:done",
        "delta:progress:mail",
        "delta:done",
        "settings:done",
        "verify:begun",
        "verify:done",
    ];
    for (i, crash) in crashes.iter().enumerate() {
        let state = format!("/var/lib/cmm-{i}");
        c.sh("rm -rf /srv/proj/data /srv/proj/.env /srv/proj/.env.*");
        let a = run_args(&state);
        let mut ra = vec!["run"];
        ra.extend(args(&a));
        let o = cm_migrate(&c, Some(crash), &ra);
        assert_ne!(
            o.status.code(),
            Some(0),
            "{crash}: the run must have been killed\n{}",
            text(&o)
        );
        assert!(
            stdout(&o).is_empty(),
            "{crash}: killed before printing\n{}",
            text(&o)
        );
        let j: serde_json::Value =
            serde_json::from_str(&c.sh(&format!("cat {state}/run-journal.json"))).unwrap();
        assert_eq!(j["finished"], false, "{crash}: {j:#}");

        // without --resume a new run is refused, naming what to do
        let o = cm_migrate(&c, None, &ra);
        assert_eq!(o.status.code(), Some(2), "{crash}: {}", text(&o));
        assert!(
            json(&o)["error"].as_str().unwrap().contains("--resume"),
            "{crash}"
        );

        let mut res = ra.clone();
        res.push("--resume");
        let o = cm_migrate(&c, None, &res);
        let r = json(&o);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{crash}: resume: {r:#}\n{}",
            text(&o)
        );
        assert_eq!(r["complete"], true, "{crash}");
        assert!(
            step(&r, "verify")["status"] == "skipped"
                || step(&r, "verify")["summary"]
                    .as_str()
                    .unwrap()
                    .contains("ALL OK"),
            "{crash}: {r:#}"
        );
        let stops = r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["step"] == "stop")
            .count();
        assert_eq!(stops, 1, "{crash}");
        if [
            "stop:done",
            "delta:done",
            "settings:done",
            "verify:begun",
            "verify:done",
        ]
        .contains(crash)
        {
            assert_eq!(
                step(&r, "stop")["status"],
                "skipped",
                "{crash}: never stopped twice"
            );
            assert_eq!(step(&r, "bulk-copy")["status"], "skipped", "{crash}");
        }
        if *crash == "stop:begun" {
            assert_eq!(
                step(&r, "stop")["status"],
                "done",
                "{crash}: the stop finishes"
            );
        }
        assert!(r["downtime"]["ms"].as_u64().is_some(), "{crash}: {r:#}");
        assert_down(&c, crash);

        let o = rollback(&c, &state);
        assert_eq!(o.status.code(), Some(0), "{crash}: rollback: {}", text(&o));
        assert_restored(&c, &before, crash);
    }

    // killed in the middle of the delta (timed), then rolled back without resuming
    let state = "/var/lib/cmm-mid";
    let a = run_args(state);
    let mut ra = vec!["run"];
    ra.extend(args(&a));
    let o = cm_migrate(&c, Some("delta:begun+5"), &ra);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let o = rollback(&c, state);
    assert_eq!(o.status.code(), Some(0), "rollback: {}", text(&o));
    assert_restored(&c, &before, "killed mid-delta, rolled back");
}
