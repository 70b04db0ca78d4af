//! End to end into the maintained deployment's shape, with a real Docker engine
//! (tests/harness/docker.sh, as root): fixtures/sample-host (vmail 1105, opendkim 1107) is
//! moved into fixtures/targets/maintained (named volumes mail, dkim, certs; the ini
//! bind-mounted) running an image whose service users have ids unlike the old host's and
//! unlike docker/users (the `mailstack` stage of docker/Dockerfile built with other fixed
//! ids, tagged as a 1.12.0 release). No --owner-map: the suite reads the image's users
//! through the engine and maps them by name. The test shows: the volumes created with
//! Compose's labels, so `docker compose up` uses them without a warning; in the running
//! container every mailbox entry owned by vmail by name, nothing chowned (ctimes unchanged),
//! dovecot reading every message; the DKIM key the old one, readable by opendkim alone, and
//! signing with it: a message sent through the container's postfix and opendkim (chatmail's
//! signing path, tests/data/docker/dkim-e2e.sh) and delivered by dovecot carries a signature
//! that opendkim verifies against the old host's opendkim.txt record, looked up in the
//! container's unbound (and one signed by another key does not verify); the mounted ini
//! meaning the same to chatmail; `cm-verify all` agreeing.
//!
//! The engine is stopped, the project taken down and the volumes it created removed when
//! the test ends, also when an assertion fails (drop guards).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cm_tests::engine::{
    assert_ini_means_the_same, dkim_e2e, exec, exec_ok, mount_dkim_e2e, ok, send_through_postfix,
    Engine, CONTAINER, DOCKER,
};

const DOMAIN: &str = "chat.example.org";
const IMAGE: &str = "cm-target-e2e:1.12.0";
const PROJECT: &str = "relay";
/// The image's service users: unlike docker/users (901...) and the old host (1105, 1107).
const USERS: &str = "vmail 801 801\nopendkim 802 802\n#fixed iroh 803 803\n#fixed postfix 804 804\n#fixed dovecot 805 805\n#fixed dovenull 806 806\n#fixed unbound 807 807\n";

fn docker(args: &[&str]) -> Output {
    Command::new(DOCKER).args(args).output().expect("docker")
}

/// The compose project: taken down, and the volumes the copy created removed, when dropped.
struct Project {
    dir: PathBuf,
}
impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("compose")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run docker compose")
    }
}
impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.compose(&["logs", "--no-color", "--tail", "80"]);
            eprintln!("container log:\n{}", String::from_utf8_lossy(&logs.stdout));
        }
        let out = self.compose(&["down", "--timeout", "30"]);
        if !out.status.success() {
            eprintln!("compose down: {}", String::from_utf8_lossy(&out.stderr));
        }
        for v in ["mail", "dkim", "certs"] {
            let _ = docker(&["volume", "rm", &format!("{PROJECT}_{v}")]);
        }
    }
}

/// path -> (uid, gid, mode, ctime, ctime ns) of every entry below `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, i64, i64)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p.clone());
            }
            m.insert(
                p.clone(),
                (md.uid(), md.gid(), md.mode(), md.ctime(), md.ctime_nsec()),
            );
        }
    }
    m
}

fn build_image(work: &Path) {
    let repo = cm_tests::repo_root();
    let ctx = work.join("image");
    fs::create_dir_all(ctx.join("files")).unwrap();
    fs::create_dir_all(ctx.join("bin")).unwrap();
    fs::copy(repo.join("docker/Dockerfile"), ctx.join("Dockerfile")).unwrap();
    fs::write(ctx.join("users"), USERS).unwrap();
    for e in fs::read_dir(repo.join("docker/files")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), ctx.join("files").join(e.file_name())).unwrap();
    }
    fs::copy(cm_tests::bin("cm-env-apply"), ctx.join("bin/cm-env-apply")).unwrap();
    let out = docker(&[
        "build",
        "--network",
        "host",
        "--target",
        "mailstack",
        "-t",
        IMAGE,
        ctx.to_str().unwrap(),
    ]);
    ok(&out, "docker build (mailstack, other service ids)");
}

