//! `cm-migrate run --to ssh://HOST/DIR`: the Docker host is a second "host" reached over ssh
//! (an sshd of its own on 127.0.0.1, tests/harness/sshd.sh, with a test key). The old host is
//! fixtures/sample-host (its service users' ids differ from the image's), the owners are
//! mapped with docker/users on the way, and the far side proves the copy with cm-verify and
//! the manifests written on this side.
//!
//! Needs root, openssh-server/-client and rsync (.ci/install.d/30-sshd.sh).

use cm_tests::nspawn::{stdout, text};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running sshd on 127.0.0.1; stopped when dropped.
struct Sshd {
    dir: PathBuf,
}

impl Sshd {
    fn up(dir: &Path) -> Sshd {
        let o = Command::new("bash")
            .arg(cm_tests::repo_root().join("tests/harness/sshd.sh"))
            .arg("up")
            .arg(dir)
            .output()
            .expect("run tests/harness/sshd.sh");
        assert!(
            o.status.success(),
            "sshd.sh up (run .ci/install-deps):\n{}",
            text(&o)
        );
        Sshd {
            dir: dir.to_path_buf(),
        }
    }
    fn config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(cm_tests::repo_root().join("tests/harness/sshd.sh"))
            .arg("down")
            .arg(&self.dir)
            .output();
    }
}

/// A run takes the machine's run lock (/run/cm-migrate-run.lock): the tests of this file
/// take turns.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// The arguments of a move from `root` to `url` through the test's sshd, owners mapped by
/// docker/users, the run's state in `state`.
fn far_args(root: &Path, url: &str, sshd: &Sshd, state: &Path) -> Vec<String> {
    let users = cm_tests::repo_root().join("docker/users");
    [
        "--root",
        root.to_str().unwrap(),
        "--to",
        url,
        "--ssh-config",
        sshd.config().to_str().unwrap(),
        "--owner-map",
        users.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn cm_migrate(args: &[&str]) -> Output {
    cm_tests::run_logged(
        "cm-migrate",
        Command::new(cm_tests::bin("cm-migrate")).args(args),
    )
}

#[test]
fn run_to_another_host_over_ssh_maps_owners_and_proves_the_copy_there() {
    let _turn = turn();
    assert!(
        nix_is_root(),
        "this test starts an sshd and sets owners: run it as root"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("old");
    cm_tests::sample_host(&root, None);
    let far = tmp.path().join("far/project");
    std::fs::create_dir_all(&far).unwrap();
    std::fs::copy(
        cm_tests::repo_root().join("docker/docker-compose.yaml"),
        far.join("docker-compose.yaml"),
    )
    .unwrap();
    let sshd = Sshd::up(&tmp.path().join("sshd"));
    let state = tmp.path().join("state");
    let url = format!("ssh://127.0.0.1{}", far.display());
    let base = far_args(&root, &url, &sshd, &state);
    let with = |first: &[&str], extra: &[&str]| -> Vec<String> {
        first
            .iter()
            .map(|s| s.to_string())
            .chain(base.iter().cloned())
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };

    let a = with(&["preflight"], &[]);
    let o = cm_migrate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains("ssh to 127.0.0.1 works"),
        "{}",
        text(&o)
    );

    let a = with(&["run"], &["--json"]);
    let o = cm_migrate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // the far target was read from its compose file by Compose v2 there, not assumed
    let said = r["findings"].to_string();
    assert!(
        said.contains("service chatmail of Compose project chatmail")
            && said.contains(&format!("mail -> {}/data/chatmail", far.display())),
        "{said}"
    );
    let verify = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "verify")
        .unwrap();
    assert_eq!(verify["status"], "done", "{r:#}");
    assert!(
        verify["summary"]
            .as_str()
            .unwrap()
            .contains("manifests checked on 127.0.0.1: dkim, acme, mail hold"),
        "{r:#}"
    );
    assert!(
        r["next_step"]
            .as_str()
            .unwrap()
            .contains("on 127.0.0.1: cd "),
        "{r:#}"
    );

    // owners mapped on the way: the host's vmail (1105) and opendkim (1107) are the image's
    // 901 and 902 there
    let md = |p: &str| std::fs::symlink_metadata(far.join(p)).unwrap();
    assert_eq!(md("data/chatmail/vmail").uid(), 901);
    assert_eq!(md("data/chatmail/vmail").gid(), 901);
    assert_eq!(md("data/chatmail-dkimkeys/opendkim.private").uid(), 902);
    assert_eq!(
        md("data/chatmail-dkimkeys/opendkim.private").mode() & 0o777,
        0o600
    );
    let env = std::fs::read_to_string(far.join(".env")).unwrap();
    assert!(env.contains("MAIL_DOMAIN=\"chat.example.org\""), "{env}");
    assert_eq!(
        md(".env").mode() & 0o777,
        0o600,
        ".env holds secrets' neighbours: 0600"
    );

    // the manifests are a real proof: a changed byte there is found by cm-verify there
    let victim = walk_files(&far.join("data/chatmail"))
        .into_iter()
        .next()
        .expect("a file in the copy");
    let mut data = std::fs::read(&victim).unwrap();
    data.push(b'!');
    let mtime = filetime::FileTime::from_last_modification_time(
        &std::fs::symlink_metadata(&victim).unwrap(),
    );
    std::fs::write(&victim, &data).unwrap();
    filetime::set_file_mtime(&victim, mtime).unwrap();
    let o = cm_tests::run_logged(
        "cm-verify there",
        Command::new(far.join(".cm-migrate/cm-verify"))
            .args(["manifest", "check", "--quiet"])
            .arg(far.join(".cm-migrate/mail.manifest"))
            .arg(far.join("data/chatmail")),
    );
    assert_eq!(o.status.code(), Some(1), "the changed file is found");

    // a finished run: resume has nothing to do, a new run starts afresh and repairs the copy
    let a = with(&["run"], &["--resume"]);
    let o = cm_migrate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let a = with(&["run"], &["--quiet"]);
    let o = cm_migrate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_ne!(
        std::fs::read(&victim).unwrap(),
        data,
        "rsync put the original back"
    );

    // a host that cannot be reached blocks in preflight, naming the fix
    let mut bad = base.clone();
    bad[3] = format!("ssh://127.0.0.2{}", far.display());
    let a: Vec<&str> = ["preflight"]
        .into_iter()
        .chain(bad.iter().map(String::as_str))
        .collect();
    let o = cm_migrate(&a);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains("BLOCKS      transport"), "{}", text(&o));
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk_files(&e.path()));
        } else if t.is_file() && e.metadata().unwrap().len() > 0 {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Named volumes of a far project, removed when dropped (with the engine still up).
struct FarVolumes(&'static [&'static str]);

