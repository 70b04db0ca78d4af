//! The change journal against real file operations on a real file system: a loop-mounted
//! ext4 and a tmpfs, as root (fanotify with file handles needs CAP_SYS_ADMIN; CI runs as
//! root).

use super::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

/// A freshly mounted file system with `store/` (the watched root) and `other/` beside it.
struct Mounted {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Mounted {
    fn ext4() -> Mounted {
        let dir = tempdir_root();
        let img = dir.path().join("fs.img");
        let f = fs::File::create(&img).unwrap();
        f.set_len(64 << 20).unwrap();
        run(
            "mkfs.ext4",
            &["-q", "-F", "-N", "100000", img.to_str().unwrap()],
        );
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        run(
            "mount",
            &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()],
        );
        Mounted::init(dir, mnt)
    }

    fn tmpfs() -> Mounted {
        let dir = tempdir_root();
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                "size=64m",
                "cmtest",
                mnt.to_str().unwrap(),
            ],
        );
        Mounted::init(dir, mnt)
    }

    fn init(dir: tempfile::TempDir, mnt: PathBuf) -> Mounted {
        let m = Mounted { _dir: dir, mnt };
        for d in ["store/a", "store/b", "store/c/d", "other/sub/deep"] {
            fs::create_dir_all(m.p(d)).unwrap();
        }
        for f in [
            "store/a/f1",
            "store/a/f2",
            "store/c/d/f3",
            "other/x",
            "other/sub/deep/y",
        ] {
            fs::write(m.p(f), "data\n").unwrap();
        }
        m
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    fn root(&self) -> PathBuf {
        self.p("store")
    }

    fn journal(&self) -> Journal {
        Journal::start(&[self.root()], Options::default()).expect("start the journal")
    }

    /// Start a journal, do `op`, and return what it saw below the store.
    fn changed(&self, op: impl FnOnce(&Mounted)) -> Result<Vec<String>, String> {
        let mut j = self.journal();
        op(self);
        j.drain();
        rel_strings(j.finish().below(&self.root()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

fn tempdir_root() -> tempfile::TempDir {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the change journal tests mount file systems and use fanotify: run them as root (CI does)"
    );
    tempfile::Builder::new()
        .prefix("cm-watch")
        .tempdir_in("/var/tmp")
        .unwrap()
}

fn run(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (run .ci/install-deps)"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn rel_strings(r: Result<Vec<PathBuf>, String>) -> Result<Vec<String>, String> {
    r.map(|v| {
        v.into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    })
}

fn set(v: &[&str]) -> Result<Vec<String>, String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    Ok(v)
}

/// Every single operation on one file system, each with its own journal.
fn every_operation(m: &Mounted) {
    let w = |p: &Path| fs::OpenOptions::new().append(true).open(p).unwrap();
    assert_eq!(
        m.changed(|m| fs::write(m.p("store/a/new"), "x").unwrap()),
        set(&["a"]),
        "create"
    );
    assert_eq!(
        m.changed(|m| {
            use std::io::Write;
            w(&m.p("store/a/f1")).write_all(b"more").unwrap();
        }),
        set(&["a"]),
        "write"
    );
    assert_eq!(
        m.changed(|m| fs::rename(m.p("store/a/f1"), m.p("store/b/f1")).unwrap()),
        set(&["a", "b"]),
        "rename across directories"
    );
    assert_eq!(
        m.changed(|m| fs::remove_file(m.p("store/a/f2")).unwrap()),
        set(&["a"]),
        "unlink"
    );
    assert_eq!(
        m.changed(
            |m| fs::set_permissions(m.p("store/b/f1"), fs::Permissions::from_mode(0o600)).unwrap()
        ),
        set(&["b"]),
        "chmod"
    );
    assert_eq!(
        m.changed(|m| std::os::unix::fs::chown(m.p("store/b/f1"), Some(1234), Some(1234)).unwrap()),
        set(&["b"]),
        "chown"
    );
    assert_eq!(
        m.changed(|m| xattr::set(m.p("store/b/f1"), "user.cm", b"1").unwrap()),
        set(&["b"]),
        "setxattr"
    );
    assert_eq!(
        m.changed(|m| xattr::set(m.p("store/c/d/f3"), "trusted.cm", b"1").unwrap()),
        set(&["c/d"]),
        "setxattr (trusted)"
    );
    assert_eq!(
        m.changed(|m| filetime::set_file_mtime(
            m.p("store/c/d/f3"),
            filetime::FileTime::from_unix_time(1_000_000, 5)
        )
        .unwrap()),
        set(&["c/d"]),
        "utimes"
    );
    assert_eq!(
        m.changed(
            |m| fs::set_permissions(m.p("store/c/d"), fs::Permissions::from_mode(0o700)).unwrap()
        ),
        set(&["c", "c/d"]),
        "chmod of a directory: its entry in its parent (and itself)"
    );
    // a new hard link: its directory (the file's other name did not change, only the link
    // count, which the verification compares where it looks)
    assert_eq!(
        m.changed(|m| fs::hard_link(m.p("store/b/f1"), m.p("store/a/link")).unwrap()),
        set(&["a"]),
        "hard link"
    );
    assert_eq!(
        m.changed(|m| fs::remove_file(m.p("store/a/link")).unwrap()),
        set(&["a"]),
        "unlink of a hard link"
    );
    assert_eq!(
        m.changed(|m| fs::create_dir(m.p("store/e")).unwrap()),
        set(&["", "e"]),
        "mkdir"
    );
    assert_eq!(
        m.changed(|m| fs::remove_dir(m.p("store/e")).unwrap()),
        set(&[""]),
        "rmdir"
    );
    assert_eq!(
        m.changed(|m| symlink("a/new", m.p("store/s")).unwrap()),
        set(&[""]),
        "symlink"
    );
    assert_eq!(
        m.changed(|m| fs::rename(m.p("other/sub"), m.p("store/c/sub")).unwrap()),
        set(&["c", "c/sub", "c/sub/deep"]),
        "a full directory renamed in from outside: all of it"
    );
    assert_eq!(
        m.changed(|m| fs::rename(m.p("store/c/sub"), m.p("other/sub")).unwrap()),
        set(&["c"]),
        "a directory renamed out"
    );
    assert_eq!(
        m.changed(|m| {
            fs::write(m.p("other/x"), "changed").unwrap();
            fs::write(m.p("other/sub/deep/y"), "changed").unwrap();
            fs::create_dir(m.p("other/new")).unwrap();
        }),
        set(&[]),
        "changes outside the root are ignored"
    );
    assert_eq!(
        m.changed(|m| fs::set_permissions(m.root(), fs::Permissions::from_mode(0o750)).unwrap()),
        set(&[""]),
        "the root's own metadata"
    );
    // changes deep below a directory renamed meanwhile land at its new path
    assert_eq!(
        m.changed(|m| {
            fs::write(m.p("store/c/d/f3"), "1").unwrap();
            fs::rename(m.p("store/c/d"), m.p("store/b/d")).unwrap();
            fs::write(m.p("store/b/d/f4"), "2").unwrap();
        }),
        set(&["b", "b/d", "c"]),
        "write, rename the directory, write again"
    );
}

#[test]
fn every_operation_on_ext4_names_exactly_the_directories_that_changed() {
    every_operation(&Mounted::ext4());
}

#[test]
fn every_operation_on_tmpfs_names_exactly_the_directories_that_changed() {
    every_operation(&Mounted::tmpfs());
}

#[test]
fn a_queue_overflow_makes_the_journal_incomplete() {
    let m = Mounted::ext4();
    let mut j = m.journal();
    // not drained while 40,000 entries are created: more than the kernel queues (16384)
    for i in 0..40_000 {
        fs::File::create(m.p(&format!("store/a/storm{i}"))).unwrap();
    }
    j.drain();
    assert!(!j.progress().2, "incomplete right away");
    let c = j.finish();
    let e = c.below(&m.root()).unwrap_err();
    assert!(e.contains("overflowed"), "{e}");
    assert!(c.is_empty(), "the set is freed once incomplete");
}

#[test]
fn moving_the_root_or_mounting_below_it_makes_the_journal_incomplete() {
    let m = Mounted::ext4();
    let j = m.journal();
    fs::rename(m.p("store"), m.p("store2")).unwrap();
    let e = j.finish().below(&m.p("store2")).unwrap_err();
    assert!(e.contains("moved, removed or replaced"), "{e}");

    let j = Journal::start(&[m.p("store2")], Options::default()).unwrap();
    run(
        "mount",
        &["-t", "tmpfs", "cmtest", m.p("store2/b").to_str().unwrap()],
    );
    let c = j.finish();
    run("umount", &[m.p("store2/b").to_str().unwrap()]);
    let e = c.below(&m.p("store2")).unwrap_err();
    assert!(e.contains("mounted or unmounted"), "{e}");
}

#[test]
fn a_file_system_mounted_below_the_root_is_watched_too() {
    let outer = Mounted::ext4();
    let inner = outer.p("store/b");
    run("mount", &["-t", "tmpfs", "cmtest", inner.to_str().unwrap()]);
    fs::create_dir(inner.join("deep")).unwrap();
    let got = outer.changed(|m| {
        fs::write(m.p("store/b/deep/x"), "1").unwrap();
        fs::write(m.p("store/a/y"), "1").unwrap();
    });
    run("umount", &[inner.to_str().unwrap()]);
    assert_eq!(got, set(&["a", "b/deep"]));
}

#[test]
fn the_set_is_capped_and_a_root_not_watched_is_refused() {
    let m = Mounted::ext4();
    let mut j = Journal::start(&[m.root()], Options { max_dirs: 2 }).unwrap();
    for d in ["a", "b", "c"] {
        fs::write(m.p(&format!("store/{d}/x")), "1").unwrap();
    }
    j.drain();
    let e = j.finish().below(&m.root()).unwrap_err();
    assert!(e.contains("more than 2 directories"), "{e}");
    let c = m.journal().finish();
    assert!(c.below(&m.p("other")).unwrap_err().contains("not watched"));
    assert_eq!(c.below(&m.p("store/a")).unwrap(), Vec::<PathBuf>::new());
}

#[test]
fn the_watcher_thread_sees_a_concurrent_writer_and_everything_queued_before_finish() {
    let m = Mounted::ext4();
    for i in 0..50 {
        fs::create_dir_all(m.p(&format!("store/mail/u{i}/new"))).unwrap();
    }
    let w = Watcher::start(&[m.root()], Options::default()).unwrap();
    let root = m.root();
    let writer = std::thread::spawn(move || {
        for round in 0..20 {
            for i in (0..50).filter(|i| i % 5 == 0) {
                let d = root.join(format!("mail/u{i}/new"));
                fs::write(d.join(format!("m{round}")), "mail").unwrap();
            }
        }
    });
    writer.join().unwrap();
    // the last change, right before finish: must be seen
    fs::write(m.p("store/mail/u1/new/last"), "x").unwrap();
    let c = w.finish();
    assert!(c.is_complete(), "{:?}", c.incomplete);
    let mut want: Vec<String> = (0..50)
        .filter(|i| i % 5 == 0)
        .map(|i| format!("mail/u{i}/new"))
        .collect();
    want.push("mail/u1/new".into());
    want.sort();
    assert_eq!(rel_strings(c.below(&m.root())), Ok(want));
    assert!(c.events >= 200, "{} events", c.events);
}
