//! A real Docker engine and a compose project of docker/ for the tests that boot the
//! migrated data in the image (tests/harness/docker.sh: dockerd started by hand, no bridge,
//! `debian:12` imported from the cached Debian tree, no registry).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

pub const DOCKER: &str = "/usr/bin/docker";
pub const COMPOSE: &str = "/usr/local/bin/docker-compose-v2";
/// The container's name in docker/docker-compose.yaml.
pub const CONTAINER: &str = "chatmail";
/// The image the override names: the `mailstack` stage (the relay stage needs the network).
pub const IMAGE: &str = "chatmail-relay:mailstack";

fn harness(arg: &str) -> Output {
    Command::new("bash")
        .arg(crate::repo_root().join("tests/harness/docker.sh"))
        .arg(arg)
        .output()
        .expect("run tests/harness/docker.sh")
}

/// `out` succeeded (else a panic with its output); its stdout.
pub fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Tests of one binary run in parallel; the engine is one: they take turns.
static TURN: Mutex<()> = Mutex::new(());

/// The engine, started with `debian:12` in it; stopped when dropped. One test at a time
/// holds it (in a test binary; binaries run one after another).
pub struct Engine(#[allow(dead_code)] MutexGuard<'static, ()>);
impl Engine {
    pub fn start() -> Engine {
        let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        for p in [DOCKER, COMPOSE, "/usr/sbin/dockerd"] {
            assert!(Path::new(p).exists(), "{p} missing: run .ci/install-deps");
        }
        ok(&harness("start"), "docker.sh start");
        let e = Engine(turn);
        ok(&harness("base"), "docker.sh base");
        e
    }
}
impl Drop for Engine {
    fn drop(&mut self) {
        let out = harness("stop");
        if !out.status.success() {
            eprintln!("docker.sh stop: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// A compose project of docker/ at `dir`: the shipped compose file and an override that
/// Compose reads by itself (docker-compose.override.yaml): the mailstack image, a network of
/// the container's own (no host network in a test), doveadm able to open every mailbox.
/// Taken down when dropped.
pub struct Project(pub PathBuf);
impl Project {
    pub fn lay_out(dir: &Path) -> Project {
        let repo = crate::repo_root();
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::create_dir_all(dir.join("files")).unwrap();
        for f in ["Dockerfile", "users", "docker-compose.yaml"] {
            fs::copy(repo.join("docker").join(f), dir.join(f)).unwrap();
        }
        for e in fs::read_dir(repo.join("docker/files")).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), dir.join("files").join(e.file_name())).unwrap();
        }
        fs::copy(crate::bin("cm-env-apply"), dir.join("bin/cm-env-apply")).unwrap();
        fs::copy(
            repo.join("tests/data/docker/dovecot-e2e.conf"),
            dir.join("dovecot-e2e.conf"),
        )
        .unwrap();
        fs::write(
            dir.join("docker-compose.override.yaml"),
            format!(
                "services:\n  chatmail:\n    image: {IMAGE}\n    build:\n      target: mailstack\n    \
                 network_mode: none\n    restart: \"no\"\n    sysctls:\n      \
                 net.ipv6.conf.all.disable_ipv6: \"0\"\n      net.ipv6.conf.lo.disable_ipv6: \"0\"\n    \
                 volumes:\n      - ./dovecot-e2e.conf:/etc/dovecot/conf.d/99-e2e.conf:ro\n"
            ),
        )
        .unwrap();
        Project(dir.to_path_buf())
    }

    /// The image built from the project (the engine must be running).
    pub fn build_image(&self) {
        ok(
            &Command::new(DOCKER)
                .args([
                    "build",
                    "-q",
                    "--network",
                    "host",
                    "--target",
                    "mailstack",
                    "-t",
                    IMAGE,
                ])
                .arg(&self.0)
                .output()
                .unwrap(),
            "docker build (mailstack)",
        );
    }

    pub fn compose(&self, args: &[&str]) -> Output {
        Command::new(COMPOSE)
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("run docker-compose-v2")
    }
}
impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let l = self.compose(&["logs", "--no-color", "--tail", "60"]);
            eprintln!("container log:\n{}", String::from_utf8_lossy(&l.stdout));
        }
        let o = self.compose(&["down", "--timeout", "30"]);
        if !o.status.success() {
            eprintln!("compose down: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

/// `docker exec ARGS`.
pub fn exec(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .arg("exec")
        .args(args)
        .output()
        .expect("docker exec")
}

/// `docker exec ARGS`, which must succeed; its stdout.
pub fn exec_ok(args: &[&str]) -> String {
    ok(&exec(args), &format!("docker exec {}", args.join(" ")))
}

/// Where the tests' overrides mount tests/data/docker/dkim-e2e.sh in the container.
pub const DKIM_E2E: &str = "/usr/local/lib/cm-e2e/dkim-e2e.sh";

/// The override's volume line for [`DKIM_E2E`], the script copied beside the compose file.
pub fn mount_dkim_e2e(dir: &Path) -> String {
    fs::copy(
        crate::repo_root().join("tests/data/docker/dkim-e2e.sh"),
        dir.join("dkim-e2e.sh"),
    )
    .unwrap();
    format!("./dkim-e2e.sh:{DKIM_E2E}:ro")
}

/// tests/data/docker/dkim-e2e.sh ARGS in the container, as root; its stdout (opendkim's
/// results included).
pub fn dkim_e2e(args: &[&str]) -> String {
    let mut a = vec![CONTAINER, "bash", DKIM_E2E];
    a.extend_from_slice(args);
    exec_ok(&a)
}

/// One message from `from` to `to` (addresses of the relay's domain) sent over SMTP to the
/// container's postfix the way chatmail relays a user's outgoing mail, so that opendkim signs
/// it (after `dkim_e2e(&["configure", DOMAIN])`), delivered by dovecot into `maildir`; the
/// delivered message copied to `out` in the container. Postfix's queue id of the message.
pub fn send_through_postfix(from: &str, to: &str, maildir: &str, out: &str) -> String {
    let msgid = format!(
        "dkim-e2e-{}@{}",
        std::process::id(),
        to.rsplit('@').next().unwrap_or(to)
    );
    let said = dkim_e2e(&["send", from, to, &msgid]);
    let queue_id = said
        .split("queued as ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no queue id in the SMTP conversation:\n{said}"))
        .to_string();
    dkim_e2e(&["delivered", maildir, &msgid, out]);
    queue_id
}

/// Waits until systemd in the container is up; its state (`running`, `degraded`, ...).
pub fn wait_for_systemd() -> String {
    let mut state = String::new();
    for _ in 0..240 {
        let o = exec(&[CONTAINER, "systemctl", "is-system-running"]);
        state = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if state == "running" || state == "degraded" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    state
}

/// The chatmail.ini at `path` in the container means to chatmail what the old host's `host_ini`
/// meant: every setting equal by `params::values_equal` (absent = default). The container's
/// ini, parsed.
pub fn assert_ini_means_the_same(path: &str, host_ini: &Path) -> cm_core::ini::IniFile {
    use cm_core::{ini, params};
    let text = exec_ok(&[CONTAINER, "cat", path]);
    let inside = ini::parse_str("container chatmail.ini", &text).unwrap();
    let old = ini::read(host_ini).unwrap();
    for p in params::PARAMS {
        let (a, b) = (
            old.params().unwrap().get(p.name),
            inside.params().unwrap().get(p.name),
        );
        assert!(
            params::values_equal(p.name, a, b),
            "{}: old host {a:?}, container {b:?}\n{text}",
            p.name
        );
    }
    inside
}
