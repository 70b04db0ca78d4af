use super::*;
use serde_json::json;

fn model(volumes: serde_json::Value, top: serde_json::Value) -> serde_json::Value {
    json!({"name": "relay", "services": {
        "chatmail": {"image": "ghcr.io/chatmail/docker:1.12.0", "volumes": volumes},
        "other": {"image": "x", "volumes": [{"type": "bind", "source": "/srv/x", "target": "/data"}]}},
        "volumes": top})
}

#[test]
fn named_volumes_and_the_ini_mount_are_placed() {
    let m = model(
        json!([
            {"type": "bind", "source": "/sys/fs/cgroup", "target": "/sys/fs/cgroup"},
            {"type": "volume", "source": "mail", "target": "/home/vmail"},
            {"type": "volume", "source": "dkim", "target": "/etc/dkimkeys"},
            {"type": "volume", "source": "certs", "target": "/var/lib/acme"},
            {"type": "bind", "source": "/p/chatmail.ini", "target": "/etc/chatmail/chatmail.ini"}]),
        json!({"mail": {"name": "relay_mail"}, "dkim": {"name": "relay_dkim"},
               "certs": {"name": "ext", "external": true}}),
    );
    let raw = json!({"services": {"chatmail": {"environment": {"MAIL_DOMAIN": "$MAIL_DOMAIN"}}}});
    let t = from_model(
        Path::new("/p"),
        Path::new("/p/docker-compose.yaml"),
        &m,
        &raw,
        None,
    )
    .unwrap();
    assert_eq!(t.service(), "chatmail");
    let mail = t.placement("mail").unwrap();
    assert_eq!(mail.mount, Path::new("/home/vmail"));
    assert_eq!(
        mail.source,
        Source::Volume {
            key: "mail".into(),
            name: "relay_mail".into(),
            external: false
        }
    );
    assert_eq!(
        mail.host_source(Path::new("/old")),
        Path::new("/old/home/vmail")
    );
    assert!(matches!(
        &t.placement("acme").unwrap().source,
        Source::Volume { external: true, .. }
    ));
    assert_eq!(
        t.settings,
        Settings::IniMount {
            ini: "/p/chatmail.ini".into(),
            env: "/p/.env".into(),
            vars: vec!["MAIL_DOMAIN".into()]
        }
    );
    let missing: Vec<&str> = t.missing.iter().map(|m| m.state.name.as_str()).collect();
    assert_eq!(missing, ["tls-cert", "tls-key", "nocreate"]);
    assert!(
        t.missing[2].line.contains(":/etc/chatmail-nocreate:ro"),
        "{}",
        t.missing[2].line
    );
    assert_eq!(t.image.as_deref(), Some("ghcr.io/chatmail/docker:1.12.0"));
}

#[test]
fn the_guides_mounts_with_env_file_and_the_most_specific_mount_wins() {
    let m = model(
        json!([
            {"type": "bind", "source": "/p/data/chatmail", "target": "/home"},
            {"type": "bind", "source": "/p/data/vm", "target": "/home/vmail"},
            {"type": "bind", "source": "/p/data/chatmail-dkimkeys", "target": "/etc/dkimkeys"}]),
        json!({}),
    );
    let raw =
        json!({"services": {"chatmail": {"env_file": [{"path": "/p/.env", "required": true}]}}});
    let t = from_model(
        Path::new("/p"),
        Path::new("/p/compose.yaml"),
        &m,
        &raw,
        Some("/c/a.pem /c/a.key"),
    )
    .unwrap();
    assert_eq!(t.placement("mail").unwrap().mount, Path::new("/home/vmail"));
    assert_eq!(
        t.settings,
        Settings::EnvFile {
            env: "/p/.env".into()
        }
    );
    assert!(t.missing.iter().any(|m| m.state.name == "tls-external-key"));
    assert!(t.placement("acme").is_none());
}

#[test]
fn a_compose_file_mounting_no_state_is_refused_saying_what_is_missing() {
    let m = json!({"services": {"web": {"volumes": [{"type": "bind", "source": "/w", "target": "/var/www"}]}}});
    let e = from_model(
        Path::new("/p"),
        Path::new("/p/compose.yaml"),
        &m,
        &json!({}),
        None,
    )
    .unwrap_err();
    let s = e.to_string();
    for want in [
        "no service mounts the relay's state",
        "mail at /home/vmail",
        "- dkim:/etc/dkimkeys",
        "./chatmail.ini:/etc/chatmail/chatmail.ini",
    ] {
        assert!(s.contains(want), "{want}: {s}");
    }
}

#[test]
fn the_guide_is_only_used_when_asked_and_a_dir_without_compose_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let e = resolve(d.path(), &Options::default()).unwrap_err();
    assert!(matches!(e, TargetError::NoComposeFile(_)), "{e}");
    assert!(e.to_string().contains("--layout guide"));
    let t = resolve(
        d.path(),
        &Options {
            guide: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mounts: Vec<(&str, PathBuf)> = t
        .trees()
        .map(|p| match &p.source {
            Source::Bind { path } => (
                p.state.name.as_str(),
                path.strip_prefix(d.path()).unwrap().to_path_buf(),
            ),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("dkim", "data/chatmail-dkimkeys".into()),
            ("acme", "data/chatmail-acme".into()),
            ("mail", "data/chatmail".into())
        ]
    );
    assert_eq!(t.placement("mail").unwrap().mount, Path::new("/home"));
    assert!(matches!(
        resolve(&d.path().join("nope"), &Options::default()),
        Err(TargetError::NoProject(_))
    ));
}

#[test]
fn a_tree_mounted_in_place_is_not_copied_and_its_owner_fix_is_exact() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let vmail = root.join("home/vmail");
    std::fs::create_dir_all(&vmail).unwrap();
    std::os::unix::fs::chown(&vmail, Some(1105), Some(1105)).ok();
    let m = model(
        json!([{"type": "bind", "source": vmail.to_str().unwrap(), "target": "/home/vmail"}]),
        json!({}),
    );
    let t = from_model(root, &root.join("compose.yaml"), &m, &json!({}), None).unwrap();
    let p = plan::copy_volumes(&t, root, None, false, &[]).unwrap();
    assert!(p.volumes.is_empty());
    assert_eq!(p.in_place, [(vmail.clone(), "vmail".to_string())]);
    let mut ids = engine::Ids::default();
    ids.users.insert("vmail".into(), (801, 801));
    let md = std::fs::metadata(&vmail).unwrap();
    use std::os::unix::fs::MetadataExt;
    let fixes = plan::in_place_fixes(&p, &ids);
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert!(
        fixes[0].contains(&format!("chown -R 801:801 {},", vmail.display()))
            && fixes[0].contains("--reown-in-place")
            && fixes[0].contains(&format!("owned by {}:{}", md.uid(), md.gid())),
        "{fixes:?}"
    );
    ids.users.insert("vmail".into(), (md.uid(), md.gid()));
    assert!(plan::in_place_fixes(&p, &ids).is_empty());
}
