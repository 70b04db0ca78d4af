//! cm-verify against what cm-copy-data produces: the copy of the full test tree verifies
//! clean against its source (`tree`) and against the manifest cm-copy-data wrote beside it
//! (`manifest check`), with and without an owner map (owners and ACL entries mapped).

mod verify_support;

use std::fs;
use std::path::Path;
use std::process::Command;

use verify_support::*;

fn copy_data(src: &Path, dst: &Path, project: &Path, extra: &[&str]) {
    let map = format!("{}={}", src.display(), dst.display());
    let out = Command::new(cm_tests::bin("cm-copy-data"))
        .args([
            "--map",
            &map,
            "--project-dir",
            project.to_str().unwrap(),
            "--quiet",
        ])
        .args(extra)
        .output()
        .expect("run cm-copy-data");
    assert!(
        out.status.success(),
        "cm-copy-data failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_cm_copy_data_copy_verifies_against_source_and_manifest() {
    let t = scratch();
    let src = t.path().join("src");
    build_source(&src);
    let project = t.path().join("project");
    let dst = project.join("data/chatmail");
    copy_data(&src, &dst, &project, &[]);
    let manifest = project.join("data/.cm-manifest/chatmail.manifest");
    assert!(
        manifest.is_file(),
        "cm-copy-data wrote no manifest at {}",
        manifest.display()
    );

    let (code, diffs, v) = tree_json(&src, &dst, &[]);
    assert_eq!((code, diffs), (0, vec![]), "{v:#}");
    assert_eq!(v["stats"]["files_compared"], 9, "{v}");
    let (code, diffs, v) = manifest_check_json(&manifest, &dst, &[]);
    assert_eq!((code, diffs), (0, vec![]), "{v:#}");

    // A planted difference shows against both.
    plant(&dst, |d| {
        let f = p(d, BIG);
        keeping_mtime(&f, || {
            let mut b = fs::read(&f).unwrap();
            b[99] ^= 0x10;
            fs::write(&f, &b).unwrap();
        });
    });
    let want = vec![("content".to_string(), BIG.to_string())];
    assert_eq!(tree_json(&src, &dst, &[]).1, want);
    assert_eq!(manifest_check_json(&manifest, &dst, &[]).1, want);
}

#[test]
fn owner_mapped_copy_verifies_with_the_same_map() {
    let t = scratch();
    let src = t.path().join("src");
    build_source(&src);
    let project = t.path().join("project");
    let dst = project.join("data/chatmail");
    let map = t.path().join("owners");
    // vmail 5000 -> 999:998, and the uid 5001 named in the ACLs -> 777
    fs::write(&map, "5000:5000=999:998\n5001:5001=777:777\n").unwrap();
    copy_data(
        &src,
        &dst,
        &project,
        &["--owner-map", map.to_str().unwrap()],
    );
    let m = map.to_str().unwrap();

    let (code, diffs, v) = tree_json(&src, &dst, &["--owner-map", m]);
    assert_eq!((code, diffs), (0, vec![]), "{v:#}");
    // Without the map: owners differ, and so do the ACLs naming 5001.
    let (code, diffs, _) = tree_json(&src, &dst, &[]);
    assert_eq!(code, 1);
    assert!(
        diffs.contains(&("owner".into(), PASSWORD.into())),
        "{diffs:?}"
    );
    assert!(
        diffs.contains(&("xattr".into(), XATTR_FILE.into())),
        "{diffs:?}"
    );
    assert!(
        diffs.contains(&("xattr".into(), ACL_DIR.into())),
        "{diffs:?}"
    );
    // The manifest records the copy as written (ids already mapped).
    let manifest = project.join("data/.cm-manifest/chatmail.manifest");
    let (code, diffs, v) = manifest_check_json(&manifest, &dst, &[]);
    assert_eq!((code, diffs), (0, vec![]), "{v:#}");
}
