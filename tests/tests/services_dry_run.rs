//! `cm-migrate stop-services --dry-run` and `start-services --restore --dry-run` against a REAL
//! systemd (Debian 12 in nspawn): they change nothing, any user may run them, and each speaks
//! of what it would do (a restore's plan never names stop-services).

use cm_tests::nspawn::{stderr, stdout, text, Container};
use cm_tests::relay::{self, all_units, chatmail_relay, summary};
use std::process::Output;

fn as_nobody(c: &Container, args: &[&str]) -> Output {
    let mut a = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "cm-migrate",
    ];
    a.extend_from_slice(args);
    c.exec(&a)
}

#[test]
fn dry_runs_of_stop_and_restore_work_as_non_root_and_change_nothing() {
    let c = Container::boot("cmd", "dry", &[], &["cm-migrate"]);
    chatmail_relay(&c);
    let units = all_units();
    let before = summary(&relay::states(&c, &units));
    let o = as_nobody(&c, &["stop-services", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains("Dry run: nothing was changed."),
        "{}",
        text(&o)
    );
    assert!(
        stderr(&o).contains("the run lock /run/cm-migrate.lock was not taken"),
        "{}",
        text(&o)
    );
    assert_eq!(
        before,
        summary(&relay::states(&c, &units)),
        "changed nothing"
    );
    assert!(!c.exists("/var/lib/cm-migrate/services-state.json"));
    // the real stop, then the restore's dry run as root and as nobody
    let o = c.exec(&["cm-migrate", "stop-services"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stopped = summary(&relay::states(&c, &units));
    let o = c.exec(&["cm-migrate", "start-services", "--restore", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("Restore plan") && all.contains("dovecot.service"),
        "{all}"
    );
    assert!(
        !all.contains("stop-services"),
        "a restore speaks of the restore: {all}"
    );
    // nobody cannot read the recorded state (0600, root's): said so, not "must be root"
    let o = as_nobody(&c, &["start-services", "--restore", "--dry-run"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", text(&o));
    assert!(!stderr(&o).contains("must run as root"), "{}", text(&o));
    // with a copy it may read, nobody sees the plan
    c.sh("cp /var/lib/cm-migrate/services-state.json /tmp/state.json && chmod 644 /tmp/state.json");
    let o = as_nobody(
        &c,
        &[
            "start-services",
            "--restore",
            "--dry-run",
            "--state-file",
            "/tmp/state.json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("Restore plan"), "{}", text(&o));
    assert!(
        stdout(&o).contains("Dry run: nothing was changed."),
        "{}",
        text(&o)
    );
    assert!(
        stderr(&o).contains("the run lock /run/cm-migrate.lock was not taken"),
        "{}",
        text(&o)
    );
    assert!(
        !format!("{}{}", stdout(&o), stderr(&o)).contains("stop-services"),
        "{}",
        text(&o)
    );
    assert_eq!(
        stopped,
        summary(&relay::states(&c, &units)),
        "a dry run changes nothing"
    );
    // the real restore still needs root
    let o = as_nobody(
        &c,
        &[
            "start-services",
            "--restore",
            "--state-file",
            "/tmp/state.json",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("must run as root"), "{}", text(&o));
}
