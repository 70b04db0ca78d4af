//! The committed man pages and completions (packaging/man, packaging/completions) are exactly
//! what the clap definitions produce: cm-docgen regenerates them into a temporary directory
//! and `diff -r` compares, so a changed flag or help text without a refresh fails here, with
//! the diff and the command that refreshes them.

use std::process::Command;

use cm_tests::{bin, repo_root};

#[test]
fn committed_man_pages_and_completions_match_the_clap_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(bin("cm-docgen"))
        .arg(tmp.path())
        .output()
        .expect("run cm-docgen");
    assert!(
        o.status.success(),
        "cm-docgen failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for f in [
        "man/cm-verify-tree.1",
        "man/cm-migrate-stop-services.1",
        "completions/bash/cm-verify",
    ] {
        assert!(tmp.path().join(f).is_file(), "cm-docgen did not write {f}");
    }
    for dir in ["man", "completions"] {
        let committed = repo_root().join("packaging").join(dir);
        assert!(committed.is_dir(), "{} missing", committed.display());
        let diff = Command::new("diff")
            .arg("-ru")
            .arg(&committed)
            .arg(tmp.path().join(dir))
            .output()
            .expect("run diff");
        let text = String::from_utf8_lossy(&diff.stdout);
        assert!(
            diff.status.success(),
            "packaging/{dir} is out of date with the clap definitions; refresh it with:\n    \
             packaging/build-deb --regenerate-only\n(diff, committed -> generated, first 80 lines):\n{}",
            text.lines().take(80).collect::<Vec<_>>().join("\n")
        );
    }
}
