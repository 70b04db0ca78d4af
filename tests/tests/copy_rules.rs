//! cm-copy-data's refusals and rules, run against the built binary: a service check that
//! cannot be made refuses the mail store (unless --live), default sources resolved inside
//! --root as a chroot would, symlinks below the project refused, a project that must exist,
//! unusable owner maps, a short dry run, a non-root copy, the summary. Runs as root.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

fn copy_data(args: &[&str]) -> Output {
    let mut c = Command::new(cm_tests::bin("cm-copy-data"));
    c.args(args);
    cm_tests::run_logged(&format!("cm-copy-data {args:?}"), &mut c)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run cm-copy-data ARGS in a private mount namespace where /home is a tmpfs holding a small
/// mail store and /run/systemd/system exists (the machine looks run by systemd); `systemctl`
/// is the script `fake` when given (first on PATH), else the real one.
fn with_mail_store(dir: &Path, fake: Option<&str>, args: &str) -> Output {
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = match fake {
        Some(script) => {
            let sc = bin.join("systemctl");
            std::fs::write(&sc, script).unwrap();
            std::fs::set_permissions(&sc, std::fs::Permissions::from_mode(0o755)).unwrap();
            format!("{}:$PATH", bin.display())
        }
        None => "$PATH".into(),
    };
    let script = format!(
        "set -e\nmount -t tmpfs tmpfs /home\nmkdir -p /home/vmail/mail\necho hi > /home/vmail/mail/msg\n\
         mount -t tmpfs tmpfs /run\nmkdir -p /run/systemd/system\n\
         PATH={path} exec {} {args}\n",
        cm_tests::bin("cm-copy-data").display()
    );
    cm_tests::run_logged(
        &format!("{args} (systemctl {fake:?})"),
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]),
    )
}

const BUS_DOWN: &str = "#!/bin/sh\necho 'Failed to connect to bus: Host is down' >&2\nexit 1\n";

#[test]
fn mail_store_is_refused_when_systemctl_fails_unless_live() {
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join("copy/chatmail");
    let args = format!("--map /home={}", dst.display());
    for fake in [Some(BUS_DOWN), None] {
        // a failing fake, then the real systemctl, which cannot reach a bus here either
        let o = with_mail_store(t.path(), fake, &args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "not checked is refused: {}",
            err(&o)
        );
        let e = err(&o);
        assert!(
            e.contains("not checked") && e.contains("--live") && e.contains("systemctl"),
            "{e}"
        );
        assert!(!dst.exists(), "nothing copied");
        let o = with_mail_store(t.path(), fake, &format!("{args} --dry-run"));
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(
            err(&o).contains("a real run refuses without --live"),
            "{}",
            err(&o)
        );
        assert!(!dst.exists());
    }
    // --json: the refusal is one JSON document with its exit code
    let o = with_mail_store(t.path(), Some(BUS_DOWN), &format!("{args} --json"));
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 2, "{v:#}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("not checked"),
        "{v:#}"
    );
    let o = with_mail_store(t.path(), Some(BUS_DOWN), &format!("{args} --live"));
    assert_eq!(
        o.status.code(),
        Some(0),
        "--live copies anyway: {}",
        err(&o)
    );
    assert!(err(&o).contains("not checked"), "and says so: {}", err(&o));
    assert_eq!(std::fs::read(dst.join("vmail/mail/msg")).unwrap(), b"hi\n");
}

