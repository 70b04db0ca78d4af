//! End to end, with a real Docker engine (tests/harness/docker.sh, as root): a fixture host
//! tree (chatmail.ini, mailboxes, DKIM key, acmetool state, owned by the host's own uids) is
//! converted by cm-ini-to-env and copied by cm-copy-data with `--owner-map docker/users`; the
//! `mailstack` stage of docker/Dockerfile is built and booted with docker/docker-compose.yaml
//! (plus an override: no host networking in a test) on that project, and the test shows:
//! systemd running; the settings applied to chatmail.ini; dovecot reading every migrated
//! mailbox and message (doveadm); the DKIM key readable by opendkim and valid; every ACME
//! live link resolving inside the container; no file chowned (owners already matched).
//!
//! The engine is started for this test and stopped afterwards, and the compose project is
//! taken down, also when an assertion fails (drop guards).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cm_tests::engine::{
    assert_ini_means_the_same, exec, exec_ok, ok, wait_for_systemd, Engine, COMPOSE, CONTAINER,
    DOCKER,
};

const DOMAIN: &str = "e2e.example.org";

/// The compose project, taken down when dropped.
struct Project {
    dir: PathBuf,
}
impl Project {
    fn compose(&self, args: &[&str]) -> Output {
        Command::new(COMPOSE)
            .args(["-f", "docker-compose.yaml", "-f", "e2e.override.yaml"])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run docker-compose-v2")
    }
}
impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.compose(&["logs", "--no-color", "--tail", "60"]);
            eprintln!("container log:\n{}", String::from_utf8_lossy(&logs.stdout));
        }
        let out = self.compose(&["down", "--timeout", "30"]);
        if !out.status.success() {
            eprintln!("compose down: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn write(path: &Path, data: &str, mode: u32, owner: (u32, u32)) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::lchown(path, Some(owner.0), Some(owner.1)).unwrap();
}

fn dir(path: &Path, mode: u32, owner: (u32, u32)) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::lchown(path, Some(owner.0), Some(owner.1)).unwrap();
}

// Host ids: deliberately unlike the image's (docker/users).
const VMAIL: (u32, u32) = (5000, 5000);
const OPENDKIM: (u32, u32) = (112, 117);
const ROOT: (u32, u32) = (0, 0);

/// The messages of the fixture: (user, maildir folder, subdir, marker).
fn messages() -> Vec<(&'static str, &'static str, &'static str, String)> {
    let mut v = Vec::new();
    let layout: [(&str, &str, &str, usize); 5] = [
        ("alice", "", "cur", 3),
        ("alice", "", "new", 1),
        ("alice", ".Archive", "cur", 2),
        ("bob", "", "cur", 2),
        ("carol", ".DeltaChat", "cur", 1),
    ];
    let mut n = 0;
    for (user, folder, sub, count) in layout {
        for _ in 0..count {
            n += 1;
            v.push((user, folder, sub, format!("E2E-MARKER-{n:03}")));
        }
    }
    v
}