impl Drop for FarVolumes {
    fn drop(&mut self) {
        for v in self.0 {
            let _ = Command::new(cm_tests::engine::DOCKER)
                .args(["volume", "rm", v])
                .output();
        }
    }
}

/// Over ssh into the maintained deployment's shape: the far compose file read by Compose v2
/// there, its named volumes created through the far engine with Compose's labels, the old
/// ini put at the mount's source there and MAIL_DOMAIN into its .env, the copies proven
/// there with the manifests.
#[test]
fn run_over_ssh_into_named_volumes_and_an_ini_mount_resolved_on_the_far_side() {
    let _turn = turn();
    assert!(
        nix_is_root(),
        "this test starts an sshd and dockerd: run it as root"
    );
    cm_tests::compose();
    let tmp = tempfile::Builder::new()
        .prefix("cm-ssh-volumes.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = cm_tests::sample_host(&tmp.path().join("old"), None);
    let far = tmp.path().join("relay");
    std::fs::create_dir_all(&far).unwrap();
    std::fs::copy(
        cm_tests::repo_root().join("fixtures/targets/maintained/docker-compose.yaml"),
        far.join("docker-compose.yaml"),
    )
    .unwrap();
    let _engine = cm_tests::engine::Engine::start();
    let _volumes = FarVolumes(&["relay_mail", "relay_dkim", "relay_certs"]);
    for v in _volumes.0 {
        let _ = Command::new(cm_tests::engine::DOCKER)
            .args(["volume", "rm", v])
            .output();
    }
    let sshd = Sshd::up(&tmp.path().join("sshd"));
    let url = format!("ssh://127.0.0.1{}", far.display());
    let a: Vec<String> = ["run".to_string(), "--json".to_string()]
        .into_iter()
        .chain(far_args(&root, &url, &sshd, &tmp.path().join("state")))
        .chain(cm_tests::SKIP_HOST_CHECKS.map(String::from))
        .collect();
    let o = cm_migrate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["complete"], true, "{r:#}");
    let said = r.to_string();
    assert!(said.contains("mail -> volume relay_mail"), "{said}");
    assert!(
        said.contains("manifests checked on 127.0.0.1: dkim, acme, mail hold"),
        "{said}"
    );
    let inspect = |v: &str, f: &str| {
        let o = Command::new(cm_tests::engine::DOCKER)
            .args(["volume", "inspect", "--format", f, v])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert!(
        inspect("relay_mail", "{{json .Labels}}")
            .contains("\"com.docker.compose.volume\":\"mail\""),
        "created with Compose's labels"
    );
    let mail = PathBuf::from(inspect("relay_mail", "{{.Mountpoint}}"));
    let vmail = std::fs::symlink_metadata(mail.join("mail")).unwrap();
    assert_eq!(vmail.uid(), 901, "owners mapped on the way");
    let old_ini = root.join("usr/local/lib/chatmaild/chatmail.ini");
    assert_eq!(
        std::fs::read(far.join("chatmail.ini")).unwrap(),
        std::fs::read(&old_ini).unwrap(),
        "the old ini, byte for byte, where the far compose file mounts it from"
    );
    let env = std::fs::read_to_string(far.join(".env")).unwrap();
    assert!(env.contains("MAIL_DOMAIN=\"chat.example.org\""), "{env}");
}
