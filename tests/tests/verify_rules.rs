//! cm-verify's rules, run against the built binary: an entry it cannot read is a failure
//! (exit 1), never a pass; `--exclude`, `--no-xattrs` and `--jobs` do what they say; a
//! content difference shows both SHA-256s. Runs as root (unreadable entries are made so for
//! the user nobody).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn verify(args: &[&str]) -> Output {
    let mut c = Command::new(cm_tests::bin("cm-verify"));
    c.args(args);
    cm_tests::run_logged(&format!("cm-verify {args:?}"), &mut c)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out(o)))
}

/// Two equal trees `a` and `b` (made with cp -a) in a directory any user may enter.
fn pair(t: &Path) -> (String, String) {
    std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).unwrap();
    let a = t.join("a");
    for d in ["cur", "new", "sub/deep"] {
        std::fs::create_dir_all(a.join(d)).unwrap();
    }
    for (f, body) in [
        ("cur/1", "one"),
        ("cur/2", "two"),
        ("new/3", "three"),
        ("sub/deep/4", "four"),
        ("sub/5", "five"),
    ] {
        std::fs::write(a.join(f), body).unwrap();
    }
    let b = t.join("b");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(st.success());
    (a.display().to_string(), b.display().to_string())
}

/// Replace a file's bytes, keeping its mtime (so only the content differs).
fn plant(p: &Path, body: &str) {
    let m = std::fs::metadata(p).unwrap().modified().unwrap();
    std::fs::write(p, body).unwrap();
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(m)
        .unwrap();
}

/// The (check, subject) of every finding in `cm-verify tree --json`: a difference's kind
/// and path.
fn diffs(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut d: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {v:#}"))
        .iter()
        .map(|d| {
            (
                d["check"].as_str().unwrap_or("").to_string(),
                d["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    d.sort();
    d
}

#[test]
fn unreadable_entries_fail_verify_with_exit_1() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = pair(t.path());
    // nobody can read neither this file nor this directory, on either side
    for side in [&a, &b] {
        let p = Path::new(side);
        std::fs::set_permissions(p.join("cur/2"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(p.join("sub/deep"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
    }
    let as_nobody = |extra: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(cm_tests::bin("cm-verify"))
            .args(["tree", &a, &b])
            .args(extra);
        cm_tests::run_logged("as nobody: cm-verify tree", &mut c)
    };
    let o = as_nobody(&[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "unreadable is not verified: {}",
        out(&o)
    );
    let text = out(&o);
    assert!(!text.contains("OK: tree"), "{text}");
    assert!(
        text.contains("cur/2") && text.contains("sub/deep"),
        "{text}"
    );
    let o = as_nobody(&["--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["ok"], false, "{v:#}");
    // as root the same trees are readable and equal
    let o = verify(&["tree", &a, &b]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
}

#[test]
fn exclude_leaves_a_subtree_out_on_both_sides() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = pair(t.path());
    plant(&Path::new(&b).join("sub/deep/4"), "FOUR");
    std::fs::write(Path::new(&a).join("sub/only-in-source"), "x").unwrap();
    let o = verify(&["tree", &a, &b, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        diffs(&json(&o)).len(),
        3,
        "content, mtime of sub, missing: {}",
        out(&o)
    );
    let o = verify(&["tree", &a, &b, "--json", "--exclude", "sub"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    // only that subtree: a difference elsewhere still counts
    plant(&Path::new(&b).join("cur/1"), "ONE");
    let o = verify(&["tree", &a, &b, "--json", "--exclude", "sub"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        diffs(&json(&o)),
        [("content".to_string(), "cur/1".to_string())],
        "{}",
        out(&o)
    );
}

#[test]
fn no_xattrs_skips_only_attribute_differences() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = pair(t.path());
    let f = Path::new(&b).join("new/3");
    let st = Command::new("setfattr")
        .args(["-n", "user.planted", "-v", "1"])
        .arg(&f)
        .status()
        .expect("setfattr (package attr)");
    assert!(st.success());
    let o = verify(&["tree", &a, &b, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        diffs(&json(&o)),
        [("xattr".to_string(), "new/3".to_string())],
        "{}",
        out(&o)
    );
    let o = verify(&["tree", &a, &b, "--no-xattrs"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    // a content difference is still found without xattrs
    plant(&Path::new(&b).join("cur/2"), "TWO");
    let o = verify(&["tree", &a, &b, "--no-xattrs", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        diffs(&json(&o)),
        [("content".to_string(), "cur/2".to_string())]
    );
}

#[test]
fn jobs_gives_the_same_verdict_at_any_count() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = pair(t.path());
    let bp = Path::new(&b);
    plant(&bp.join("cur/1"), "ONE");
    plant(&bp.join("sub/deep/4"), "FOUR");
    std::fs::remove_file(bp.join("new/3")).unwrap();
    let mut seen = Vec::new();
    for j in ["1", "2", "7", "32"] {
        let o = verify(&["tree", &a, &b, "--json", "--jobs", j]);
        assert_eq!(o.status.code(), Some(1), "--jobs {j}");
        seen.push(diffs(&json(&o)));
    }
    assert!(seen.iter().all(|d| *d == seen[0]), "{seen:#?}");
    assert!(
        seen[0].contains(&("content".into(), "cur/1".into())),
        "{seen:?}"
    );
    assert!(
        seen[0].contains(&("content".into(), "sub/deep/4".into())),
        "{seen:?}"
    );
    let o = verify(&["tree", &a, &a, "--jobs", "1"]);
    assert_eq!(o.status.code(), Some(0));
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn content_difference_shows_both_sha256s() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = pair(t.path());
    let (fa, fb) = (Path::new(&a).join("cur/1"), Path::new(&b).join("cur/1"));
    plant(&fb, "ONE"); // same size, other bytes, same mtime
    let (ha, hb) = (sha256(&fa), sha256(&fb));
    assert_ne!(ha, hb);
    let o = verify(&["tree", &a, &b]);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    let line = text
        .lines()
        .find(|l| l.contains("\"cur/1\""))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&ha) && line.contains(&hb), "{line}");
    assert!(line.find(&ha) < line.find(&hb), "source first: {line}");
    let o = verify(&["tree", &a, &b, "--json"]);
    let v = json(&o);
    let d = &v["findings"][0];
    assert_eq!(d["check"], "content", "{v:#}");
    assert!(d["expected"].to_string().contains(&ha), "{d}");
    assert!(d["actual"].to_string().contains(&hb), "{d}");
}
