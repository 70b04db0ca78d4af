//! cm-ini-to-env as users meet it: files, modes, refusals, backups, merges, checks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use cm_core::dotenv;

const INI: &str = "[params]\nmail_domain = cli.example.org\nmax_mailbox_size = 2G\ndisable_ipv6 = False\nprivacy_mail = a$b@cli.example.org\n";

fn tool(args: &[&std::ffi::OsStr], cwd: &Path) -> Output {
    let mut cmd = Command::new(cm_tests::bin("cm-ini-to-env"));
    for p in cm_core::params::PARAMS {
        cmd.env_remove(p.env_key());
    }
    cmd.args(args)
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
    assert!(stderr(&o).contains("wrote \"out.env\""), "{}", stderr(&o));
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
    // an ini with warnings: the refusal is still the only line
    fs::write(d.path().join("warn.ini"), format!("{INI}unknown_key = 1\n")).unwrap();
    for ini in ["chatmail.ini", "warn.ini"] {
        let o = run(d.path(), &["--merge", ini, "out.env"]);
        assert_eq!(o.status.code(), Some(2));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("out.env:1: "), "{}", stderr(&o));
        let o = run(d.path(), &[ini, "--check", "out.env"]);
        assert_eq!(o.status.code(), Some(2));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    assert_eq!(fs::read_to_string(&p).unwrap(), "BROKEN=\"unterminated\n");
    assert_eq!(entries(d.path()).len(), 3, "no backup, no temp");
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

/// The claim behind the warning, tested on the real Compose v2: a value a service reads
/// through `env_file:` is the .env's whatever the shell has; only what the compose file
/// interpolates is taken from the shell. The warning names exactly those.
#[test]
fn shell_warning_only_for_what_the_compose_file_interpolates_as_real_compose_reads_it() {
    let d = setup();
    fs::write(
        d.path().join("compose.yaml"),
        "services:\n  relay:\n    image: busybox\n    env_file: .env\n    environment:\n      SHOWN_SIZE: ${MAX_MAILBOX_SIZE:-none}\n",
    )
    .unwrap();
    let o = Command::new(cm_tests::bin("cm-ini-to-env"))
        .args(["chatmail.ini", ".env"])
        .env("MAX_MAILBOX_SIZE", "9G")
        .env("MAIL_DOMAIN", "shell.example.org")
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("MAX_MAILBOX_SIZE is set in this shell"),
        "{err}"
    );
    assert!(!err.contains("MAIL_DOMAIN is set"), "env_file only: {err}");
    // What the real Compose v2 makes of it, with the same shell variables.
    let c = Command::new(cm_tests::compose())
        .args(["config", "--format", "json"])
        .current_dir(d.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", d.path())
        .env("MAX_MAILBOX_SIZE", "9G")
        .env("MAIL_DOMAIN", "shell.example.org")
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", stderr(&c));
    let v: serde_json::Value = serde_json::from_slice(&c.stdout).unwrap();
    let env = &v["services"]["relay"]["environment"];
    assert_eq!(
        env["MAIL_DOMAIN"], "cli.example.org",
        "env_file wins: {env}"
    );
    assert_eq!(env["MAX_MAILBOX_SIZE"], "2G", "env_file wins: {env}");
    assert_eq!(
        env["SHOWN_SIZE"], "9G",
        "interpolation takes the shell's: {env}"
    );
}

#[test]
fn a_value_chatmail_would_refuse_is_an_error_that_quiet_does_not_hide() {
    let d = setup();
    fs::write(
        d.path().join("bad.ini"),
        "[params]\nmail_domain = cli.example.org\nmax_message_size = 30M\n",
    )
    .unwrap();
    for quiet in [false, true] {
        let mut a = vec!["bad.ini", "out.env"];
        if quiet {
            a.push("-q");
        }
        let o = run(d.path(), &a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("max_message_size"), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("cm-ini-to-env: error: "),
            "{}",
            stderr(&o)
        );
        assert!(!d.path().join("out.env").exists(), "nothing written");
    }
    // To stdout too: nothing printed but the error.
    let o = run(d.path(), &["bad.ini"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let o = run(d.path(), &["bad.ini", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    // Written only when asked to.
    let o = run(d.path(), &["bad.ini", "out.env", "--accept-invalid"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(d.path().join("out.env").exists());
}

#[test]
fn merge_or_force_without_an_env_path_is_a_usage_error() {
    let d = setup();
    for flag in ["--merge", "--force"] {
        let o = run(d.path(), &["chatmail.ini", flag]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{flag}: nothing on stdout");
        let o = run(d.path(), &["chatmail.ini", flag, "--json"]);
        assert_eq!(o.status.code(), Some(2));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["exit_code"], 2, "{v}");
        assert_eq!(v["ok"], false, "{v}");
    }
}

#[test]
fn a_fifo_as_the_ini_is_refused_at_once() {
    let d = setup();
    let fifo = d.path().join("fifo.ini");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = Command::new(cm_tests::bin("cm-ini-to-env"))
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A tool that opened the FIFO would wait for a writer forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("cm-ini-to-env hangs on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let o = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr(&o).contains("is a fifo, not a regular file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_merge_that_changes_nothing_writes_nothing_and_makes_no_backup() {
    let d = setup();
    let o = run(d.path(), &["chatmail.ini", ".env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = fs::metadata(d.path().join(".env")).unwrap();
    let entries_before = entries(d.path());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let o = run(d.path(), &["--merge", "chatmail.ini", ".env"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("unchanged"), "{}", stderr(&o));
    assert_eq!(entries(d.path()), entries_before, "no backup, no temp");
    let after = fs::metadata(d.path().join(".env")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(before.ino(), after.ino(), "not rewritten");
    assert_eq!(before.mtime_nsec(), after.mtime_nsec(), "not rewritten");
}

#[test]
fn a_huge_line_is_quoted_as_a_short_excerpt() {
    let d = setup();
    let mut ini = String::from("[params]\nmail_domain = cli.example.org\n");
    ini.push_str(&"x".repeat(20 << 20));
    ini.push('\n');
    fs::write(d.path().join("huge.ini"), ini).unwrap();
    let o = run(d.path(), &["huge.ini"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.len() < 1000, "{} bytes of error", err.len());
    assert!(err.contains("bytes in all"), "{err}");
}
