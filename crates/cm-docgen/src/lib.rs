//! The suite's man pages and shell completions, generated from the tools' clap definitions
//! (`cm_migrate::tools::binaries`), so that they never drift from `--help`.
//!
//! Layout below the output directory (packaging/ in the checkout, a staging tree in
//! packaging/build-deb):
//!
//! - `man/NAME.1`: one page per binary and per subcommand (`cm-verify-tree.1`,
//!   `cm-migrate-stop-services.1`); a tool run as a cm-migrate subcommand gets an alias page
//!   (`cm-migrate-copy-data.1` is `.so man1/cm-copy-data.1`), so each text exists once.
//! - `completions/bash/NAME`, `completions/zsh/_NAME`, `completions/fish/NAME.fish`: the
//!   names the shells look for in Debian's completion directories.
//!
//! Generation is pure (no date, no host name, no terminal width): the same definitions give
//! the same bytes, which is what the drift check in the tests relies on.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The generated directories below the output directory; [`write`] owns them whole.
pub const DIRS: &[&str] = &["man", "completions"];

/// Every generated file: its path relative to the output directory, and its bytes.
pub fn generate() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (bin, cmd) in cm_migrate::tools::binaries() {
        let mut root = cmd.disable_help_subcommand(true).bin_name(bin);
        root.build();
        man_pages(&root, bin, &mut files);
        completions(&root, bin, &mut files);
    }
    files
}

/// The page of `cmd` and of each subcommand below it (the tools inside cm-migrate as
/// aliases of their own pages).
fn man_pages(cmd: &clap::Command, page: &str, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let path = PathBuf::from(format!("man/{page}.1"));
    if let Some(target) = alias_of(page) {
        files.insert(path, format!(".so man1/{target}.1\n").into_bytes());
    } else {
        let man = clap_mangen::Man::new(cmd.clone())
            .title(page)
            .source(format!("cm-migrate {}", cm_core::version::SUITE_VERSION))
            .manual("cm-migrate suite");
        let mut out = Vec::new();
        man.render(&mut out)
            .expect("rendering into memory cannot fail");
        files.insert(path, out);
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, &format!("{page}-{}", sub.get_name()), files);
    }
}

/// `cm-migrate-copy-data` -> `cm-copy-data`, `cm-migrate-verify-tree` -> `cm-verify-tree`: a
/// page under a tool run through cm-migrate is the tool's own page.
fn alias_of(page: &str) -> Option<String> {
    let rest = page.strip_prefix("cm-migrate-")?;
    cm_migrate::tools::TOOLS
        .iter()
        .any(|t| rest == t.sub || rest.starts_with(&format!("{}-", t.sub)))
        .then(|| format!("cm-{rest}"))
}

fn completions(cmd: &clap::Command, bin: &str, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for (shell, path) in [
        (Shell::Bash, format!("completions/bash/{bin}")),
        (Shell::Zsh, format!("completions/zsh/_{bin}")),
        (Shell::Fish, format!("completions/fish/{bin}.fish")),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), bin, &mut out);
        files.insert(PathBuf::from(path), out);
    }
}

/// How a file below the output directory stands against what [`generate`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Generated, not there.
    Missing,
    /// There with other bytes.
    Differs,
    /// There, no longer generated.
    Extra,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Missing => "missing",
            Change::Differs => "differs",
            Change::Extra => "extra",
        }
    }
}

/// Every file of [`DIRS`] below `dir` that is not exactly what `want` has, in path order.
pub fn changes(
    dir: &Path,
    want: &BTreeMap<PathBuf, Vec<u8>>,
) -> io::Result<Vec<(PathBuf, Change)>> {
    let have = existing(dir)?;
    let mut out: Vec<(PathBuf, Change)> = want
        .iter()
        .filter_map(|(rel, bytes)| match have.get(rel) {
            None => Some((rel.clone(), Change::Missing)),
            Some(b) if b != bytes => Some((rel.clone(), Change::Differs)),
            Some(_) => None,
        })
        .collect();
    out.extend(
        have.keys()
            .filter(|r| !want.contains_key(*r))
            .map(|r| (r.clone(), Change::Extra)),
    );
    out.sort();
    Ok(out)
}

