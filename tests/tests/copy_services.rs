//! cm-copy-data refuses to copy the mail store while chatmail services run (unless --live).
//! The check is exercised for real: in a private mount namespace (unshare) /home is a tmpfs
//! holding a small mail store, /run/systemd/system exists (so the machine looks run by
//! systemd), and `systemctl` on PATH reports the units' states. Runs as root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn in_namespace(fake_states: &str, dir: &Path, args: &str) -> Output {
    let fake = dir.join("fakebin");
    std::fs::create_dir_all(&fake).unwrap();
    let sc = fake.join("systemctl");
    // `systemctl is-active u1 u2 ...`: one state per unit, dovecot's from FAKE_DOVECOT.
    std::fs::write(
        &sc,
        "#!/bin/sh\n[ \"$1\" = is-active ] || exit 1\nshift\nfor u in \"$@\"; do\n  if [ \"$u\" = dovecot.service ]; then echo \"$FAKE_DOVECOT\"; else echo inactive; fi\ndone\n",
    )
    .unwrap();
    std::fs::set_permissions(&sc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!(
        "set -e\nmount -t tmpfs tmpfs /home\nmkdir -p /home/vmail/mail\necho hi > /home/vmail/mail/msg\n\
         mount -t tmpfs tmpfs /run\nmkdir -p /run/systemd/system\n\
         PATH={}:$PATH exec {} {args}\n",
        fake.display(),
        cm_tests::bin("cm-copy-data").display()
    );
    cm_tests::run_logged(
        &format!("{args} (dovecot {fake_states})"),
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("FAKE_DOVECOT", fake_states),
    )
}

#[test]
fn mail_store_is_refused_while_services_run_unless_live() {
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join("data/chatmail");
    let args = format!("--map /home={}", dst.display());

    let o = in_namespace("active", t.path(), &args);
    assert_eq!(o.status.code(), Some(1), "refused while dovecot runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dovecot.service") && err.contains("--live"),
        "{err}"
    );
    assert!(!dst.exists(), "nothing copied");

    let o = in_namespace("active", t.path(), &format!("{args} --dry-run"));
    assert_eq!(o.status.code(), Some(0), "a dry run only says so");
    assert!(String::from_utf8_lossy(&o.stderr).contains("a real run refuses without --live"));
    assert!(!dst.exists());

    let o = in_namespace("active", t.path(), &format!("{args} --live"));
    assert_eq!(o.status.code(), Some(0), "--live copies anyway");
    assert_eq!(std::fs::read(dst.join("vmail/mail/msg")).unwrap(), b"hi\n");

    std::fs::remove_dir_all(t.path().join("data")).unwrap();
    let o = in_namespace("inactive", t.path(), &args);
    assert_eq!(o.status.code(), Some(0), "services stopped: copied");
    assert!(dst.join("vmail/mail/msg").exists());
}
