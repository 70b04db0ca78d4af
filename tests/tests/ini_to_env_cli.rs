//! cm-ini-to-env as users meet it: files, modes, refusals, backups, merges, checks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use cm_core::dotenv;

const INI: &str = "[params]\nmail_domain = cli.example.org\nmax_mailbox_size = 2G\ndisable_ipv6 = False\nprivacy_mail = a$b@cli.example.org\n";

fn tool(args: &[&std::ffi::OsStr], cwd: &Path) -> Output {
    Command::new(cm_tests::bin("cm-ini-to-env"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run cm-ini-to-env")
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    let a: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    tool(&a, cwd)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("chatmail.ini"), INI).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn writes_env_atomically_with_mode_0600() {
    let d = setup();
    // a permissive umask must not widen the file
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{}' chatmail.ini out.env",
            cm_tests::bin("cm-ini-to-env").display()
        ))
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = d.path().join("out.env");
    assert_eq!(mode(&p), 0o600);
    let m = dotenv::read_file(&p).unwrap();
    assert_eq!(m["MAIL_DOMAIN"], "cli.example.org");
    assert_eq!(m["MAX_MAILBOX_SIZE"], "2G");
    assert_eq!(m["PRIVACY_MAIL"], "a$b@cli.example.org");
    assert!(!m.contains_key("DISABLE_IPV6"), "False is the default");
    assert_eq!(
        entries(d.path()),
        vec!["chatmail.ini", "out.env"],
        "no temp left"
    );
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).contains("wrote out.env"));
}