fn project(work: &Path) -> PathBuf {
    let repo = cm_tests::repo_root();
    let dir = work.join(PROJECT);
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        repo.join("fixtures/targets/maintained/docker-compose.yaml"),
        dir.join("docker-compose.yaml"),
    )
    .unwrap();
    fs::copy(
        repo.join("tests/data/docker/dovecot-e2e.conf"),
        dir.join("dovecot-e2e.conf"),
    )
    .unwrap();
    // a test: no host networking; the image's start-up reads the mounted ini
    fs::write(
        dir.join("docker-compose.override.yaml"),
        format!(
            "services:\n  chatmail:\n    network_mode: none\n    restart: \"no\"\n    stop_signal: SIGRTMIN+3\n    sysctls:\n      net.ipv6.conf.all.disable_ipv6: \"0\"\n      net.ipv6.conf.lo.disable_ipv6: \"0\"\n    environment:\n      INI_FILE: /etc/chatmail/chatmail.ini\n    volumes:\n      - ./dovecot-e2e.conf:/etc/dovecot/conf.d/99-e2e.conf:ro\n      - ./unbound-e2e.conf:/etc/unbound/unbound.conf.d/99-e2e.conf:ro\n      - ./resolv.conf:/etc/resolv.conf:ro\n      - {}\n",
            mount_dkim_e2e(&dir)
        ),
    )
    .unwrap();
    fs::write(dir.join(".env"), format!("CHATMAIL_IMAGE={IMAGE}\n")).unwrap();
    fs::write(dir.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    dir
}

/// The old host's published DKIM record (its opendkim.txt) served by the container's own
/// unbound, so that opendkim's tools look it up as they would in DNS.
fn serve_dkim_record(host: &Path, dir: &Path) {
    let record = fs::read_to_string(host.join("etc/dkimkeys/opendkim.txt")).unwrap();
    let txt: String = record
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    assert!(txt.contains("p="), "{record}");
    let chunks: Vec<String> = txt
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    fs::write(
        dir.join("unbound-e2e.conf"),
        format!(
            "server:\n  local-data: 'opendkim._domainkey.{DOMAIN}. 300 IN TXT {}'\n",
            chunks.join(" ")
        ),
    )
    .unwrap();
}

fn mountpoint(name: &str) -> PathBuf {
    let out = docker(&["volume", "inspect", "--format", "{{.Mountpoint}}", name]);
    PathBuf::from(ok(&out, "docker volume inspect").trim())
}

