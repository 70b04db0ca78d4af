//! cm-copy-data under faults: killed (SIGKILL) at random moments and run again until done;
//! a target file system without enough space; entries that cannot be read. Runs as root.

use cm_core::owners::OwnerMap;
use cm_core::tree::{self, CompareOptions};
use cm_tests::map_arg;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn copy_cmd() -> Command {
    Command::new(cm_tests::bin("cm-copy-data"))
}

fn run(mut c: Command) -> Output {
    cm_tests::run_logged(&format!("{c:?}"), &mut c)
}

fn assert_root() {
    assert!(
        std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false),
        "these tests must run as root (CI runs as root)"
    );
}

fn assert_same(src: &Path, dst: &Path) {
    let opts = CompareOptions {
        owner_map: OwnerMap::identity(),
        atime: false,
        jobs: 2,
        ..CompareOptions::default()
    };
    let (d, _) = tree::compare_trees(src, dst, &opts, &()).unwrap();
    assert!(d.is_empty(), "copy differs: {d:#?}");
}

/// A small maildir-like tree: `users` users with `per` messages each, some shared by hard
/// link, plus a few larger files.
fn mail_tree(root: &Path, users: usize, per: usize, big: usize) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for u in 0..users {
        let d = root.join(format!("vmail/mail/example.org/user{u}"));
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for m in 0..per {
            let len = 2000 + (next() % 30000) as usize;
            let body: Vec<u8> = (0..len).map(|i| (i as u64 ^ next()) as u8).collect();
            std::fs::write(d.join(format!("cur/{m}.M{u}P1.host:2,S")), body).unwrap();
        }
        if u > 0 {
            let first = root.join("vmail/mail/example.org/user0/cur/0.M0P1.host:2,S");
            std::fs::hard_link(first, d.join("cur/shared:2,S")).unwrap();
        }
        std::fs::write(d.join("password"), b"{SHA512-CRYPT}x").unwrap();
    }
    for b in 0..big {
        let body: Vec<u8> = (0..(3 << 20)).map(|_| next() as u8).collect();
        std::fs::write(root.join(format!("vmail/big{b}")), body).unwrap();
    }
}

/// Every regular file under its final name in `dst` must equal the source's: a killed run
/// may leave temporaries (`.cm-copy.*`) but never a short or wrong file under a real name.
fn assert_nothing_half_done(src: &Path, dst: &Path) {
    if !dst.exists() {
        return;
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dst.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(r);
            } else if ft.is_file() && !e.file_name().to_string_lossy().starts_with(".cm-copy.") {
                let a = std::fs::read(src.join(&r)).unwrap();
                let b = std::fs::read(dst.join(&r)).unwrap();
                assert!(
                    a == b,
                    "{} is under its final name but incomplete",
                    r.display()
                );
                let sm = std::fs::metadata(src.join(&r)).unwrap();
                let dm = std::fs::metadata(dst.join(&r)).unwrap();
                assert_eq!(
                    sm.mode(),
                    dm.mode(),
                    "{}: mode set before rename",
                    r.display()
                );
                assert_eq!(sm.mtime_nsec(), dm.mtime_nsec(), "{}: times", r.display());
            }
        }
    }
}

#[test]
fn killed_at_random_points_then_rerun_until_complete() {
    assert_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    mail_tree(&src, 40, 40, 4);
    let dst = t.path().join("data/chatmail");
    let m = map_arg(&src, &dst);
    // Pseudo-random delays (seeded from the clock: every CI run kills at other points).
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut kills = 0;
    for round in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(5 + seed % 250);
        let mut child = copy_cmd()
            .args(["--map", &m, "--quiet", "--jobs", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(st) => {
                eprintln!("round {round}: finished before the kill ({st})");
                assert!(st.success());
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                eprintln!("round {round}: killed after {delay:?}");
            }
        }
        assert_nothing_half_done(&src, &dst);
    }
    eprintln!("{kills} runs killed");
    let o = run({
        let mut c = copy_cmd();
        c.args(["--map", &m]);
        c
    });
    assert_eq!(o.status.code(), Some(0));
    assert_same(&src, &dst);
    let leftovers = Command::new("find")
        .arg(&dst)
        .args(["-name", ".cm-copy.*"])
        .output()
        .unwrap();
    assert!(
        leftovers.stdout.is_empty(),
        "temporaries left after the final run"
    );
    assert!(
        !cm_core::manifest::marker_path_for(&dst).exists(),
        "run marker removed"
    );
    // And the manifest of the final run describes the copy.
    let (d, _) = cm_core::manifest::check(
        &cm_core::manifest::path_for(&dst),
        &dst,
        &CompareOptions::default(),
        &(),
    )
    .unwrap();
    assert!(d.is_empty(), "{d:#?}");
}

