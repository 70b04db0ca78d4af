//! `cm-verify manifest write ROOT -o FILE` and `cm-verify manifest check FILE DST`: the same
//! comparison as `tree`, when the original is only known through its manifest.

mod verify_support;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use verify_support::*;

fn write_manifest(root: &Path, file: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("manifest"),
        OsStr::new("write"),
        root.as_os_str(),
        OsStr::new("-o"),
        file.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    verify(&args)
}

#[test]
fn manifest_of_the_source_checks_clean_against_a_copy() {
    let t = scratch();
    let (src, dst) = source_and_copy(t.path());
    let m = t.path().join("src.manifest");
    let (code, out, err) = write_manifest(&src, &m, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("wrote "), "{out}");
    assert!(out.contains(" 36 entries, 9 files ("), "{out}");
    let md = fs::metadata(&m).unwrap();
    assert_eq!(
        md.permissions().mode() & 0o777,
        0o600,
        "a manifest lists every mailbox: private"
    );
    let text = fs::read_to_string(&m).unwrap();
    assert!(text.starts_with("cm-manifest 2\n"));
    // Names with a newline stay on one line, escaped.
    assert!(
        text.contains("\nodd/new\\nline f 0640 5000 5000 1 "),
        "{text}"
    );
    assert!(text.contains("\nodd/caf\\xe9\\x20\"q\" f 0640 "), "{text}");
    assert!(
        text.contains("\nacme/live/example.org l 0777 0 0 12 "),
        "{text}"
    );
    assert!(text.contains("\ndev/null-like c:1:3 0666 0 0 0 "), "{text}");

    for tree in [&src, &dst] {
        let (code, diffs, v) = manifest_check_json(&m, tree, &[]);
        assert_eq!((code, diffs), (0, vec![]), "{v}");
        assert_eq!(v["stats"]["files_compared"], 9, "{v}");
    }
}

#[test]
fn manifest_check_reports_each_planted_difference() {
    let t = scratch();
    let src = t.path().join("src");
    build_source(&src);
    let m = t.path().join("src.manifest");
    assert_eq!(write_manifest(&src, &m, &[]).0, 0);
    let mut all = Vec::new();
    let together = t.path().join("together");
    rsync_copy(&src, &together);
    for (i, (name, planter, expected)) in cases().into_iter().enumerate() {
        let dst = t.path().join(format!("dst{i}"));
        rsync_copy(&src, &dst);
        plant(&dst, planter);
        let (code, diffs, v) = manifest_check_json(&m, &dst, &[]);
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, p)| (k.to_string(), p.clone()))
            .collect();
        assert_eq!(sorted(diffs), sorted(want.clone()), "case {name:?}: {v:#}");
        assert_eq!(code, 1, "case {name:?}");
        all.extend(want);
        fs::remove_dir_all(&dst).unwrap();
    }
    plant(&together, |d| {
        for (_, planter, _) in cases() {
            planter(d);
        }
    });
    let (code, diffs, v) = manifest_check_json(&m, &together, &[]);
    assert_eq!(sorted(diffs), sorted(all), "{v:#}");
    assert_eq!(code, 1);
}

#[test]
fn manifest_check_applies_the_owner_map() {
    let t = scratch();
    let (src, dst) = source_and_copy(t.path());
    let m = t.path().join("src.manifest");
    assert_eq!(write_manifest(&src, &m, &[]).0, 0);
    plant(&dst, |d| {
        std::os::unix::fs::lchown(p(d, PASSWORD), Some(999), Some(998)).unwrap();
    });
    let (code, diffs, _) = manifest_check_json(&m, &dst, &[]);
    assert_eq!((code, diffs), (1, vec![("owner".into(), PASSWORD.into())]));
    // Only the password file was re-owned: mapping 5000 makes every other vmail file differ.
    let map = t.path().join("owners");
    fs::write(&map, "5000:5000=999:998\n").unwrap();
    let (code, diffs, _) = manifest_check_json(&m, &dst, &["--owner-map", map.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(!diffs.contains(&("owner".into(), PASSWORD.into())));
    assert!(diffs.contains(&("owner".into(), MSG.into())));
}

#[test]
fn metadata_only_manifest_skips_content() {
    let t = scratch();
    let (src, dst) = source_and_copy(t.path());
    let m = t.path().join("meta.manifest");
    assert_eq!(write_manifest(&src, &m, &["--no-hash"]).0, 0);
    let text = fs::read_to_string(&m).unwrap();
    assert!(!text
        .lines()
        .skip(1)
        .any(|l| !l.starts_with('#') && !l.starts_with('@') && l.split(' ').nth(8) != Some("-")));
    plant(&dst, |d| {
        let f = p(d, BIG);
        keeping_mtime(&f, || {
            let mut b = fs::read(&f).unwrap();
            b[7] ^= 0xff;
            fs::write(&f, &b).unwrap();
        });
        fs::set_permissions(p(d, PASSWORD), fs::Permissions::from_mode(0o604)).unwrap();
    });
    let (code, diffs, v) = manifest_check_json(&m, &dst, &[]);
    assert_eq!(
        (code, diffs),
        (1, vec![("mode".into(), PASSWORD.into())]),
        "{v}"
    );
    assert_eq!(v["stats"]["files_compared"], 0);
}

#[test]
fn broken_manifests_exit_2_naming_file_and_line() {
    let t = scratch();
    let (src, dst) = source_and_copy(t.path());
    let m = t.path().join("src.manifest");
    assert_eq!(write_manifest(&src, &m, &[]).0, 0);
    let text = fs::read_to_string(&m).unwrap();
    let cases = [
        (
            "truncated.manifest",
            text[..text.len() - 20].to_string(),
            "truncated",
        ),
        (
            "escape.manifest",
            text.replacen("\nacme/live/example.org l", "\n../../etc/shadow l", 1),
            "relative",
        ),
        (
            "version.manifest",
            text.replacen("cm-manifest 2", "cm-manifest 9", 1),
            "not supported",
        ),
        // Cut at a line boundary: "truncated", not entries missing from the copy.
        (
            "cut.manifest",
            text[..text[..text.len() - 1].rfind('\n').unwrap() + 1]
                .lines()
                .take(20)
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
            "manifest truncated",
        ),
    ];
    for (name, body, msg) in cases {
        let f = t.path().join(name);
        fs::write(&f, body).unwrap();
        let (code, out, err) = verify(&[
            OsStr::new("manifest"),
            OsStr::new("check"),
            f.as_os_str(),
            dst.as_os_str(),
        ]);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(
            err.contains(&format!("{name}:")) && err.contains(msg),
            "{name}: {err}"
        );
    }
    // An existing manifest is never overwritten.
    let before = fs::read(&m).unwrap();
    let (code, _, err) = write_manifest(&dst, &m, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(fs::read(&m).unwrap(), before);
    // A manifest may not be written inside the tree it records.
    let (code, _, err) = write_manifest(&src, &src.join("vmail/m.manifest"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("inside the tree"), "{err}");
    assert!(!src.join("vmail/m.manifest").exists());
    let (code, _, err) = verify(&[
        OsStr::new("manifest"),
        OsStr::new("check"),
        t.path().join("absent").as_os_str(),
        dst.as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("absent"), "{err}");
}
