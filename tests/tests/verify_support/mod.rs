//! Shared by the verify_* tests: a source tree with every kind of entry the issue names,
//! built with real tools (chown, chmod, mknod, setfattr, setfacl, touch), copied with rsync,
//! and a way to run cm-verify and read its JSON.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const MSG: &str =
    "vmail/mail/example.org/alice@example.org/cur/1700000000.M1P1.host,S=40,W=41:2,S";
pub const MSG_LINK: &str =
    "vmail/mail/example.org/bob@example.org/cur/1700000000.M1P1.host,S=40,W=41:2,S";
pub const BIG: &str =
    "vmail/mail/example.org/alice@example.org/cur/1700000100.M2P1.host,S=3000000:2,";
pub const PASSWORD: &str = "vmail/mail/example.org/alice@example.org/password";
pub const SETUID: &str = "bin/helper";
pub const LIVE: &str = "acme/live/example.org";
pub const FIFO: &str = "spool/fifo";
pub const DEV: &str = "dev/null-like";
pub const XATTR_FILE: &str = "dkim/opendkim.private";
pub const ACL_DIR: &str = "shared";
pub const NEWLINE: &[u8] = b"odd/new\nline";
pub const NONUTF8: &[u8] = b"odd/caf\xe9 \"q\"";

pub fn must_be_root() {
    // SAFETY-free check: compare our uid via /proc.
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert!(
        uid_line.split_whitespace().nth(1) == Some("0"),
        "these tests chown, mknod and set trusted/ACL attributes: run them as root (as CI does)"
    );
}

pub fn tool(cmd: &str, args: &[&OsStr]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}; run .ci/install-deps"));
    assert!(
        out.status.success(),
        "{cmd} {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sh(cmd: &str, args: &[&str]) {
    let a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    tool(cmd, &a);
}

