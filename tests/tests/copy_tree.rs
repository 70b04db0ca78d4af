//! cm-copy-data end to end: a tree holding every kind of entry and metadata is copied and
//! compared entry by entry with the source (the same comparison also passes for
//! `rsync -aHAX --numeric-ids`, and fails for `cp -r`, so it can fail); delta runs copy only
//! what changed and remove what is gone; owners are mapped; the safety checks refuse.
//! Runs as root (CI is root): it creates device nodes, chowns and sets trusted.* xattrs.

use cm_core::owners::OwnerMap;
use cm_core::tree::{self, CompareOptions, DiffKind};
use cm_tests::map_arg;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn need_root() {
    assert!(
        nix_is_root(),
        "these tests must run as root (CI runs as root): they create device nodes and chown"
    );
    for tool in ["setfacl", "setfattr", "rsync"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "{tool} is missing: run .ci/install-deps");
    }
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Build the test tree (tests/harness/copy-tree.sh) at `dir`.
pub fn make_tree(dir: &Path) {
    let script = cm_tests::repo_root().join("tests/harness/copy-tree.sh");
    let o = Command::new("bash").arg(&script).arg(dir).output().unwrap();
    assert!(
        o.status.success(),
        "copy-tree.sh failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn copy(args: &[&str]) -> Output {
    cm_tests::run_logged(
        &format!("cm-copy-data {args:?}"),
        Command::new(cm_tests::bin("cm-copy-data")).args(args),
    )
}

/// Every difference between two trees, atime included, sockets left out (never copied).
/// A symlink's atime is the one thing no copier can hold still: every readlink() (by the
/// comparison's own walk too) moves it, on both sides, so it is left out.
fn diffs(src: &Path, dst: &Path, owners: OwnerMap) -> Vec<tree::Difference> {
    let opts = CompareOptions {
        owner_map: owners,
        atime: true,
        xattrs: true,
        content: true,
        jobs: 2,
        exclude: vec![PathBuf::from("sock")],
    };
    let (d, stats) = tree::compare_trees(src, dst, &opts, &()).unwrap();
    assert!(stats.files_hashed > 10, "the comparison looked at contents");
    d.into_iter()
        .filter(|x| {
            !(x.kind == DiffKind::Atime
                && std::fs::symlink_metadata(src.join(&x.path))
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false))
        })
        .collect()
}

fn assert_same(src: &Path, dst: &Path) {
    let d = diffs(src, dst, OwnerMap::identity());
    assert!(d.is_empty(), "copy differs from source: {d:#?}");
}

#[test]
fn copy_preserves_every_entry_and_rsync_passes_the_same_comparison() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let dst = t.path().join("project/data/copy");
    let o = copy(&["--map", &map_arg(&src, &dst), "--jobs", "3"]);
    assert_eq!(o.status.code(), Some(0));
    assert_same(&src, &dst);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("sock") && stderr.contains("socket"),
        "socket reported: {stderr}"
    );
    assert!(!dst.join("sock").exists(), "sockets are skipped");

    // Holes stay holes.
    let s = std::fs::metadata(src.join("sparse")).unwrap();
    let c = std::fs::metadata(dst.join("sparse")).unwrap();
    assert_eq!(c.len(), 8 << 20);
    assert!(
        c.blocks() <= s.blocks() + 16,
        "sparse: {} vs {} blocks",
        c.blocks(),
        s.blocks()
    );
    // One inode in the source, one in the copy.
    let a = std::fs::metadata(dst.join("vmail/mail/example.org/alice/cur/1.M1:2,S")).unwrap();
    let b = std::fs::metadata(dst.join("vmail/mail/example.org/bob/cur/1.M1:2,S")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 3));
    // No temporaries left, and the manifest matches the copy.
    let out = Command::new("find")
        .arg(&dst)
        .args(["-name", ".cm-copy.*"])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "leftover temporaries");
    let manifest = cm_core::manifest::path_for(&dst);
    let snap = cm_core::manifest::read(&manifest).unwrap();
    cm_tests::assert_manifest_describes(&dst);
    let key = snap.get(Path::new("keys/opendkim.private")).unwrap();
    assert_eq!((key.mode, key.uid, key.gid), (0o600, 123, 456));

    // The same comparison passes for rsync -aHAX --numeric-ids ...
    // (rsync compares mtimes to the second: a symlink the fixture made in the same second as
    // rsync's copy of it would seem up to date and keep the copy's own time, so the copy is
    // made in a later second)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = t.path().join("rsync");
    let st = Command::new("rsync")
        .args(["-aHAX", "--numeric-ids", "--atimes"])
        .arg(format!("{}/", src.display()))
        .arg(&r)
        .status()
        .unwrap();
    assert!(st.success());
    let d = diffs(&src, &r, OwnerMap::identity());
    // rsync sets a symlink's mtime but not its atime, and (with --atimes) a directory's atime
    // is changed again by its own later writes: only those may differ.
    assert!(
        d.iter().all(|x| x.kind == DiffKind::Atime),
        "rsync -aHAX: {d:#?}"
    );
    // ... and fails for cp -r, which keeps none of it (so the comparison can fail).
    let cpr = t.path().join("cpr");
    Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&cpr)
        .status()
        .unwrap();
    let d = diffs(&src, &cpr, OwnerMap::identity());
    for kind in [
        DiffKind::Mtime,
        DiffKind::Owner,
        DiffKind::HardLink,
        DiffKind::Xattr,
    ] {
        assert!(
            d.iter().any(|x| x.kind == kind),
            "cp -r must show {kind}: {d:#?}"
        );
    }
}

