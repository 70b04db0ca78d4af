//! docker/docker-compose.yaml as the real Docker Compose v2 reads it, fed with the .env that
//! cm-ini-to-env writes, and the round trip ini -> cm-ini-to-env -> .env -> Compose ->
//! container environment -> cm-env-apply -> chatmail.ini for every fixture ini.
//! `docker compose config` needs no engine, so these run everywhere CI runs.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use cm_core::{ini, params};

/// A compose project directory with the repository's docker/ files and `env` as .env.
fn project(env: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = cm_tests::repo_root().join("docker");
    for f in ["docker-compose.yaml", "Dockerfile", "users"] {
        fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    fs::write(dir.path().join(".env"), env).unwrap();
    dir
}

/// `compose config --format json` of the project; the parsed model.
fn config(dir: &Path) -> serde_json::Value {
    let out = cm_tests::compose_config(dir);
    assert!(
        out.status.success(),
        "compose config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("compose json")
}

/// The chatmail service's environment in the model (compose prints a literal `$` as `$$`).
fn service_env(model: &serde_json::Value) -> BTreeMap<String, String> {
    model["services"]["chatmail"]["environment"]
        .as_object()
        .expect("chatmail service has an environment")
        .iter()
        .map(|(k, v)| {
            let s = v
                .as_str()
                .unwrap_or_else(|| panic!("{k} is not a string: {v}"));
            (k.clone(), s.replace("$$", "$"))
        })
        .collect()
}

#[test]
fn compose_file_has_what_systemd_and_the_data_need() {
    let dir = project("MAIL_DOMAIN=\"m.example.org\"\n");
    let m = config(dir.path());
    let s = &m["services"]["chatmail"];
    assert_eq!(s["cgroup"], "host");
    assert_eq!(s["network_mode"], "host");
    assert_eq!(s["build"]["network"], "host");
    assert_eq!(s["build"]["target"], "relay");
    assert_eq!(s["stop_signal"], "SIGRTMIN+3");
    assert_eq!(s["tty"], true);
    let tmpfs: Vec<&str> = s["tmpfs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for t in ["/tmp", "/run", "/run/lock"] {
        assert!(tmpfs.contains(&t), "tmpfs {t} missing: {tmpfs:?}");
    }
    let vols: BTreeMap<String, (String, bool)> = s["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["target"].as_str().unwrap().to_string(),
                (
                    v["source"].as_str().unwrap().to_string(),
                    v["read_only"].as_bool().unwrap_or(false),
                ),
            )
        })
        .collect();
    let root = dir.path().canonicalize().unwrap();
    for (target, source) in [
        ("/home", "data/chatmail"),
        ("/etc/dkimkeys", "data/chatmail-dkimkeys"),
        ("/var/lib/acme", "data/chatmail-acme"),
    ] {
        let (src, ro) = vols
            .get(target)
            .unwrap_or_else(|| panic!("no volume at {target}: {vols:?}"));
        assert_eq!(Path::new(src), root.join(source), "{target}");
        assert!(!ro, "{target} must be writable");
    }
    assert_eq!(
        vols["/sys/fs/cgroup"],
        ("/sys/fs/cgroup".to_string(), false)
    );
}