/// After a kill: every entry under a final name in `dst` equals the source's in content and
/// full metadata (type, owner, mode, size, mtime, xattrs, symlink target); a directory may
/// still be private (0700) while its contents are not done. Returns (final files,
/// temporaries) seen.
fn assert_complete_or_absent(src: &Path, dst: &Path, why: &str) -> (usize, usize) {
    let (mut finals, mut temps) = (0, 0);
    if !dst.exists() {
        return (0, 0);
    }
    let o = Command::new("find")
        .arg(src)
        .args(["-type", "f", "-printf", "%m\\n"])
        .output()
        .unwrap();
    let modes: Vec<u32> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| u32::from_str_radix(l, 8).ok())
        .collect();
    let mut stack = vec![PathBuf::from(".")];
    while let Some(rel) = stack.pop() {
        let d = tree::Entry::read(&tree::abs_path(dst, &rel), rel.clone(), true, false).unwrap();
        let s = tree::Entry::read(&tree::abs_path(src, &rel), rel.clone(), true, false).unwrap();
        assert!(
            d.mode == s.mode || d.mode == 0o700,
            "{why}: directory {} has mode {:o}, neither the source's nor private",
            rel.display(),
            d.mode
        );
        for e in std::fs::read_dir(tree::abs_path(dst, &rel)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            let r = if rel == Path::new(".") {
                PathBuf::from(&name)
            } else {
                rel.join(&name)
            };
            if name.to_string_lossy().starts_with(".cm-copy.") {
                temps += 1;
                // Private while written; it takes the source's mode only once complete,
                // just before its rename.
                let m = e.metadata().unwrap().mode() & 0o7777;
                assert!(
                    m == 0o600 || modes.contains(&m),
                    "{why}: temporary {} has mode {m:o}",
                    r.display()
                );
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
                continue;
            }
            finals += 1;
            let x = tree::Entry::read(&src.join(&r), r.clone(), true, true).unwrap();
            let y = tree::Entry::read(&dst.join(&r), r.clone(), true, true).unwrap();
            assert_eq!(
                (x.kind, x.mode, x.uid, x.gid, x.size, x.mtime, &x.xattrs, &x.target, x.sha256),
                (y.kind, y.mode, y.uid, y.gid, y.size, y.mtime, &y.xattrs, &y.target, y.sha256),
                "{why}: {} is under its final name but differs from the source",
                r.display()
            );
        }
    }
    (finals, temps)
}