/// A bare-metal chatmail host's files, under `root`.
fn fixture_host(root: &Path) {
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nvmail:x:5000:5000::/home/vmail:/usr/sbin/nologin\nopendkim:x:112:117::/run/opendkim:/usr/sbin/nologin\niroh:x:998:998::/var/lib/iroh-relay:/usr/sbin/nologin\npostfix:x:106:111::/var/spool/postfix:/usr/sbin/nologin\ndovecot:x:107:112::/usr/lib/dovecot:/usr/sbin/nologin\ndovenull:x:108:113::/nonexistent:/usr/sbin/nologin\nunbound:x:109:114::/var/lib/unbound:/usr/sbin/nologin\n",
        0o644,
        ROOT,
    );
    write(
        &root.join("etc/group"),
        "root:x:0:\nvmail:x:5000:\nopendkim:x:117:postfix\niroh:x:998:\npostfix:x:111:\ndovecot:x:112:\ndovenull:x:113:\nunbound:x:114:\n",
        0o644,
        ROOT,
    );
    write(
        &root.join("usr/local/lib/chatmaild/chatmail.ini"),
        &format!(
            "[params]\n\nmail_domain = {DOMAIN}\nmax_user_send_per_minute = 60\nmax_mailbox_size = 2G\ndelete_mails_after = 40\ndisable_ipv6 = True\niroh_relay =\nprivacy_mail = privacy@{DOMAIN} # not a comment for chatmail\npassthrough_recipients = echo@{DOMAIN}\n"
        ),
        0o644,
        ROOT,
    );
    // mailboxes
    let mail = root.join("home/vmail/mail").join(DOMAIN);
    dir(&root.join("home/vmail"), 0o755, VMAIL);
    dir(&root.join("home/vmail/mail"), 0o700, VMAIL);
    dir(&mail, 0o700, VMAIL);
    for user in ["alice", "bob", "carol"] {
        let home = mail.join(format!("{user}@{DOMAIN}"));
        dir(&home, 0o700, VMAIL);
        for folder in ["", ".Archive", ".DeltaChat"] {
            dir(&home.join(folder), 0o700, VMAIL);
            for sub in ["cur", "new", "tmp"] {
                dir(&home.join(folder).join(sub), 0o700, VMAIL);
            }
        }
        write(
            &home.join("password"),
            "{SHA512-CRYPT}$6$salt$hash\n",
            0o600,
            VMAIL,
        );
    }
    dir(&mail.join("pending_notifications"), 0o700, VMAIL);
    for (i, (user, folder, sub, marker)) in messages().into_iter().enumerate() {
        let body = format!(
            "From: {user}@{DOMAIN}\r\nTo: {user}@{DOMAIN}\r\nSubject: message {i}\r\nMessage-ID: <{marker}@{DOMAIN}>\r\nDate: Mon, 6 Jan 2025 10:00:00 +0000\r\n\r\nbody {marker}\r\n"
        );
        let name = if sub == "cur" {
            format!("17360000{i:02}.M{i}P1.oldhost,S={}:2,S", body.len())
        } else {
            format!("17360000{i:02}.M{i}P1.oldhost,S={}", body.len())
        };
        let home = mail.join(format!("{user}@{DOMAIN}"));
        write(&home.join(folder).join(sub).join(name), &body, 0o600, VMAIL);
    }
    // DKIM
    let keys = root.join("etc/dkimkeys");
    dir(&keys, 0o700, OPENDKIM);
    let out = Command::new("openssl")
        .args(["genrsa", "-traditional", "2048"])
        .output()
        .expect("openssl (run .ci/install-deps)");
    let key = ok(&out, "openssl genrsa");
    write(&keys.join("opendkim.private"), &key, 0o600, OPENDKIM);
    write(
        &keys.join("opendkim.txt"),
        &format!("opendkim._domainkey\tIN\tTXT\t( \"v=DKIM1; h=sha256; k=rsa; \" \"p=MIIB\" )  ; ----- DKIM key opendkim for {DOMAIN}\n"),
        0o644,
        OPENDKIM,
    );
    write(
        &keys.join("KeyTable"),
        &format!("opendkim._domainkey.{DOMAIN} {DOMAIN}:opendkim:/etc/dkimkeys/opendkim.private\n"),
        0o644,
        OPENDKIM,
    );
    write(
        &keys.join("SigningTable"),
        &format!("*@{DOMAIN} opendkim._domainkey.{DOMAIN}\n"),
        0o644,
        OPENDKIM,
    );
    // acmetool state: live/<host> -> ../certs/<id>, certs/<id>/privkey -> ../../keys/<id>/privkey
    let acme = root.join("var/lib/acme");
    dir(&acme, 0o755, ROOT);
    for (d, mode) in [
        ("accounts", 0o770),
        ("keys", 0o770),
        ("tmp", 0o770),
        ("certs", 0o755),
        ("live", 0o755),
        ("desired", 0o755),
        ("conf", 0o755),
    ] {
        dir(&acme.join(d), mode, ROOT);
    }
    for (host, id) in [
        (DOMAIN.to_string(), "c1d2"),
        (format!("mta-sts.{DOMAIN}"), "e3f4"),
    ] {
        dir(&acme.join("keys").join(id), 0o700, ROOT);
        write(
            &acme.join("keys").join(id).join("privkey"),
            &format!("PRIVATE KEY OF {host}\n"),
            0o600,
            ROOT,
        );
        dir(&acme.join("certs").join(id), 0o755, ROOT);
        for f in ["cert", "chain", "fullchain"] {
            write(
                &acme.join("certs").join(id).join(f),
                &format!("{f} of {host}\n"),
                0o644,
                ROOT,
            );
        }
        symlink(
            format!("../../keys/{id}/privkey"),
            acme.join("certs").join(id).join("privkey"),
        )
        .unwrap();
        symlink(format!("../certs/{id}"), acme.join("live").join(&host)).unwrap();
        write(
            &acme.join("desired").join(&host),
            &format!("satisfy:\n  names:\n  - {host}\n"),
            0o644,
            ROOT,
        );
    }
}

