//! `cargo install` from the checkout: the README's one command for the whole suite, run as
//! written (into a temporary root through CARGO_INSTALL_ROOT), installs exactly the five
//! tools, and each runs.

use std::collections::BTreeSet;
use std::process::Command;

use cm_tests::nspawn::text;
use cm_tests::repo_root;

/// The README's command that installs the whole suite from source.
fn readme_install_command() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Install on the old host"))
        .expect("README has a section 'Install on the old host'");
    let cmds: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("for t in ") && l.contains("cargo install"))
        .collect();
    assert_eq!(
        cmds.len(),
        1,
        "one whole-suite cargo install line: {cmds:?}"
    );
    cmds[0].to_string()
}

#[test]
fn readme_cargo_install_command_installs_every_tool() {
    let cmd = readme_install_command();
    assert!(cmd.contains("--locked"), "{cmd}");
    let root = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cargo_dir = std::path::Path::new(&cargo)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = format!("{cargo_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let o = Command::new("bash")
        .args(["-euc", &cmd])
        .current_dir(repo_root())
        .env("CARGO_INSTALL_ROOT", root.path())
        .env("PATH", path)
        .output()
        .expect("run bash");
    assert!(o.status.success(), "{cmd}: {}", text(&o));
    let installed: BTreeSet<String> = std::fs::read_dir(root.path().join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let want: BTreeSet<String> = [
        "cm-copy-data",
        "cm-env-apply",
        "cm-ini-to-env",
        "cm-migrate",
        "cm-verify",
    ]
    .map(String::from)
    .into();
    assert_eq!(installed, want);
    for b in &want {
        let o = Command::new(root.path().join("bin").join(b))
            .arg("--version")
            .output()
            .unwrap();
        assert!(o.status.success(), "{b}: {}", text(&o));
        let v = String::from_utf8_lossy(&o.stdout);
        assert!(
            v.starts_with(&format!("{b} {} (", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
    }
    let o = Command::new(root.path().join("bin/cm-migrate"))
        .args(["verify", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}