/// Against a REAL systemd (Debian 12 booted in nspawn, the real dovecot and postfix running):
/// the mail store is refused while they run (exit 1), refused as not checked when systemctl
/// cannot reach systemd (exit 2; the bus sockets hidden in a private mount namespace), and
/// copied once they are stopped.
#[test]
fn mail_store_check_against_real_systemd_refuses_running_and_unreachable() {
    use cm_tests::nspawn::{self, text};
    let c = nspawn::Container::boot("cmr", "livecheck", &[], &["cm-copy-data"]);
    c.sh("mkdir -p /home/vmail/mail/example.org/u/cur\necho hi > /home/vmail/mail/example.org/u/cur/1\n\
          systemctl start dovecot postfix");
    let copy = ["cm-copy-data", "--map", "/home=/srv/copy/chatmail"];
    let o = c.exec(&copy);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        nspawn::stderr(&o).contains("dovecot.service"),
        "{}",
        text(&o)
    );
    assert!(!c.exists("/srv/copy/chatmail"), "nothing copied");

    // systemd runs, but systemctl cannot reach it: its private socket and the D-Bus socket
    // are hidden (a real "Failed to connect to bus")
    let hidden = "mount --bind /dev/null /run/systemd/private && \
                  mount -t tmpfs tmpfs /run/dbus && exec \"$@\"";
    let mut a = vec!["unshare", "-m", "sh", "-c", hidden, "sh"];
    a.extend_from_slice(&copy);
    let o = c.exec(&a);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = nspawn::stderr(&o);
    assert!(
        e.contains("not checked") && e.contains("--live"),
        "{}",
        text(&o)
    );
    assert!(!c.exists("/srv/copy/chatmail"), "nothing copied");

    c.sh("systemctl stop postfix dovecot 'postfix@-.service'");
    let o = c.exec(&copy);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(c.exists("/srv/copy/chatmail/vmail/mail/example.org/u/cur/1"));
}

/// An old host's root whose default sources are symlinks: /home absolute (-> /srv/home),
/// /etc/dkimkeys relative and climbing above the root (-> R/keys, as a chroot sees it),
/// /var/lib/acme relative (-> ../../srv/acme). Each holds one file naming it.
fn linked_root(r: &Path) {
    for (d, f) in [
        ("srv/home/vmail", "mail"),
        ("keys", "dkim"),
        ("srv/acme", "acme"),
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
        std::fs::write(r.join(d).join(f), f).unwrap();
    }
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::create_dir_all(r.join("var/lib")).unwrap();
    symlink("/srv/home", r.join("home")).unwrap();
    symlink("../../../../../../../keys", r.join("etc/dkimkeys")).unwrap();
    symlink("../../srv/acme", r.join("var/lib/acme")).unwrap();
}

/// A compose file of the guide's layout (the default plan copies where it mounts).
const GUIDE_COMPOSE: &str = "services:\n  chatmail:\n    build: .\n    volumes:\n      - ./data/chatmail:/home\n      - ./data/chatmail-dkimkeys:/etc/dkimkeys\n      - ./data/chatmail-acme:/var/lib/acme\n";

/// A compose project directory (what the default plan copies into).
fn project(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::write(p.join("compose.yaml"), GUIDE_COMPOSE).unwrap();
}

