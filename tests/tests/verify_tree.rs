//! `cm-verify tree`: a clean rsync -aHAX copy passes; every kind of difference, planted one
//! at a time and all together, is reported with its path and nothing else is.

mod verify_support;

use std::ffi::OsStr;
use std::fs;

use verify_support::*;

#[test]
fn clean_rsync_copy_passes_and_source_is_untouched() {
    let t = scratch();
    let (src, dst) = source_and_copy(t.path());
    // atimes older than mtimes: with relatime, any read of a file or listing of a directory
    // without O_NOATIME would now update them.
    let snap = cm_core::tree::walk(&src, &Default::default(), &()).unwrap();
    for e in snap.entries.iter().rev() {
        let old = format!("{}.{:09}", e.mtime.sec - 100_000, e.mtime.nsec);
        set_times(
            &cm_core::tree::abs_path(&src, &e.path),
            &e.mtime.to_string(),
            &old,
        );
    }
    let before = cm_core::tree::walk(&src, &Default::default(), &()).unwrap();
    let (code, diffs, v) = tree_json(&src, &dst, &[]);
    assert_eq!(diffs, vec![], "{v}");
    assert_eq!(code, 0);
    assert_eq!(v["ok"], true);
    // Every file was compared by content (the hard-linked message counts twice).
    assert_eq!(v["stats"]["files_compared"], 9, "{v}");
    // Reading did not change a single atime (O_NOATIME) or anything else in the source.
    let after = cm_core::tree::walk(&src, &Default::default(), &()).unwrap();
    let opts = cm_core::tree::CompareOptions {
        atime: true,
        ..Default::default()
    };
    // Except a symlink's atime: the kernel updates it on every readlink (relatime rules),
    // and no flag avoids that.
    let changed: Vec<_> = cm_core::tree::compare(&before, &after, &opts)
        .into_iter()
        .filter(|d| {
            !(d.kind == cm_core::tree::DiffKind::Atime
                && before.get(&d.path).unwrap().kind == cm_core::tree::FileType::Symlink)
        })
        .collect();
    assert_eq!(changed, vec![], "cm-verify changed its source");
    // atime is compared only when asked: rsync -a does not carry it over.
    let (code, diffs, _) = tree_json(&src, &dst, &["--atime"]);
    assert_eq!(code, 1);
    assert!(diffs.iter().all(|(k, _)| k == "atime"), "{diffs:?}");
    assert!(
        diffs.contains(&("atime".into(), PASSWORD.into())),
        "{diffs:?}"
    );
    // The text report says so too.
    let (code, out, _) = verify(&[OsStr::new("tree"), src.as_os_str(), dst.as_os_str()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("OK: tree "), "{out}");
}

#[test]
fn each_difference_alone_is_reported_with_its_path() {
    let t = scratch();
    let src = t.path().join("src");
    build_source(&src);
    for (i, (name, planter, expected)) in cases().into_iter().enumerate() {
        let dst = t.path().join(format!("dst{i}"));
        rsync_copy(&src, &dst);
        plant(&dst, planter);
        let (code, diffs, v) = tree_json(&src, &dst, &[]);
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, p)| (k.to_string(), p.clone()))
            .collect();
        assert_eq!(sorted(diffs), sorted(want), "case {name:?}: {v:#}");
        assert_eq!(code, 1, "case {name:?}");
        assert_eq!(v["ok"], false);
        fs::remove_dir_all(&dst).unwrap();
    }
}