fn wait_running() {
    let mut state = String::new();
    for _ in 0..240 {
        state =
            String::from_utf8_lossy(&exec(&[CONTAINER, "systemctl", "is-system-running"]).stdout)
                .trim()
                .to_string();
        if state == "running" || state == "degraded" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let failed = exec_ok(&[CONTAINER, "systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(
        state, "running",
        "systemd in the container: {state}; failed:\n{failed}"
    );
}

/// One test's world: the old host (the sample host, with the account-creation switch the
/// target does not mount), the engine, the image, the project. Dropped in field order: the
/// project down first, then the engine, the scratch folder last.
struct Setup {
    project: Project,
    _engine: Engine,
    host: PathBuf,
    host_ini: PathBuf,
    dir: PathBuf,
    work: tempfile::TempDir,
}

fn setup(prefix: &str) -> Setup {
    assert_eq!(
        fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX),
        0,
        "the Docker end-to-end test runs as root (it starts dockerd)"
    );
    cm_tests::compose();
    let work = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap();
    let host = cm_tests::sample_host(&work.path().join("host"), Some(DOMAIN));
    fs::write(host.join("etc/chatmail-nocreate"), "").unwrap();
    let host_ini = host.join("usr/local/lib/chatmaild/chatmail.ini");
    let engine = Engine::start();
    build_image(work.path());
    let dir = project(work.path());
    serve_dkim_record(&host, &dir);
    for v in ["mail", "dkim", "certs"] {
        let _ = docker(&["volume", "rm", &format!("{PROJECT}_{v}")]);
    }
    Setup {
        project: Project { dir: dir.clone() },
        _engine: engine,
        host,
        host_ini,
        dir,
        work,
    }
}

/// The named volumes carry the labels Compose gives the volumes it creates.
fn assert_labelled_as_compose_would() {
    for v in ["mail", "dkim", "certs"] {
        let labels = ok(
            &docker(&[
                "volume",
                "inspect",
                "--format",
                "{{json .Labels}}",
                &format!("{PROJECT}_{v}"),
            ]),
            "volume inspect",
        );
        assert!(
            labels.contains(&format!("\"com.docker.compose.project\":\"{PROJECT}\""))
                && labels.contains(&format!("\"com.docker.compose.volume\":\"{v}\"")),
            "{labels}"
        );
    }
}

/// In the running container: every mailbox entry is vmail's and the DKIM keys opendkim's, by
/// name; dovecot reads every message of the sample host.
fn assert_owned_by_name_and_dovecot_reads_every_message() {
    for (path, user) in [("/home/vmail/mail", "vmail"), ("/etc/dkimkeys", "opendkim")] {
        let strays = exec_ok(&[
            CONTAINER, "find", path, "(", "!", "-user", user, "-o", "!", "-group", user, ")",
        ]);
        assert!(strays.trim().is_empty(), "not owned by {user}: {strays}");
    }
    for (user, first) in [("alice0test", 1), ("bob00test", 4), ("carol0test", 7)] {
        let addr = format!("{user}@{DOMAIN}");
        let got = exec_ok(&[
            CONTAINER, "doveadm", "fetch", "-u", &addr, "text", "mailbox", "INBOX", "ALL",
        ]);
        for n in first..first + 3 {
            assert!(
                got.contains(&format!("body {n}")),
                "{addr}: message {n} missing:\n{got}"
            );
        }
        let dc = exec_ok(&[
            CONTAINER,
            "doveadm",
            "fetch",
            "-u",
            &addr,
            "text",
            "mailbox",
            "DeltaChat",
            "ALL",
        ]);
        assert!(
            dc.contains(&format!("body {}", first + 2)),
            "{addr} DeltaChat:\n{dc}"
        );
    }
}

#[test]
fn a_host_moves_into_the_maintained_deployments_shape_through_named_volumes() {
    let w = setup("cm-target-e2e.");
    let (host, host_ini, dir, project) = (&w.host, &w.host_ini, &w.dir, &w.project);

    // 1. settings: the ini at the mount's source, MAIL_DOMAIN and ACME_EMAIL in .env
    let out = Command::new(cm_tests::bin("cm-ini-to-env"))
        .arg("--project-dir")
        .arg(dir)
        .arg(host_ini)
        .output()
        .unwrap();
    ok(&out, "cm-ini-to-env --project-dir");
    assert_eq!(
        fs::read(dir.join("chatmail.ini")).unwrap(),
        fs::read(host_ini).unwrap()
    );

    // 2. the copy: volumes created, owners from the image by name, the unmounted flag file
    //    reported with the line to add
    let out = Command::new(cm_tests::bin("cm-copy-data"))
        .arg("--root")
        .arg(host)
        .arg("--project-dir")
        .arg(dir)
        .output()
        .unwrap();
    ok(&out, "cm-copy-data");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("vmail 1105:1105 -> 801:801"), "{said}");
    assert!(said.contains("opendkim 1107:1107 -> 802:802"), "{said}");
    assert!(
        said.contains("/etc/chatmail-nocreate")
            && said.contains("- ./state/chatmail-nocreate:/etc/chatmail-nocreate:ro"),
        "{said}"
    );
    assert_labelled_as_compose_would();
    let mail = mountpoint(&format!("{PROJECT}_mail"));
    let dkim = mountpoint(&format!("{PROJECT}_dkim"));
    assert_eq!(fs::metadata(mail.join("mail")).unwrap().uid(), 801);
    assert_eq!(
        fs::metadata(dkim.join("opendkim.private")).unwrap().uid(),
        802
    );
    let before: BTreeMap<_, _> = snapshot(&mail).into_iter().chain(snapshot(&dkim)).collect();
    assert!(before.len() > 30, "only {} entries copied", before.len());

    // 3. before the start (dovecot adds its index files later): cm-verify all resolves the
    //    same target: named volumes, the ini mount, the image's users
    let out = Command::new(cm_tests::bin("cm-verify"))
        .args(["all", "--no-services", "--project-dir"])
        .arg(dir)
        .arg("--root")
        .arg(host)
        .arg("--ini")
        .arg(host_ini)
        .output()
        .unwrap();
    let said = ok(&out, "cm-verify all");
    assert!(
        said.contains("5 hold, 1 not checked: services (--no-services)"),
        "{said}"
    );
    assert_eq!(said.matches("== tree ").count(), 3, "{said}");
    // 4. up: the volumes are used without a warning
    let up = project.compose(&["up", "-d"]);
    let up_err = ok(&up, "compose up") + &String::from_utf8_lossy(&up.stderr);
    assert!(
        !up_err.contains("already exists but was not created"),
        "{up_err}"
    );
    assert!(!up_err.to_ascii_lowercase().contains("warn"), "{up_err}");
    wait_running();
    for unit in ["cm-start", "dovecot", "opendkim", "postfix"] {
        let s = exec(&[CONTAINER, "systemctl", "is-active", unit]);
        assert_eq!(
            String::from_utf8_lossy(&s.stdout).trim(),
            "active",
            "{unit}"
        );
    }

    // 5. owners by name, dovecot reads every message, nothing chowned
    assert_owned_by_name_and_dovecot_reads_every_message();
    let after: BTreeMap<_, _> = snapshot(&mail).into_iter().chain(snapshot(&dkim)).collect();
    let mut same = 0;
    for (p, b) in &before {
        let md = fs::symlink_metadata(p).unwrap();
        if md.is_dir() {
            continue; // dovecot may add index files to a maildir
        }
        assert_eq!(
            after.get(p),
            Some(b),
            "{} was changed in the container",
            p.display()
        );
        same += 1;
    }
    assert!(same > 15, "only {same} files compared");

    // 7. DKIM: the old key, readable by opendkim alone, signing so that the old host's
    //    published record verifies it
    let key_sum = exec_ok(&[CONTAINER, "sha256sum", "/etc/dkimkeys/opendkim.private"]);
    let host_sum = ok(
        &Command::new("sha256sum")
            .arg(host.join("etc/dkimkeys/opendkim.private"))
            .output()
            .unwrap(),
        "sha256sum",
    );
    assert_eq!(
        key_sum.split_whitespace().next(),
        host_sum.split_whitespace().next()
    );
    assert!(!exec(&[
        "-u",
        "postfix",
        CONTAINER,
        "cat",
        "/etc/dkimkeys/opendkim.private"
    ])
    .status
    .success());
    assert_the_old_key_signs();

    // 8. the mounted ini means the same to chatmail as the old one
    let _ = assert_ini_means_the_same("/etc/chatmail/chatmail.ini", host_ini);

    drop(w);
}