#[test]
fn default_sources_resolve_inside_root_like_a_chroot_in_copy_and_verify() {
    let t = tempfile::tempdir().unwrap();
    let (r, p) = (t.path().join("old"), t.path().join("project"));
    linked_root(&r);
    project(&p);
    let (rs, ps) = (r.to_str().unwrap(), p.to_str().unwrap());
    let o = copy_data(&["--root", rs, "--project-dir", ps]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    for (vol, f) in [
        ("chatmail/vmail/mail", "mail"),
        ("chatmail-dkimkeys/dkim", "dkim"),
        ("chatmail-acme/acme", "acme"),
    ] {
        let got = std::fs::read(p.join("data").join(vol));
        assert_eq!(
            got.ok().as_deref(),
            Some(f.as_bytes()),
            "{vol}: {}",
            out(&o)
        );
    }
    let o = cm_tests::run_logged(
        "cm-verify all",
        Command::new(cm_tests::bin("cm-verify")).args([
            "all",
            "--root",
            rs,
            "--project-dir",
            ps,
            "--no-services",
        ]),
    );
    let text = out(&o);
    assert_eq!(text.matches("== tree ").count(), 3, "{text}{}", err(&o));
    for src in ["srv/home", "keys", "srv/acme"] {
        assert!(
            text.contains(&r.join(src).display().to_string()),
            "{src}: {text}"
        );
    }
    assert_eq!(text.matches(": no differences").count(), 3, "{text}");
}

#[test]
fn symlink_below_the_project_is_refused_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let (src, p, elsewhere) = (
        t.path().join("src"),
        t.path().join("project"),
        t.path().join("elsewhere"),
    );
    std::fs::create_dir_all(src.join("vmail")).unwrap();
    std::fs::write(src.join("vmail/m"), "m").unwrap();
    project(&p);
    std::fs::create_dir_all(&elsewhere).unwrap();
    let ps = p.to_str().unwrap();
    let map = format!("--map={}=data/chatmail", src.display());
    // data/ itself, a component deeper down, the manifest directory
    for (link, args) in [
        ("data", vec![map.as_str()]),
        ("data/chatmail", vec![map.as_str()]),
        ("data/.cm-manifest", vec![map.as_str()]),
    ] {
        let _ = std::fs::remove_dir_all(p.join("data"));
        let _ = std::fs::remove_file(p.join("data"));
        if link != "data" {
            std::fs::create_dir_all(p.join("data")).unwrap();
        }
        symlink(&elsewhere, p.join(link)).unwrap();
        let mut a = vec!["--project-dir", ps];
        a.extend(args);
        let o = copy_data(&a);
        assert_eq!(o.status.code(), Some(2), "{link}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("{} is a symlink", p.join(link).display())),
            "{link}: {}",
            err(&o)
        );
        assert_eq!(
            std::fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "{link}: nothing written there"
        );
    }
    // the default plan too
    let r = t.path().join("old");
    linked_root(&r);
    let _ = std::fs::remove_dir_all(p.join("data"));
    symlink(&elsewhere, p.join("data")).unwrap();
    let o = copy_data(&["--root", r.to_str().unwrap(), "--project-dir", ps]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("is a symlink"), "{}", err(&o));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn project_dir_must_exist_and_hold_a_compose_file() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("old");
    linked_root(&r);
    let rs = r.to_str().unwrap();
    let typo = t.path().join("typo");
    let o = copy_data(&["--root", rs, "--project-dir", typo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("--project-dir"), "{}", err(&o));
    assert!(!typo.exists(), "a typo is never created");
    // a relative --map target is inside the project too
    let map = format!("--map={}=data/x", r.join("keys").display());
    let o = copy_data(&["--project-dir", typo.to_str().unwrap(), &map]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(!typo.exists());
    // a directory without a compose file is not a project
    let bare = t.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    let o = copy_data(&["--root", rs, "--project-dir", bare.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("no compose file"), "{}", err(&o));
    assert_eq!(std::fs::read_dir(&bare).unwrap().count(), 0);
    for f in ["compose.yml", "docker-compose.yaml"] {
        let p = t.path().join(f);
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join(f), GUIDE_COMPOSE).unwrap();
        let o = copy_data(&[
            "--root",
            rs,
            "--project-dir",
            p.to_str().unwrap(),
            "--only",
            "dkim",
        ]);
        assert_eq!(o.status.code(), Some(0), "{f}: {}", err(&o));
    }
    // a --map with an absolute target needs no project
    let dst = t.path().join("abs/copy");
    let map = format!("--map={}={}", r.join("keys").display(), dst.display());
    let o = copy_data(&["--project-dir", typo.to_str().unwrap(), &map]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(dst.join("dkim").exists());
    assert!(!typo.exists());
    // --root that does not exist is unusable input, also with --only a volume that is optional
    let good = t.path().join("compose.yml");
    let o = copy_data(&[
        "--root",
        "/typo-root",
        "--project-dir",
        good.to_str().unwrap(),
        "--only",
        "acme",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("/typo-root"), "{}", err(&o));
}

#[test]
fn owner_map_names_without_the_roots_passwd_are_unusable_input() {
    let t = tempfile::tempdir().unwrap();
    let (r, p) = (t.path().join("old"), t.path().join("project"));
    linked_root(&r); // no etc/passwd there
    project(&p);
    let map = t.path().join("owners");
    std::fs::write(&map, "# the image's ids\nvmail 901 901\n").unwrap();
    let (rs, ps, ms) = (
        r.to_str().unwrap(),
        p.to_str().unwrap(),
        map.to_str().unwrap(),
    );
    let o = copy_data(&["--root", rs, "--project-dir", ps, "--owner-map", ms]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains(&format!("{ms}:2: the name \"vmail\" cannot be resolved")),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("etc/passwd"), "{}", err(&o));
    assert!(!p.join("data").exists(), "nothing copied");
    // cm-verify reads the same map the same way
    let o = cm_tests::run_logged(
        "cm-verify tree",
        Command::new(cm_tests::bin("cm-verify")).args([
            "tree",
            rs,
            rs,
            "--root",
            rs,
            "--owner-map",
            ms,
        ]),
    );
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("cannot be resolved"), "{}", err(&o));
    // numeric lines need no passwd
    std::fs::write(&map, "5000:5000=901:901\n").unwrap();
    let o = copy_data(&["--root", rs, "--project-dir", ps, "--owner-map", ms]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
}

/// Run cm-copy-data ARGS (with `{dst}` replaced) in a private mount namespace where `dst`'s
/// parent is a tmpfs mounted with `opts` (`size=`, `nr_inodes=`).
fn on_small_tmpfs(at: &Path, opts: &str, args: &[&str]) -> Output {
    std::fs::create_dir_all(at).unwrap();
    let mut script = format!(
        "set -e\nmount -t tmpfs -o {opts} tmpfs '{}'\nset +e\n'{}'",
        at.display(),
        cm_tests::bin("cm-copy-data").display()
    );
    for a in args {
        script.push_str(&format!(" '{a}'"));
    }
    // what is on the file system afterwards (it goes with the namespace)
    script.push_str(&format!(
        "\nrc=$?\necho \"entries on the target: $(ls -A '{}' | wc -l)\" >&2\nexit $rc\n",
        at.display()
    ));
    cm_tests::run_logged(
        &format!("{opts}: {args:?}"),
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]),
    )
}

#[test]
fn dry_run_short_of_space_or_inodes_names_the_resource_and_exits_1() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("big")).unwrap();
    std::fs::create_dir_all(src.join("many")).unwrap();
    for i in 0..3 {
        std::fs::write(src.join(format!("big/{i}")), vec![7u8; 400 << 10]).unwrap();
    }
    for i in 0..200 {
        std::fs::write(src.join(format!("many/{i}")), b"x").unwrap();
    }
    let at = t.path().join("small");
    let map_big = format!(
        "--map={}={}",
        src.join("big").display(),
        at.join("c").display()
    );
    let map_many = format!(
        "--map={}={}",
        src.join("many").display(),
        at.join("c").display()
    );
    for (opts, map, short) in [
        ("size=1m,nr_inodes=1000", &map_big, "space"),
        ("size=8m,nr_inodes=50", &map_many, "inodes"),
    ] {
        let o = on_small_tmpfs(&at, opts, &[map, "--dry-run"]);
        assert_eq!(o.status.code(), Some(1), "{opts}: {}", out(&o));
        let want = format!("NOT OK: not enough {short} on ");
        assert!(out(&o).contains(&want), "{opts}: {}", out(&o));
        let o = on_small_tmpfs(&at, opts, &[map, "--dry-run", "--json"]);
        assert_eq!(o.status.code(), Some(1), "{opts}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], false, "{v:#}");
        assert_eq!(v["space"][0]["short"], serde_json::json!([short]), "{v:#}");
        // with room for both it holds
        let o = on_small_tmpfs(&at, "size=8m,nr_inodes=1000", &[map, "--dry-run"]);
        assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    }
}

#[test]
fn copy_refuses_a_target_short_of_inodes_before_writing() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..200 {
        std::fs::write(src.join(i.to_string()), b"x").unwrap();
    }
    let at = t.path().join("small");
    let map = format!("--map={}={}", src.display(), at.join("c").display());
    // the tmpfs has bytes to spare but 50 inodes; afterwards list what is on it
    let script_args = [map.as_str()];
    let o = on_small_tmpfs(&at, "size=8m,nr_inodes=50", &script_args);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("not enough inodes on "), "{}", err(&o));
    assert!(err(&o).contains("nothing was copied"), "{}", err(&o));
    assert!(err(&o).contains("entries on the target: 0"), "{}", err(&o));
    // the same file system with enough inodes copies everything
    let o = on_small_tmpfs(&at, "size=8m,nr_inodes=1000", &script_args);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        err(&o).contains("entries on the target: 2"),
        "c and data/.cm-manifest: {}",
        err(&o)
    );
}