#[test]
fn all_differences_together_are_reported() {
    let t = scratch();
    let (src, dst) = source_and_copy(t.path());
    let mut want = Vec::new();
    plant(&dst, |d| {
        for (_, planter, expected) in cases() {
            planter(d);
            want.extend(expected.into_iter().map(|(k, p)| (k.to_string(), p)));
        }
    });
    let (code, diffs, v) = tree_json(&src, &dst, &[]);
    assert_eq!(sorted(diffs), sorted(want.clone()), "{v:#}");
    assert_eq!(code, 1);
    // Metadata only: everything but the flipped byte.
    let (_, diffs, _) = tree_json(&src, &dst, &["--no-content"]);
    let meta: Vec<_> = want
        .iter()
        .filter(|(k, _)| k != "content")
        .cloned()
        .collect();
    assert_eq!(sorted(diffs), sorted(meta));
    // Counts by kind add up.
    let total: u64 = v["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total as usize, v["findings"].as_array().unwrap().len());

    // The human report groups by kind, counts, and quotes odd names unambiguously.
    let (code, out, _) = verify(&[
        OsStr::new("tree"),
        src.as_os_str(),
        dst.as_os_str(),
        OsStr::new("--examples"),
        OsStr::new("2"),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("mtime differs (mtime): 1\n  \"odd/new\\nline\": expected "),
        "{out}"
    );
    assert!(out.contains("missing in the copy (missing): 4\n"), "{out}");
    assert!(
        out.contains("  ... and 2 more (--json lists all)\n"),
        "{out}"
    );
    let (_, out, _) = verify(&[OsStr::new("tree"), src.as_os_str(), dst.as_os_str()]);
    assert!(!out.contains("more (--json lists all)"), "{out}");
    assert!(
        out.contains("content differs (same size) (content): 1\n"),
        "{out}"
    );
    assert!(out.contains("\"odd/caf\\xe9 \\\"q\\\"\" (file)"), "{out}");
    assert!(
        out.lines().last().unwrap().starts_with("DIFFERENT: tree "),
        "{out}"
    );
    // --quiet prints nothing; the exit status tells.
    let (code, out, _) = verify(&[
        OsStr::new("tree"),
        src.as_os_str(),
        dst.as_os_str(),
        OsStr::new("--quiet"),
    ]);
    assert_eq!((code, out.as_str()), (1, ""));
}

#[test]
fn owner_map_maps_source_owners_before_comparing() {
    let t = scratch();
    let (src, dst) = source_and_copy(t.path());
    // The copy as cm-copy-data would make it for an image where vmail is 999:998.
    plant(&dst, |d| {
        let snap = cm_core::tree::walk(d, &Default::default(), &()).unwrap();
        for e in &snap.entries {
            if e.uid == 5000 {
                let path = cm_core::tree::abs_path(d, &e.path);
                std::os::unix::fs::lchown(&path, Some(999), Some(998)).unwrap();
            }
        }
    });
    let (code, diffs, _) = tree_json(&src, &dst, &[]);
    assert_eq!(code, 1);
    assert!(diffs.iter().all(|(k, _)| k == "owner"));
    assert!(diffs.contains(&("owner".into(), PASSWORD.into())));

    let numeric = t.path().join("numeric.map");
    fs::write(&numeric, "# vmail\n5000:5000=999:998\n").unwrap();
    let (code, diffs, v) = tree_json(&src, &dst, &["--owner-map", numeric.to_str().unwrap()]);
    assert_eq!((code, diffs), (0, vec![]), "{v}");

    // By name, resolved in the OLD host's /etc/passwd and /etc/group (--root).
    let old = t.path().join("oldroot");
    fs::create_dir_all(old.join("etc")).unwrap();
    fs::write(
        old.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nvmail:x:5000:5000::/home/vmail:/bin/false\n",
    )
    .unwrap();
    fs::write(old.join("etc/group"), "root:x:0:\nvmail:x:5000:\n").unwrap();
    let named = t.path().join("named.map");
    fs::write(&named, "vmail 999 998\n").unwrap();
    let (code, diffs, v) = tree_json(
        &src,
        &dst,
        &[
            "--owner-map",
            named.to_str().unwrap(),
            "--root",
            old.to_str().unwrap(),
        ],
    );
    assert_eq!((code, diffs), (0, vec![]), "{v}");

    // A name the old host lacks (an IPv4-only relay has no opendkim) owns nothing there: the
    // line is skipped with a warning naming file:line on stderr, and the rest still maps.
    let partial = t.path().join("partial.map");
    fs::write(&partial, "vmail 999 998\nopendkim 902 902\n").unwrap();
    let args = |quiet: bool| {
        let mut a: Vec<&OsStr> = vec![
            OsStr::new("tree"),
            src.as_os_str(),
            dst.as_os_str(),
            OsStr::new("--owner-map"),
            partial.as_os_str(),
            OsStr::new("--root"),
            old.as_os_str(),
        ];
        if quiet {
            a.push(OsStr::new("--quiet"));
        }
        verify(&a)
    };
    let (code, out, err) = args(false);
    assert_eq!(code, 0, "{out}{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("partial.map:2: no user \"opendkim\""),
        "{err}"
    );
    assert_eq!(args(true), (0, String::new(), String::new()));
}

#[test]
fn unusable_input_exits_2_with_a_located_message() {
    let t = scratch();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let (code, _, err) = verify(&[
        OsStr::new("tree"),
        src.as_os_str(),
        t.path().join("nope").as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("nope") && err.contains("No such file"),
        "{err}"
    );
    let bad = t.path().join("bad.map");
    fs::write(&bad, "# ok\nvmail 1\n").unwrap();
    let (code, _, err) = verify(&[
        OsStr::new("tree"),
        src.as_os_str(),
        src.as_os_str(),
        OsStr::new("--owner-map"),
        bad.as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.map:2: "), "{err}");
    let (code, _, _) = verify(&[OsStr::new("tree"), src.as_os_str()]);
    assert_eq!(code, 2);
}

/// --no-xattrs, --exclude and --jobs do what they say; a content difference carries both
/// SHA-256s; entries cm-verify cannot read mean exit 1 (not verified), never a pass.
#[test]
fn options_narrow_the_comparison_and_unreadable_entries_exit_1() {
    let t = scratch();
    let (src, dst) = source_and_copy(t.path());
    let mut want = Vec::new();
    plant(&dst, |d| {
        for (_, planter, expected) in cases() {
            planter(d);
            want.extend(expected.into_iter().map(|(k, p)| (k.to_string(), p)));
        }
    });
    let (_, all, v) = tree_json(&src, &dst, &[]);
    assert_eq!(sorted(all.clone()), sorted(want.clone()));
    // both SHA-256s of a file whose content differs
    let content = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "content")
        .unwrap_or_else(|| panic!("no content difference: {v:#}"));
    let hex = |s: &serde_json::Value| {
        let s = s.as_str().unwrap();
        s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
    };
    assert!(
        hex(&content["expected"]) && hex(&content["actual"]),
        "{content}"
    );
    assert_ne!(content["expected"], content["actual"]);
    // --no-xattrs: the same without the xattr/ACL differences
    let (_, d, _) = tree_json(&src, &dst, &["--no-xattrs"]);
    let no_x: Vec<_> = want.iter().filter(|(k, _)| k != "xattr").cloned().collect();
    assert!(no_x.len() < want.len());
    assert_eq!(sorted(d), sorted(no_x));
    // --exclude REL leaves that subtree out on both sides
    let (_, first) = want.iter().find(|(_, p)| p.contains('/')).unwrap().clone();
    let top = first.split('/').next().unwrap().to_string();
    let (_, d, _) = tree_json(&src, &dst, &["--exclude", &top]);
    let outside: Vec<_> = want
        .iter()
        .filter(|(_, p)| *p != top && !p.starts_with(&format!("{top}/")))
        .cloned()
        .collect();
    assert!(outside.len() < want.len());
    assert_eq!(sorted(d), sorted(outside));
    // --jobs changes nothing but the threads
    for j in ["1", "7"] {
        let (_, d, _) = tree_json(&src, &dst, &["--jobs", j]);
        assert_eq!(sorted(d), sorted(want.clone()), "--jobs {j}");
    }
    // unreadable for a root without the capabilities to bypass permissions: exit 1
    let (s2, d2) = source_and_copy(&t.path().join("again"));
    let found = std::process::Command::new("find")
        .arg(&s2)
        .args(["-type", "f", "-size", "+0", "-print", "-quit"])
        .output()
        .unwrap();
    let secret = std::path::PathBuf::from(String::from_utf8(found.stdout).unwrap().trim());
    assert!(secret.is_file(), "{}", secret.display());
    std::os::unix::fs::chown(&secret, Some(4321), Some(4321)).unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
        .arg(cm_tests::bin("cm-verify"))
        .arg("tree")
        .arg(&s2)
        .arg(&d2)
        .arg("--json")
        .output()
        .unwrap();
    let (code, d, v) = parse_json(
        o.status.code().unwrap_or(-1),
        &String::from_utf8_lossy(&o.stdout),
        &String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["status"], "differs", "{v:#}");
    assert!(d.iter().any(|(k, _)| k == "unreadable"), "{d:?}");
}