/// Make `dir` hold exactly `want` in [`DIRS`]: write what is missing or differs (atomically,
/// mode 0644), remove what is extra.
pub fn apply(
    dir: &Path,
    want: &BTreeMap<PathBuf, Vec<u8>>,
    changes: &[(PathBuf, Change)],
) -> io::Result<()> {
    for (rel, change) in changes {
        let path = dir.join(rel);
        let result = match (change, want.get(rel)) {
            (Change::Missing | Change::Differs, Some(bytes)) => path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| cm_core::fsutil::write_atomic(&path, bytes, 0o644)),
            _ => std::fs::remove_file(&path),
        };
        result.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// The files now in `dir`'s generated directories (relative to `dir`).
fn existing(dir: &Path) -> io::Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut todo: Vec<PathBuf> = DIRS.iter().map(PathBuf::from).collect();
    while let Some(rel) = todo.pop() {
        let entries = match std::fs::read_dir(dir.join(&rel)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", dir.join(&rel).display()),
                ))
            }
        };
        for entry in entries {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                todo.push(child);
            } else {
                files.insert(child.clone(), std::fs::read(dir.join(&child))?);
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_binary_and_subcommand() {
        let files = generate();
        for name in [
            "man/cm-migrate.1",
            "man/cm-migrate-stop-services.1",
            "man/cm-copy-data.1",
            "man/cm-verify-tree.1",
            "man/cm-verify-manifest.1",
            "man/cm-ini-to-env.1",
            "man/cm-env-apply.1",
            "completions/bash/cm-verify",
            "completions/zsh/_cm-verify",
            "completions/fish/cm-verify.fish",
        ] {
            assert!(files.contains_key(&PathBuf::from(name)), "{name} missing");
        }
        assert!(!files.keys().any(|p| p.to_string_lossy().contains("-help")));
        let page = String::from_utf8_lossy(&files[&PathBuf::from("man/cm-verify-tree.1")]);
        assert!(page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH cm-verify-tree 1"));
        assert!(page.contains("owner\\-map"), "{page}");
    }

    #[test]
    fn tools_under_cm_migrate_are_aliases() {
        let files = generate();
        let alias = |p: &str| String::from_utf8_lossy(&files[&PathBuf::from(p)]).into_owned();
        assert_eq!(
            alias("man/cm-migrate-copy-data.1"),
            ".so man1/cm-copy-data.1\n"
        );
        assert_eq!(
            alias("man/cm-migrate-verify-tree.1"),
            ".so man1/cm-verify-tree.1\n"
        );
        for (path, bytes) in &files {
            if let Some(t) = bytes.strip_prefix(b".so man1/") {
                let target = String::from_utf8_lossy(t).trim_end().to_string();
                assert!(
                    files.contains_key(&PathBuf::from(format!("man/{target}"))),
                    "{path:?}"
                );
            }
        }
        assert_eq!(alias_of("cm-migrate-stop-services"), None);
    }

    #[test]
    fn generation_is_repeatable() {
        assert_eq!(generate(), generate());
    }

    #[test]
    fn apply_makes_a_directory_hold_exactly_the_generated_files() {
        let dir = std::env::temp_dir().join(format!("cm-docgen-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("man")).unwrap();
        std::fs::write(dir.join("man/cm-gone.1"), "old").unwrap();
        std::fs::write(dir.join("build-deb"), "not generated: left alone").unwrap();
        let want = generate();
        let before = changes(&dir, &want).unwrap();
        assert!(before.contains(&(PathBuf::from("man/cm-gone.1"), Change::Extra)));
        assert!(before.contains(&(PathBuf::from("man/cm-verify-tree.1"), Change::Missing)));
        apply(&dir, &want, &before).unwrap();
        assert_eq!(changes(&dir, &want).unwrap(), vec![]);
        assert!(dir.join("build-deb").exists());
        std::fs::write(dir.join("man/cm-verify-tree.1"), "edited").unwrap();
        assert_eq!(
            changes(&dir, &want).unwrap(),
            vec![(PathBuf::from("man/cm-verify-tree.1"), Change::Differs)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