pub fn p(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

pub fn pb(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

fn write(root: &Path, rel: &Path, data: &[u8], mode: u32, uid: u32) {
    let f = root.join(rel);
    fs::create_dir_all(f.parent().unwrap()).unwrap();
    fs::write(&f, data).unwrap();
    // chown before chmod: chown clears setuid/setgid.
    lchown(&f, Some(uid), Some(uid)).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
}

/// Set an entry's own mtime and atime (nanoseconds) with `touch -h`.
pub fn set_times(path: &Path, mtime: &str, atime: &str) {
    tool(
        "touch",
        &[
            OsStr::new("-h"),
            OsStr::new("-m"),
            OsStr::new("-d"),
            OsStr::new(&format!("@{mtime}")),
            path.as_os_str(),
        ],
    );
    tool(
        "touch",
        &[
            OsStr::new("-h"),
            OsStr::new("-a"),
            OsStr::new("-d"),
            OsStr::new(&format!("@{atime}")),
            path.as_os_str(),
        ],
    );
}

/// A scratch directory on the same file system as the build (a real disk file system with
/// xattrs and ACLs, not a tmpfs).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("verify-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir in CARGO_TARGET_TMPDIR")
}

/// Build the source tree: maildir with a hard-linked message, a multi-MB file, setuid,
/// setgid and sticky modes, owners 5000 and 0, relative/absolute/dangling/looping symlinks,
/// a FIFO, a char device, names with a newline and non-UTF-8 bytes, a user xattr, an access
/// ACL and a default ACL, distinct nanosecond times everywhere.
pub fn build_source(root: &Path) {
    must_be_root();
    fs::create_dir_all(root).unwrap();
    let v = 5000;
    let body: Vec<u8> = (0..40u8).collect();
    write(root, Path::new(MSG), &body, 0o600, v);
    fs::create_dir_all(p(root, MSG_LINK).parent().unwrap()).unwrap();
    fs::hard_link(p(root, MSG), p(root, MSG_LINK)).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(root, Path::new(BIG), &big, 0o600, v);
    write(
        root,
        Path::new(PASSWORD),
        b"{SHA512-CRYPT}$6$abc\n",
        0o600,
        v,
    );
    for d in ["new", "tmp"] {
        fs::create_dir_all(p(
            root,
            &format!("vmail/mail/example.org/alice@example.org/{d}"),
        ))
        .unwrap();
    }
    write(root, Path::new(SETUID), b"#!/bin/sh\n", 0o4755, 0);
    write(
        root,
        Path::new(XATTR_FILE),
        b"-----BEGIN PRIVATE KEY-----\n",
        0o600,
        110,
    );
    sh(
        "setfattr",
        &[
            "-n",
            "user.origin",
            "-v",
            "old-host",
            p(root, XATTR_FILE).to_str().unwrap(),
        ],
    );
    sh(
        "setfacl",
        &["-m", "u:5001:r", p(root, XATTR_FILE).to_str().unwrap()],
    );
    fs::create_dir_all(p(root, ACL_DIR)).unwrap();
    sh(
        "setfacl",
        &["-d", "-m", "u:5001:rwx", p(root, ACL_DIR).to_str().unwrap()],
    );
    fs::create_dir_all(p(root, "acme/certs/abc")).unwrap();
    write(
        root,
        Path::new("acme/certs/abc/fullchain"),
        b"CERT\n",
        0o644,
        0,
    );
    fs::create_dir_all(p(root, "acme/live")).unwrap();
    symlink("../certs/abc", p(root, LIVE)).unwrap();
    symlink("/etc/passwd", p(root, "acme/absolute")).unwrap();
    symlink("nowhere/at/all", p(root, "acme/dangling")).unwrap();
    symlink("loop", p(root, "acme/loop")).unwrap();
    lchown(p(root, "acme/dangling"), Some(v), Some(v)).unwrap();
    fs::create_dir_all(p(root, "spool")).unwrap();
    sh("mkfifo", &["-m", "0620", p(root, FIFO).to_str().unwrap()]);
    fs::create_dir_all(p(root, "dev")).unwrap();
    sh(
        "mknod",
        &["-m", "0666", p(root, DEV).to_str().unwrap(), "c", "1", "3"],
    );
    write(root, Path::new(OsStr::from_bytes(NEWLINE)), b"n", 0o640, v);
    write(root, Path::new(OsStr::from_bytes(NONUTF8)), b"c", 0o640, v);
    fs::create_dir_all(p(root, "sticky")).unwrap();
    fs::set_permissions(p(root, "sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(p(root, "shared"), fs::Permissions::from_mode(0o2770)).unwrap();
    for d in ["vmail", "vmail/mail", "vmail/mail/example.org"] {
        lchown(p(root, d), Some(v), Some(v)).unwrap();
        fs::set_permissions(p(root, d), fs::Permissions::from_mode(0o700)).unwrap();
    }
    // Distinct nanosecond times on every entry, deepest first (so directory times stick).
    let snap = cm_core::tree::walk(root, &cm_core::tree::ScanOptions::default(), &()).unwrap();
    for (i, e) in snap.entries.iter().enumerate().rev() {
        let path = cm_core::tree::abs_path(root, &e.path);
        set_times(
            &path,
            &format!(
                "{}.{:09}",
                1_700_000_000 + i as i64 * 3600,
                123_456_789 - i as u32
            ),
            &format!("{}.{:09}", 1_700_100_000 + i as i64, 987_654_321 - i as u32),
        );
    }
}

/// Copy with rsync, preserving everything (the reference copy).
pub fn rsync_copy(src: &Path, dst: &Path) {
    let s = format!("{}/", src.display());
    let d = format!("{}/", dst.display());
    sh("rsync", &["-aHAX", "--numeric-ids", &s, &d]);
}

/// The test tree built under `dir`/src ([`build_source`]) and its rsync copy in `dir`/dst.
pub fn source_and_copy(dir: &Path) -> (PathBuf, PathBuf) {
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    build_source(&src);
    rsync_copy(&src, &dst);
    (src, dst)
}

/// Run cm-verify with arguments, return (exit code, stdout, stderr).
pub fn verify(args: &[&OsStr]) -> (i32, String, String) {
    let out: Output = Command::new(cm_tests::bin("cm-verify"))
        .args(args)
        .output()
        .expect("spawn cm-verify");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `cm-verify HEAD... --json [extra]`: exit code, the (kind, path) list and the JSON.
pub fn verify_json(
    head: &[&OsStr],
    extra: &[&str],
) -> (i32, Vec<(String, String)>, serde_json::Value) {
    let mut args: Vec<&OsStr> = head.to_vec();
    args.push(OsStr::new("--json"));
    args.extend(extra.iter().map(OsStr::new));
    let (code, out, err) = verify(&args);
    parse_json(code, &out, &err)
}

/// `cm-verify tree SRC DST --json [extra]`: exit code and the (kind, path) list.
pub fn tree_json(
    src: &Path,
    dst: &Path,
    extra: &[&str],
) -> (i32, Vec<(String, String)>, serde_json::Value) {
    verify_json(
        &[OsStr::new("tree"), src.as_os_str(), dst.as_os_str()],
        extra,
    )
}

/// `cm-verify manifest check FILE DST --json [extra]`: exit code and the (kind, path) list.
pub fn manifest_check_json(
    file: &Path,
    dst: &Path,
    extra: &[&str],
) -> (i32, Vec<(String, String)>, serde_json::Value) {
    verify_json(
        &[
            OsStr::new("manifest"),
            OsStr::new("check"),
            file.as_os_str(),
            dst.as_os_str(),
        ],
        extra,
    )
}

pub fn parse_json(
    code: i32,
    out: &str,
    err: &str,
) -> (i32, Vec<(String, String)>, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| {
        panic!("cm-verify did not print JSON ({e}); exit {code}\nstdout: {out}\nstderr: {err}")
    });
    let list = v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {v}"))
        .iter()
        .map(|d| {
            (
                d["check"].as_str().unwrap().to_string(),
                d["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, list, v)
}

/// The JSON spelling of a relative path.
pub fn jp(rel: &[u8]) -> String {
    cm_core::quote::json_path(Path::new(OsStr::from_bytes(rel)))
}

/// Run `f` on the copy, then put back the mtimes of every directory of the copy, so that a
/// planted change shows only as itself (not as a changed parent directory).
pub fn plant(dst: &Path, f: impl FnOnce(&Path)) {
    let before = cm_core::tree::walk(dst, &cm_core::tree::ScanOptions::default(), &()).unwrap();
    f(dst);
    for e in before.entries.iter().rev() {
        if e.kind == cm_core::tree::FileType::Dir {
            let path = cm_core::tree::abs_path(dst, &e.path);
            if path.is_dir() {
                set_times(&path, &e.mtime.to_string(), &e.atime.to_string());
            }
        }
    }
}

/// Keep an entry's mtime while `f` changes it.
pub fn keeping_mtime(path: &Path, f: impl FnOnce()) {
    let md = fs::symlink_metadata(path).unwrap();
    use std::os::unix::fs::MetadataExt;
    let m = format!("{}.{:09}", md.mtime(), md.mtime_nsec());
    let a = format!("{}.{:09}", md.atime(), md.atime_nsec());
    f();
    set_times(path, &m, &a);
}

// The planted differences: each changes the copy in one way only.

pub type Planter = fn(&Path);

fn flip_byte(d: &Path) {
    let f = p(d, BIG);
    keeping_mtime(&f, || {
        let mut b = fs::read(&f).unwrap();
        b[1_500_000] ^= 0x01;
        fs::write(&f, &b).unwrap();
    });
}

fn split_link(d: &Path) {
    let f = p(d, MSG_LINK);
    let tmp = f.with_extension("split");
    sh("cp", &["-a", f.to_str().unwrap(), tmp.to_str().unwrap()]);
    fs::rename(&tmp, &f).unwrap();
}

fn retarget(d: &Path) {
    let f = p(d, LIVE);
    keeping_mtime(&f, || {
        fs::remove_file(&f).unwrap();
        symlink("../certs/xyz", &f).unwrap();
    });
}

fn lose_xattr(d: &Path) {
    sh(
        "setfattr",
        &["-x", "user.origin", p(d, XATTR_FILE).to_str().unwrap()],
    );
}

fn lose_default_acl(d: &Path) {
    sh("setfacl", &["-k", p(d, ACL_DIR).to_str().unwrap()]);
}

fn chmod_password(d: &Path) {
    fs::set_permissions(p(d, PASSWORD), fs::Permissions::from_mode(0o644)).unwrap();
}

fn lose_setuid(d: &Path) {
    fs::set_permissions(p(d, SETUID), fs::Permissions::from_mode(0o755)).unwrap();
}

fn chown_password(d: &Path) {
    std::os::unix::fs::lchown(p(d, PASSWORD), Some(5001), None).unwrap();
}

fn remove_nonutf8(d: &Path) {
    fs::remove_file(pb(d, NONUTF8)).unwrap();
}

fn add_extra(d: &Path) {
    fs::write(p(d, "vmail/extra"), b"x").unwrap();
}

fn fifo_to_file(d: &Path) {
    let f = p(d, FIFO);
    keeping_mtime(&f, || {
        fs::remove_file(&f).unwrap();
        fs::write(&f, b"").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o620)).unwrap();
    });
}

fn truncate_password(d: &Path) {
    let f = p(d, PASSWORD);
    keeping_mtime(&f, || {
        let b = fs::read(&f).unwrap();
        fs::write(&f, &b[..5]).unwrap();
    });
}

fn touch_newline(d: &Path) {
    set_times(
        &pb(d, NEWLINE),
        "1800000000.000000001",
        "1800000000.000000001",
    );
}

fn other_device(d: &Path) {
    let f = p(d, DEV);
    keeping_mtime(&f, || {
        fs::remove_file(&f).unwrap();
        sh("mknod", &["-m", "0666", f.to_str().unwrap(), "c", "1", "5"]);
    });
}

fn remove_cert_dir(d: &Path) {
    fs::remove_dir_all(p(d, "acme/certs")).unwrap();
}

/// (name, planter, expected (kind, json path) list)
pub type Case = (&'static str, Planter, Vec<(&'static str, String)>);

pub fn cases() -> Vec<Case> {
    vec![
        (
            "byte flipped, size and mtime kept",
            flip_byte,
            vec![("content", BIG.into())],
        ),
        (
            "hard link split",
            split_link,
            vec![("hard_link", MSG.into())],
        ),
        (
            "symlink retargeted",
            retarget,
            vec![("symlink_target", LIVE.into())],
        ),
        ("xattr lost", lose_xattr, vec![("xattr", XATTR_FILE.into())]),
        (
            "default ACL lost",
            lose_default_acl,
            vec![("xattr", ACL_DIR.into())],
        ),
        (
            "mode changed",
            chmod_password,
            vec![("mode", PASSWORD.into())],
        ),
        ("setuid lost", lose_setuid, vec![("mode", SETUID.into())]),
        (
            "owner changed",
            chown_password,
            vec![("owner", PASSWORD.into())],
        ),
        (
            "file missing",
            remove_nonutf8,
            vec![("missing", jp(NONUTF8))],
        ),
        (
            "file extra",
            add_extra,
            vec![("extra", "vmail/extra".into())],
        ),
        ("type changed", fifo_to_file, vec![("type", FIFO.into())]),
        (
            "size changed",
            truncate_password,
            vec![("size", PASSWORD.into())],
        ),
        ("mtime changed", touch_newline, vec![("mtime", jp(NEWLINE))]),
        (
            "device number changed",
            other_device,
            vec![("rdev", DEV.into())],
        ),
        (
            "directory missing",
            remove_cert_dir,
            vec![
                ("missing", "acme/certs".into()),
                ("missing", "acme/certs/abc".into()),
                ("missing", "acme/certs/abc/fullchain".into()),
            ],
        ),
    ]
}

pub fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}
