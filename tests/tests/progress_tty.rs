//! Progress bars only on a terminal: under a pseudo-terminal (`script`) cm-verify draws its
//! progress on stderr; with stderr a pipe it draws nothing (and --quiet draws nothing even on
//! a terminal).

use std::fs;
use std::process::Command;

/// Two trees with files large enough that comparing them takes longer than a few progress
/// ticks (sparse: no disk space, the bytes are still read and compared).
fn trees(d: &std::path::Path) -> (String, String) {
    let (a, b) = (d.join("a"), d.join("b"));
    for t in [&a, &b] {
        fs::create_dir_all(t).unwrap();
        for i in 0..4 {
            let f = fs::File::create(t.join(format!("big{i}"))).unwrap();
            f.set_len(1 << 30).unwrap();
        }
    }
    let ok = Command::new("touch")
        .args(["-d", "@1700000000"])
        .arg(a.join("big0"))
        .arg(a.join("big1"))
        .arg(a.join("big2"))
        .arg(a.join("big3"))
        .arg(&a)
        .arg(b.join("big0"))
        .arg(b.join("big1"))
        .arg(b.join("big2"))
        .arg(b.join("big3"))
        .arg(&b)
        .status()
        .unwrap();
    assert!(ok.success());
    (a.display().to_string(), b.display().to_string())
}

fn under_a_terminal(cmd: &str) -> String {
    let o = Command::new("script")
        .args(["-qefc", cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn progress_is_drawn_only_on_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = trees(d.path());
    let bin = cm_tests::bin("cm-verify").display().to_string();
    // stdout to /dev/null: what the terminal shows is stderr's progress (and no report)
    let tty = under_a_terminal(&format!("{bin} tree {a} {b} >/dev/null"));
    assert!(
        tty.contains("comparing"),
        "no progress on a terminal: {tty:?}"
    );
    assert!(
        !tty.contains("hashing"),
        "two trees are compared, not hashed: {tty:?}"
    );
    let quiet = under_a_terminal(&format!("{bin} tree {a} {b} --quiet >/dev/null"));
    assert!(quiet.trim().is_empty(), "--quiet draws nothing: {quiet:?}");
    // stderr a pipe: nothing but the report on stdout
    let o = Command::new(&bin).args(["tree", &a, &b]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(
        o.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("OK: tree"));
}
