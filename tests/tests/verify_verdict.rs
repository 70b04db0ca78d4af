//! cm-verify's verdict rule against the built binary: every check is held, differs or not
//! checked (with the reason); ALL OK only when all ran and held; exit 0 only then or when
//! the only checks not run were switched off by the user's own flag. An input that does not
//! exist is exit 2, never a fallback; each volume's reference is printed and follows what the
//! copy recorded.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn verify(args: &[&str], path: Option<&Path>) -> Output {
    let mut c = Command::new(cm_tests::bin("cm-verify"));
    c.args(args);
    // the projects here are in the guide's layout, without a compose file: asked for by name
    if matches!(args.first(), Some(&"all") | Some(&"layout")) {
        c.args(["--layout", "guide"]);
    }
    if let Some(p) = path {
        c.env("PATH", format!("{}:/usr/bin:/bin", p.display()));
    }
    c.output().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// A project with one volume (data/chatmail) copied from `src`, and its manifest.
fn project(d: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = d.join("old/home");
    fs::create_dir_all(src.join("vmail/mail/example.org/a@example.org/cur")).unwrap();
    fs::write(
        src.join("vmail/mail/example.org/a@example.org/cur/m1"),
        "hello",
    )
    .unwrap();
    let p = d.join("project");
    fs::create_dir_all(p.join("data")).unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(p.join("data/chatmail"))
        .status()
        .unwrap();
    assert!(ok.success());
    fs::create_dir_all(p.join("data/.cm-manifest")).unwrap();
    let m = p.join("data/.cm-manifest/chatmail.manifest");
    let o = verify(
        &[
            "manifest",
            "write",
            p.join("data/chatmail").to_str().unwrap(),
            "-o",
            m.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    (p, m)
}

/// Add `# key: value` lines to a manifest's header (what the copy records).
/// Replaces the manifest's header record (where the copy came from) with `lines`
/// (`@machine-id ID`, `@source PATH`, ...), as a copy on another machine would have written it.
fn record(m: &Path, lines: &[String]) {
    let text = fs::read_to_string(m).unwrap();
    let (first, rest) = text.split_once('\n').unwrap();
    let rest: String = rest
        .split_inclusive('\n')
        .filter(|l| {
            !["@machine-id ", "@root ", "@source "]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .collect();
    let extra: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(m, format!("{first}\n{extra}{rest}")).unwrap();
}

fn check<'a>(v: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} check: {v:#}"))
}

#[test]
fn all_with_a_root_that_does_not_exist_is_exit_2_never_a_fallback() {
    let d = tempfile::tempdir().unwrap();
    let (p, _) = project(d.path());
    let o = verify(
        &[
            "all",
            "--root",
            "/typo",
            "--project-dir",
            p.to_str().unwrap(),
            "--no-env",
            "--no-services",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(o.stdout.is_empty(), "no verdict: {o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--root \"/typo\""));
}

#[test]
fn layout_or_all_with_a_project_dir_that_does_not_exist_is_exit_2() {
    for sub in [&["layout"][..], &["all", "--no-env", "--no-services"][..]] {
        let mut a = sub.to_vec();
        a.extend(["--project-dir", "/typo"]);
        let o = verify(&a, None);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {o:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("--project-dir \"/typo\""));
    }
}

#[test]
fn a_tree_that_does_not_exist_is_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_str().unwrap();
    for a in [["tree", "/typo", p], ["tree", p, "/typo"]] {
        let o = verify(&a, None);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {o:?}");
    }
}

/// A switched-off check is named in the verdict, is not "ok" in --json, and does not fail
/// the run; a check that could not run (systemctl fails) is not checked and fails it.
#[test]
fn checks_that_did_not_run_are_never_ok() {
    let d = tempfile::tempdir().unwrap();
    let (p, _) = project(d.path());
    let pd = p.to_str().unwrap();
    // switched off by the user: exit 0 when the rest holds, but not ALL OK
    let o = verify(
        &["all", "--project-dir", pd, "--no-env", "--no-services"],
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("not checked: env (--no-env); services (--no-services)"),
        "{out}"
    );
    assert!(!out.contains("ALL OK"), "{out}");
    assert!(!out.contains("OK: services"), "{out}");
    let o = verify(
        &[
            "all",
            "--project-dir",
            pd,
            "--no-env",
            "--no-services",
            "--json",
        ],
        None,
    );
    let v = json(&o);
    for kind in ["env", "services"] {
        let c = check(&v, kind);
        assert_eq!(c["status"], "not_checked", "{c}");
        assert_eq!(c["ok"], false, "{c}");
        assert_eq!(c["switched_off"], true, "{c}");
    }
    assert_eq!(v["ok"], false, "{v:#}");
    // systemctl cannot reach systemd: not checked, not OK, and the run fails
    let fake = d.path().join("bin");
    fs::create_dir_all(&fake).unwrap();
    fs::write(
        fake.join("systemctl"),
        "#!/bin/sh\necho 'Failed to connect to bus: No such file or directory' >&2\nexit 1\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(fake.join("systemctl"))
        .status()
        .unwrap();
    let o = verify(
        &["all", "--project-dir", pd, "--no-env", "--json"],
        Some(&fake),
    );
    let v = json(&o);
    let c = check(&v, "services");
    assert_eq!(c["status"], "not_checked", "{c}");
    assert_eq!(c["ok"], false, "{c}");
    assert_eq!(c["switched_off"], false, "{c}");
    assert!(
        c["reason"]
            .as_str()
            .unwrap()
            .contains("Failed to connect to bus"),
        "{c}"
    );
    assert_eq!(o.status.code(), Some(1), "{v:#}");
    assert_eq!(v["exit_code"], 1);
    // the same check alone: not checked, exit 1, never OK
    let o = verify(&["services", "--json"], Some(&fake));
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v = json(&o);
    assert_eq!(v["status"], "not_checked", "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["exit_code"], 1, "{v}");
    let o = verify(&["all", "--project-dir", pd, "--no-env"], Some(&fake));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("NOT CHECKED: services"), "{out}");
    assert!(out.lines().last().unwrap().starts_with("NOT OK: "), "{out}");
}

/// Without --root, a volume whose manifest says it was copied on another machine is
/// verified against that manifest, never against a tree that merely exists at the same
/// path here (/home of the machine cm-verify runs on); which reference is printed.
#[test]
fn a_volume_is_verified_against_what_its_manifest_recorded() {
    let d = tempfile::tempdir().unwrap();
    let (p, m) = project(d.path());
    let pd = p.to_str().unwrap();
    record(
        &m,
        &[
            "@machine-id 0123456789abcdef0123456789abcdef".into(),
            "@source /home".into(),
        ],
    );
    assert!(
        Path::new("/home").is_dir(),
        "this host has a /home of its own"
    );
    let o = verify(
        &[
            "all",
            "--project-dir",
            pd,
            "--no-env",
            "--no-services",
            "--json",
        ],
        None,
    );
    let v = json(&o);
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "manifest" || c["kind"] == "tree")
        .unwrap();
    assert_eq!(c["kind"], "manifest", "{c}");
    assert_eq!(c["status"], "held", "{c}");
    assert!(
        c["reference"]
            .as_str()
            .unwrap()
            .contains("on machine 0123456789abcdef"),
        "{c}"
    );
    let o = verify(
        &["all", "--project-dir", pd, "--no-env", "--no-services"],
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "verified against the manifest the copy wrote (copied from \"/home\" on machine"
        ),
        "{out}"
    );

    // Recorded on this machine from a source that is still here: that tree is the reference.
    let (p2, m2) = project(&d.path().join("second"));
    let here = fs::read_to_string("/etc/machine-id")
        .unwrap()
        .trim()
        .to_string();
    let src = d.path().join("second/old/home");
    record(
        &m2,
        &[
            format!("@machine-id {here}"),
            format!("@source {}", src.display()),
        ],
    );
    let o = verify(
        &[
            "all",
            "--project-dir",
            p2.to_str().unwrap(),
            "--no-env",
            "--no-services",
            "--json",
        ],
        None,
    );
    let v = json(&o);
    let c = check(&v, "tree");
    assert_eq!(c["status"], "held", "{c}");
    assert!(
        c["subject"].as_str().unwrap().contains("second/old/home"),
        "{c}"
    );
    assert!(
        c["reference"].as_str().unwrap().contains("on this machine"),
        "{c}"
    );
}

/// The copy leaves sockets out by design: in cm-verify tree that is a note, not a
/// difference.
#[test]
fn a_socket_the_copy_skips_is_a_note_not_a_difference() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::write(a.join("f"), "x").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(a.join("s\nx")).unwrap();
    // a time well in the past: rsync leaves a directory's mtime as created within its second
    let ok = Command::new("touch")
        .args(["-h", "-d", "@1700000000.5"])
        .arg(&a)
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("rsync")
        .arg("-aHAX")
        .arg("--no-specials")
        .arg(format!("{}/", a.display()))
        .arg(&b)
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(!b.join("s\nx").exists());
    let o = verify(
        &["tree", a.to_str().unwrap(), b.to_str().unwrap(), "--json"],
        None,
    );
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["status"], "held", "{v:#}");
    assert!(
        v["notes"][0].as_str().unwrap().contains("\"s\\nx\""),
        "{v:#}"
    );
    let o = verify(&["tree", a.to_str().unwrap(), b.to_str().unwrap()], None);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("note: 1 socket not in the copy"), "{out}");
}
