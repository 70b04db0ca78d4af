//! What the tools say, as users read it: singular counts, times in UTC with nanoseconds,
//! byte counts for people, options only where they apply, one warning line for a source
//! that does not look like a chatmail host.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use cm_tests::bin;

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn touch(p: &Path, at: &str) {
    let ok = Command::new("touch")
        .args(["-h", "-d", at])
        .arg(p)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn an_mtime_difference_is_shown_in_utc_with_nanoseconds_and_counts_are_singular() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for t in [&a, &b] {
        fs::create_dir_all(t).unwrap();
        fs::write(t.join("f"), "x").unwrap();
        touch(t, "@1700000000.5");
    }
    touch(&a.join("f"), "@1700000000.5");
    touch(&b.join("f"), "@1700000001.25");
    let o = Command::new(bin("cm-verify"))
        .arg("tree")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "expected 2023-11-14 22:13:20.500000000 UTC, found 2023-11-14 22:13:21.250000000 UTC"
        ),
        "{text}"
    );
    assert!(!text.contains("1700000000"), "no raw epoch: {text}");
    assert!(text.contains(": 1 difference (1 mtime)"), "{text}");
    assert!(text.contains("1 file (1 B) compared by content"), "{text}");
}

#[test]
fn one_problem_is_one_problem() {
    let d = tempfile::tempdir().unwrap();
    fs::write(
        d.path().join("c.ini"),
        "[params]\nmail_domain = a.org\nmax_mailbox_size = 1G\n",
    )
    .unwrap();
    fs::write(d.path().join(".env"), "MAIL_DOMAIN=a.org\n").unwrap();
    let o = Command::new(bin("cm-verify"))
        .arg("env")
        .arg(d.path().join("c.ini"))
        .arg(d.path().join(".env"))
        .output()
        .unwrap();
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains(": 1 problem\n"), "{text}");
}

#[test]
fn manifest_write_has_no_examples_option() {
    let o = Command::new(bin("cm-verify"))
        .args(["manifest", "write", "--help"])
        .output()
        .unwrap();
    assert!(!out(&o).contains("--examples"), "{}", out(&o));
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(bin("cm-verify"))
        .args(["manifest", "write", "--examples", "3", "-o"])
        .arg(d.path().join("m"))
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
}

/// A project with a compose file, and an old host root made of `dirs`.
fn copy_dry_run(d: &Path, dirs: &[&str], files: &[&str]) -> Output {
    let root = d.join("root");
    for x in dirs {
        fs::create_dir_all(root.join(x)).unwrap();
    }
    for f in files {
        fs::write(root.join(f), "k").unwrap();
    }
    let p = d.join("project");
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("compose.yaml"), "services:\n  chatmail:\n    build: .\n    volumes:\n      - ./data/chatmail:/home\n      - ./data/chatmail-dkimkeys:/etc/dkimkeys\n      - ./data/chatmail-acme:/var/lib/acme\n").unwrap();
    Command::new(bin("cm-copy-data"))
        .arg("--root")
        .arg(&root)
        .arg("--project-dir")
        .arg(&p)
        .arg("--dry-run")
        .output()
        .unwrap()
}

#[test]
fn a_source_that_does_not_look_like_a_chatmail_host_gets_one_warning_line() {
    let d = tempfile::tempdir().unwrap();
    let o = copy_dry_run(d.path(), &["home/alice"], &[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("does not look like a chatmail host"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("cm-copy-data: warning: "), "{err}");
    assert!(lines[0].contains("no vmail under /home"), "{err}");
    // The plan's counts read as English.
    let text = out(&o);
    assert!(
        text.contains("2 directories") || text.contains("1 directory"),
        "{text}"
    );
    assert!(!text.contains("1 directories"), "{text}");
    // A chatmail host: no such line.
    let d = tempfile::tempdir().unwrap();
    let o = copy_dry_run(
        d.path(),
        &["home/vmail/mail", "etc/dkimkeys", "var/lib/acme/live"],
        &["etc/dkimkeys/opendkim.private"],
    );
    assert!(!out(&o).contains("does not look like"), "{}", out(&o));
}