#[test]
fn refuses_to_overwrite_without_force_or_merge() {
    let d = setup();
    let p = d.path().join("out.env");
    fs::write(&p, "KEEP=1\n").unwrap();
    let o = run(d.path(), &["chatmail.ini", "out.env"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("--force") && stderr(&o).contains("--merge"));
    assert_eq!(fs::read_to_string(&p).unwrap(), "KEEP=1\n");
    assert_eq!(entries(d.path()), vec!["chatmail.ini", "out.env"]);
}

#[test]
fn force_keeps_a_private_backup() {
    let d = setup();
    let p = d.path().join("out.env");
    fs::write(&p, "OLD=1\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(d.path(), &["--force", "chatmail.ini", "out.env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names = entries(d.path());
    let backup = names
        .iter()
        .find(|n| n.starts_with("out.env.bak-"))
        .unwrap_or_else(|| panic!("no backup in {names:?}"));
    let bp = d.path().join(backup);
    assert_eq!(fs::read_to_string(&bp).unwrap(), "OLD=1\n");
    assert_eq!(mode(&bp), 0o600, "the backup may hold secrets too");
    assert_eq!(mode(&p), 0o600);
    assert!(!fs::read_to_string(&p).unwrap().contains("OLD"));
    assert!(stderr(&o).contains("backup"));
}

#[test]
fn merge_keeps_foreign_lines_and_drops_stale_settings() {
    let d = setup();
    let p = d.path().join("out.env");
    let old = "# Docker settings, edited by hand\nCOMPOSE_PROJECT_NAME=chatmail\nMAIL_DOMAIN=old.example.org # old\n\n# tuning\nDISABLE_IPV6=true\nIMAGE_TAG='1.12'\n";
    fs::write(&p, old).unwrap();
    let o = run(d.path(), &["--merge", "chatmail.ini", "out.env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let new = fs::read_to_string(&p).unwrap();
    for keep in [
        "# Docker settings, edited by hand\n",
        "COMPOSE_PROJECT_NAME=chatmail\n",
        "\n# tuning\n",
        "IMAGE_TAG='1.12'\n",
    ] {
        assert!(new.contains(keep), "lost {keep:?} in:\n{new}");
    }
    // MAIL_DOMAIN updated in place, right after COMPOSE_PROJECT_NAME
    assert!(
        new.contains("COMPOSE_PROJECT_NAME=chatmail\nMAIL_DOMAIN=\"cli.example.org\"\n"),
        "{new}"
    );
    // the ini leaves disable_ipv6 at its default: the stale override must go
    assert!(!new.contains("DISABLE_IPV6"), "{new}");
    let m = dotenv::parse_map(&new).unwrap();
    assert_eq!(m["MAX_MAILBOX_SIZE"], "2G");
    assert_eq!(m["IMAGE_TAG"], "1.12");
    assert_eq!(mode(&p), 0o600);
    assert!(entries(d.path())
        .iter()
        .any(|n| n.starts_with("out.env.bak-")));
    // merging again changes nothing but is still valid
    let o = run(d.path(), &["--merge", "-q", "chatmail.ini", "out.env"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(fs::read_to_string(&p).unwrap(), new);
    // and the result checks clean
    let o = run(d.path(), &["chatmail.ini", "--check", "out.env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn merge_refuses_a_file_compose_cannot_read() {
    let d = setup();
    let p = d.path().join("out.env");
    fs::write(&p, "BROKEN=\"unterminated\n").unwrap();
    let o = run(d.path(), &["--merge", "chatmail.ini", "out.env"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&p).unwrap(), "BROKEN=\"unterminated\n");
}

#[test]
fn check_exits_1_and_lists_differences() {
    let d = setup();
    let o = run(d.path(), &["chatmail.ini", "good.env"]);
    assert_eq!(o.status.code(), Some(0));
    let o = run(d.path(), &["chatmail.ini", "--check", "good.env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // semantically equal spellings are not differences
    fs::write(
        d.path().join("same.env"),
        "MAIL_DOMAIN=cli.example.org\nMAX_MAILBOX_SIZE=2048m\nDISABLE_IPV6=FALSE\nPRIVACY_MAIL='a$b@cli.example.org'\nOTHER=x\n",
    )
    .unwrap();
    let o = run(d.path(), &["chatmail.ini", "--check", "same.env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    fs::write(
        d.path().join("bad.env"),
        "MAIL_DOMAIN=cli.example.org\nMAX_MAILBOX_SIZE=1G\nIROH_RELAY=\n",
    )
    .unwrap();
    let o = run(d.path(), &["chatmail.ini", "--check", "bad.env"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("max_mailbox_size"), "{out}");
    assert!(out.contains("iroh_relay"), "unset and empty differ: {out}");
    assert!(out.contains("privacy_mail"), "{out}");
    assert!(!out.contains("disable_ipv6"), "{out}");
    let o = run(d.path(), &["--json", "chatmail.ini", "--check", "bad.env"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matches"], false);
    assert_eq!(v["differences"].as_array().unwrap().len(), 3);
    // a missing .env to check is unusable input
    let o = run(d.path(), &["chatmail.ini", "--check", "missing.env"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn bad_input_is_one_line_exit_2_and_no_file() {
    let d = tempfile::tempdir().unwrap();
    let dp = d.path();
    fs::create_dir(dp.join("adir")).unwrap();
    fs::write(dp.join("noparams.ini"), "[x]\nmail_domain=a\n").unwrap();
    fs::write(dp.join("nodomain.ini"), "[params]\na=1\n").unwrap();
    fs::write(dp.join("syntax.ini"), "[params]\nmail_domain=a\nbroken\n").unwrap();
    fs::write(
        dp.join("dup.ini"),
        "[params]\nmail_domain=a\nmail_domain=b\n",
    )
    .unwrap();
    fs::write(dp.join("latin1.ini"), b"[params]\nmail_domain=caf\xe9\n").unwrap();
    fs::write(
        dp.join("nul.ini"),
        "[params]\nmail_domain=a\nprivacy_mail=a\0b\n",
    )
    .unwrap();
    fs::write(dp.join("ok.ini"), "[params]\nmail_domain=a.org\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["missing.ini", "out.env"], "missing.ini"),
        (&["adir", "out.env"], "is a directory"),
        (&["noparams.ini", "out.env"], "no [params]"),
        (&["nodomain.ini", "out.env"], "no mail_domain"),
        (&["syntax.ini", "out.env"], "syntax.ini:3:"),
        (
            &["dup.ini", "out.env"],
            "dup.ini:3: duplicate key 'mail_domain' (first set on line 2)",
        ),
        (&["latin1.ini", "out.env"], "latin1.ini:2: not valid UTF-8"),
        (&["nul.ini", "out.env"], "NUL"),
        (&["ok.ini", "adir"], "is a directory"),
        (&["ok.ini", "no/such/dir/out.env"], "cannot write"),
        (&["--bogus-option"], "--bogus-option"),
        (
            &["--force", "--merge", "ok.ini", "out.env"],
            "cannot be used with",
        ),
    ];
    for (args, want) in cases {
        let o = run(dp, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        if !args[0].starts_with("--") {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
        assert!(stdout(&o).is_empty(), "{args:?}");
        assert!(!dp.join("out.env").exists(), "{args:?} created out.env");
        assert!(
            !entries(dp).iter().any(|n| n.contains("cm-tmp")),
            "{args:?} left a temp file"
        );
    }
}

#[test]
fn dry_run_writes_nothing() {
    let d = setup();
    let o = run(d.path(), &["--dry-run", "chatmail.ini", "out.env"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("MAIL_DOMAIN=\"cli.example.org\""));
    assert!(stderr(&o).contains("dry run"));
    assert!(!d.path().join("out.env").exists());
    fs::write(d.path().join("out.env"), "A=1\n").unwrap();
    let o = run(
        d.path(),
        &["--dry-run", "--merge", "chatmail.ini", "out.env"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("A=1\n"));
    assert_eq!(
        fs::read_to_string(d.path().join("out.env")).unwrap(),
        "A=1\n"
    );
    assert_eq!(entries(d.path()).len(), 2, "no backup on a dry run");
}

#[test]
fn stdout_all_json_and_quiet() {
    let d = setup();
    let o = run(d.path(), &["chatmail.ini"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.starts_with("# Written by cm-ini-to-env from chatmail.ini\n"),
        "{out}"
    );
    let all = run(d.path(), &["--all", "chatmail.ini"]);
    assert!(stdout(&all).contains("DISABLE_IPV6=\"False\""));
    let j = run(d.path(), &["--json", "chatmail.ini"]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["mail_domain"], "cli.example.org");
    assert_eq!(v["entries"].as_array().unwrap().len(), 3);
    fs::write(
        d.path().join("warn.ini"),
        "[params]\nmail_domain=a.org\nmax_mesage_size=1\n",
    )
    .unwrap();
    let w = run(d.path(), &["warn.ini"]);
    assert!(
        stderr(&w).contains("did you mean 'max_message_size'"),
        "{}",
        stderr(&w)
    );
    let q = run(d.path(), &["-q", "warn.ini"]);
    assert!(stderr(&q).is_empty());
    assert_eq!(q.stdout, w.stdout);
}

#[test]
fn help_explains_every_option() {
    let d = tempfile::tempdir().unwrap();
    let o = run(d.path(), &["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let h = stdout(&o);
    for opt in [
        "--all",
        "--force",
        "--merge",
        "--check",
        "--dry-run",
        "--quiet",
        "--json",
        "INI",
        "ENV",
        "/usr/local/lib/chatmaild/chatmail.ini",
        "0600",
        "backup",
    ] {
        assert!(h.contains(opt), "--help lacks {opt}:\n{h}");
    }
}

#[test]
fn symlinked_env_is_written_through_and_ini_is_never_the_target() {
    let d = setup();
    fs::create_dir(d.path().join("secrets")).unwrap();
    fs::write(d.path().join("secrets/chatmail.env"), "OTHER=1\n").unwrap();
    std::os::unix::fs::symlink("secrets/chatmail.env", d.path().join(".env")).unwrap();
    let o = run(d.path(), &["--merge", "-q", "chatmail.ini", ".env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(fs::symlink_metadata(d.path().join(".env"))
        .unwrap()
        .file_type()
        .is_symlink());
    let m = dotenv::read_file(&d.path().join("secrets/chatmail.env")).unwrap();
    assert_eq!(m["OTHER"], "1");
    assert_eq!(m["MAIL_DOMAIN"], "cli.example.org");
    assert_eq!(mode(&d.path().join("secrets/chatmail.env")), 0o600);
    let o = run(d.path(), &["--force", "chatmail.ini", "chatmail.ini"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is the ini itself"), "{}", stderr(&o));
    assert_eq!(
        fs::read_to_string(d.path().join("chatmail.ini")).unwrap(),
        INI
    );
}