#[test]
fn killed_after_a_number_of_renames_then_rerun_replayably() {
    assert_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    mail_tree(&src, 30, 40, 2);
    // Attributes and odd modes, so a kill between data and metadata would show.
    let st = Command::new("sh")
        .arg("-c")
        .arg(
            "setfattr -n user.k -v v \"$1\"/vmail/mail/example.org/user3/cur/1.M3P1.host:2,S && \
             chmod 0640 \"$1\"/vmail/mail/example.org/user4/password && \
             chown -R 5000:5000 \"$1\"/vmail && chmod 0750 \"$1\"/vmail/mail",
        )
        .arg("x")
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let dst = t.path().join("data/chatmail");
    let m = map_arg(&src, &dst);
    // The seed comes from CM_KILL_SEED when given (to replay a failure), else the clock; it
    // is printed on failure.
    let seed0: u64 = std::env::var("CM_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut seed = seed0 | 1;
    let (mut both, mut kills) = (0, 0);
    for round in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let after = 1 + seed % 400;
        let why = format!("CM_KILL_SEED={seed0} round {round} (killed after {after} renames)");
        let st = copy_cmd()
            .args(["--map", &m, "--quiet", "--jobs", "4"])
            .env("CM_COPY_TEST_KILL_AFTER_RENAMES", after.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        if st.signal() == Some(9) {
            kills += 1;
        } else {
            assert!(st.success(), "{why}: {st}");
        }
        let (finals, temps) = assert_complete_or_absent(&src, &dst, &why);
        if finals > 0 && temps > 0 {
            both += 1;
        }
        // No manifest but a complete one: an interrupted run records nothing.
        let mp = cm_core::manifest::path_for(&dst);
        if mp.exists() {
            let snap = cm_core::manifest::read(&mp)
                .unwrap_or_else(|e| panic!("{why}: the manifest is not complete: {e}"));
            for e in &snap.entries {
                assert!(
                    std::fs::symlink_metadata(tree::abs_path(&dst, &e.path)).is_ok(),
                    "{why}: the manifest records {} which the copy lacks",
                    e.path.display()
                );
            }
        }
        eprintln!("{why}: {finals} final files, {temps} temporaries");
    }
    assert!(
        kills >= 3,
        "CM_KILL_SEED={seed0}: only {kills} runs were killed"
    );
    assert!(
        both >= 1,
        "CM_KILL_SEED={seed0}: no kill landed while files were being written (final files and temporaries together)"
    );
    let o = run({
        let mut c = copy_cmd();
        c.args(["--map", &m]);
        c
    });
    assert_eq!(o.status.code(), Some(0), "CM_KILL_SEED={seed0}");
    assert_same(&src, &dst);
    let leftovers = Command::new("find")
        .arg(&dst)
        .arg(dst.parent().unwrap().join(".cm-manifest"))
        .args(["-name", ".cm-copy.*", "-o", "-name", "*.cm-tmp.*"])
        .output()
        .unwrap();
    assert!(
        leftovers.stdout.is_empty(),
        "CM_KILL_SEED={seed0}: temporaries left after the final run: {}",
        String::from_utf8_lossy(&leftovers.stdout)
    );
    let (d, _) = cm_core::manifest::check(
        &cm_core::manifest::path_for(&dst),
        &dst,
        &CompareOptions::default(),
        &(),
    )
    .unwrap();
    assert!(d.is_empty(), "CM_KILL_SEED={seed0}: {d:#?}");
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs(PathBuf);
impl Tmpfs {
    fn new(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mount -t tmpfs failed (tests need root with CAP_SYS_ADMIN)"
        );
        Tmpfs(at)
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn small_target_is_refused_cleanly_and_rerun_after_freeing_space_completes() {
    assert_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    mail_tree(&src, 4, 10, 2); // about 6.5 MB
    let fs = Tmpfs::new(t.path().join("small"), "10m");
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![1u8; 6 << 20]).unwrap();
    let dst = fs.0.join("data/chatmail");
    let m = map_arg(&src, &dst);
    let o = run({
        let mut c = copy_cmd();
        c.args(["--map", &m]);
        c
    });
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not enough space") && err.contains("needs"),
        "{err}"
    );
    assert!(!dst.exists(), "nothing written when the space check fails");
    // --dry-run says the same, and exits 1 (the copy would not run).
    let o = run({
        let mut c = copy_cmd();
        c.args(["--map", &m, "--dry-run"]);
        c
    });
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("NOT OK: not enough space on "));

    std::fs::remove_file(&filler).unwrap();
    let o = run({
        let mut c = copy_cmd();
        c.args(["--map", &m]);
        c
    });
    assert_eq!(o.status.code(), Some(0));
    assert_same(&src, &dst);
}

#[test]
fn unreadable_entries_are_reported_and_nothing_beneath_them_is_removed() {
    assert_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("ok")).unwrap();
    std::fs::write(src.join("ok/file"), b"fine").unwrap();
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::write(src.join("locked/inside"), b"hidden").unwrap();
    std::fs::write(src.join("secret"), b"no read").unwrap();
    let dst = t.path().join("data/copy");
    let m = map_arg(&src, &dst);
    // First a complete copy.
    let o = run({
        let mut c = copy_cmd();
        c.args(["--map", &m]);
        c
    });
    assert_eq!(o.status.code(), Some(0));
    // Then make two entries unreadable for a process that is root without the capabilities
    // to bypass file permissions (as root, modes alone never stop a read).
    for p in ["secret", "locked"] {
        std::os::unix::fs::chown(src.join(p), Some(4321), Some(4321)).unwrap();
        std::fs::set_permissions(src.join(p), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    std::fs::write(src.join("ok/file"), b"changed").unwrap();
    let mut c = Command::new("setpriv");
    c.args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
        .arg(cm_tests::bin("cm-copy-data"))
        .args(["--map", &m]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1), "unreadable entries mean exit 1");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not copied"), "{err}");
    assert!(
        err.contains("/secret") && err.contains("Permission denied"),
        "the unreadable file is named with its cause: {err}"
    );
    assert!(
        err.contains("/locked"),
        "the unreadable directory is named: {err}"
    );
    // What could be read was copied; what could not was left as it was (not deleted).
    assert_eq!(std::fs::read(dst.join("ok/file")).unwrap(), b"changed");
    assert_eq!(std::fs::read(dst.join("locked/inside")).unwrap(), b"hidden");
}

