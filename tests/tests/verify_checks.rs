//! `cm-verify env`, `layout` and `all`: settings compared as chatmail reads them, the compose
//! project's folders, DKIM key, ACME links, mailbox folder and owners, and one verdict over
//! everything.

mod verify_support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::Path;

use verify_support::{must_be_root, rsync_copy, scratch, verify};

fn run(args: &[&str]) -> (i32, String, String) {
    let a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    verify(&a)
}

fn findings(out: &str) -> Vec<(String, String)> {
    let v: serde_json::Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings: {v}"))
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const INI: &str = "[params]\nmail_domain = example.org\nmax_mailbox_size = 500M\ndisable_ipv6 = True\nmax_user_send_per_minute = 60\n";

#[test]
fn env_matches_when_chatmail_would_behave_the_same() {
    let t = scratch();
    let ini = t.path().join("chatmail.ini");
    let env = t.path().join(".env");
    fs::write(&ini, INI).unwrap();
    // absent = default (60), `true` = `True`, `500m` = `500M`
    fs::write(
        &env,
        "MAIL_DOMAIN=\"example.org\"\nMAX_MAILBOX_SIZE=\"500m\"\nDISABLE_IPV6=\"true\"\n",
    )
    .unwrap();
    let (code, out, err) = run(&["env", ini.to_str().unwrap(), env.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK: env "), "{out}");

    fs::write(
        &env,
        "MAIL_DOMAIN=\"example.org\"\nMAX_MAILBOX_SIZE=\"1G\"\nDELETE_MAILS_AFTER=\"40\"\n",
    )
    .unwrap();
    let (code, out, _) = run(&[
        "env",
        ini.to_str().unwrap(),
        env.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let mut f = findings(&out);
    f.sort();
    assert_eq!(
        f,
        vec![
            ("env".into(), "DELETE_MAILS_AFTER".into()),
            ("env".into(), "DISABLE_IPV6".into()),
            ("env".into(), "MAX_MAILBOX_SIZE".into()),
        ]
    );
    let (code, out, _) = run(&["env", ini.to_str().unwrap(), env.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("MAX_MAILBOX_SIZE: ini max_mailbox_size (line 3): \"500M\"; .env MAX_MAILBOX_SIZE: \"1G\""),
        "{out}"
    );
    // unusable input: exit 2, located
    fs::write(&ini, "[params]\nmail_domain = a\nmail_domain = b\n").unwrap();
    let (code, _, err) = run(&["env", ini.to_str().unwrap(), env.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("chatmail.ini:3"), "{err}");
}

/// A project directory laid out as the guide says, as cm-copy-data leaves it for an image
/// whose vmail is 999:999 and opendkim 998:998; and that image's passwd/group.
fn project(root: &Path) {
    must_be_root();
    let d = root.join("project/data");
    let mail = d.join("chatmail/vmail/mail/example.org/alice@example.org/cur");
    fs::create_dir_all(&mail).unwrap();
    for p in [
        "chatmail/vmail",
        "chatmail/vmail/mail",
        "chatmail/vmail/mail/example.org",
    ] {
        lchown(d.join(p), Some(999), Some(999)).unwrap();
    }
    let dk = d.join("chatmail-dkimkeys");
    fs::create_dir_all(&dk).unwrap();
    fs::write(dk.join("opendkim.private"), "KEY").unwrap();
    lchown(dk.join("opendkim.private"), Some(998), Some(998)).unwrap();
    fs::set_permissions(
        dk.join("opendkim.private"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let acme = d.join("chatmail-acme");
    fs::create_dir_all(acme.join("certs/abc")).unwrap();
    fs::create_dir_all(acme.join("keys/abc")).unwrap();
    fs::create_dir_all(acme.join("live")).unwrap();
    fs::write(acme.join("keys/abc/privkey"), "K").unwrap();
    fs::write(acme.join("certs/abc/fullchain"), "C").unwrap();
    symlink("../../keys/abc/privkey", acme.join("certs/abc/privkey")).unwrap();
    symlink("../certs/abc", acme.join("live/example.org")).unwrap();
    symlink(
        "/var/lib/acme/certs/abc",
        acme.join("live/mta-sts.example.org"),
    )
    .unwrap();
    fs::write(root.join("project/.env"), "MAIL_DOMAIN=\"example.org\"\n").unwrap();
    let img = root.join("image/etc");
    fs::create_dir_all(&img).unwrap();
    fs::write(
        img.join("passwd"),
        "root:x:0:0::/root:/bin/sh\nvmail:x:999:999::/home/vmail:/bin/false\nopendkim:x:998:998::/run/opendkim:/bin/false\n",
    )
    .unwrap();
    fs::write(
        img.join("group"),
        "root:x:0:\nvmail:x:999:\nopendkim:x:998:\n",
    )
    .unwrap();
}

fn layout(root: &Path, extra: &[&str]) -> (i32, Vec<(String, String)>, String) {
    let p = root.join("project");
    let i = root.join("image");
    let mut a = vec![
        "layout",
        "--project-dir",
        p.to_str().unwrap(),
        "--image-root",
        i.to_str().unwrap(),
        "--json",
    ];
    if !extra.contains(&"--compose") {
        a.extend(["--layout", "guide"]);
    }
    a.extend_from_slice(extra);
    let (code, out, err) = run(&a);
    assert!(code != 2, "{out}{err}");
    let f = findings(&out);
    (code, f, out)
}

#[test]
fn layout_of_a_ready_project_passes_and_each_problem_is_named() {
    let t = scratch();
    let r = t.path();
    project(r);
    let (code, f, out) = layout(r, &[]);
    assert_eq!((code, f), (0, vec![]), "{out}");
    let d = r.join("project/data");
    let s = |p: &str| d.join(p).display().to_string();

    // the DKIM key readable by group, and owned by the host's opendkim
    fs::set_permissions(
        d.join("chatmail-dkimkeys/opendkim.private"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    lchown(
        d.join("chatmail-dkimkeys/opendkim.private"),
        Some(110),
        Some(120),
    )
    .unwrap();
    // an ACME link that leaves the tree, and one whose target was not copied
    symlink(
        "/etc/letsencrypt/live/x",
        d.join("chatmail-acme/live/other.example.org"),
    )
    .unwrap();
    fs::remove_file(d.join("chatmail-acme/keys/abc/privkey")).unwrap();
    // the mailbox folder owned by the host's vmail
    lchown(
        d.join("chatmail/vmail/mail/example.org"),
        Some(5000),
        Some(5000),
    )
    .unwrap();
    let (code, mut f, out) = layout(r, &[]);
    assert_eq!(code, 1, "{out}");
    f.sort();
    let mut want = vec![
        ("dkim".to_string(), s("chatmail-dkimkeys/opendkim.private")),
        ("dkim".to_string(), s("chatmail-dkimkeys/opendkim.private")),
        ("acme".to_string(), "live/example.org/privkey".to_string()),
        (
            "acme".to_string(),
            "live/mta-sts.example.org/privkey".to_string(),
        ),
        ("acme".to_string(), "live/other.example.org".to_string()),
        ("owner".to_string(), s("chatmail/vmail/mail/example.org")),
    ];
    want.sort();
    assert_eq!(f, want, "{out}");
    assert!(out.contains("mode 0640"), "{out}");
    assert!(out.contains("outside /var/lib/acme"), "{out}");

    // missing folders and mailbox
    fs::remove_dir_all(d.join("chatmail-dkimkeys")).unwrap();
    let (code, f, out) = layout(r, &["--mail-domain", "other.org"]);
    assert_eq!(code, 1);
    assert!(
        f.contains(&("layout".into(), s("chatmail-dkimkeys"))),
        "{out}"
    );
    assert!(
        f.contains(&("mailbox".into(), s("chatmail/vmail/mail/other.org"))),
        "{out}"
    );
}

#[test]
fn layout_reads_the_mounts_from_the_compose_file_with_real_compose() {
    let t = scratch();
    let r = t.path();
    project(r);
    let compose = which("docker-compose-v2");
    fs::write(
        r.join("project/compose.yaml"),
        "services:\n  chatmail:\n    image: chatmail\n    volumes:\n      - ./data/chatmail:/home\n      - ./data/chatmail-dkimkeys:/etc/dkimkeys\n      - ./data/chatmail-acme:/var/lib/acme\n      - ./data/extra:/srv/extra\n      - type: tmpfs\n        target: /tmp\n",
    )
    .unwrap();
    let (code, f, out) = layout(r, &["--compose", &compose]);
    assert_eq!(code, 1, "{out}");
    let extra = r.join("project/data/extra").display().to_string();
    assert_eq!(f, vec![("layout".into(), extra)], "{out}");
}

fn which(prog: &str) -> String {
    for dir in ["/usr/local/bin", "/usr/bin"] {
        let p = Path::new(dir).join(prog);
        if p.exists() {
            return p.display().to_string();
        }
    }
    panic!("{prog} not found: run .ci/install-deps (.ci/install.d/20-compose.sh installs it)");
}

#[test]
fn all_gives_one_verdict_over_env_layout_and_every_volume() {
    let t = scratch();
    let r = t.path();
    project(r);
    // Times well in the past: rsync -a leaves a directory's mtime as created when it falls
    // in the same second as the source's (it compares whole seconds), which cm-verify would
    // rightly report.
    verify_support::sh(
        "sh",
        &[
            "-c",
            &format!(
                "find {}/project/data -exec touch -h -d @1700000000.5 {{}} +",
                r.display()
            ),
        ],
    );
    // The old host's root: the volumes' sources, and chatmail.ini.
    let old = r.join("old");
    for (vol, src) in [
        ("chatmail", "home"),
        ("chatmail-dkimkeys", "etc/dkimkeys"),
        ("chatmail-acme", "var/lib/acme"),
    ] {
        fs::create_dir_all(old.join(src)).unwrap();
        rsync_copy(&r.join("project/data").join(vol), &old.join(src));
    }
    let ini = r.join("chatmail.ini");
    fs::write(&ini, INI).unwrap();
    fs::write(
        r.join("project/.env"),
        "MAIL_DOMAIN=\"example.org\"\nDISABLE_IPV6=\"True\"\n",
    )
    .unwrap();
    let p = r.join("project");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "all",
            "--project-dir",
            p.to_str().unwrap(),
            "--root",
            old.to_str().unwrap(),
            "--ini",
            ini.to_str().unwrap(),
            "--image-root",
            r.join("image").to_str().unwrap(),
            "--no-services",
            "--layout",
            "guide",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let a = args(&[]);
    let (code, out, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    // services was switched off by the user's own flag: exit 0, but not ALL OK, and named.
    assert!(
        out.contains("OK: 5 hold, 1 not checked: services (--no-services)"),
        "{out}"
    );
    assert!(!out.contains("ALL OK"), "{out}");
    assert_eq!(out.matches("== tree ").count(), 3, "{out}");

    // One byte of one message differs: the verdict fails and names the tree.
    let msg = p.join("data/chatmail/vmail/mail/example.org/alice@example.org/cur/m1");
    fs::write(
        old.join("home/vmail/mail/example.org/alice@example.org/cur/m1"),
        "hello",
    )
    .unwrap();
    fs::write(&msg, "hellO").unwrap();
    let (code, out, _) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT OK: 1 differs: tree "), "{out}");

    // Under a --root without the sources, the volumes are not checked (never the manifest
    // in their place): exit 1.
    fs::remove_dir_all(&old).unwrap();
    fs::create_dir_all(&old).unwrap();
    let (code, out, _) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("2 hold, 4 not checked: services (--no-services); volume "),
        "{out}"
    );
    // Without --root, the manifests cm-copy-data wrote are used (and said so).
    fs::create_dir_all(p.join("data/.cm-manifest")).unwrap();
    for vol in ["chatmail", "chatmail-dkimkeys", "chatmail-acme"] {
        let (code, _, err) = run(&[
            "manifest",
            "write",
            p.join("data").join(vol).to_str().unwrap(),
            "-o",
            p.join(format!("data/.cm-manifest/{vol}.manifest"))
                .to_str()
                .unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let a: Vec<String> = args(&["--json"])
        .into_iter()
        .filter(|x| x != "--root" && x != old.to_str().unwrap())
        .collect();
    let (code, out, _) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false, "services not checked: not all held");
    assert_eq!(v["exit_code"], 0);
    let checks: Vec<&serde_json::Value> = v["checks"].as_array().unwrap().iter().collect();
    let manifests: Vec<_> = checks.iter().filter(|c| c["kind"] == "manifest").collect();
    assert_eq!(manifests.len(), 3, "{checks:?}");
    for m in manifests {
        assert_eq!(m["status"], "held", "{m}");
        assert!(m["reference"].as_str().unwrap().contains("manifest"), "{m}");
    }
    let svc = checks.iter().find(|c| c["kind"] == "services").unwrap();
    assert_eq!(svc["status"], "not_checked");
    assert_eq!(svc["ok"], false);
    assert_eq!(svc["switched_off"], true);
    fs::write(&msg, "HELLO").unwrap();
    let (code, out, _) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1, "{out}");
}
