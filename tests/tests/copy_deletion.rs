//! The deletion rule of cm-copy-data, against the built binary: the copy deletes only entries
//! an earlier run of its own recorded (its manifest says so) and the source no longer has;
//! a first copy into a non-empty target is refused (exit 2) naming what is there, unless
//! `--adopt`, and then what the source lacks is moved aside, never deleted; `--dry-run` lists
//! every path it would remove or move aside; an interrupted run's leftover temporaries are
//! reported apart from entries the source no longer has.

use cm_tests::map_arg;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn copy(args: &[&str]) -> Output {
    cm_tests::run_logged(
        &format!("cm-copy-data {args:?}"),
        Command::new(cm_tests::bin("cm-copy-data")).args(args),
    )
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn source(t: &Path) -> std::path::PathBuf {
    let src = t.join("src");
    fs::create_dir_all(src.join("vmail/cur")).unwrap();
    fs::write(src.join("vmail/cur/1:2,S"), b"mail one").unwrap();
    fs::write(src.join("vmail/password"), b"secret").unwrap();
    src
}

#[test]
fn a_first_copy_into_a_non_empty_target_is_refused_and_deletes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    let dst = t.path().join("data/copy");
    fs::create_dir_all(dst.join("theirs")).unwrap();
    fs::write(dst.join("theirs/keep-me"), b"precious").unwrap();
    fs::write(dst.join("notes.txt"), b"also precious").unwrap();
    let o = copy(&["--map", &map_arg(&src, &dst)]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not empty") && err.contains("notes.txt") && err.contains("theirs"),
        "{err}"
    );
    assert!(err.contains("--adopt"), "{err}");
    assert_eq!(fs::read(dst.join("theirs/keep-me")).unwrap(), b"precious");
    assert!(!dst.join("vmail").exists(), "nothing copied");
    // The dry run refuses the same way.
    let o = copy(&["--map", &map_arg(&src, &dst), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn adopt_moves_aside_what_the_source_lacks_and_dry_run_lists_it() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    let dst = t.path().join("data/copy");
    fs::create_dir_all(dst.join("theirs/deep")).unwrap();
    fs::write(dst.join("theirs/deep/keep-me"), b"precious").unwrap();
    fs::create_dir_all(dst.join("vmail/cur")).unwrap();
    fs::write(dst.join("vmail/cur/old-mail"), b"precious too").unwrap();
    // --dry-run lists every path it would move aside, and changes nothing.
    let o = copy(&["--map", &map_arg(&src, &dst), "--adopt", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    for p in ["copy/theirs", "copy/vmail/cur/old-mail"] {
        assert!(
            out.lines()
                .any(|l| l.contains("would move aside") && l.trim_end_matches('"').ends_with(p)),
            "{p} not listed: {out}"
        );
    }
    assert!(dst.join("theirs/deep/keep-me").exists());
    let o = copy(&["--map", &map_arg(&src, &dst), "--adopt", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j = json(&o);
    let out = &j["volumes"][0]["outcome"];
    assert_eq!(out["moved_aside"], 2, "{j}");
    assert_eq!(out["deleted"], 0, "{j}");
    let aside = std::path::PathBuf::from(out["aside_dir"].as_str().unwrap());
    // A dated folder beside the target (for a --map target), the same relative paths.
    assert_eq!(aside.parent(), dst.parent());
    assert!(aside
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("cm-moved-aside-20"));
    assert_eq!(
        fs::read(aside.join("theirs/deep/keep-me")).unwrap(),
        b"precious"
    );
    assert_eq!(
        fs::read(aside.join("vmail/cur/old-mail")).unwrap(),
        b"precious too"
    );
    assert!(!dst.join("theirs").exists());
    assert_eq!(fs::read(dst.join("vmail/cur/1:2,S")).unwrap(), b"mail one");
}

#[test]
fn only_what_an_earlier_run_recorded_is_removed() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    let dst = t.path().join("data/copy");
    let m = map_arg(&src, &dst);
    assert_eq!(copy(&["--map", &m]).status.code(), Some(0));
    // The source loses a file; someone puts a file of their own into the copy; an
    // interrupted run left a temporary.
    fs::remove_file(src.join("vmail/password")).unwrap();
    fs::write(dst.join("vmail/cur/planted"), b"not ours").unwrap();
    fs::write(dst.join("vmail/.cm-copy.77.1.2.tmp"), b"half").unwrap();
    let o = copy(&["--map", &m, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("would remove (the source no longer has it): ")
            && text.contains("copy/vmail/password"),
        "{text}"
    );
    assert!(
        text.contains("would move aside (not written by this suite): ")
            && text.contains("copy/vmail/cur/planted"),
        "{text}"
    );
    assert!(
        text.contains("would remove leftover temporary: ") && text.contains(".cm-copy.77.1.2.tmp"),
        "{text}"
    );
    let o = copy(&["--map", &m, "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j = json(&o);
    let out = &j["volumes"][0]["outcome"];
    assert_eq!(out["deleted"], 1, "{j}");
    assert_eq!(out["leftovers"], 1, "{j}");
    assert_eq!(out["moved_aside"], 1, "{j}");
    assert!(!dst.join("vmail/password").exists());
    let aside = std::path::PathBuf::from(out["aside_dir"].as_str().unwrap());
    assert_eq!(
        fs::read(aside.join("vmail/cur/planted")).unwrap(),
        b"not ours"
    );
    // In text, leftovers are reported apart from removals.
    fs::write(dst.join("vmail/.cm-copy.78.1.2.tmp"), b"half").unwrap();
    let o = copy(&["--map", &m]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("removed 0, removed 1 leftover temporary of an interrupted run"),
        "{text}"
    );
}