/// (path relative to data/) -> (uid, gid, mode, ctime sec, ctime nsec) of every entry.
fn snapshot(data: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, i64, i64)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![data.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p.clone());
            }
            m.insert(
                p.strip_prefix(data).unwrap().to_path_buf(),
                (md.uid(), md.gid(), md.mode(), md.ctime(), md.ctime_nsec()),
            );
        }
    }
    m
}

fn image_users() -> BTreeMap<String, (u32, u32)> {
    let text = fs::read_to_string(cm_tests::repo_root().join("docker/users")).unwrap();
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                (f[1].parse().unwrap(), f[2].parse().unwrap()),
            )
        })
        .collect()
}

#[test]
fn migrated_data_boots_in_the_image() {
    assert_eq!(
        fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX),
        0,
        "the Docker end-to-end test runs as root (it starts dockerd): run it as root, after .ci/install-deps"
    );
    for p in [DOCKER, COMPOSE, "/usr/sbin/dockerd"] {
        assert!(Path::new(p).exists(), "{p} missing: run .ci/install-deps");
    }
    let repo = cm_tests::repo_root();
    let work = tempfile::Builder::new()
        .prefix("cm-docker-e2e.")
        .tempdir_in("/var/tmp")
        .unwrap();
    let host = work.path().join("host");
    let proj = work.path().join("project");
    fixture_host(&host);

    // 1. the .env from the old host's chatmail.ini, the compose project around it
    fs::create_dir_all(proj.join("bin")).unwrap();
    for f in ["Dockerfile", "users", "docker-compose.yaml"] {
        fs::copy(repo.join("docker").join(f), proj.join(f)).unwrap();
    }
    fs::create_dir_all(proj.join("files")).unwrap();
    for e in fs::read_dir(repo.join("docker/files")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), proj.join("files").join(e.file_name())).unwrap();
    }
    fs::copy(cm_tests::bin("cm-env-apply"), proj.join("bin/cm-env-apply")).unwrap();
    fs::copy(
        repo.join("tests/data/docker/dovecot-e2e.conf"),
        proj.join("dovecot-e2e.conf"),
    )
    .unwrap();
    let host_ini = host.join("usr/local/lib/chatmaild/chatmail.ini");
    let env_file = proj.join(".env");
    let out = Command::new(cm_tests::bin("cm-ini-to-env"))
        .arg("--quiet")
        .arg(&host_ini)
        .arg(&env_file)
        .output()
        .unwrap();
    ok(&out, "cm-ini-to-env");
    let mut env_text = fs::read_to_string(&env_file).unwrap();
    env_text.push_str("CM_BUILD_TARGET=\"mailstack\"\n");
    // certificate monitoring on, checking every second (PATH_TO_SSL: its default, live/<domain>)
    env_text.push_str("ENABLE_CERTS_MONITORING=\"true\"\nCERTS_MONITORING_TIMEOUT=\"1\"\n");
    fs::write(&env_file, &env_text).unwrap();
    // no host networking in a test: the container gets its own loopback (with IPv6, which
    // unbound binds); everything else is the shipped compose file
    fs::write(
        proj.join("e2e.override.yaml"),
        "services:\n  chatmail:\n    network_mode: none\n    restart: \"no\"\n    sysctls:\n      net.ipv6.conf.all.disable_ipv6: \"0\"\n      net.ipv6.conf.lo.disable_ipv6: \"0\"\n    volumes:\n      - ./dovecot-e2e.conf:/etc/dovecot/conf.d/99-e2e.conf:ro\n",
    )
    .unwrap();

    // 2. the data, copied with the image's owners
    let out = Command::new(cm_tests::bin("cm-copy-data"))
        .arg("--root")
        .arg(&host)
        .arg("--project-dir")
        .arg(&proj)
        .arg("--owner-map")
        .arg(repo.join("docker/users"))
        .arg("--quiet")
        .output()
        .unwrap();
    ok(&out, "cm-copy-data");
    let data = proj.join("data");
    let users = image_users();
    let before = snapshot(&data);
    let mut owners_seen = 0;
    for (rel, (uid, gid, ..)) in &before {
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let want = match top.as_str() {
            "chatmail" if rel.starts_with("chatmail/vmail") => users["vmail"],
            "chatmail-dkimkeys" => users["opendkim"],
            "chatmail-acme" => (0, 0),
            _ => continue,
        };
        assert_eq!(
            (*uid, *gid),
            want,
            "{} has the wrong owner after the copy",
            rel.display()
        );
        owners_seen += 1;
    }
    assert!(owners_seen > 40, "only {owners_seen} entries copied");

    // 3. engine, image, container
    let _engine = Engine::start();
    let project = Project { dir: proj.clone() };
    ok(&project.compose(&["build"]), "compose build (mailstack)");
    ok(&project.compose(&["up", "-d"]), "compose up");
    let state = wait_for_systemd();
    let failed = exec_ok(&[CONTAINER, "systemctl", "--failed", "--no-legend", "--plain"]);
    assert_eq!(
        state, "running",
        "systemd in the container: {state}; failed units:\n{failed}"
    );
    // every service user of docker/users (owner-map lines and `#fixed` ones) has its number
    let users_text = fs::read_to_string(repo.join("docker/users")).unwrap();
    let mut fixed = 0;
    for line in users_text.lines() {
        let line = line.strip_prefix("#fixed ").unwrap_or(line);
        let f: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let ids = exec_ok(&[
            CONTAINER,
            "sh",
            "-c",
            &format!("echo $(id -u {0}):$(id -g {0})", f[0]),
        ]);
        assert_eq!(
            ids.trim(),
            format!("{}:{}", f[1], f[2]),
            "user {} in the image",
            f[0]
        );
        fixed += 1;
    }
    assert_eq!(fixed, 7, "docker/users lists 7 service users");
    let pid1 = exec_ok(&[CONTAINER, "cat", "/proc/1/comm"]);
    assert_eq!(pid1.trim(), "systemd");
    for unit in [
        "cm-start", "postfix", "dovecot", "opendkim", "nginx", "unbound",
    ] {
        let s = exec(&[CONTAINER, "systemctl", "is-active", unit]);
        assert_eq!(
            String::from_utf8_lossy(&s.stdout).trim(),
            "active",
            "{unit} is not active"
        );
    }

    // 4. settings: chatmail.ini in the container means what the old host's meant, and the
    //    applier sees nothing left to change
    let applied = assert_ini_means_the_same("/opt/chatmail/chatmail.ini", &host_ini);
    assert_eq!(applied.params().unwrap().get("iroh_relay"), Some(""));
    exec_ok(&[
        CONTAINER,
        "cm-env-apply",
        "apply",
        "--ini",
        "/opt/chatmail/chatmail.ini",
        "--environ-file",
        "/run/cm-env/environ",
        "--check",
    ]);

    // 5. dovecot reads every mailbox and message
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (user, _, _, marker) in messages() {
        want.entry(format!("{user}@{DOMAIN}"))
            .or_default()
            .push(marker);
    }
    for (addr, markers) in &want {
        let boxes = exec_ok(&[CONTAINER, "doveadm", "mailbox", "list", "-u", addr]);
        for b in ["INBOX", "Archive", "DeltaChat"] {
            assert!(
                boxes.lines().any(|l| l.trim() == b),
                "{addr}: no {b} in {boxes}"
            );
        }
        let fetched = exec_ok(&[
            CONTAINER,
            "doveadm",
            "fetch",
            "-u",
            addr,
            "mailbox text",
            "mailbox",
            "*",
            "ALL",
        ]);
        let found: Vec<&String> = markers
            .iter()
            .filter(|m| fetched.contains(&format!("body {m}")))
            .collect();
        assert_eq!(
            found.len(),
            markers.len(),
            "{addr}: dovecot read {found:?} of {markers:?}"
        );
        let count = fetched.matches("E2E-MARKER-").count();
        assert_eq!(
            count,
            markers.len() * 2,
            "{addr}: each message once (Message-ID + body)"
        );
    }

    // 6. DKIM key: readable by opendkim, a valid RSA key
    let check = exec(&[
        "-u",
        "opendkim",
        CONTAINER,
        "openssl",
        "rsa",
        "-check",
        "-noout",
        "-in",
        "/etc/dkimkeys/opendkim.private",
    ]);
    let said = ok(&check, "openssl rsa -check as opendkim");
    assert!(said.contains("RSA key ok"), "{said}");
    let other = exec(&[
        "-u",
        "postfix",
        CONTAINER,
        "cat",
        "/etc/dkimkeys/opendkim.private",
    ]);
    assert!(
        !other.status.success(),
        "the DKIM key is readable by postfix"
    );

    // 7. ACME live links resolve inside the container
    let live = exec_ok(&[CONTAINER, "sh", "-c", "ls /var/lib/acme/live"]);
    let hosts: Vec<&str> = live.split_whitespace().collect();
    assert_eq!(hosts.len(), 2, "{live}");
    for h in hosts {
        for f in ["cert", "chain", "fullchain", "privkey"] {
            let p = format!("/var/lib/acme/live/{h}/{f}");
            let content = exec_ok(&[CONTAINER, "cat", &p]);
            let wanted = if f == "privkey" {
                format!("PRIVATE KEY OF {h}\n")
            } else {
                format!("{f} of {h}\n")
            };
            assert_eq!(content, wanted, "{p}");
            let real = exec_ok(&[CONTAINER, "readlink", "-e", &p]);
            assert!(
                real.starts_with("/var/lib/acme/"),
                "{p} resolves outside: {real}"
            );
        }
    }
    let broken = exec_ok(&[CONTAINER, "find", "-L", "/var/lib/acme", "-type", "l"]);
    assert!(broken.trim().is_empty(), "broken links: {broken}");

    // 8. no chown: inside, the migrated files belong to the image's users by name...
    for (path, user) in [
        ("/home/vmail", "vmail"),
        ("/etc/dkimkeys", "opendkim"),
        ("/var/lib/acme", "root"),
    ] {
        let strays = exec_ok(&[
            CONTAINER, "find", path, "(", "!", "-user", user, "-o", "!", "-group", user, ")",
        ]);
        assert!(strays.trim().is_empty(), "not owned by {user}: {strays}");
    }
    // ...and no pre-existing entry was chowned or chmodded (its ctime would have moved)
    let after = snapshot(&data);
    let mut unchanged = 0;
    for (rel, b) in &before {
        let md = fs::symlink_metadata(data.join(rel)).ok();
        if let (Some(a), Some(_)) = (after.get(rel), md.filter(|m| !m.is_dir())) {
            assert_eq!(
                a,
                b,
                "{} changed owner, mode or ctime in the container",
                rel.display()
            );
            unchanged += 1;
        }
    }
    assert!(unchanged > 30, "only {unchanged} files compared");

    // 9. cm-verify agrees that the project is ready, against the image's own users
    let image_etc = work.path().join("image");
    fs::create_dir_all(image_etc.join("etc")).unwrap();
    for f in ["passwd", "group"] {
        let out = Command::new(DOCKER)
            .args(["cp", &format!("{CONTAINER}:/etc/{f}")])
            .arg(image_etc.join("etc").join(f))
            .output()
            .unwrap();
        ok(&out, "docker cp");
    }
    let out = Command::new(cm_tests::bin("cm-verify"))
        .args(["layout", "--project-dir"])
        .arg(&proj)
        .arg("--image-root")
        .arg(&image_etc)
        .arg("--compose")
        .arg(COMPOSE)
        .output()
        .unwrap();
    ok(&out, "cm-verify layout");

    // 10. certificate monitoring: a renewed certificate (a file behind the live link changes)
    //     reloads nginx, dovecot and postfix
    let environ_mode = exec_ok(&[CONTAINER, "stat", "-c", "%a %U", "/run/cm-env/environ"]);
    assert_eq!(
        environ_mode.trim(),
        "600 root",
        "the saved environment must be private"
    );
    let state = "/run/cm-env/certmon.sha256";
    let mut recorded = false;
    for _ in 0..120 {
        if exec(&[CONTAINER, "test", "-s", state]).status.success() {
            recorded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let timer = exec(&[CONTAINER, "systemctl", "is-active", "cm-certmon.timer"]);
    assert!(
        recorded,
        "cm-certmon never ran (timer: {})",
        String::from_utf8_lossy(&timer.stdout).trim()
    );
    fs::write(
        data.join("chatmail-acme/certs/c1d2/fullchain"),
        format!("renewed fullchain of {DOMAIN}\n"),
    )
    .unwrap();
    let mut log = String::new();
    for _ in 0..120 {
        log = exec_ok(&[
            CONTAINER,
            "journalctl",
            "--no-pager",
            "-u",
            "cm-certmon.service",
        ]);
        if log.contains("changed: reloading") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(
        log.contains("changed: reloading"),
        "no reload after the certificate changed:\n{log}"
    );
    // every TLS user the README names is reloaded, not only nginx
    for unit in ["nginx.service", "dovecot.service", "postfix.service"] {
        let mut reloaded = String::new();
        for _ in 0..120 {
            reloaded = exec_ok(&[CONTAINER, "journalctl", "--no-pager", "-u", unit]);
            if reloaded.contains("Reloaded") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        assert!(
            reloaded.contains("Reloaded"),
            "{unit} was not reloaded after the certificate changed:\n{reloaded}"
        );
    }

    // 11. start-up switches: without FORCE_REINIT_INI_FILE a hand edit of chatmail.ini
    //     survives a start; with it (and DEBUG_COMMANDS_ENABLED) the ini is generated anew and
    //     the .env settings applied again
    let ini_path = "/opt/chatmail/chatmail.ini";
    let start = "/usr/local/lib/cm-docker/cm-start.sh";
    exec_ok(&[
        CONTAINER,
        "sh",
        "-c",
        &format!("echo 'max_imap_connections = 7' >> {ini_path}"),
    ]);
    exec_ok(&[CONTAINER, start]);
    let kept = exec_ok(&[CONTAINER, "cat", ini_path]);
    assert!(
        kept.contains("max_imap_connections = 7"),
        "hand edit lost:\n{kept}"
    );
    exec_ok(&[
        CONTAINER,
        "sh",
        "-c",
        "cp /run/cm-env/environ /tmp/env2 && printf 'FORCE_REINIT_INI_FILE=true\\0DEBUG_COMMANDS_ENABLED=true\\0' >>/tmp/env2",
    ]);
    let out = exec(&[CONTAINER, "env", "CM_ENVIRON=/tmp/env2", start]);
    let shown = ok(&out, "cm-start.sh with FORCE_REINIT_INI_FILE");
    assert!(
        shown.contains("[params]"),
        "DEBUG_COMMANDS_ENABLED printed no ini:\n{shown}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("+ "),
        "DEBUG_COMMANDS_ENABLED did not trace"
    );
    let fresh = exec_ok(&[CONTAINER, "cat", ini_path]);
    assert!(
        !fresh.contains("max_imap_connections"),
        "not regenerated:\n{fresh}"
    );
    // after the reinit, the regenerated ini still means what the old host's meant
    assert_ini_means_the_same(ini_path, &host_ini);

    // 12. the relay stage's path of cm-start.sh (cmdeploy init, settings onto its template,
    //     cmdeploy run with the stages), with a stand-in for cmdeploy: the real one needs the
    //     internet to be installed
    let standin = fs::read(repo.join("tests/data/docker/cmdeploy-standin.sh")).unwrap();
    fs::write(work.path().join("cmdeploy"), standin).unwrap();
    exec_ok(&[CONTAINER, "mkdir", "-p", "/opt/cmdeploy/bin"]);
    let out = Command::new(DOCKER)
        .args(["cp"])
        .arg(work.path().join("cmdeploy"))
        .arg(format!("{CONTAINER}:/opt/cmdeploy/bin/cmdeploy"))
        .output()
        .unwrap();
    ok(&out, "docker cp cmdeploy stand-in");
    exec_ok(&[CONTAINER, "chmod", "0755", "/opt/cmdeploy/bin/cmdeploy"]);
    exec_ok(&[CONTAINER, "env", "CM_ENVIRON=/tmp/env2", start]);
    let calls = exec_ok(&[CONTAINER, "cat", "/tmp/cmdeploy.log"]);
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(
        calls,
        [
            format!("cmdeploy init --config {ini_path} --force {DOMAIN} CMDEPLOY_STAGES= CHATMAIL_INI="),
            format!("cmdeploy run --config {ini_path} --ssh-host @local CMDEPLOY_STAGES=configure,activate CHATMAIL_INI={ini_path}"),
        ],
    );
    let kind = exec_ok(&[CONTAINER, "stat", "-c", "%F", ini_path]);
    assert_eq!(kind.trim(), "regular file", "{ini_path} must stay a file");
    let text = exec_ok(&[CONTAINER, "cat", ini_path]);
    // commented-out template lines were set in place, next to their documentation
    assert!(
        text.contains("# maximum mailbox size of a chatmail address\nmax_mailbox_size = 2G\n"),
        "{text}"
    );
    assert!(
        text.contains("# deactivate IPv6\ndisable_ipv6 = True\n"),
        "{text}"
    );
    // the templated ini means what the old host's meant
    assert_ini_means_the_same(ini_path, &host_ini);

    drop(project);
}
