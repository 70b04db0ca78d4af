//! The committed man pages and completions (packaging/man, packaging/completions) are exactly
//! what the clap definitions produce: regenerated into a temporary directory by cm-docgen and
//! compared file by file, so a changed flag or help text without a refresh fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cm_tests::{bin, repo_root};

/// Every file below `dir`'s generated directories, relative to `dir`.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::from("man"), PathBuf::from("completions")];
    while let Some(rel) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        for e in entries {
            let child = rel.join(e.unwrap().file_name());
            if dir.join(&child).is_dir() {
                todo.push(child);
            } else {
                out.insert(child.clone(), std::fs::read(dir.join(&child)).unwrap());
            }
        }
    }
    out
}

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
    let fresh = files(tmp.path());
    let packaging = repo_root().join("packaging");
    let committed = files(&packaging);
    assert!(
        fresh.contains_key(Path::new("man/cm-verify-tree.1"))
            && fresh.contains_key(Path::new("man/cm-migrate-stop-services.1"))
            && fresh.contains_key(Path::new("completions/bash/cm-verify")),
        "cm-docgen generated too little: {:?}",
        fresh.keys().collect::<Vec<_>>()
    );
    let mut stale: Vec<String> = Vec::new();
    for (rel, bytes) in &fresh {
        match committed.get(rel) {
            None => stale.push(format!("missing: packaging/{}", rel.display())),
            Some(b) if b != bytes => stale.push(format!("differs: packaging/{}", rel.display())),
            Some(_) => {}
        }
    }
    for rel in committed.keys().filter(|r| !fresh.contains_key(*r)) {
        stale.push(format!("no longer generated: packaging/{}", rel.display()));
    }
    if !stale.is_empty() {
        let diff = Command::new("diff")
            .args(["-ruN", "packaging/man"])
            .arg(tmp.path().join("man"))
            .current_dir(repo_root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let diff: String = diff.lines().take(60).collect::<Vec<_>>().join("\n");
        panic!(
            "the committed man pages / completions are out of date with the clap definitions:\n  {}\n\
             refresh them with:  packaging/build-deb --regenerate-only\n\
             (first lines of the man page diff, committed -> generated):\n{diff}",
            stale.join("\n  ")
        );
    }
}