/// The migrated key signs: a message sent through the container's postfix and opendkim (as
/// chatmail 1.12.0 signs a user's outgoing mail, tests/data/docker/dkim-e2e.sh) and delivered
/// by dovecot carries opendkim's signature, which opendkim verifies against the old host's
/// opendkim.txt record (served by the container's unbound, see `serve_dkim_record`). A
/// message signed by another key for the same domain and selector fails against that record,
/// and so does the delivered one with its body changed. opendkim-testkey agrees that the key
/// in /etc/dkimkeys is the one the record publishes.
fn assert_the_old_key_signs() {
    let mode = exec_ok(&[
        CONTAINER,
        "stat",
        "-c",
        "%a %U",
        "/etc/dkimkeys/opendkim.private",
    ]);
    assert_eq!(mode.trim(), "600 opendkim", "the key is opendkim's alone");
    dkim_e2e(&["configure", DOMAIN]);
    let (from, to) = (
        format!("alice0test@{DOMAIN}"),
        format!("bob00test@{DOMAIN}"),
    );
    let maildir = format!("/home/vmail/mail/{DOMAIN}/{to}");
    let queue_id = send_through_postfix(&from, &to, &maildir, "/tmp/delivered.eml");
    let delivered = exec_ok(&[CONTAINER, "cat", "/tmp/delivered.eml"]);
    assert_eq!(
        delivered.matches("DKIM-Signature:").count(),
        1,
        "{delivered}"
    );
    assert!(
        delivered.contains(&format!("d={DOMAIN};")) && delivered.contains("s=opendkim;"),
        "{delivered}"
    );
    // the signature is the running milter's, on this very message
    let log = exec_ok(&[
        CONTAINER,
        "journalctl",
        "-u",
        "opendkim",
        "-o",
        "cat",
        "--no-pager",
    ]);
    assert!(
        log.contains(&format!(
            "{queue_id}: DKIM-Signature field added (s=opendkim, d={DOMAIN})"
        )),
        "opendkim's log:\n{log}"
    );
    let v = dkim_e2e(&["verify", "/tmp/delivered.eml"]);
    assert!(
        v.contains(&format!(
            "/tmp/delivered.eml: verification (s=opendkim, d={DOMAIN}, 2048-bit key) succeeded"
        )),
        "opendkim verifying the delivered message: {v}\n{delivered}"
    );
    // the verification can fail: another key, a changed body
    dkim_e2e(&["forge", DOMAIN, "/tmp/forged.eml"]);
    let v = dkim_e2e(&["verify", "/tmp/forged.eml"]);
    assert!(
        v.contains("failed: signature verification failed") && !v.contains("succeeded"),
        "opendkim verifying a message signed by another key: {v}"
    );
    exec_ok(&[
        CONTAINER,
        "sh",
        "-c",
        "sed 's/^sent through postfix/Sent through postfix/' /tmp/delivered.eml >/tmp/changed.eml",
    ]);
    let v = dkim_e2e(&["verify", "/tmp/changed.eml"]);
    assert!(
        v.contains("/tmp/changed.eml: verification")
            && v.contains("failed")
            && !v.contains("succeeded"),
        "opendkim verifying the delivered message with its body changed: {v}"
    );
    assert_testkey_ok();
}

