//! The Debian package, end to end: packaging/build-deb builds it; apt installs it into a clean
//! Debian 12 root without Rust (the debootstrap tarball of tests/harness/rootfs.sh, extracted
//! into a temporary directory and entered with chroot in private mount and pid namespaces);
//! there every tool's --help runs, `man -w` finds every page, bash-completion loads the
//! completions from Debian's directory, a small copy is made and verified; then
//! `apt purge` leaves nothing of the package behind. Needs root and the Debian mirror that
//! the root's own apt sources name (man-db and bash-completion come from there).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cm_tests::nspawn::text;
use cm_tests::repo_root;

/// What the root's file list leaves out: kernel file systems, and apt's and dpkg's own
/// caches, logs and databases (the package's dpkg records are checked apart).
const VOLATILE: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",
    "/var/tmp",
    "/var/cache",
    "/var/log",
    "/var/lib/apt",
    "/var/lib/dpkg",
];

const BINS: &[&str] = &[
    "cm-migrate",
    "cm-ini-to-env",
    "cm-copy-data",
    "cm-verify",
    "cm-env-apply",
];

/// A clean Debian 12 root in a temporary directory (removed on drop).
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let tarball = Command::new(repo_root().join("tests/harness/rootfs.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/harness/rootfs.sh");
        assert!(tarball.status.success(), "rootfs.sh: {}", text(&tarball));
        let tarball = String::from_utf8_lossy(&tarball.stdout).trim().to_string();
        let dir = tempfile::Builder::new()
            .prefix("cm-package-root.")
            .tempdir_in("/var/tmp")
            .unwrap();
        // the root's "/" must be traversable by apt's and man's unprivileged users
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let x = Command::new("tar")
            .args(["-C"])
            .arg(dir.path())
            .args(["-xf", &tarball])
            .output()
            .unwrap();
        assert!(x.status.success(), "tar: {}", text(&x));
        let root = Root { dir };
        std::fs::copy("/etc/resolv.conf", root.path("etc/resolv.conf")).unwrap();
        // a chroot must not start daemons on the host
        std::fs::write(root.path("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n").unwrap();
        std::fs::set_permissions(
            root.path("usr/sbin/policy-rc.d"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        root
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Run `script` with sh -eu inside the root, in private mount and pid namespaces (so
    /// /proc and /dev/pts vanish with it and nothing it starts outlives it), clean env.
    fn sh(&self, script: &str) -> Output {
        Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "--kill-child", "sh", "-euc"])
            .arg(
                r#"r=$1; shift
                mount -t proc proc "$r/proc"
                mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
                exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                  LANG=C.UTF-8 HOME=/root TERM=dumb DEBIAN_FRONTEND=noninteractive \
                  sh -euc "$1""#,
            )
            .arg("root-sh")
            .arg(self.dir.path())
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("run unshare")
    }

    /// [`Root::sh`], which must succeed; its stdout.
    fn ok(&self, what: &str, script: &str) -> String {
        let o = self.sh(script);
        assert!(o.status.success(), "{what}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The installed packages.
    fn packages(&self) -> BTreeSet<String> {
        self.ok(
            "dpkg-query",
            "dpkg-query -W -f '${db:Status-Status} ${Package}\\n'",
        )
        .lines()
        .filter_map(|l| l.strip_prefix("installed "))
        .map(str::to_string)
        .collect()
    }

    /// Every path in the root outside [`VOLATILE`], and the dpkg records of cm-migrate.
    fn files(&self) -> BTreeSet<String> {
        let prune: Vec<String> = VOLATILE.iter().map(|p| format!("-path {p}")).collect();
        let script = format!(
            "find / -xdev \\( {} \\) -prune -o -print; ls -d /var/lib/dpkg/info/cm-migrate.* 2>/dev/null || true",
            prune.join(" -o ")
        );
        self.ok("list the root's files", &script)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// packaging/build-deb into `out`; the package's path (its last line).
fn build_deb(out: &Path) -> PathBuf {
    let o = Command::new(repo_root().join("packaging/build-deb"))
        .arg("--out")
        .arg(out)
        .current_dir(repo_root())
        .output()
        .expect("run packaging/build-deb");
    assert!(o.status.success(), "build-deb: {}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default());
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("cm-migrate_") && name.ends_with(".deb") && deb.is_file(),
        "build-deb's last line is not the package: {stdout}"
    );
    assert_eq!(deb.parent(), Some(out));
    deb
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid of the process
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn package_installs_with_apt_on_a_clean_debian_12_runs_and_purges_to_nothing() {
    assert!(
        is_root(),
        "this test installs a package into a chroot: run it as root"
    );
    let out = tempfile::tempdir().unwrap();
    let deb = build_deb(out.path());
    let root = Root::new();
    let deb_name = deb.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::copy(&deb, root.path(&format!("tmp/{deb_name}"))).unwrap();

    // a clean root: no Rust; man-db and bash-completion are what an operator's host has
    root.ok(
        "no Rust in the root",
        "! command -v cargo && ! command -v rustc && [ ! -e /root/.cargo ]",
    );
    root.ok(
        "apt-get install man-db bash-completion",
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends man-db bash-completion >/dev/null",
    );
    let before = root.files();
    let packages_before = root.packages();

    let install = root.ok(
        "apt install the package",
        "cd /tmp && apt-get install -y ./cm-migrate_*.deb",
    );
    assert!(install.contains("Setting up cm-migrate"), "{install}");
    let listed = root.ok("dpkg -L", "dpkg -L cm-migrate");
    for b in BINS {
        assert!(
            listed.lines().any(|l| l == format!("/usr/bin/{b}")),
            "{listed}"
        );
    }
    root.ok("rsync came as a dependency", "command -v rsync");

    // every tool answers --help and --version; the tools also through cm-migrate
    let mut script = String::new();
    for b in BINS {
        script += &format!("{b} --help >/dev/null; {b} --version; ");
    }
    for sub in ["copy-data", "verify", "ini-to-env", "env-apply"] {
        script += &format!("cm-migrate {sub} --help | grep -q 'Usage: cm-migrate {sub}'; ");
    }
    let versions = root.ok("--help and --version of every tool", &script);
    let rests: BTreeSet<&str> = versions
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, r)| r))
        .collect();
    assert_eq!(
        rests.len(),
        1,
        "--version differs between tools:\n{versions}"
    );

    // a page for every tool and subcommand, found by man and rendered
    let pages = generated_pages();
    assert!(pages.len() > 10, "{pages:?}");
    let found = root.ok("man -w", &format!("man -w {}", pages.join(" ")));
    assert_eq!(found.lines().count(), pages.len(), "{found}");
    for (page, path) in pages.iter().zip(found.lines()) {
        assert!(
            path.starts_with("/usr/share/man/man1/") && path.ends_with(".1.gz"),
            "{page}: {path}"
        );
    }
    let rendered = root.ok("man cm-copy-data", "MANWIDTH=80 man -P cat cm-copy-data");
    assert!(rendered.contains("--owner-map"), "{rendered}");

    // bash-completion finds the scripts in Debian's directory and they complete
    let completion = root.ok(
        "bash completion",
        r#"bash -c '. /usr/share/bash-completion/bash_completion
            _completion_loader cm-verify; complete -p cm-verify
            COMP_WORDS=(cm-verify tr); COMP_CWORD=1; COMP_LINE="cm-verify tr"; COMP_POINT=12
            f=$(complete -p cm-verify | sed -n "s/.* -F \([^ ]*\) .*/\1/p"); $f cm-verify tr cm-verify
            echo "reply: ${COMPREPLY[*]}"
            _completion_loader cm-migrate; complete -p cm-migrate'"#,
    );
    assert!(completion.contains("complete "), "{completion}");
    assert!(completion.contains(" cm-verify\n"), "{completion}");
    assert!(completion.contains("reply: tree"), "{completion}");
    assert!(completion.contains(" cm-migrate\n"), "{completion}");
    root.ok(
        "zsh and fish completions in their Debian directories",
        "[ -s /usr/share/zsh/vendor-completions/_cm-verify ] && [ -s /usr/share/fish/vendor_completions.d/cm-verify.fish ]",
    );

    // a small copy and its verification, with the installed tools
    let copy = root.sh(
        r#"mkdir -p /srv/old/mail/a /srv/project
        printf 'hello\n' >/srv/old/mail/a/msg; ln /srv/old/mail/a/msg /srv/old/mail/a/link
        ln -s msg /srv/old/mail/a/sym; chmod 0750 /srv/old/mail/a; chown 8:8 /srv/old/mail/a/msg
        cm-copy-data --map /srv/old/mail=/srv/project/data/mail
        cm-verify tree /srv/old/mail /srv/project/data/mail
        cm-migrate verify tree /srv/old/mail /srv/project/data/mail
        printf 'changed\n' >/srv/project/data/mail/a/msg
        if cm-verify tree /srv/old/mail /srv/project/data/mail; then exit 9; else echo "differs: $?"; fi
        rm -rf /srv/old /srv/project"#,
    );
    assert!(copy.status.success(), "copy and verify: {}", text(&copy));
    assert!(
        String::from_utf8_lossy(&copy.stdout).contains("differs: 1"),
        "{}",
        text(&copy)
    );

    // purge: nothing of the package (nor of what it pulled in) is left
    root.ok(
        "apt purge",
        "apt-get purge -y --autoremove cm-migrate >/dev/null",
    );
    root.ok("dpkg forgot it", "! dpkg -s cm-migrate 2>/dev/null");
    // apt keeps a dependency that another installed package still recommends or suggests
    // (libfido2-1, pulled in by openssh-client, is one systemd suggests): those files are
    // that package's, not ours
    let kept: Vec<String> = root
        .packages()
        .difference(&packages_before)
        .cloned()
        .collect();
    let mut after = root.files();
    if !kept.is_empty() {
        eprintln!("packages apt kept after the purge (wanted by others): {kept:?}");
        let owned = root.ok("dpkg -L kept", &format!("dpkg -L {}", kept.join(" ")));
        for f in owned.lines().filter(|f| !before.contains(*f)) {
            after.remove(f);
        }
    }
    let left: Vec<_> = after.difference(&before).collect();
    let gone: Vec<_> = before.difference(&after).collect();
    assert!(
        left.is_empty() && gone.is_empty(),
        "apt purge did not restore the root: left behind {left:?}; missing {gone:?}"
    );
}

/// Every man page name the generator commits (packaging/man/NAME.1).
fn generated_pages() -> Vec<String> {
    let mut pages: Vec<String> = std::fs::read_dir(repo_root().join("packaging/man"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".1").map(str::to_string)
        })
        .collect();
    pages.sort();
    pages
}
