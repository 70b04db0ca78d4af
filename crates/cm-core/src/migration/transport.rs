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
    pub fn run(&self, argv: &[&str]) -> io::Result<Output> {
        match self {
            Host::Local => Command::new(argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .output(),
            Host::Remote(r) => {
                let a: Vec<&[u8]> = argv.iter().map(|s| s.as_bytes()).collect();
                r.run(&a)
            }
        }
    }
    pub fn name(&self) -> String {
        match self {
            Host::Local => "this host".into(),
            Host::Remote(r) => r.host.clone(),
        }
    }
}

/// One volume: its source here and its place below DIR there.
#[derive(Clone, Debug)]
pub struct RemoteVolume {
    pub name: String,
    pub src: PathBuf,
    /// Below DIR (e.g. `data/chatmail`).
    pub rel: String,
    /// Not every relay has it (DKIM on IPv4-only relays, ACME in external TLS mode).
    pub optional: bool,
}

/// The guide's layout: DKIM keys, ACME state, the mail store.
pub fn default_volumes(root: &Path) -> Vec<RemoteVolume> {
    crate::state::guide_trees()
        .into_iter()
        .filter_map(|s| {
            let mount = s.guide_mount?;
            Some(RemoteVolume {
                src: crate::state::under_root(root, &mount),
                rel: s.guide?.display().to_string(),
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
}

impl RsyncCopier {
    fn present(&self) -> Vec<&RemoteVolume> {
        self.volumes
            .iter()
            .filter(|v| v.src.symlink_metadata().is_ok())
            .collect()
    }

    fn args(&self, v: &RemoteVolume) -> Vec<OsString> {
        let mut a: Vec<OsString> = ["-aHAX", "--numeric-ids", "--delete", "--stats"]
            .iter()
            .map(OsString::from)
            .collect();
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
        a.push("-e".into());
        a.push(self.remote.rsync_e().into());
        let mut src = v.src.as_os_str().to_owned();
        src.push("/");
        a.push(src);
        let mut dst = self.remote.rsync_dest(&self.remote.path(&v.rel));
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
        self.present().iter().map(|v| v.src.clone()).collect()
    }

    fn estimate(&mut self) -> Result<Estimate, MigrationError> {
        super::real::estimate_sources(
            &self
                .present()
                .iter()
                .map(|v| {
                    (
                        v.name.clone(),
                        v.src.clone(),
                        self.remote.url() + "/" + &v.rel,
                    )
                })
                .collect::<Vec<_>>(),
        )
    }

    fn preflight(&mut self) -> Vec<Finding> {
        let mut f = Vec::new();
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
        let step = pass.step();
        let mut out = CopyOutcome::default();
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
            let dst = self.remote.path(&v.rel);
            let mk = self
                .remote
                .run(&[b"mkdir", b"-p", dst.as_os_str().as_bytes()])
                .map_err(|e| MigrationError::step(step, format!("ssh: {e}")))?;
            if !mk.status.success() {
                out.errors.push(format!(
                    "{}: mkdir {} on {}: {}",
                    v.name,
                    dst.display(),
                    self.remote.host,
                    String::from_utf8_lossy(&mk.stderr).trim()
                ));
                continue;
            }
            on(format!(
                "{}: rsync {} -> {}:{}",
                v.name,
                v.src.display(),
                self.remote.host,
                dst.display()
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
                    self.remote.path(&v.rel).display(),
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
    pub volumes: Vec<RemoteVolume>,
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

    /// A manifest of `v`'s source with owners (and ACL ids) mapped.
    fn write_manifest(&self, v: &RemoteVolume) -> Result<PathBuf, String> {
        let opts = crate::tree::ScanOptions::default();
        let mut snap = crate::tree::scan(&v.src, &opts, &()).map_err(|e| e.to_string())?;
        if !snap.errors.is_empty() {
            return Err(format!(
                "{} entries of {} could not be read, first: {}: {}",
                snap.errors.len(),
                v.src.display(),
                snap.errors[0].path.display(),
                snap.errors[0].message
            ));
        }
        if let Some(m) = self.owners.as_ref().filter(|m| !m.is_identity()) {
            for e in &mut snap.entries {
                (e.uid, e.gid) = m.map(e.uid, e.gid);
                for (n, val) in &mut e.xattrs {
                    if crate::owners::is_acl_xattr(n.as_bytes()) {
                        *val = m.map_acl(val);
                    }
                }
            }
        }
        let path = self.manifest_dir.join(format!("{}.manifest", v.name));
        std::fs::create_dir_all(&self.manifest_dir).map_err(|e| e.to_string())?;
        let comments = vec![format!(
            "written by cm-migrate {} on the old host: the source {} with owners mapped",
            env!("CARGO_PKG_VERSION"),
            v.src.display()
        )];
        crate::manifest::write(&path, &snap, &comments).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

impl Verifier for RemoteVerifier {
    fn verify(
        &mut self,
        _changed: &Changed,
        on: &mut dyn FnMut(String),
    ) -> Result<StepOutcome, MigrationError> {
        let err = |m: String| MigrationError::step(Step::Verify, m);
        let bin = self
            .send(&self.cm_verify, "cm-verify")
            .map_err(|e| err(format!("sending cm-verify to {}: {e}", self.remote.host)))?;
        let mut o = StepOutcome::ok("");
        let mut held = Vec::new();
        for v in self
            .volumes
            .iter()
            .filter(|v| v.src.symlink_metadata().is_ok())
        {
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
            let dst = self.remote.path(&v.rel);
            let r = self
                .remote
                .run(&[
                    bin.as_os_str().as_bytes(),
                    b"manifest",
                    b"check",
                    there.as_os_str().as_bytes(),
                    dst.as_os_str().as_bytes(),
                    b"--quiet",
                ])
                .map_err(|e| err(format!("ssh: {e}")))?;
            match r.status.code() {
                Some(0) => held.push(v.name.clone()),
                Some(1) => o.problems.push(format!(
                    "{}: the copy on {} differs from the manifest of {}: {}",
                    v.name,
                    self.remote.host,
                    v.src.display(),
                    String::from_utf8_lossy(&r.stderr).trim()
                )),
                c => o.problems.push(format!(
                    "{}: cm-verify on {} exited {c:?}: {}",
                    v.name,
                    self.remote.host,
                    String::from_utf8_lossy(&r.stderr).trim()
                )),
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
    /// The local working copy (under the state directory).
    pub work: PathBuf,
    pub rsync: String,
}

impl RemoteSettings {
    fn env_there(&self) -> PathBuf {
        self.remote.path(".env")
    }

    /// The far side's .env into the working copy (absent there: absent here).
    fn fetch(&self) -> Result<(), MigrationError> {
        let err = |m: String| MigrationError::step(Step::Settings, m);
        let there = self.env_there();
        let o = self
            .remote
            .run(&[
                b"sh",
                b"-c",
                b"test ! -e \"$1\" || cat -- \"$1\"",
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
        if let Some(d) = self.work.parent() {
            std::fs::create_dir_all(d).map_err(|e| err(format!("{}: {e}", d.display())))?;
        }
        let _ = std::fs::remove_file(&self.work);
        if !o.stdout.is_empty() {
            crate::fsutil::write_atomic(&self.work, &o.stdout, 0o600)
                .map_err(|e| err(format!("{}: {e}", self.work.display())))?;
        }
        Ok(())
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
        self.fetch()?;
        let p = self.local().plan()?;
        Ok(format!(
            "{p}, sent to {}:{}",
            self.remote.host,
            self.env_there().display()
        ))
    }

    fn write(&mut self) -> Result<StepOutcome, MigrationError> {
        let err = |m: String| MigrationError::step(Step::Settings, m);
        self.fetch()?;
        let before = std::fs::read(&self.work).ok();
        let o = self.local().write()?;
        if std::fs::read(&self.work).ok() == before {
            return Ok(StepOutcome::ok(format!(
                "{}:{} already holds these settings",
                self.remote.host,
                self.env_there().display()
            )));
        }
        let there = self.env_there();
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
            .send(&self.rsync, &self.work, &there)
            .map_err(|e| err(format!("sending the .env: {e}")))?;
        Ok(StepOutcome::ok(format!(
            "{} on {} ({})",
            there.display(),
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
/// Compose v2, cgroup v2 and the inotify limits the guide sets.
pub fn docker_host_findings(host: &Host, start: bool) -> Vec<Finding> {
    let mut f = Vec::new();
    let on = host.name();
    let need = if start { Level::Block } else { Level::Warn };
    let out = |argv: &[&str]| -> Option<String> {
        host.run(argv)
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    f.push(
        match out(&["docker", "version", "--format", "{{.Server.Version}}"]) {
            Some(v) => Finding::ok("docker", format!("Docker engine {v} runs on {on}")),
            None => Finding::new(
                "docker",
                need,
                format!("no running Docker engine on {on} (`docker version` failed)"),
                Some("install Docker and start it (systemctl start docker)".into()),
            ),
        },
    );
    let compose = out(&["docker", "compose", "version", "--short"]).or_else(|| {
        out(&["docker-compose", "version", "--short"])
            .filter(|v| v.starts_with('2') || v.starts_with("v2"))
    });
    f.push(match compose {
        Some(v) => Finding::ok("compose", format!("Docker Compose {v} on {on}")),
        None => Finding::new(
            "compose",
            need,
            format!("no Docker Compose v2 on {on} (the deployment needs `cgroup: host`, which only v2 supports)"),
            Some("apt-get install docker-compose-plugin (or docker-compose-v2)".into()),
        ),
    });
    f.push(match out(&["stat", "-fc", "%T", "/sys/fs/cgroup"]) {
        Some(t) => super::preflight::check_cgroup(&t, &on, start),
        None => Finding::not_checked("cgroup", format!("could not read /sys/fs/cgroup on {on}")),
    });
    let read = |key: &str| {
        out(&["cat", &format!("/proc/sys/fs/inotify/{key}")]).and_then(|s| s.parse().ok())
    };
    f.push(super::preflight::check_inotify(
        read("max_user_instances"),
        read("max_user_watches"),
        &on,
        start,
    ));
    f
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