/// Every variable of every .env that cm-ini-to-env writes reaches the container, byte for
/// byte, plus the start-up switches of example.env.
#[test]
fn every_env_variable_reaches_the_container() {
    let example = fs::read_to_string(cm_tests::repo_root().join("docker/example.env")).unwrap();
    let switches = "DEBUG_COMMANDS_ENABLED=\"true\"\nFORCE_REINIT_INI_FILE=\"true\"\nUSE_FOREIGN_CERT_MANAGER=\"true\"\nRECREATE_VENV=\"false\"\nINI_FILE=\"x.ini\"\nPATH_TO_SSL=\"/certs\"\nENABLE_CERTS_MONITORING=\"true\"\nCERTS_MONITORING_TIMEOUT=\"5\"\nCMDEPLOY_STAGES=\"install,configure,activate\"\n";
    for line in switches.lines() {
        let k = line.split('=').next().unwrap();
        assert!(
            example.contains(&format!("{k}=")),
            "example.env does not document {k}"
        );
    }
    let mut checked = 0;
    for path in cm_tests::readable_ini_fixtures() {
        for all in [false, true] {
            let env = cm_tests::ini_to_env_quiet(&path, all);
            let want = cm_core::dotenv::parse_map(&env).unwrap();
            let dir = project(&format!("{env}{switches}"));
            let got = service_env(&config(dir.path()));
            for (k, v) in &want {
                assert_eq!(
                    got.get(k),
                    Some(v),
                    "{} (all={all}): {k} did not reach the container intact",
                    path.display()
                );
                checked += 1;
            }
            for line in switches.lines() {
                let (k, v) = line.split_once('=').unwrap();
                assert_eq!(got.get(k).map(String::as_str), Some(v.trim_matches('"')));
            }
        }
    }
    assert!(checked > 50, "only {checked} variables checked");
}

/// `cm-env-apply boot --save DIR/environ` into a directory that exists (here 1777, as /run
/// or /tmp are): its mode is left alone; a directory boot creates is made 0700.
#[test]
fn boot_never_changes_the_mode_of_a_directory_it_did_not_create() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    for (save, created) in [
        (shared.join("environ"), None),
        (shared.join("new/environ"), Some(shared.join("new"))),
    ] {
        let o = Command::new(cm_tests::bin("cm-env-apply"))
            .arg("boot")
            .arg("--save")
            .arg(&save)
            .args(["--", "/bin/true"])
            .env("MAIL_DOMAIN", "a.example.org")
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            mode(&shared),
            0o1777,
            "an existing directory keeps its mode"
        );
        assert_eq!(mode(&save), 0o600);
        if let Some(c) = created {
            assert_eq!(mode(&c), 0o700, "a directory boot made is private");
        }
    }
}

fn env_apply(ini: &Path, env: &BTreeMap<String, String>, extra: &[&str]) -> Output {
    Command::new(cm_tests::bin("cm-env-apply"))
        .arg("apply")
        .arg("--ini")
        .arg(ini)
        .args(extra)
        .env_clear()
        .envs(env)
        .output()
        .unwrap()
}

/// Generated inis the applier meets in the container: chatmail 1.11+ style (every default
/// commented out) and 1.10 style (every default written), and a bare one.
fn templates() -> Vec<(&'static str, String)> {
    let mut commented =
        String::from("[params]\n\n# the relay's domain\nmail_domain = template.invalid\n");
    let mut written = commented.clone();
    for p in params::PARAMS.iter().filter(|p| p.name != "mail_domain") {
        commented.push_str(&format!("\n# {}\n", p.doc));
        written.push_str(&format!("\n# {}\n", p.doc));
        match p.default {
            Some(d) => {
                commented.push_str(&format!("# {} = {d}\n", p.name));
                if !d.is_empty() {
                    written.push_str(&format!("{} = {d}\n", p.name));
                }
            }
            None => commented.push_str(&format!("#{} =\n", p.name)),
        }
    }
    vec![
        ("commented", commented),
        ("written", written),
        (
            "bare",
            "[params]\nmail_domain = template.invalid\n".to_string(),
        ),
    ]
}