#[test]
fn delta_run_copies_only_changes_and_removes_what_is_gone() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let dst = t.path().join("data/copy");
    let m = map_arg(&src, &dst);
    assert_eq!(copy(&["--map", &m]).status.code(), Some(0));

    // Nothing changed: nothing copied.
    let o = copy(&["--map", &m, "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = &j["volumes"][0]["outcome"];
    assert_eq!(out["copied"], 0, "{j}");
    assert_eq!(out["deleted"], 0, "{j}");
    assert_same(&src, &dst);

    // Change, add, remove, retype, re-mode, re-own; a stale temporary and a stray file in
    // the copy; a new hard link to an existing inode.
    let mail = src.join("vmail/mail/example.org/alice");
    std::fs::write(mail.join("cur/2.big:2,S"), b"rewritten").unwrap();
    std::fs::write(mail.join("new/fresh"), b"new mail").unwrap();
    std::fs::remove_file(mail.join("password")).unwrap();
    std::fs::remove_dir_all(src.join("empty")).unwrap();
    std::fs::write(src.join("empty"), b"now a file").unwrap();
    Command::new("chmod")
        .args(["0640"])
        .arg(src.join("setgid"))
        .status()
        .unwrap();
    Command::new("chown")
        .args(["9:9"])
        .arg(src.join("xattrs"))
        .status()
        .unwrap();
    std::fs::hard_link(mail.join("cur/1.M1:2,S"), mail.join("cur/fourth")).unwrap();
    // An ACL changed (only the ctime moves): the copy must follow.
    let st = Command::new("setfacl")
        .args(["-m", "u:777:r"])
        .arg(src.join("acl-file"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(dst.join("vmail/.cm-copy.1.2.3.tmp"), b"half").unwrap();
    std::fs::write(dst.join("stray"), b"not in source").unwrap();
    // The source's parent dir mtimes changed: put them back as they were is not needed; the
    // copy must follow whatever the source has now.
    let o = copy(&["--map", &m, "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = &j["volumes"][0]["outcome"];
    let copied = out["copied"].as_u64().unwrap();
    // big, fresh, empty (now a file), setgid, xattrs, acl-file: 6, and nothing else.
    assert_eq!(copied, 6, "copied only the changes: {j}");
    // Removed: what the earlier run recorded and the source lost (password, the directory
    // `empty`); the leftover temporary is counted apart; the stray file, never written by
    // the suite, is moved aside beside the copy, not deleted.
    assert_eq!(out["deleted"], 2, "{j}");
    assert_eq!(out["leftovers"], 1, "{j}");
    assert_eq!(out["moved_aside"], 1, "{j}");
    assert_same(&src, &dst);
    assert!(!dst.join("stray").exists() && !dst.join("vmail/.cm-copy.1.2.3.tmp").exists());
    let aside = std::path::PathBuf::from(out["aside_dir"].as_str().unwrap());
    assert_eq!(aside.parent(), dst.parent());
    assert_eq!(
        std::fs::read(aside.join("stray")).unwrap(),
        b"not in source"
    );

    // --checksum finds a change that keeps size and mtime.
    let f = src.join("keys/opendkim.private");
    let before = std::fs::metadata(&f).unwrap();
    std::fs::write(&f, b"YEK\n").unwrap();
    let ft = filetime::FileTime::from_last_modification_time(&before);
    filetime::set_file_mtime(&f, ft).unwrap();
    let o = copy(&["--map", &m, "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j["volumes"][0]["outcome"]["copied"], 0,
        "metadata alone sees no change"
    );
    let o = copy(&["--map", &m, "--json", "--checksum"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["volumes"][0]["outcome"]["copied"], 1, "{j}");
    assert_same(&src, &dst);
    // The delta run's manifest records every file with its hash (hard-linked names too) and
    // matches the copy.
    let snap = cm_core::manifest::read(&cm_core::manifest::path_for(&dst)).unwrap();
    let files: Vec<_> = snap
        .entries
        .iter()
        .filter(|e| e.kind == tree::FileType::File)
        .collect();
    assert!(files.len() > 15 && files.iter().all(|e| e.sha256.is_some()));
    assert_eq!(snap.link_groups().values().map(|v| v.len()).max(), Some(4));
    cm_tests::assert_manifest_describes(&dst);
    assert_eq!(
        std::fs::read(dst.join("keys/opendkim.private")).unwrap(),
        b"YEK\n"
    );
}

#[test]
fn dry_run_plans_and_changes_nothing() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let dst = t.path().join("data/copy");
    let o = copy(&["--map", &map_arg(&src, &dst), "--dry-run"]);
    assert_eq!(o.status.code(), Some(0));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("dry run") && s.contains("would copy"), "{s}");
    assert!(s.contains("space ok"), "{s}");
    assert!(!dst.exists(), "dry run created the target");
    assert!(!t.path().join("data/.cm-manifest").exists());
    let o = copy(&["--map", &map_arg(&src, &dst), "--dry-run", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        j["volumes"][0]["plan"]["copy"].as_u64().unwrap() > 40,
        "{j}"
    );
    assert!(
        j["volumes"][0]["plan"]["copy_bytes"].as_u64().unwrap() > 8 << 20,
        "{j}"
    );
}

#[test]
fn owner_map_maps_owners_and_acl_ids() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let map = t.path().join("owners");
    std::fs::write(&map, "5000:5000=999:998\n1234:2345=42:43\n").unwrap();
    let dst = t.path().join("data/copy");
    let o = copy(&[
        "--map",
        &map_arg(&src, &dst),
        "--owner-map",
        map.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let md = std::fs::metadata(dst.join("vmail/mail/example.org/alice")).unwrap();
    assert_eq!((md.uid(), md.gid()), (999, 998));
    let acl = Command::new("getfacl")
        .args(["-n", "-p"])
        .arg(dst.join("acl-file"))
        .output()
        .unwrap();
    let acl = String::from_utf8_lossy(&acl.stdout);
    assert!(
        acl.contains("user:42:rw-") && acl.contains("group:43:r--"),
        "{acl}"
    );
    // A second run with the same map finds nothing to do (owners and ACLs compare mapped).
    let o = copy(&[
        "--map",
        &map_arg(&src, &dst),
        "--owner-map",
        map.to_str().unwrap(),
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["volumes"][0]["outcome"]["copied"], 0, "{j}");
    let owners = OwnerMap::load(&map, Path::new("/")).unwrap();
    let d = diffs(&src, &dst, owners);
    // The comparison maps owners, ACL entries included, as the copy did: nothing differs.
    assert!(d.is_empty(), "{d:#?}");
    // Without the map, owners and ACLs differ (the comparison can see it).
    let d = diffs(&src, &dst, OwnerMap::identity());
    assert!(d.iter().any(|x| x.kind == DiffKind::Owner), "{d:#?}");
    assert!(
        d.iter()
            .any(|x| x.kind == DiffKind::Xattr && x.path.ends_with("acl-file")),
        "{d:#?}"
    );
}

#[test]
fn overlapping_trees_and_bad_usage_are_refused() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    let o = copy(&["--map", &map_arg(&src, &src.join("a/copy"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the source"));
    let o = copy(&["--map", &map_arg(&src.join("a"), &src)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the target"));
    assert_eq!(copy(&["--only", "nope"]).status.code(), Some(2));
    assert_eq!(copy(&["--map", "x"]).status.code(), Some(2));
    let o = copy(&[
        "--map",
        &map_arg(&t.path().join("missing"), &t.path().join("d")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
}

#[test]
fn a_symlink_in_the_target_does_not_redirect_writes() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("vmail/sub")).unwrap();
    std::fs::write(src.join("vmail/sub/file"), b"data").unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let dst = t.path().join("data/copy");
    assert_eq!(
        copy(&["--map", &map_arg(&src, &dst)]).status.code(),
        Some(0)
    );
    // A container user planted a symlink where a directory of the copy goes.
    std::fs::remove_dir_all(dst.join("vmail/sub")).unwrap();
    std::os::unix::fs::symlink(&outside, dst.join("vmail/sub")).unwrap();
    let o = copy(&["--map", &map_arg(&src, &dst)]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside"
    );
    assert!(std::fs::symlink_metadata(dst.join("vmail/sub"))
        .unwrap()
        .is_dir());
    assert_eq!(std::fs::read(dst.join("vmail/sub/file")).unwrap(), b"data");
    // A target that is itself a symlink is refused.
    let dst2 = t.path().join("data/link");
    std::os::unix::fs::symlink(&outside, &dst2).unwrap();
    let o = copy(&["--map", &map_arg(&src, &dst2)]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn default_plan_uses_root_and_project_dir_and_skips_missing_optional_volumes() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("oldhost");
    std::fs::create_dir_all(root.join("etc/dkimkeys")).unwrap();
    std::fs::write(root.join("etc/dkimkeys/opendkim.private"), b"k").unwrap();
    std::fs::create_dir_all(root.join("home/vmail")).unwrap();
    let proj = t.path().join("proj");
    std::fs::create_dir(&proj).unwrap();
    // a directory without a compose file is refused unless the guide's layout is asked for
    let o = copy(&[
        "--root",
        root.to_str().unwrap(),
        "--project-dir",
        proj.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no compose file"));
    let o = copy(&[
        "--root",
        root.to_str().unwrap(),
        "--project-dir",
        proj.to_str().unwrap(),
        "--layout",
        "guide",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not checking whether chatmail services"));
    assert!(proj
        .join("data/chatmail-dkimkeys/opendkim.private")
        .exists());
    assert!(proj.join("data/chatmail/vmail").is_dir());
    assert!(!proj.join("data/chatmail-acme").exists());
    assert!(String::from_utf8_lossy(&o.stdout).contains("acme: skipped"));
    assert!(proj.join("data/.cm-manifest/chatmail.manifest").exists());
    // --only picks volumes.
    std::fs::write(root.join("home/vmail/x"), b"x").unwrap();
    let o = copy(&[
        "--root",
        root.to_str().unwrap(),
        "--project-dir",
        proj.to_str().unwrap(),
        "--layout",
        "guide",
        "--only",
        "dkim",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!proj.join("data/chatmail/vmail/x").exists());
}

#[test]
fn paths_longer_than_path_max_are_copied() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let dst = t.path().join("data/copy");
    std::fs::create_dir(&src).unwrap();
    // 20 levels of 250-byte names: about 5,000 bytes, beyond PATH_MAX (4,096). Built and read
    // with cd (path-based tools, rsync included, cannot reach it).
    let script = r#"
        set -e
        cd "$1"
        n=$(printf 'd%.0s' $(seq 1 250))
        for i in $(seq 1 20); do mkdir -m 0750 "$n$i"; cd "$n$i"; done
        printf 'deep data' > file
        chmod 0640 file
        touch -d '2022-03-04 05:06:07.123456789' file
    "#;
    let st = Command::new("bash")
        .args(["-c", script, "x"])
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let o = copy(&["--map", &map_arg(&src, &dst)]);
    assert_eq!(o.status.code(), Some(0));
    let read = r#"
        set -e
        cd "$1"
        n=$(printf 'd%.0s' $(seq 1 250))
        for i in $(seq 1 20); do cd "$n$i"; done
        stat -c '%a %y' . file
        cat file
    "#;
    let look = |root: &Path| {
        let o = Command::new("bash")
            .args(["-c", read, "x"])
            .arg(root)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let (a, b) = (look(&src), look(&dst));
    assert!(
        b.ends_with("deep data") && b.contains("640 2022-03-04 05:06:07.123456789"),
        "{b}"
    );
    assert_eq!(a, b);
    // The manifest lists it, and a second run has nothing to do.
    let o = copy(&["--map", &map_arg(&src, &dst), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["volumes"][0]["outcome"]["copied"], 0, "{j}");
}

#[test]
fn owner_map_names_the_old_host_lacks_are_skipped_with_a_warning() {
    need_root();
    let t = tempfile::tempdir().unwrap();
    // An old host whose passwd has vmail but no opendkim (an IPv4-only relay).
    let root = t.path().join("old");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nvmail:x:5000:5000::/home/vmail:/usr/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nvmail:x:5000:\n").unwrap();
    let src = t.path().join("src");
    make_tree(&src);
    let map = t.path().join("users");
    std::fs::write(&map, "vmail 901 901\nopendkim 902 902\n").unwrap();
    let dst = t.path().join("data/copy");
    let args = |quiet: bool| {
        let mut a = vec![
            "--root".to_string(),
            root.to_str().unwrap().to_string(),
            "--map".to_string(),
            map_arg(&src, &dst),
            "--owner-map".to_string(),
            map.to_str().unwrap().to_string(),
        ];
        if quiet {
            a.push("--quiet".into());
        }
        a
    };
    let a = args(false);
    let o = copy(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    // (The tree's socket draws a warning of its own.)
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("no user")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].starts_with("cm-copy-data: warning: ")
            && warnings[0].contains("users:2: no user \"opendkim\""),
        "{err}"
    );
    // The vmail line still maps.
    let md = std::fs::metadata(dst.join("vmail/mail/example.org/alice")).unwrap();
    assert_eq!((md.uid(), md.gid()), (901, 901));
    // --quiet: nothing on stderr.
    let a = args(true);
    let o = copy(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
}