/// opendkim-testkey (as opendkim): the key in /etc/dkimkeys matches the record in DNS.
/// (opendkim's resolver pointed at the container's unbound, without the image's DNSSEC trust
/// anchor, which would make it resolve from the root servers)
fn assert_testkey_ok() {
    exec_ok(&[
        CONTAINER,
        "sh",
        "-c",
        "printf 'Syslog no\\nNameservers 127.0.0.1\\n' >/var/tmp/testkey.conf && chmod 0644 /var/tmp/testkey.conf",
    ]);
    let dig = exec(&[
        CONTAINER,
        "sh",
        "-c",
        "cat /etc/resolv.conf /etc/unbound/unbound.conf.d/99-e2e.conf",
    ]);
    let tk = exec(&[
        "-u",
        "opendkim",
        CONTAINER,
        "opendkim-testkey",
        "-x",
        "/var/tmp/testkey.conf",
        "-d",
        DOMAIN,
        "-s",
        "opendkim",
        "-k",
        "/etc/dkimkeys/opendkim.private",
        "-vvv",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&tk.stdout),
        String::from_utf8_lossy(&tk.stderr)
    );
    assert!(
        tk.status.success() && said.contains("key OK"),
        "opendkim-testkey: {said}\nresolver: {}",
        String::from_utf8_lossy(&dig.stdout)
    );
}