/// ini -> cm-ini-to-env -> .env -> Compose -> environment -> cm-env-apply -> ini means the
/// same to chatmail as the original, for every fixture, on every kind of generated ini.
#[test]
fn round_trip_every_fixture() {
    let mut cases = 0;
    for path in cm_tests::readable_ini_fixtures() {
        let original = ini::read(&path).unwrap();
        let orig = original.params().unwrap();
        for all in [false, true] {
            let env_text = cm_tests::ini_to_env_quiet(&path, all);
            let dir = project(&env_text);
            let env = service_env(&config(dir.path()));
            let invalid = env
                .iter()
                .filter_map(|(k, v)| params::from_env_key(k).map(|p| (p, v)))
                .filter(|(p, v)| {
                    params::check_value(p.name, v).is_some() && p.kind != params::Kind::Bool
                })
                .count();
            for (name, template) in templates() {
                let target = dir.path().join("chatmail.ini");
                fs::write(&target, &template).unwrap();
                let out = env_apply(&target, &env, &[]);
                let what = format!("{} (all={all}) onto {name}", path.display());
                if invalid > 0 {
                    // values chatmail would refuse: refused, named, nothing written
                    assert_eq!(out.status.code(), Some(2), "{what}");
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        err.contains(&format!("{invalid} setting(s)")),
                        "{what}: {err}"
                    );
                    assert_eq!(fs::read_to_string(&target).unwrap(), template, "{what}");
                    let out = env_apply(&target, &env, &["--accept-invalid"]);
                    assert_eq!(out.status.code(), Some(0), "{what}");
                } else {
                    assert_eq!(
                        out.status.code(),
                        Some(0),
                        "{what}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let result = ini::read(&target).unwrap();
                let res = result.params().unwrap();
                for p in params::PARAMS {
                    assert!(
                        params::values_equal(p.name, orig.get(p.name), res.get(p.name)),
                        "{what}: {} was {:?}, is {:?}",
                        p.name,
                        orig.get(p.name),
                        res.get(p.name)
                    );
                }
                // no setting appended while its commented line was there
                if name == "commented" {
                    for e in &res.entries {
                        let commented = format!("# {} =", e.key);
                        assert!(
                            !result_text(&target).contains(&commented),
                            "{what}: {} set but its commented line is still there",
                            e.key
                        );
                    }
                }
                // applying again changes nothing; --check agrees
                let before = fs::read(&target).unwrap();
                let extra: &[&str] = if invalid > 0 {
                    &["--accept-invalid", "--check"]
                } else {
                    &["--check"]
                };
                assert_eq!(
                    env_apply(&target, &env, extra).status.code(),
                    Some(0),
                    "{what}"
                );
                assert_eq!(fs::read(&target).unwrap(), before, "{what}");
                cases += 1;
            }
        }
    }
    assert!(cases >= 30, "only {cases} round trips");
}

fn result_text(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

#[test]
fn applier_changes_only_what_the_environment_sets() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("chatmail.ini");
    let text = "[params]\r\n# keep me\r\nmail_domain = a.example.org\r\nmax_mailbox_size = 500m\r\n# max_message_size = 31457280\r\n\r\n[privacy]\r\nx = 1\r\n";
    fs::write(&target, text).unwrap();
    fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let env: BTreeMap<String, String> = [
        ("MAX_MAILBOX_SIZE", "500M"),
        ("MAX_MESSAGE_SIZE", "1000"),
        ("PATH", "/bin"),
        ("Max_Message_Size", "7"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // --check and --dry-run see the change and write nothing
    assert_eq!(
        env_apply(&target, &env, &["--check"]).status.code(),
        Some(1)
    );
    let dry = env_apply(&target, &env, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("max_message_size: (not set) -> \"1000\"")
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), text);
    let out = env_apply(&target, &env, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        "[params]\r\n# keep me\r\nmail_domain = a.example.org\r\nmax_mailbox_size = 500m\r\nmax_message_size = 1000\r\n\r\n[privacy]\r\nx = 1\r\n",
        "a CRLF file keeps every untouched line byte for byte, CRLF included"
    );
    let mode = fs::metadata(&target).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o640
    );
    // a missing ini is an error unless --create
    let missing = dir.path().join("none.ini");
    assert_eq!(env_apply(&missing, &env, &[]).status.code(), Some(2));
    assert_eq!(
        env_apply(&missing, &env, &["--create"]).status.code(),
        Some(0)
    );
    assert!(fs::read_to_string(&missing)
        .unwrap()
        .contains("max_message_size = 1000\n"));
}