/// cm-copy-data ARGS as the user nobody (uid and gid 65534, no other groups).
fn copy_as_nobody(args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(cm_tests::bin("cm-copy-data"))
        .args(args);
    cm_tests::run_logged(&format!("as nobody: cm-copy-data {args:?}"), &mut c)
}

/// A scratch directory any user can enter, with `src` (root's files) and `out` (nobody's).
fn open_scratch() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("out"));
    std::fs::create_dir_all(src.join("vmail/cur")).unwrap();
    for i in 0..50 {
        std::fs::write(src.join(format!("vmail/cur/{i}")), b"m").unwrap();
    }
    std::fs::create_dir(&dst).unwrap();
    std::os::unix::fs::chown(&dst, Some(65534), Some(65534)).unwrap();
    (t, src, dst)
}

#[test]
fn copy_as_non_root_is_refused_up_front_unless_owners_need_no_change() {
    let (_t, src, dst) = open_scratch();
    let map = format!("--map={}={}", src.display(), dst.join("c").display());
    let o = copy_as_nobody(&[&map]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.contains("run as root") && e.contains("53 entries need root"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one line, not one per file: {e}");
    assert!(!e.contains("Operation not permitted"), "{e}");
    assert!(!dst.join("c").exists(), "nothing copied");
    // a dry run shows the plan and says a real run refuses
    let o = copy_as_nobody(&[&map, "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["refused"].as_str().unwrap_or("").contains("run as root"),
        "{v:#}"
    );
    // the same tree owned by nobody needs no owner change: copied, exactly
    let o = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&src)
        .status();
    assert!(o.unwrap().success());
    let o = copy_as_nobody(&[&map]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(std::fs::read(dst.join("c/vmail/cur/7")).unwrap(), b"m");
    // an owner map that changes owners needs root again
    let owners = dst.join("owners");
    std::fs::write(&owners, "65534:65534=901:901\n").unwrap();
    let o = copy_as_nobody(&[&map, "--owner-map", owners.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("must be owned by 901:901"), "{}", err(&o));
}

#[test]
fn not_copied_counts_agree_between_text_and_json() {
    let (_t, src, dst) = open_scratch();
    // nobody's tree, with an unreadable file and an unreadable directory
    std::fs::create_dir_all(src.join("vmail/locked")).unwrap();
    std::fs::write(src.join("vmail/locked/x"), b"x").unwrap();
    assert!(Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&src)
        .status()
        .unwrap()
        .success());
    std::fs::set_permissions(
        src.join("vmail/cur/3"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("vmail/locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let map = format!("--map={}={}", src.display(), dst.join("c").display());
    let o = copy_as_nobody(&[&map, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed = v["volumes"][0]["outcome"]["failed"].as_u64().unwrap();
    let errors = v["volumes"][0]["outcome"]["problems"]
        .as_array()
        .unwrap()
        .len()
        + v["volumes"][0]["problems"]
            .as_array()
            .map_or(0, |a| a.len());
    let _ = std::fs::remove_dir_all(dst.join("c"));
    let _ = std::fs::remove_dir_all(dst.join(".cm-manifest"));
    let o = copy_as_nobody(&[&map]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let want = format!("c: {failed} entries not copied, ");
    assert!(
        err(&o).contains(&want),
        "JSON failed {failed}, errors {errors}: {}",
        err(&o)
    );
}

#[test]
fn copy_ends_with_one_summary_owner_mapping_and_next_step() {
    let t = tempfile::tempdir().unwrap();
    let (r, p) = (t.path().join("old"), t.path().join("project"));
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nvmail:x:1105:1105::/home/vmail:/bin/false\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\nvmail:x:1105:\n").unwrap();
    let mail = r.join("home/vmail/mail/example.org/a/cur");
    std::fs::create_dir_all(&mail).unwrap();
    for i in 0..5 {
        std::fs::write(mail.join(format!("{i}.M1P1.host:2,S")), vec![b'm'; 1000]).unwrap();
    }
    assert!(Command::new("chown")
        .args(["-R", "1105:1105"])
        .arg(r.join("home/vmail"))
        .status()
        .unwrap()
        .success());
    project(&p);
    let map = t.path().join("owners");
    std::fs::write(&map, "vmail 901 901\n").unwrap();
    let (rs, ps, ms) = (
        r.to_str().unwrap(),
        p.to_str().unwrap(),
        map.to_str().unwrap(),
    );
    let o = copy_data(&["--root", rs, "--project-dir", ps, "--owner-map", ms, "-v"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    assert_eq!(
        text.matches("total: ").count(),
        1,
        "one overall summary: {text}"
    );
    let total = text.lines().find(|l| l.starts_with("total: ")).unwrap();
    assert!(
        total.contains("copied 11 entries")
            && text.contains("\ntime: ")
            && text.contains("/s; every file"),
        "{total}"
    );
    assert!(
        text.contains("owners mapped: vmail 1105 -> 901\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "next: verify the copy: cm-verify all --project-dir {ps} --root {rs} --owner-map {ms}"
        )),
        "{text}"
    );
    assert!(
        text.contains("  copied mail/\"vmail/mail/example.org/a/cur/3.M1P1.host:2,S\"\n"),
        "{text}"
    );
    assert!(!text.contains("found equal by content"), "{text}");
    for l in text
        .lines()
        .filter(|l| !l.starts_with("  ") && !l.starts_with("next: "))
    {
        assert!(l.chars().count() <= 100, "longer than 100 columns: {l:?}");
    }
    // -v lists what a second run removes
    std::fs::remove_file(mail.join("2.M1P1.host:2,S")).unwrap();
    let o = copy_data(&["--root", rs, "--project-dir", ps, "--owner-map", ms, "-v"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).contains("  removed mail/\"vmail/mail/example.org/a/cur/2.M1P1.host:2,S\"\n"),
        "{}",
        out(&o)
    );
    // --live says what comes next in a two-phase move; --json carries the same totals
    let o = copy_data(&[
        "--root",
        rs,
        "--project-dir",
        ps,
        "--owner-map",
        ms,
        "--live",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["owners_mapped"][0]["name"], "vmail", "{v:#}");
    assert_eq!(v["owners_mapped"][0]["host_uid"], 1105, "{v:#}");
    assert!(v["totals"]["elapsed_s"].is_number(), "{v:#}");
    assert!(
        v["next"]
            .as_str()
            .unwrap()
            .contains("cm-migrate stop-services"),
        "{v:#}"
    );
}

#[test]
fn interrupted_copy_says_what_was_left_and_to_run_again() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // enough data that the copy is still running when the signal comes
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let block: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for i in 0..4 {
        let mut f = std::fs::File::create(src.join(format!("big{i}"))).unwrap();
        for _ in 0..8 {
            std::io::Write::write_all(&mut f, &block).unwrap();
        }
    }
    let dst = t.path().join("copy/c");
    let map = format!("--map={}={}", src.display(), dst.display());
    let child = Command::new(cm_tests::bin("cm-copy-data"))
        .args([&map, "--jobs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the copy writes (a temporary appears in the target), then interrupt
    let mut started = false;
    for _ in 0..600 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        started = std::fs::read_dir(&dst)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .unwrap_or(false);
        if started {
            break;
        }
    }
    assert!(started, "the copy never started writing");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let e = err(&o);
    assert_eq!(o.status.code(), Some(130), "{e}");
    assert!(e.contains("interrupted (SIGINT) while copying c"), "{e}");
    assert!(
        e.contains(".cm-copy.*.tmp") && e.contains("Run the same command again"),
        "{e}"
    );
    // nothing under a final name is incomplete; the next run finishes
    for f in std::fs::read_dir(&dst).unwrap().flatten() {
        let n = f.file_name().to_string_lossy().into_owned();
        if !n.ends_with(".tmp") {
            assert_eq!(
                std::fs::read(f.path()).unwrap(),
                std::fs::read(src.join(&n)).unwrap(),
                "{n}"
            );
        }
    }
    let o = copy_data(&[&map]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // the leftover is reported as what it is, not as a removed entry (no mail was deleted)
    let line = out(&o)
        .lines()
        .find(|l| l.starts_with("c: "))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("removed 0, removed 1 leftover temporary of an interrupted run"),
        "{line}"
    );
    for i in 0..4 {
        let n = format!("big{i}");
        assert_eq!(
            std::fs::metadata(dst.join(&n)).unwrap().len(),
            8 << 20,
            "{n}"
        );
    }
    assert!(!std::fs::read_dir(&dst)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".tmp")));
}

/// An LD_PRELOAD shim, built with cc: `pwrite` to one of the copy's temporaries
/// (`/.cm-copy.` in its path) flips the first byte written, once (CM_CORRUPT=once) or
/// always (CM_CORRUPT=all). The kernel keeps the bad bytes, as a faulty disk path would.
const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static int fired;
static int temp(int fd) {
    char p[64], t[4096];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, t, sizeof t - 1);
    if (n < 0) return 0;
    t[n] = 0;
    return strstr(t, "/.cm-copy.") != NULL;
}
static ssize_t hit(const char *sym, int fd, const void *buf, size_t len, off_t off) {
    ssize_t (*real)(int, const void *, size_t, off_t) = dlsym(RTLD_NEXT, sym);
    const char *mode = getenv("CM_CORRUPT");
    if (len == 0 || !mode || !temp(fd)) return real(fd, buf, len, off);
    if (strcmp(mode, "all") != 0 && __atomic_exchange_n(&fired, 1, __ATOMIC_SEQ_CST)) return real(fd, buf, len, off);
    unsigned char *bad = malloc(len);
    if (!bad) return real(fd, buf, len, off);
    memcpy(bad, buf, len);
    bad[0] ^= 0x20;
    ssize_t r = real(fd, bad, len, off);
    free(bad);
    return r;
}
ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) { return hit("pwrite", fd, buf, len, off); }
ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) { return hit("pwrite64", fd, buf, len, off); }
"#;

fn build_shim(dir: &Path) -> std::path::PathBuf {
    let c = dir.join("corrupt.c");
    let so = dir.join("corrupt.so");
    std::fs::write(&c, SHIM).unwrap();
    let o = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&c)
        .arg("-ldl")
        .output()
        .expect("cc (build-essential) is needed to build the fault shim");
    assert!(o.status.success(), "cc: {}", err(&o));
    so
}

#[test]
fn read_back_check_catches_a_corrupted_write() {
    let t = tempfile::tempdir().unwrap();
    let shim = build_shim(t.path());
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..5 {
        std::fs::write(
            src.join(format!("m{i}")),
            format!("message {i}\n").repeat(100),
        )
        .unwrap();
    }
    let dst = t.path().join("copy/c");
    let map = format!("--map={}={}", src.display(), dst.display());
    let faulty = |mode: &str| {
        let mut c = Command::new(cm_tests::bin("cm-copy-data"));
        c.args([&map, "--jobs", "1"])
            .env("LD_PRELOAD", &shim)
            .env("CM_CORRUPT", mode);
        cm_tests::run_logged(&format!("CM_CORRUPT={mode}"), &mut c)
    };
    // one write goes bad: that file is not copied (no final name), the others are
    let o = faulty("once");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let e = err(&o);
    let bad: Vec<&str> = e
        .lines()
        .filter(|l| l.contains("the copy read back differs"))
        .collect();
    assert_eq!(bad.len(), 1, "{e}");
    let victim = (0..5)
        .map(|i| format!("m{i}"))
        .find(|n| bad[0].contains(&format!("/{n}:")) || bad[0].contains(&format!("/{n}\"")))
        .unwrap_or_else(|| panic!("which file? {e}"));
    for i in 0..5 {
        let n = format!("m{i}");
        match std::fs::read(dst.join(&n)) {
            Ok(b) => assert_eq!(b, std::fs::read(src.join(&n)).unwrap(), "{n}"),
            Err(_) => assert_eq!(n, victim, "only the victim is missing"),
        }
    }
    assert!(
        !dst.join(&victim).exists(),
        "a bad copy never gets the final name"
    );
    let leftovers = std::fs::read_dir(&dst)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".cm-copy."))
        .count();
    assert_eq!(leftovers, 0, "the bad temporary is removed");
    let manifest = std::fs::read_to_string(t.path().join("copy/.cm-manifest/c.manifest")).unwrap();
    assert!(
        !manifest.contains(&victim),
        "the manifest never records it: {manifest}"
    );
    // every write bad: nothing is copied, and it says so
    std::fs::remove_dir_all(t.path().join("copy")).unwrap();
    let o = faulty("all");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o).matches("the copy read back differs").count(),
        5,
        "{}",
        err(&o)
    );
    // without the fault the next run completes
    let o = copy_data(&[&map]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    for i in 0..5 {
        let n = format!("m{i}");
        assert_eq!(
            std::fs::read(dst.join(&n)).unwrap(),
            std::fs::read(src.join(&n)).unwrap()
        );
    }
}

#[test]
fn summary_says_what_was_moved_aside_and_where() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("m"), "m").unwrap();
    let dst = t.path().join("copy/c");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(dst.join("theirs"), "precious").unwrap();
    let map = format!("--map={}={}", src.display(), dst.display());
    let o = copy_data(&[&map, "--adopt"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    assert!(text.contains(", removed 0, moved aside 1"), "{text}");
    assert!(text.contains("  moved aside into \""), "{text}");
    assert!(text.contains("nothing deleted"), "{text}");
    let total = text.lines().find(|l| l.starts_with("total: ")).unwrap();
    assert!(total.contains("moved aside 1"), "{total}");
}

#[test]
fn a_delta_short_of_space_stops_before_the_write_that_does_not_fit() {
    // A delta plans without walking: the run charges each entry against the free space it
    // found and stops, with one error, before the first that does not fit.
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("a/{i}")), b"small").unwrap();
    }
    let at = t.path().join("small");
    std::fs::create_dir_all(&at).unwrap();
    let bin = cm_tests::bin("cm-copy-data");
    let map = format!("--map={}={}", src.display(), at.join("c").display());
    let script = format!(
        "set -e\nmount -t tmpfs -o size=2m,nr_inodes=1000 tmpfs '{at}'\n\
         '{bin}' '{map}' --quiet\n\
         head -c 3145728 /dev/urandom > '{src}/a/big'\n\
         echo later > '{src}/z'\n\
         set +e\n'{bin}' '{map}'\nrc=$?\n\
         echo \"big: $(ls '{at}/c/a' | grep -c big), z: $(ls '{at}/c' | grep -c z), temporaries: $(find '{at}' -name '.cm-copy.*' | wc -l)\" >&2\n\
         exit $rc\n",
        at = at.display(),
        bin = bin.display(),
        src = src.display(),
    );
    let o = cm_tests::run_logged(
        "delta short of space",
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]),
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("not enough space on the target's file system"),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("stopped before writing"), "{}", err(&o));
    // nothing of the big file, nothing after it, no temporary left behind
    assert!(
        err(&o).contains("big: 0, z: 0, temporaries: 0"),
        "{}",
        err(&o)
    );
}
