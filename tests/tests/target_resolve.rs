//! The target of a move read from its compose file with the real Docker Compose v2 (no
//! engine needed): the maintained deployment's shape (named volumes, the ini mount), its
//! bind-mount override, host mounts, a compose file mounting no state, a directory without
//! one; Compose found as an operator has it (`docker compose` first) and an explicit
//! `--compose` with words; cm-ini-to-env writing an ini-mount target's settings, read back
//! by Compose.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cm_core::target::{self, Settings, Source};

fn fixture(name: &str, into: &Path) -> PathBuf {
    let src = cm_tests::repo_root().join("fixtures/targets").join(name);
    let dst = into.join(name);
    fs::create_dir_all(&dst).unwrap();
    for e in fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

fn resolve(dir: &Path, compose: Option<&str>) -> Result<target::Target, target::TargetError> {
    target::resolve(
        dir,
        &target::Options {
            compose,
            ..Default::default()
        },
    )
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(cm_tests::bin(bin))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_maintained_deployments_shape_resolves_to_named_volumes_and_the_ini_mount() {
    cm_tests::compose();
    let t = tempfile::tempdir().unwrap();
    let d = fixture("maintained", t.path());
    let r = resolve(&d, None).unwrap();
    assert_eq!(r.service(), "chatmail");
    let project = "maintained";
    for (name, key, mount) in [
        ("mail", "mail", "/home/vmail"),
        ("dkim", "dkim", "/etc/dkimkeys"),
        ("acme", "certs", "/var/lib/acme"),
    ] {
        let p = r.placement(name).unwrap_or_else(|| panic!("{name}: {r:?}"));
        assert_eq!(p.mount, Path::new(mount));
        assert_eq!(
            p.source,
            Source::Volume {
                key: key.into(),
                name: format!("{project}_{key}"),
                external: false
            }
        );
    }
    match &r.settings {
        Settings::IniMount { ini, env, vars } => {
            assert_eq!(ini, &d.join("chatmail.ini"));
            assert_eq!(env, &d.join(".env"));
            assert!(
                vars.contains(&"MAIL_DOMAIN".to_string())
                    && vars.contains(&"ACME_EMAIL".to_string()),
                "{vars:?}"
            );
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(r.image.as_deref(), Some("ghcr.io/chatmail/docker:1.12.0"));
    // the state it does not mount, with the line to add
    let host = t.path().join("host");
    fs::create_dir_all(host.join("etc")).unwrap();
    fs::write(host.join("etc/chatmail-nocreate"), "").unwrap();
    let un: Vec<String> = r
        .unmounted_on(&host)
        .iter()
        .map(|m| m.line.clone())
        .collect();
    assert_eq!(
        un,
        ["- ./state/chatmail-nocreate:/etc/chatmail-nocreate:ro"]
    );
}

#[test]
fn the_override_file_is_merged_bind_mounts_win_and_host_mounts_are_in_place() {
    cm_tests::compose();
    let t = tempfile::tempdir().unwrap();
    let d = fixture("maintained-bind", t.path());
    let r = resolve(&d, None).unwrap();
    for (name, dir) in [
        ("mail", "data/mail"),
        ("dkim", "data/dkim"),
        ("acme", "data/certs"),
    ] {
        assert_eq!(
            r.placement(name).unwrap().source,
            Source::Bind { path: d.join(dir) },
            "{name}"
        );
    }
    let h = fixture("host-mounts", t.path());
    let r = resolve(&h, None).unwrap();
    assert_eq!(
        r.placement("mail").unwrap().source,
        Source::Bind {
            path: "/home/vmail".into()
        }
    );
    let plan = target::plan::copy_volumes(&r, Path::new("/"), None, false, &[]).unwrap();
    assert!(plan.volumes.is_empty(), "{:?}", plan.volumes);
    assert_eq!(plan.in_place.len(), 3, "{:?}", plan.notes);
    assert!(
        plan.notes.iter().all(|n| n.contains("mounted in place")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn a_compose_file_mounting_no_state_and_a_dir_without_one_are_refused() {
    cm_tests::compose();
    let t = tempfile::tempdir().unwrap();
    let d = fixture("no-state", t.path());
    let host = t.path().join("host");
    fs::create_dir_all(&host).unwrap();
    let o = run(
        "cm-copy-data",
        &[
            "--root",
            host.to_str().unwrap(),
            "--project-dir",
            d.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let said = text(&o);
    for want in [
        "no service mounts the relay's state",
        "mail at /home/vmail",
        "dkim at /etc/dkimkeys",
        "acme at /var/lib/acme",
        "- ./chatmail.ini:/etc/chatmail/chatmail.ini",
    ] {
        assert!(said.contains(want), "{want}: {said}");
    }
    let o = run(
        "cm-verify",
        &["layout", "--project-dir", d.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // no compose file: refused, unless the guide's layout is asked for by name
    let empty = t.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    for tool in [
        &["cm-verify", "layout"][..],
        &["cm-copy-data", "--dry-run"][..],
    ] {
        let mut a = tool[1..].to_vec();
        a.extend([
            "--project-dir",
            empty.to_str().unwrap(),
            "--root",
            host.to_str().unwrap(),
        ]);
        if tool[0] == "cm-verify" {
            a.retain(|x| *x != "--root" && *x != host.to_str().unwrap());
        }
        let o = run(tool[0], &a);
        assert_eq!(o.status.code(), Some(2), "{tool:?}: {}", text(&o));
        assert!(text(&o).contains("no compose file"), "{}", text(&o));
    }
    let o = run(
        "cm-verify",
        &[
            "layout",
            "--project-dir",
            empty.to_str().unwrap(),
            "--layout",
            "guide",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("data/chatmail"), "{}", text(&o));
}

#[test]
fn compose_is_found_as_an_operator_has_it_and_an_explicit_choice_is_checked() {
    cm_tests::compose();
    let t = tempfile::tempdir().unwrap();
    let d = fixture("maintained-bind", t.path());
    let r = resolve(&d, None).unwrap();
    match &r.layout {
        target::Layout::Compose { compose, .. } => assert_eq!(compose, "docker compose"),
        l => panic!("{l:?}"),
    }
    for ok in ["docker compose", cm_tests::COMPOSE] {
        resolve(&d, Some(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // `docker` alone runs `docker config`: refused with the hint, never a fallback
    let e = resolve(&d, Some("docker")).unwrap_err().to_string();
    assert!(
        e.contains("not Compose v2") && e.contains("\"docker compose\""),
        "{e}"
    );
    let o = run(
        "cm-verify",
        &[
            "layout",
            "--project-dir",
            d.to_str().unwrap(),
            "--compose",
            "docker",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = run(
        "cm-verify",
        &[
            "layout",
            "--project-dir",
            d.to_str().unwrap(),
            "--compose",
            "docker compose",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // the bind sources are what layout looks at: data/mail is missing
    assert!(
        text(&o).contains(&d.join("data/mail").display().to_string()),
        "{}",
        text(&o)
    );
}

#[test]
fn ini_to_env_writes_an_ini_mount_targets_settings_and_compose_reads_them_back() {
    cm_tests::compose();
    let t = tempfile::tempdir().unwrap();
    let d = fixture("maintained-bind", t.path());
    let ini = t.path().join("old.ini");
    let old = "[params]\nmail_domain = c.example.org\nacme_email = admin@example.org\nmax_mailbox_size = 2G\n";
    fs::write(&ini, old).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut fs::metadata(&ini).unwrap().permissions(),
        0o644,
    );
    fs::write(
        d.join(".env"),
        "# mine\nCHATMAIL_IMAGE=ghcr.io/chatmail/docker:1.12.0\n",
    )
    .unwrap();
    let o = run(
        "cm-ini-to-env",
        &["--project-dir", d.to_str().unwrap(), ini.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(fs::read_to_string(d.join("chatmail.ini")).unwrap(), old);
    let env = fs::read_to_string(d.join(".env")).unwrap();
    assert!(
        env.starts_with("# mine\nCHATMAIL_IMAGE=ghcr.io/chatmail/docker:1.12.0\n"),
        "{env}"
    );
    // a 1.11 host moving to 1.12: the lowered connection limits are reported
    assert!(
        text(&o).contains("max_imap_connections: the old host (chatmail 1.11"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("max_smtp_connections"), "{}", text(&o));
    // the real Compose reads the interpolated variables as the ini has them
    let c = cm_tests::compose_config(&d);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let v: serde_json::Value = serde_json::from_slice(&c.stdout).unwrap();
    let e = &v["services"]["chatmail"]["environment"];
    assert_eq!(e["MAIL_DOMAIN"], "c.example.org");
    assert_eq!(e["ACME_EMAIL"], "admin@example.org");
    // run again: nothing changes, no backup
    let before: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let o = run(
        "cm-ini-to-env",
        &["--project-dir", d.to_str().unwrap(), ini.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len(), "{after:?}");
    // an env_file target (our docker/ compose file) gets the converted .env
    let ours = t.path().join("ours");
    fs::create_dir_all(&ours).unwrap();
    fs::copy(
        cm_tests::repo_root().join("docker/docker-compose.yaml"),
        ours.join("docker-compose.yaml"),
    )
    .unwrap();
    let o = run(
        "cm-ini-to-env",
        &[
            "--project-dir",
            ours.to_str().unwrap(),
            ini.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let env = fs::read_to_string(ours.join(".env")).unwrap();
    assert!(env.contains("MAX_MAILBOX_SIZE=\"2G\""), "{env}");
    assert!(!ours.join("chatmail.ini").exists());
}

/// A bind-mount target with the ini mounted (the maintained deployment's override example),
/// no engine needed: `cm-copy-data --json` says how it resolved the target, and `cm-migrate
/// run` moves the sample host into it exactly there: the trees at the bind paths with the
/// owner map's ids, the old ini byte for byte at the mount's source, MAIL_DOMAIN in .env,
/// the guide's data/chatmail* left alone.
#[test]
fn copy_data_and_migrate_run_follow_a_bind_mount_target_with_the_ini_mounted() {
    cm_tests::compose();
    let t = tempfile::Builder::new()
        .prefix("cm-target-bind.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let repo = cm_tests::repo_root();
    let host = cm_tests::sample_host(&t.path().join("host"), None);
    let d = fixture("maintained-bind", t.path());
    let users = repo.join("docker/users");
    let (h, p, u) = (
        host.to_str().unwrap(),
        d.to_str().unwrap(),
        users.to_str().unwrap(),
    );
    let o = run(
        "cm-copy-data",
        &[
            "--root",
            h,
            "--project-dir",
            p,
            "--owner-map",
            u,
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let placed = &j["target"]["resolved"]["placements"];
    let mail = placed
        .as_array()
        .and_then(|a| a.iter().find(|x| x["state"]["name"] == "mail"))
        .unwrap_or_else(|| panic!("no mail placement: {j:#}"));
    assert_eq!(mail["source"]["type"], "bind", "{mail:#}");
    assert_eq!(
        mail["source"]["path"].as_str(),
        d.join("data/mail").to_str(),
        "{mail:#}"
    );
    assert_eq!(
        j["target"]["resolved"]["layout"]["type"], "compose",
        "{j:#}"
    );
    assert_eq!(
        j["target"]["resolved"]["settings"]["type"], "ini_mount",
        "{j:#}"
    );

    let state = t.path().join("state");
    let o = run(
        "cm-migrate",
        &[
            "run",
            "--root",
            h,
            "--project-dir",
            p,
            "--owner-map",
            u,
            "--state-dir",
            state.to_str().unwrap(),
            "--json",
        ]
        .into_iter()
        .chain(cm_tests::SKIP_HOST_CHECKS)
        .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["complete"], true, "{r:#}");
    let vmail = fs::read_to_string(&users).unwrap();
    let uid: u32 = vmail
        .lines()
        .find_map(|l| l.strip_prefix("vmail "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("vmail in docker/users");
    use std::os::unix::fs::MetadataExt;
    let top = fs::metadata(d.join("data/mail/mail")).unwrap();
    assert_eq!(top.uid(), uid, "the mail store's owner is the map's vmail");
    assert!(d.join("data/dkim/opendkim.private").is_file());
    assert!(
        !d.join("data/chatmail").exists(),
        "nothing in the guide's layout"
    );
    let old_ini = host.join("usr/local/lib/chatmaild/chatmail.ini");
    assert_eq!(
        fs::read(d.join("chatmail.ini")).unwrap(),
        fs::read(&old_ini).unwrap()
    );
    let env = fs::read_to_string(d.join(".env")).unwrap();
    assert!(env.contains("MAIL_DOMAIN="), "{env}");
    let settings = r["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["step"] == "settings"))
        .map(|s| s["summary"].to_string())
        .unwrap_or_default();
    assert!(
        settings.contains("/etc/chatmail/chatmail.ini"),
        "{settings}"
    );
}

/// The guide's alternative of mounting the old host's own directories: nothing is copied;
/// owners that differ from the target's are re-owned in place only when asked, with an undo
/// record written first (private), and the record puts every owner back.
#[test]
fn in_place_mounts_are_reowned_only_when_asked_and_the_undo_record_restores_them() {
    use std::os::unix::fs::MetadataExt;
    cm_tests::compose();
    let t = tempfile::Builder::new()
        .prefix("cm-reown.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let repo = cm_tests::repo_root();
    let host = cm_tests::sample_host(&t.path().join("host"), None);
    let proj = t.path().join("proj");
    fs::create_dir_all(&proj).unwrap();
    let h = host.display().to_string();
    fs::write(
        proj.join("compose.yaml"),
        format!("services:\n  chatmail:\n    image: chatmail-relay:relay\n    volumes:\n      - {h}/home/vmail:/home/vmail\n      - {h}/etc/dkimkeys:/etc/dkimkeys\n      - {h}/var/lib/acme:/var/lib/acme\n      - ./chatmail.ini:/etc/chatmail/chatmail.ini\n"),
    )
    .unwrap();
    let users = repo.join("docker/users");
    let owner = |p: &str| fs::symlink_metadata(host.join(p)).unwrap().uid();
    let mailbox = "home/vmail/mail";
    let before = owner(mailbox);
    let base = [
        "--root",
        h.as_str(),
        "--project-dir",
        proj.to_str().unwrap(),
        "--owner-map",
        users.to_str().unwrap(),
    ];
    // without --reown-in-place: nothing to copy, nothing changed
    let o = run("cm-copy-data", &base);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("mounted in place"), "{}", text(&o));
    assert_eq!(owner(mailbox), before);
    let dry = run(
        "cm-copy-data",
        &[&base[..], &["--reown-in-place", "--dry-run"]].concat(),
    );
    assert!(text(&dry).contains("would re-own"), "{}", text(&dry));
    assert_eq!(owner(mailbox), before, "a dry run changes nothing");
    let o = run("cm-copy-data", &[&base[..], &["--reown-in-place"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let said = text(&o);
    assert!(said.contains("re-owned"), "{said}");
    let vmail_uid: u32 = fs::read_to_string(&users)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("vmail "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_ne!(before, vmail_uid);
    assert_eq!(owner(mailbox), vmail_uid, "{said}");
    let records: Vec<PathBuf> = fs::read_dir(proj.join(".cm-reown"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // one per tree whose owners changed (the ACME state is root's, the same in the image)
    let mut names: Vec<String> = records
        .iter()
        .map(|r| {
            r.file_name()
                .unwrap()
                .to_string_lossy()
                .split('-')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["dkimkeys", "vmail"], "{records:?}");
    for r in &records {
        assert_eq!(
            fs::metadata(r).unwrap().mode() & 0o777,
            0o600,
            "{}",
            r.display()
        );
        let o = run(
            "cm-copy-data",
            &[
                "--project-dir",
                proj.to_str().unwrap(),
                "--undo-reown",
                r.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    assert_eq!(
        owner(mailbox),
        before,
        "the undo records put the owners back"
    );
    // something that is not a record is unusable input
    let o = run(
        "cm-copy-data",
        &["--undo-reown", proj.join("compose.yaml").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// A relative --project-dir means the same directory as its absolute path: Compose runs in
/// the project directory, and the paths of its mounts are not taken twice.
#[test]
fn a_relative_project_dir_resolves_to_the_same_mounts() {
    cm_tests::compose();
    let t = tempfile::tempdir().unwrap();
    let d = fixture("maintained-bind", t.path());
    let host = cm_tests::sample_host(&t.path().join("host"), None);
    let users = cm_tests::repo_root().join("docker/users");
    let o = Command::new(cm_tests::bin("cm-copy-data"))
        .current_dir(t.path())
        .args(["--project-dir", "maintained-bind", "--root"])
        .arg(&host)
        .arg("--owner-map")
        .arg(&users)
        .args(["--dry-run", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mail = j["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["volume"] == "mail"))
        .unwrap_or_else(|| panic!("{j:#}"));
    assert_eq!(
        mail["target"].as_str(),
        d.join("data/mail").to_str(),
        "{mail:#}"
    );
}
