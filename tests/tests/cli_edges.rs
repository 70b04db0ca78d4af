//! The edges every tool shares (crate cm-cli), run against the built binaries: the message
//! prefix, usage errors as JSON with the exit code, `--jobs` validated with its range, a
//! closed pipe ending the tool quietly, an OS error said once.

use std::io::Read;
use std::process::{Command, Stdio};

use cm_tests::bin;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every tool, with arguments that reach its option parser (`--json` included).
fn tools() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("cm-verify", vec!["tree", "--json", "--bogus"]),
        ("cm-copy-data", vec!["--json", "--bogus"]),
        ("cm-ini-to-env", vec!["--json", "--bogus"]),
        ("cm-env-apply", vec!["apply", "--json", "--bogus"]),
        ("cm-migrate", vec!["stop-services", "--json", "--bogus"]),
        ("cm-migrate", vec!["verify", "tree", "--json", "--bogus"]),
    ]
}

#[test]
fn a_usage_error_is_one_json_document_with_exit_code_2_from_every_tool() {
    for (tool, args) in tools() {
        let o = Command::new(bin(tool)).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{tool} {args:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{tool} {args:?}: not JSON ({e}): {:?}", o.stdout));
        assert_eq!(v["exit_code"], 2, "{tool}: {v}");
        assert_eq!(v["ok"], false, "{tool}: {v}");
        assert!(v["error"].as_str().unwrap().contains("--bogus"), "{v}");
    }
}

/// An error after the arguments were read is one JSON document with its exit code too.
#[test]
fn a_runtime_error_under_json_is_one_json_document_with_its_exit_code() {
    for (tool, args) in [
        ("cm-copy-data", vec!["--json", "--only", "nothing"]),
        (
            "cm-verify",
            vec!["tree", "/nonexistent-a", "/nonexistent-b", "--json"],
        ),
        ("cm-ini-to-env", vec!["/nonexistent.ini", "--json"]),
    ] {
        let o = Command::new(bin(tool)).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{tool} {args:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{tool} {args:?}: not JSON ({e}): {:?}", o.stdout));
        assert_eq!(v["exit_code"], 2, "{tool}: {v}");
        assert!(
            stderr(&o).starts_with(&format!("{tool}: error: ")),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn every_tool_prefixes_its_errors_the_same_way() {
    for (tool, args) in tools() {
        let args: Vec<&str> = args.into_iter().filter(|a| *a != "--json").collect();
        let o = Command::new(bin(tool)).args(&args).output().unwrap();
        let err = stderr(&o);
        let prefix = if args[0] == "verify" {
            "cm-migrate verify: error: ".to_string()
        } else {
            format!("{tool}: error: ")
        };
        assert!(err.starts_with(&prefix), "{tool} {args:?}: {err}");
        assert!(o.stdout.is_empty(), "{tool}: no JSON without --json");
    }
}

#[test]
fn jobs_out_of_range_is_refused_naming_the_range() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_str().unwrap();
    for (tool, args) in [
        ("cm-verify", vec!["tree", p, p, "--jobs", "0"]),
        ("cm-verify", vec!["tree", p, p, "-j", "100000"]),
        (
            "cm-verify",
            vec!["manifest", "write", p, "-o", "/tmp/x", "-j", "0"],
        ),
        ("cm-copy-data", vec!["--dry-run", "--jobs", "0"]),
        ("cm-copy-data", vec!["--dry-run", "--jobs", "100000"]),
    ] {
        let o = Command::new(bin(tool)).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{tool} {args:?}");
        assert!(
            stderr(&o).contains("between 1 and 1024"),
            "{tool} {args:?}: {}",
            stderr(&o)
        );
    }
}

/// `cm-verify tree A B --json | head -c 10`: the reader goes away after 10 bytes; the tool
/// ends quietly with exit 0, as ripgrep does (no panic, no message).
#[test]
fn a_closed_pipe_ends_the_tool_quietly() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    // Enough differences for a report far beyond a pipe's buffer.
    for i in 0..3000 {
        std::fs::write(a.join(format!("missing-in-the-copy-{i:05}")), "x").unwrap();
    }
    let mut child = Command::new(bin("cm-verify"))
        .arg("tree")
        .arg(&a)
        .arg(&b)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // the read end is closed here
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn an_os_error_is_said_once() {
    let o = Command::new(bin("cm-verify"))
        .args(["manifest", "check", "/nonexistent/m.manifest", "/"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// Names are bytes everywhere: a project directory that is not UTF-8 is escaped in the JSON
/// (`\xff`), never a panic.
#[test]
fn copy_json_with_a_project_dir_that_is_not_utf8_is_escaped_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("home/vmail/mail")).unwrap();
    std::fs::write(root.join("home/vmail/mail/m"), "x").unwrap();
    let p = d.path().join(std::ffi::OsStr::from_bytes(b"proj\xff"));
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("compose.yaml"), "services: {}\n").unwrap();
    for extra in [&["--dry-run"][..], &[][..]] {
        let o = Command::new(bin("cm-copy-data"))
            .arg("--root")
            .arg(&root)
            .arg("--project-dir")
            .arg(&p)
            .args(["--only", "mail", "--json"])
            .args(extra)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {err}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", o.stdout));
        assert!(v.to_string().contains("proj\\\\xff"), "{v}");
    }
}