/// The whole move with one command: `cm-migrate run --start` into the maintained
/// deployment's shape (named volumes created with Compose's labels, the ini at its mount's
/// source, MAIL_DOMAIN/ACME_EMAIL in .env, owners from the image by name, no --owner-map),
/// proven with `--verify changed` (changed directories by content with the image's owners,
/// plus `cm-verify all --no-trees`); the container it starts serves the moved relay and
/// nothing in its start-up chowns what the run wrote.
#[test]
fn cm_migrate_run_moves_a_host_into_the_maintained_shape_and_starts_it() {
    let w = setup("cm-target-run.");
    let (host, host_ini, dir, project) = (&w.host, &w.host_ini, &w.dir, &w.project);

    // docker's client on PATH must be Debian's (the engine's), as an operator's would be
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    let out = Command::new(cm_tests::bin("cm-migrate"))
        .env("PATH", path)
        .arg("run")
        .arg("--root")
        .arg(host)
        .arg("--project-dir")
        .arg(dir)
        .arg("--state-dir")
        .arg(w.work.path().join("state"))
        .args(["--verify", "changed", "--start", "--health-timeout", "240"])
        .arg("--json")
        .args(cm_tests::SKIP_HOST_CHECKS)
        .output()
        .unwrap();
    let text = ok(&out, "cm-migrate run --start into the maintained shape");
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["complete"], true, "{r:#}");
    let watch = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "watch");
    assert!(
        watch.is_some_and(|w| w.to_string().contains("on 3 of 3 root(s)")),
        "the change journal follows the three sources, although the volumes are created later: {watch:?}"
    );
    let verify = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "verify");
    assert!(
        verify.is_some_and(|v| v["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("ALL OK")
                && s.contains("changed directories compared by content"))),
        "--verify changed compared the journal's directories: {verify:?}"
    );
    let all = r.to_string();
    // the preflight said what the target is, and what it does not mount, with the line
    assert!(all.contains("volume relay_mail"), "{all}");
    assert!(
        all.contains("/etc/chatmail-nocreate")
            && all.contains("- ./state/chatmail-nocreate:/etc/chatmail-nocreate:ro"),
        "{all}"
    );
    assert!(all.contains("owners follow the image"), "{all}");
    assert!(
        all.contains(&format!("image {IMAGE} is on this host")),
        "{all}"
    );
    assert!(all.contains("vmail 1105:1105 -> 801:801"), "{all}");
    // the settings as the target takes them: the old ini byte for byte, the variables in .env
    assert_eq!(
        fs::read(dir.join("chatmail.ini")).unwrap(),
        fs::read(host_ini).unwrap()
    );
    let env = fs::read_to_string(dir.join(".env")).unwrap();
    assert!(
        env.contains(&format!("MAIL_DOMAIN=\"{DOMAIN}\"")) && env.contains("CHATMAIL_IMAGE="),
        "{env}"
    );
    // the volumes carry Compose's labels: a second `up` uses them without a warning
    assert_labelled_as_compose_would();
    let up = project.compose(&["up", "-d"]);
    let up_err = ok(&up, "compose up") + &String::from_utf8_lossy(&up.stderr);
    assert!(!up_err.to_ascii_lowercase().contains("warn"), "{up_err}");
    wait_running();

    // nothing chowned by the start-up: every file's ctime is older than the start step
    // (the downtime ends when the container serves; its start step is its last part)
    let started_ms = r["downtime"]["ended_unix_ms"].as_u64().unwrap()
        - r["downtime"]["parts"]["start"].as_u64().unwrap();
    let mail = mountpoint(&format!("{PROJECT}_mail"));
    let dkim = mountpoint(&format!("{PROJECT}_dkim"));
    let mut files = 0;
    for (p, (_, _, mode, ctime, ns)) in snapshot(&mail).into_iter().chain(snapshot(&dkim)) {
        if mode & 0o170000 == 0o040000 {
            continue; // dovecot adds index files to maildirs
        }
        let ms = (ctime * 1000 + ns / 1_000_000) as u64;
        assert!(
            ms < started_ms || p.to_string_lossy().contains("dovecot"),
            "{} was changed after the container started",
            p.display()
        );
        files += 1;
    }
    assert!(files > 15, "only {files} files looked at");
    assert_owned_by_name_and_dovecot_reads_every_message();
    assert_the_old_key_signs();
    let _ = assert_ini_means_the_same("/etc/chatmail/chatmail.ini", host_ini);

    // rollback: the container the run started is stopped, what the run left is named
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    let out = Command::new(cm_tests::bin("cm-migrate"))
        .env("PATH", path)
        .arg("rollback")
        .arg("--root")
        .arg(host)
        .arg("--project-dir")
        .arg(dir)
        .arg("--state-dir")
        .arg(w.work.path().join("state"))
        .arg("--json")
        .output()
        .unwrap();
    let said = ok(&out, "cm-migrate rollback");
    let rb: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(rb["complete"], true, "{rb:#}");
    let left = rb["left_behind"].to_string();
    assert!(
        left.contains("volume relay_mail at") && left.contains("docker volume rm relay_mail"),
        "{left}"
    );
    assert!(left.contains("chatmail.ini"), "{left}");
    let running = docker(&["inspect", "--format", "{{.State.Running}}", CONTAINER]);
    assert_eq!(
        String::from_utf8_lossy(&running.stdout).trim(),
        "false",
        "the container the run started is stopped"
    );
    drop(w);
}
