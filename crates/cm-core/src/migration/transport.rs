//! `--to ssh://HOST/DIR`: the Docker host is another machine. The data goes over an existing,
//! well-trusted transport (rsync over ssh: `-aHAX --numeric-ids --delete`, owners mapped on
//! the way with `--usermap`/`--groupmap` built from the same owner map as the local copy), and
//! is proven on the far side by `cm-verify manifest check` there, against manifests of the
//! sources (owners mapped as the copy maps them) written on this side after the final pass.
//!
//! Invariant: ssh never asks (BatchMode): an unknown host key or a missing key is an error
//! that says so; nothing on the far side is written outside DIR.

use super::preflight::{Finding, Level};
use super::{
    Changed, Copier, CopyOutcome, Estimate, MigrationError, Pass, Step, StepOutcome, Verifier,
};
use crate::owners::OwnerMap;
use crate::target::exec::Exec;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// An ssh destination and a directory there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// `[user@]host`.
    pub host: String,
    pub port: Option<u16>,
    /// Absolute directory on the far side (the compose project directory).
    pub dir: PathBuf,
    /// Extra ssh options (`-o Name=value`, `-i key`), as separate arguments.
    pub ssh_args: Vec<String>,
    /// Where ssh keeps one shared connection (ControlMaster), so that the many short
    /// commands of a run do not each open a connection.
    pub control_path: Option<PathBuf>,
}