#[test]
fn after_a_reboot_mid_copy_unrecorded_files_are_compared_by_content() {
    assert_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    mail_tree(&src, 3, 5, 0);
    let dst = t.path().join("data/chatmail");
    let m = map_arg(&src, &dst);
    let ok = |extra: &[&str]| {
        let mut c = copy_cmd();
        c.args(["--map", &m]).args(extra);
        run(c)
    };
    assert_eq!(ok(&[]).status.code(), Some(0));
    // Simulate a power loss during a later run: that run's manifest never got written, its
    // marker (holding another boot's id) stayed, and a file it renamed into place lost its
    // data although size and mtime look right.
    std::fs::remove_file(cm_core::manifest::path_for(&dst)).unwrap();
    let f = dst.join("vmail/mail/example.org/user1/cur/2.M1P1.host:2,S");
    let md = std::fs::metadata(&f).unwrap();
    std::fs::write(&f, vec![0u8; md.len() as usize]).unwrap();
    filetime::set_file_times(
        &f,
        filetime::FileTime::from_last_access_time(&md),
        filetime::FileTime::from_last_modification_time(&md),
    )
    .unwrap();
    std::fs::write(cm_core::manifest::marker_path_for(&dst), "another-boot\n").unwrap();
    let o = ok(&["--json"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("interrupted by a restart"));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["volumes"][0]["outcome"]["copied"], 1, "{j}");
    assert_same(&src, &dst);
    // Without the marker (a plain kill in the same boot) the metadata is trusted: the same
    // damage would only be found by --checksum, or cm-verify against the manifest.
    assert!(!cm_core::manifest::marker_path_for(&dst).exists());
}

#[test]
fn a_file_written_during_the_copy_is_retried_then_reported_never_recorded() {
    assert_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("vmail")).unwrap();
    std::fs::write(src.join("vmail/quiet"), b"still").unwrap();
    let busy = src.join("vmail/dovecot.index.log");
    std::fs::write(&busy, vec![b'x'; 8 << 20]).unwrap();
    let dst = t.path().join("data/chatmail");
    let m = map_arg(&src, &dst);
    // A writer appends to the file the whole time (as dovecot does to its logs).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (busy, stop) = (busy.clone(), stop.clone());
        move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(busy).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"y").unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    let o = run({
        let mut c = copy_cmd();
        c.args(["--map", &m]);
        c
    });
    let o_live = run({
        let mut c = copy_cmd();
        c.args(["--map", &m, "--live"]);
        c
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "a file that never holds still is an error"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dovecot.index.log") && err.contains("kept changing"),
        "{err}"
    );
    assert_eq!(o_live.status.code(), Some(0), "with --live it is a warning");
    assert!(String::from_utf8_lossy(&o_live.stderr).contains("kept changing"));
    assert!(
        !dst.join("vmail/dovecot.index.log").exists(),
        "never under its final name"
    );
    assert_eq!(std::fs::read(dst.join("vmail/quiet")).unwrap(), b"still");
    let snap = cm_core::manifest::read(&cm_core::manifest::path_for(&dst)).unwrap();
    assert!(
        snap.get(Path::new("vmail/dovecot.index.log")).is_none(),
        "not recorded"
    );
    assert!(snap.get(Path::new("vmail/quiet")).is_some());
    // Once it holds still, the next run copies it.
    let o = run({
        let mut c = copy_cmd();
        c.args(["--map", &m]);
        c
    });
    assert_eq!(o.status.code(), Some(0));
    assert_same(&src, &dst);
}
