use std::process::Command;

#[test]
fn binaries_build_and_are_found() {
    for b in [
        "cm-ini-to-env",
        "cm-copy-data",
        "cm-verify",
        "cm-migrate",
        "cm-env-apply",
    ] {
        assert!(cm_tests::bin(b).exists(), "{b}");
        let o = Command::new(cm_tests::bin(b))
            .arg("--version")
            .output()
            .unwrap();
        assert!(o.status.success(), "{b} --version");
        assert!(String::from_utf8_lossy(&o.stdout).starts_with(b), "{b}");
    }
}

/// The image's start-up applier end to end: the environment into a chatmail.ini.
#[test]
fn env_apply_writes_the_environment_into_chatmail_ini() {
    let d = tempfile::tempdir().unwrap();
    let ini = d.path().join("chatmail.ini");
    std::fs::write(
        &ini,
        "[params]\nmail_domain = a.example.org\n#max_mailbox_size = 500M\n",
    )
    .unwrap();
    let o = Command::new(cm_tests::bin("cm-env-apply"))
        .args(["apply", "--ini"])
        .arg(&ini)
        .env_clear()
        .env("MAX_MAILBOX_SIZE", "2G")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(&ini).unwrap(),
        "[params]\nmail_domain = a.example.org\nmax_mailbox_size = 2G\n"
    );
    let o = Command::new(cm_tests::bin("cm-env-apply"))
        .args(["apply", "--check", "--ini"])
        .arg(&ini)
        .env_clear()
        .env("MAX_MAILBOX_SIZE", "2G")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "applied: nothing differs");
}