impl Remote {
    /// `ssh://[user@]host[:port]/absolute/dir`.
    pub fn parse(url: &str) -> Result<Remote, String> {
        let rest = url
            .strip_prefix("ssh://")
            .ok_or_else(|| format!("{url:?}: expected ssh://[USER@]HOST[:PORT]/DIR"))?;
        let (hostport, dir) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url:?}: no directory (ssh://HOST/DIR, DIR absolute)"))?;
        let dir = PathBuf::from(format!("/{dir}"));
        if dir == Path::new("/") || dir.components().any(|c| c.as_os_str() == "..") {
            return Err(format!(
                "{url:?}: the directory must be a project directory, not / or with .."
            ));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{url:?}: port {p:?} is not a number"))?;
                (h.to_string(), Some(port))
            }
            _ => (hostport.to_string(), None),
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(format!("{url:?}: no host"));
        }
        Ok(Remote {
            host,
            port,
            dir,
            ssh_args: Vec::new(),
            control_path: None,
        })
    }

    /// `ssh://...` again.
    pub fn url(&self) -> String {
        match self.port {
            Some(p) => format!("ssh://{}:{p}{}", self.host, self.dir.display()),
            None => format!("ssh://{}{}", self.host, self.dir.display()),
        }
    }

    /// The ssh command line up to (and including) the host.
    pub fn ssh_argv(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "ssh".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=20".into(),
        ];
        if let Some(p) = self.port {
            v.extend(["-p".into(), p.to_string()]);
        }
        if let Some(c) = &self.control_path {
            v.extend([
                "-o".into(),
                "ControlMaster=auto".into(),
                "-o".into(),
                format!("ControlPath={}", c.display()),
                "-o".into(),
                "ControlPersist=60".into(),
            ]);
        }
        v.extend(self.ssh_args.iter().cloned());
        v.push(self.host.clone());
        v
    }

    /// Run `argv` on the far side (each argument quoted for its shell).
    pub fn run(&self, argv: &[&[u8]]) -> io::Result<Output> {
        let a = self.ssh_argv();
        let remote: Vec<String> = argv.iter().map(|s| sh_quote(s)).collect();
        Command::new(&a[0])
            .args(&a[1..])
            .arg("--")
            .arg(remote.join(" "))
            .stdin(Stdio::null())
            .output()
    }

    /// The ssh command for rsync's `-e` (everything of [`Remote::ssh_argv`] but the host).
    pub fn rsync_e(&self) -> String {
        let ssh = self.ssh_argv();
        ssh[..ssh.len() - 1]
            .iter()
            .map(|s| sh_quote(s.as_bytes()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Send one local file to `to` on the far side (rsync -a: a temporary there, renamed).
    pub fn send(&self, rsync: &str, local: &Path, to: &Path) -> Result<(), String> {
        let o = Command::new(rsync)
            .args(["-a", "-e", &self.rsync_e()])
            .arg(local)
            .arg(self.rsync_dest(to))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {rsync}: {e}"))?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        Ok(())
    }

    /// A path below DIR on the far side.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// `host:path` for rsync.
    fn rsync_dest(&self, p: &Path) -> OsString {
        let mut s = OsString::from(format!("{}:", self.host));
        s.push(p.as_os_str());
        s
    }
}

impl Exec for Remote {
    fn output(&self, argv: &[&str]) -> io::Result<Output> {
        let a: Vec<&[u8]> = argv.iter().map(|s| s.as_bytes()).collect();
        self.run(&a)
    }
    fn place(&self) -> String {
        self.host.clone()
    }
}

/// Quote bytes for a POSIX shell: '...' with ' as '\''.
pub fn sh_quote(s: &[u8]) -> String {
    let t = String::from_utf8_lossy(s);
    if !t.is_empty()
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/._-+:=,@".contains(&c))
    {
        return t.into_owned();
    }
    format!("'{}'", t.replace('\'', "'\\''"))
}

/// Where a command runs: here, or on the Docker host over ssh.
#[derive(Clone, Debug)]
pub enum Host {
    Local,
    Remote(Remote),
}

impl Host {
    /// Where its programs run: [`Here`](crate::target::exec::Here), or the ssh connection.
    pub fn exec(&self) -> &dyn Exec {
        match self {
            Host::Local => &crate::target::exec::Here,
            Host::Remote(r) => r,
        }
    }
    pub fn run(&self, argv: &[&str]) -> io::Result<Output> {
        self.exec().output(argv)
    }
    pub fn name(&self) -> String {
        self.exec().place()
    }
}

/// One volume: its source here and its place there.
#[derive(Clone, Debug)]
pub struct RemoteVolume {
    pub name: String,
    pub src: PathBuf,
    /// On the far side: a bind mount's host path, a named volume's mountpoint, or below DIR
    /// in the guide's layout (`DIR/data/chatmail`).
    pub dst: PathBuf,
    /// Not every relay has it (DKIM on IPv4-only relays, ACME in external TLS mode).
    pub optional: bool,
}

/// The guide's layout below `dir` there: DKIM keys, ACME state, the mail store.
pub fn default_volumes(root: &Path, dir: &Path) -> Vec<RemoteVolume> {
    crate::state::guide_trees()
        .into_iter()
        .filter_map(|s| {
            let mount = s.guide_mount?;
            Some(RemoteVolume {
                src: crate::state::under_root(root, &mount),
                dst: dir.join(s.guide?),
                optional: s.optional,
                name: s.name,
            })
        })
        .collect()
}

/// The copy over rsync and ssh.
pub struct RsyncCopier {
    pub remote: Remote,
    pub volumes: Vec<RemoteVolume>,
    pub owners: Option<OwnerMap>,
    pub rsync: String,
    /// The far target as resolved there (None: the guide's layout): its named volumes not
    /// there yet are created by the live pass, its single files sent after the trees.
    pub target: Option<super::real::TargetFiles>,
    /// Why nothing can be copied there (the far target could not be resolved).
    pub unusable: Option<String>,
}

impl RemoteVolume {
    /// The volumes of a copy plan.
    pub fn of(v: crate::copy::Volume) -> RemoteVolume {
        RemoteVolume {
            name: v.name,
            src: v.src,
            dst: v.dst,
            optional: v.optional,
        }
    }
}

impl RsyncCopier {
    /// (volume, source, where it goes) of every tree there, those still to be created too.
    fn sources(&self) -> Vec<(String, PathBuf, String)> {
        super::real::sources(&self.volumes, self.target.as_ref(), |v| {
            let to = format!("{}:{}", self.remote.host, v.dst.display());
            (v.name.clone(), v.src.clone(), to)
        })
    }

    /// One volume of a pass sent with rsync (its directory there made first), rsync's counts
    /// and outcome added to `out` (on the live pass, files that changed or vanished are a
    /// note: the final pass copies them).
    fn sync_volume(
        &self,
        v: &RemoteVolume,
        pass: Pass,
        out: &mut CopyOutcome,
        on: &mut dyn FnMut(String),
    ) -> Result<(), MigrationError> {
        let step = pass.step();
        let mk = self
            .remote
            .run(&[b"mkdir", b"-p", v.dst.as_os_str().as_bytes()])
            .map_err(|e| MigrationError::step(step, format!("ssh: {e}")))?;
        if !mk.status.success() {
            out.errors.push(format!(
                "{}: mkdir {} on {}: {}",
                v.name,
                v.dst.display(),
                self.remote.host,
                String::from_utf8_lossy(&mk.stderr).trim()
            ));
            return Ok(());
        }
        on(format!(
            "{}: rsync {} -> {}:{}",
            v.name,
            v.src.display(),
            self.remote.host,
            v.dst.display()
        ));
        let o = Command::new(&self.rsync)
            .args(self.args(v))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| MigrationError::step(step, format!("running {}: {e}", self.rsync)))?;
        let text = String::from_utf8_lossy(&o.stdout);
        out.entries += stat(&text, "Number of files:");
        out.scanned += stat(&text, "Number of files:");
        out.copied += stat(&text, "Number of regular files transferred:");
        out.copied_bytes += stat(&text, "Total transferred file size:");
        out.deleted += stat(&text, "Number of deleted files:");
        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
        match o.status.code() {
            Some(0) => {}
            // 24: files vanished; 23: some files could not be transferred (in use)
            Some(23) | Some(24) if pass == Pass::Live => out.notes.push(format!(
                "{}: some files changed or vanished while the relay ran; the final pass \
                 copies them ({err})",
                v.name
            )),
            c => out
                .errors
                .push(format!("{}: rsync exited {c:?}: {err}", v.name)),
        }
        Ok(())
    }

    /// The rsync options that map owners as the local copy does.
    fn owner_args(&self) -> Vec<OsString> {
        let mut a = Vec::new();
        if let Some(m) = self.owners.as_ref().filter(|m| !m.is_identity()) {
            let (u, g) = (m.uid_pairs(), m.gid_pairs());
            let join = |p: Vec<(u32, u32)>| {
                p.iter()
                    .map(|(a, b)| format!("{a}:{b}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            if !u.is_empty() {
                a.push(format!("--usermap={}", join(u)).into());
            }
            if !g.is_empty() {
                a.push(format!("--groupmap={}", join(g)).into());
            }
        }
        a
    }

    /// The single files the far target mounts, sent with rsync (content, mode, mtime, owner
    /// mapped), after the trees.
    fn send_files(&self, out: &mut CopyOutcome) {
        let Some(tf) = &self.target else {
            return;
        };
        for (p, dst, src, _) in crate::target::plan::single_files(&tf.target, &tf.root) {
            let parent = dst.parent().unwrap_or(Path::new("/"));
            let mk = self
                .remote
                .run(&[b"mkdir", b"-p", parent.as_os_str().as_bytes()]);
            let mut a: Vec<OsString> = vec!["-a".into(), "--numeric-ids".into()];
            a.extend(self.owner_args());
            a.extend([
                "-e".into(),
                self.remote.rsync_e().into(),
                src.clone().into(),
            ]);
            a.push(self.remote.rsync_dest(&dst));
            let o = mk.and_then(|_| {
                Command::new(&self.rsync)
                    .args(&a)
                    .stdin(Stdio::null())
                    .output()
            });
            match o {
                Ok(o) if o.status.success() => out.notes.push(format!(
                    "{}: {} -> {}:{}",
                    p.state.name,
                    src.display(),
                    self.remote.host,
                    dst.display()
                )),
                Ok(o) => out.errors.push(format!(
                    "{}: rsync {}: {}",
                    p.state.name,
                    src.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => out.errors.push(format!("{}: {e}", p.state.name)),
            }
        }
    }

    fn args(&self, v: &RemoteVolume) -> Vec<OsString> {
        let mut a: Vec<OsString> = ["-aHAX", "--numeric-ids", "--delete", "--stats"]
            .iter()
            .map(OsString::from)
            .collect();
        a.extend(self.owner_args());
        a.push("-e".into());
        a.push(self.remote.rsync_e().into());
        let mut src = v.src.as_os_str().to_owned();
        src.push("/");
        a.push(src);
        let mut dst = self.remote.rsync_dest(&v.dst);
        dst.push("/");
        a.push(dst);
        a
    }
}

/// A number after `label` in rsync's --stats output ("Number of files: 1,234 (reg: ...)").
fn stat(out: &str, label: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|r| {
            let digits: String = r
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(|c| *c != ',')
                .collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

impl Copier for RsyncCopier {
    fn roots(&self) -> Vec<PathBuf> {
        self.sources().into_iter().map(|(_, src, _)| src).collect()
    }

    fn estimate(&mut self) -> Result<Estimate, MigrationError> {
        super::real::estimate_sources(&self.sources())
    }

    fn preflight(&mut self) -> Vec<Finding> {
        let mut f = Vec::new();
        if let Some(why) = &self.unusable {
            f.push(Finding::not_checked(
                "sources",
                format!("nothing to copy into: {why}"),
            ));
        }
        for v in self.volumes.iter().filter(|v| !v.optional) {
            if v.src.symlink_metadata().is_err() {
                f.push(Finding::block(
                    "sources",
                    format!("{} ({}) does not exist", v.src.display(), v.name),
                    "give --root the old host's root directory",
                ));
            }
        }
        let probe = self.remote.run(&[
            b"sh",
            b"-c",
            b"command -v rsync && mkdir -p \"$1\" && df -Pk \"$1\" | tail -1",
            b"sh",
            self.remote.dir.as_os_str().as_bytes(),
        ]);
        match probe {
            Ok(o) if o.status.success() => f.push(Finding::ok(
                "transport",
                format!(
                    "ssh to {} works, rsync is there, {} is writable",
                    self.remote.host,
                    self.remote.dir.display()
                ),
            )),
            Ok(o) => f.push(Finding::block(
                "transport",
                format!(
                    "on {}: {}",
                    self.remote.host,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                "make `ssh HOST` work without a password prompt (a key in ssh-agent or \
                 -i), and install rsync there",
            )),
            Err(e) => f.push(Finding::block(
                "transport",
                format!("running ssh: {e}"),
                "install openssh-client",
            )),
        }
        f
    }

    fn copy(
        &mut self,
        pass: Pass,
        changed: &Changed,
        on: &mut dyn FnMut(String),
    ) -> Result<CopyOutcome, MigrationError> {
        let mut out = CopyOutcome::default();
        let target = self.target.as_mut();
        let made = super::real::begin_pass(pass, self.unusable.as_ref(), target, &mut out.notes)?;
        if let Some(v) = made {
            self.volumes = v.into_iter().map(RemoteVolume::of).collect();
        }
        if let (Pass::Final, Changed::Dirs(_)) = (pass, changed) {
            out.notes.push(
                "over ssh the delta is rsync's own pass over every volume (it compares size and \
                 mtime of every entry; the change journal restricts only a local copy)"
                    .into(),
            );
        }
        for v in &self.volumes {
            if v.src.symlink_metadata().is_err() {
                if v.optional {
                    out.notes.push(format!(
                        "{}: {} not on this host: skipped",
                        v.name,
                        v.src.display()
                    ));
                    continue;
                }
                out.errors
                    .push(format!("{}: {} does not exist", v.name, v.src.display()));
                continue;
            }
            self.sync_volume(v, pass, &mut out, on)?;
        }
        if out.errors.is_empty() {
            self.send_files(&mut out);
        }
        Ok(out)
    }

    fn left_behind(&self) -> Vec<String> {
        self.volumes
            .iter()
            .map(|v| {
                format!(
                    "{}:{} (the copy of {})",
                    self.remote.host,
                    v.dst.display(),
                    v.src.display()
                )
            })
            .collect()
    }
}

/// The proof on the far side: manifests of the sources written here (owners mapped as the
/// copy maps them), sent there, and `cm-verify manifest check` run there.
pub struct RemoteVerifier {
    pub remote: Remote,
    /// The far copies: given (the guide's layout), or read from the far target when the
    /// verification runs (a named volume exists only once the copy created it).
    pub volumes: super::verify::Volumes,
    pub owners: Option<OwnerMap>,
    /// Where the manifests are written on this side.
    pub manifest_dir: PathBuf,
    /// This suite's cm-verify, sent to the far side so that the same version checks.
    pub cm_verify: PathBuf,
    pub rsync: String,
}

impl RemoteVerifier {
    /// Send a local file to DIR/.cm-migrate/NAME there.
    fn send(&self, local: &Path, name: &str) -> Result<PathBuf, String> {
        let dir = self.remote.path(".cm-migrate");
        let mk = self
            .remote
            .run(&[b"mkdir", b"-p", dir.as_os_str().as_bytes()])
            .map_err(|e| e.to_string())?;
        if !mk.status.success() {
            return Err(String::from_utf8_lossy(&mk.stderr).trim().to_string());
        }
        let to = dir.join(name);
        self.remote.send(&self.rsync, local, &to)?;
        Ok(to)
    }

    /// A manifest of `v`'s source with owners (and ACL ids) mapped, written as a stream.
    fn write_manifest(&self, v: &super::verify::VolumePair) -> Result<PathBuf, String> {
        let path = self.manifest_dir.join(format!("{}.manifest", v.name));
        std::fs::create_dir_all(&self.manifest_dir).map_err(|e| e.to_string())?;
        // ours, from an earlier attempt: a manifest is never overwritten, so it goes first
        let _ = std::fs::remove_file(&path);
        let comments = vec![format!(
            "written by cm-migrate {} on the old host: the source {} with owners mapped",
            env!("CARGO_PKG_VERSION"),
            v.src.display()
        )];
        let header = crate::manifest::Header::of(Path::new("/"), &v.src);
        let owners = self.owners.as_ref().filter(|m| !m.is_identity());
        let opts = crate::tree::ScanOptions::default();
        let done = crate::manifest::write_tree_mapped(
            &v.src,
            &path,
            &header,
            &comments,
            &opts,
            owners,
            &(),
        )
        .map_err(|e| e.to_string())?;
        if let Some(e) = done.errors.first() {
            return Err(format!(
                "{} entries of {} could not be read, first: {}: {}",
                done.errors.len(),
                v.src.display(),
                e.path.display(),
                e.message
            ));
        }
        Ok(path)
    }
}

impl RemoteVerifier {
    /// One volume proven on the far side: its manifest written here and sent, then checked
    /// there against the copy by cm-verify (`bin` there); None when it holds, else what
    /// differs.
    fn check_there(
        &self,
        v: &super::verify::VolumePair,
        bin: &Path,
        on: &mut dyn FnMut(String),
    ) -> Result<Option<String>, MigrationError> {
        let err = |m: String| MigrationError::step(Step::Verify, m);
        on(format!("{}: manifest of {}", v.name, v.src.display()));
        let m = self
            .write_manifest(v)
            .map_err(|e| err(format!("{}: {e}", v.name)))?;
        let there = self
            .send(&m, &format!("{}.manifest", v.name))
            .map_err(|e| err(format!("{}: sending the manifest: {e}", v.name)))?;
        on(format!(
            "{}: cm-verify manifest check on {}",
            v.name, self.remote.host
        ));
        let r = self
            .remote
            .run(&[
                bin.as_os_str().as_bytes(),
                b"manifest",
                b"check",
                there.as_os_str().as_bytes(),
                v.dst.as_os_str().as_bytes(),
                b"--quiet",
            ])
            .map_err(|e| err(format!("ssh: {e}")))?;
        let said = String::from_utf8_lossy(&r.stderr);
        Ok(match r.status.code() {
            Some(0) => None,
            Some(1) => Some(format!(
                "{}: the copy on {} differs from the manifest of {}: {}",
                v.name,
                self.remote.host,
                v.src.display(),
                said.trim()
            )),
            c => Some(format!(
                "{}: cm-verify on {} exited {c:?}: {}",
                v.name,
                self.remote.host,
                said.trim()
            )),
        })
    }
}

impl Verifier for RemoteVerifier {
    fn verify(
        &mut self,
        _changed: &Changed,
        on: &mut dyn FnMut(String),
    ) -> Result<StepOutcome, MigrationError> {
        let bin = self.send(&self.cm_verify, "cm-verify").map_err(|e| {
            MigrationError::step(
                Step::Verify,
                format!("sending cm-verify to {}: {e}", self.remote.host),
            )
        })?;
        let mut o = StepOutcome::ok("");
        let mut held = Vec::new();
        let volumes = self
            .volumes
            .get()
            .map_err(|e| MigrationError::step(Step::Verify, e))?;
        for v in volumes.iter().filter(|v| v.src.symlink_metadata().is_ok()) {
            match self.check_there(v, &bin, on)? {
                None => held.push(v.name.clone()),
                Some(p) => o.problems.push(p),
            }
        }
        o.ok = o.problems.is_empty();
        o.summary = format!(
            "manifests checked on {}: {} hold{}",
            self.remote.host,
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(", ")
            },
            if o.ok { "" } else { "; some differ" }
        );
        Ok(o)
    }
}

/// The far side's .env: fetched into a local working copy, merged there as cm-ini-to-env
/// --merge does, and sent back (rsync writes a temporary and renames it; the old one is kept
/// beside it as .env.cm-backup-TIME first).
pub struct RemoteSettings {
    pub remote: Remote,
    pub ini: PathBuf,
    /// The local working copy of the far .env (under the state directory).
    pub work: PathBuf,
    pub rsync: String,
    /// The far side's .env (the project's).
    pub env: PathBuf,
    /// An ini-mount target: where the far compose file mounts chatmail.ini from, and the
    /// variables it interpolates (set in the .env); None: every setting in the .env.
    pub ini_mount: Option<(PathBuf, Vec<String>)>,
}

impl RemoteSettings {
    fn env_there(&self) -> PathBuf {
        self.env.clone()
    }

    /// The local working copy of the far chatmail.ini (ini-mount targets).
    fn work_ini(&self) -> PathBuf {
        self.work.with_file_name("chatmail.ini")
    }

    /// The far file `there` into the local `here` with its mode (absent there: absent
    /// here).
    fn fetch_file(&self, there: &Path, here: &Path) -> Result<(), MigrationError> {
        let err = |m: String| MigrationError::step(Step::Settings, m);
        let o = self
            .remote
            .run(&[
                b"sh",
                b"-c",
                b"test ! -e \"$1\" || { stat -c %a -- \"$1\" && cat -- \"$1\"; }",
                b"sh",
                there.as_os_str().as_bytes(),
            ])
            .map_err(|e| err(format!("ssh: {e}")))?;
        if !o.status.success() {
            return Err(err(format!(
                "reading {} on {}: {}",
                there.display(),
                self.remote.host,
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        if let Some(d) = here.parent() {
            std::fs::create_dir_all(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
        }
        let _ = std::fs::remove_file(here);
        let Some(nl) = o.stdout.iter().position(|b| *b == b'\n') else {
            return Ok(());
        };
        let mode = u32::from_str_radix(String::from_utf8_lossy(&o.stdout[..nl]).trim(), 8)
            .map_err(|_| err(format!("reading {}: no mode", there.display())))?;
        crate::fsutil::write_atomic(here, &o.stdout[nl + 1..], mode & 0o7777)
            .map_err(|e| err(format!("{}: {e}", here.display())))
    }

    /// Keep the far `there` as `there.cm-backup-TIME` (when it exists), then send `here`.
    fn replace_there(&self, here: &Path, there: &Path) -> Result<(), MigrationError> {
        let err = |m: String| MigrationError::step(Step::Settings, m);
        let backup = format!(
            "{}.cm-backup-{}",
            there.display(),
            crate::systemd::ops::unix_ms()
        );
        let b = self
            .remote
            .run(&[
                b"sh",
                b"-c",
                b"test ! -e \"$1\" || cp -p -- \"$1\" \"$2\"",
                b"sh",
                there.as_os_str().as_bytes(),
                backup.as_bytes(),
            ])
            .map_err(|e| err(format!("ssh: {e}")))?;
        if !b.status.success() {
            return Err(err(format!(
                "backing up {} on {}: {}",
                there.display(),
                self.remote.host,
                String::from_utf8_lossy(&b.stderr).trim()
            )));
        }
        self.remote
            .send(&self.rsync, here, there)
            .map_err(|e| err(format!("sending {}: {e}", there.display())))
    }

    /// An ini-mount target's settings, made in the working copies and sent where they
    /// changed.
    fn write_ini_mount(&self, dst: &Path, vars: &[String]) -> Result<StepOutcome, MigrationError> {
        let err = |m: String| MigrationError::step(Step::Settings, m);
        self.fetch_file(dst, &self.work_ini())?;
        let parsed = crate::ini::read(&self.ini).map_err(|e| err(e.to_string()))?;
        let p = parsed.params().map_err(|e| err(e.to_string()))?;
        let values = crate::target::settings::interpolated_values(vars, p);
        let w = crate::target::settings::write_ini_mount(
            &self.ini,
            &self.work_ini(),
            &self.work,
            &values,
            false,
        )
        .map_err(|e| err(e.to_string()))?;
        if w.ini_changed {
            self.replace_there(&self.work_ini(), dst)?;
        }
        if !w.env_set.is_empty() {
            self.replace_there(&self.work, &self.env)?;
        }
        Ok(StepOutcome::ok(format!(
            "{}:{} {} (the old host's chatmail.ini); {}",
            self.remote.host,
            dst.display(),
            if w.ini_changed { "written" } else { "already" },
            if w.env_set.is_empty() {
                format!("{} already holds the variables", self.env.display())
            } else {
                format!("{} set in {}", w.env_set.join(", "), self.env.display())
            }
        )))
    }

    /// The far side's .env into the working copy (absent there: absent here).
    fn fetch(&self) -> Result<(), MigrationError> {
        self.fetch_file(&self.env, &self.work)
    }

    fn local(&self) -> super::real::EnvSettings {
        super::real::EnvSettings {
            ini: self.ini.clone(),
            env: self.work.clone(),
        }
    }
}

impl super::Settings for RemoteSettings {
    fn plan(&mut self) -> Result<String, MigrationError> {
        if let Some((dst, _)) = &self.ini_mount {
            return Ok(format!(
                "the old host's chatmail.ini to {}:{}, the variables the compose file interpolates into {}",
                self.remote.host,
                dst.display(),
                self.env.display()
            ));
        }
        self.fetch()?;
        let p = self.local().plan()?;
        Ok(format!(
            "{p}, sent to {}:{}",
            self.remote.host,
            self.env_there().display()
        ))
    }

    fn write(&mut self) -> Result<StepOutcome, MigrationError> {
        self.fetch()?;
        if let Some((dst, vars)) = &self.ini_mount {
            return self.write_ini_mount(dst, vars);
        }
        let before = std::fs::read(&self.work).ok();
        let o = self.local().write()?;
        if std::fs::read(&self.work).ok() == before {
            return Ok(StepOutcome::ok(format!(
                "{}:{} already holds these settings",
                self.remote.host,
                self.env_there().display()
            )));
        }
        self.replace_there(&self.work, &self.env)?;
        Ok(StepOutcome::ok(format!(
            "{} on {} ({})",
            self.env.display(),
            self.remote.host,
            o.summary
        )))
    }

    fn left_behind(&self) -> Vec<String> {
        vec![format!(
            "{}:{} (written from {})",
            self.remote.host,
            self.env_there().display(),
            self.ini.display()
        )]
    }
}

/// Findings about a Docker host reached through `host` (here or over ssh): the engine,
/// Compose v2 (found as [`crate::target::compose::find`] finds it), cgroup v2 and the
/// inotify limits the guide sets.
pub fn docker_host_findings(host: &dyn Exec, start: bool) -> Vec<Finding> {
    let on = host.place();
    let need = if start { Level::Block } else { Level::Warn };
    let out = |argv: &[&str]| -> Option<String> {
        host.output(argv)
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let docker = match out(&["docker", "version", "--format", "{{.Server.Version}}"]) {
        Some(v) => Finding::ok("docker", format!("Docker engine {v} runs on {on}")),
        None => Finding::new(
            "docker",
            need,
            format!("no running Docker engine on {on} (`docker version` failed)"),
            Some("install Docker and start it (systemctl start docker)".into()),
        ),
    };
    let cgroup = match out(&["stat", "-fc", "%T", "/sys/fs/cgroup"]) {
        Some(t) => super::preflight::check_cgroup(&t, &on, start),
        None => Finding::not_checked("cgroup", format!("could not read /sys/fs/cgroup on {on}")),
    };
    let read = |key: &str| {
        out(&["cat", &format!("/proc/sys/fs/inotify/{key}")]).and_then(|s| s.parse().ok())
    };
    let inotify = super::preflight::check_inotify(
        read("max_user_instances"),
        read("max_user_watches"),
        &on,
        start,
    );
    vec![docker, compose_finding(host, need), cgroup, inotify]
}

/// Whether Compose v2 is on `host`, as [`crate::target::compose::find`] finds it.
fn compose_finding(host: &dyn Exec, need: Level) -> Finding {
    let on = host.place();
    match crate::target::compose::find(host, None, &mut Vec::new()) {
        Ok(c) if c.argv == ["docker", "compose"] => {
            Finding::ok("compose", format!("Docker Compose {} on {on}", c.version))
        }
        Ok(c) => Finding::ok(
            "compose",
            format!("Docker Compose {} on {on} ({})", c.version, c.display()),
        ),
        Err(_) => Finding::new(
            "compose",
            need,
            format!("no Docker Compose v2 on {on} (the deployment needs `cgroup: host`, which only v2 supports)"),
            Some("apt-get install docker-compose-plugin (or docker-compose-v2)".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_parse_and_bad_ones_say_why() {
        let r = Remote::parse("ssh://root@mail.example.org:2222/srv/chatmail").unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.dir.as_path()),
            (
                "root@mail.example.org",
                Some(2222),
                Path::new("/srv/chatmail")
            )
        );
        assert_eq!(r.url(), "ssh://root@mail.example.org:2222/srv/chatmail");
        let r = Remote::parse("ssh://h/d").unwrap();
        assert_eq!((r.port, r.dir.as_path()), (None, Path::new("/d")));
        for bad in [
            "h:/d",
            "ssh://h",
            "ssh://h/",
            "ssh://:22/d",
            "ssh://h:x/d",
            "ssh://h/a/../b",
            "ssh://-oProxy/d",
        ] {
            assert!(Remote::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(sh_quote(b"/srv/a"), "/srv/a");
        assert_eq!(sh_quote(b"a b"), "'a b'");
        assert_eq!(sh_quote(b"it's"), "'it'\\''s'");
        assert_eq!(sh_quote(b""), "''");
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote(b"x'y \"$HOME\"")))
            .output()
            .unwrap();
        assert_eq!(o.stdout, b"x'y \"$HOME\"");
    }

    /// A Docker host that answers the commands it knows and fails the rest.
    struct FakeHost(Vec<(&'static str, &'static str)>);

    impl Exec for FakeHost {
        fn output(&self, argv: &[&str]) -> io::Result<Output> {
            use std::os::unix::process::ExitStatusExt;
            let cmd = argv.join(" ");
            let said = self.0.iter().find(|(c, _)| *c == cmd).map(|(_, o)| *o);
            Ok(Output {
                status: std::process::ExitStatus::from_raw(if said.is_some() { 0 } else { 256 }),
                stdout: said.unwrap_or("").into(),
                stderr: Vec::new(),
            })
        }
        fn place(&self) -> String {
            "far".into()
        }
    }

    fn compose_of(host: &FakeHost, start: bool) -> Finding {
        let f = docker_host_findings(host, start);
        let checks: Vec<&str> = f.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(checks, ["docker", "compose", "cgroup", "inotify"]);
        f.into_iter().find(|f| f.check == "compose").unwrap()
    }

    #[test]
    fn compose_on_a_docker_host_is_found_as_the_target_finds_it() {
        let plugin = FakeHost(vec![(
            "docker compose version",
            "Docker Compose version v2.29.7\n",
        )]);
        let f = compose_of(&plugin, true);
        assert_eq!(
            (f.level, f.message.as_str()),
            (Level::Ok, "Docker Compose 2.29.7 on far")
        );
        // a standalone v2 binary, docker-compose-v2 too; a v1 docker-compose is passed over
        let v2 = FakeHost(vec![
            (
                "docker-compose version",
                "docker-compose version 1.29.2, build 5be",
            ),
            (
                "docker-compose-v2 version",
                "Docker Compose version 2.26.1-4\n",
            ),
        ]);
        let f = compose_of(&v2, true);
        assert_eq!(
            (f.level, f.message.as_str()),
            (
                Level::Ok,
                "Docker Compose 2.26.1-4 on far (docker-compose-v2)"
            )
        );
        let v1 = FakeHost(vec![(
            "docker-compose version",
            "docker-compose version 1.29.2, build 5be",
        )]);
        for (start, level) in [(true, Level::Block), (false, Level::Warn)] {
            let f = compose_of(&v1, start);
            assert_eq!(f.level, level);
            assert!(
                f.message.starts_with("no Docker Compose v2 on far"),
                "{f:?}"
            );
            assert!(f.fix.is_some_and(|x| x.contains("docker-compose-plugin")));
        }
    }

    #[test]
    fn rsync_stats_are_read() {
        let s = "Number of files: 1,234 (reg: 1,000, dir: 234)\nNumber of regular files transferred: 17\nTotal transferred file size: 2,048 bytes\nNumber of deleted files: 3\n";
        assert_eq!(stat(s, "Number of files:"), 1234);
        assert_eq!(stat(s, "Number of regular files transferred:"), 17);
        assert_eq!(stat(s, "Total transferred file size:"), 2048);
        assert_eq!(stat(s, "Number of deleted files:"), 3);
        assert_eq!(stat(s, "Nothing:"), 0);
    }
}
