//! What `preflight`, `run` and `rollback` share: their arguments, the parts they drive
//! (built from the arguments: here or over ssh), and how findings and steps are printed.

use clap::{Args, Subcommand};
use cm_core::migration::journal::RunIdentity;
use cm_core::migration::preflight::{host_findings, Finding, HostInput, Level};
use cm_core::migration::project;
use cm_core::migration::real::{
    ComposeTarget, FanotifyWatch, NoServices, SystemdServices, VerifyCommand,
};
use cm_core::migration::steps::DEFAULT_RUN_LOCK_FILE;
use cm_core::migration::transport::{
    default_volumes, Host, Remote, RemoteSettings, RemoteVerifier, RsyncCopier,
};
use cm_core::migration::verify::{ChangedVerify, VolumePair, Volumes};
use cm_core::migration::{Copier, Services, Settings, Target, Verifier};
use cm_core::owners::OwnerMap;
use cm_core::systemd::{Postqueue, RestoreOptions, StopOptions};
use cm_core::target::exec::Runner;
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The subcommands of the whole move.
#[derive(Subcommand, Debug)]
pub enum FlowCmd {
    /// Check everything the move needs (root, systemd, Docker and Compose v2, cgroup v2, the
    /// inotify limits, space, ports, the ini, the mail queue, the target); change nothing.
    /// Exit 1 when a finding blocks the move.
    #[command(after_long_help = "Exit codes:
  0  nothing blocks the move (warnings are listed)
  1  a finding blocks the move; each says what to do
  2  usage error, or an input that does not exist or cannot be used

Example:
  cm-migrate preflight --project-dir /srv/chatmail")]
    Preflight(crate::preflight::PreflightArgs),
    /// The whole move: preflight, a live bulk copy while the relay serves mail (with a change
    /// journal), stop-services, the delta of what changed, the .env, cm-verify all [, the
    /// container started]; prints the measured downtime. --resume continues a crashed run.
    #[command(after_long_help = "Exit codes:
  0  the move is complete (every step done and verified)
  1  a step failed or the verification found differences: the run journal keeps where it
     stopped; fix the cause and run again with --resume (or undo with cm-migrate rollback)
  2  usage error, unusable input, or another run in progress

Examples:
  cm-migrate run --project-dir /srv/chatmail --start
  cm-migrate run --project-dir /srv/chatmail --resume")]
    Run(crate::run::RunArgs),
    /// Bring the old relay back after a run: a container it started is stopped first, then
    /// every unit restored as recorded; what the run left in the target is listed.
    #[command(after_long_help = "Exit codes:
  0  the old relay runs as before the move
  1  incomplete: a unit could not be restored or the container not stopped (the output says
     what); run it again after fixing the cause
  2  usage error, no run journal, or another run in progress

Example:
  cm-migrate rollback --project-dir /srv/chatmail")]
    Rollback(crate::rollback::RollbackArgs),
}

/// Run one of them; the exit code.
pub fn main(c: FlowCmd) -> i32 {
    match c {
        FlowCmd::Preflight(a) => crate::preflight::main(a),
        FlowCmd::Run(a) => crate::run::main(a),
        FlowCmd::Rollback(a) => crate::rollback::main(a),
    }
}

/// Where the move goes and what it reads (shared by preflight, run and rollback).
#[derive(Args, Debug, Clone)]
pub struct FlowArgs {
    /// The compose project directory on this host (the Docker host is this machine). Where
    /// each piece of the relay's state goes is read from its compose file through Compose v2
    /// (bind mounts, named volumes, a mounted chatmail.ini), as cm-copy-data reads it.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "to",
        conflicts_with = "to"
    )]
    pub project_dir: Option<PathBuf>,
    /// The Docker host is another machine: ssh://[USER@]HOST[:PORT]/DIR, DIR being the
    /// compose project directory there, read by Compose v2 there. The data goes with rsync
    /// over ssh (-aHAX --numeric-ids, owners mapped) and is checked there with cm-verify and
    /// manifests.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// The old host's root directory (the sources are its etc/dkimkeys, var/lib/acme,
    /// home). Anything but / means the services are not this machine's: the stop is skipped.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The relay's chatmail.ini [default: ROOT/usr/local/lib/chatmaild/chatmail.ini].
    #[arg(long, value_name = "FILE")]
    pub ini: Option<PathBuf>,
    /// Map owners while copying, as cm-copy-data --owner-map.
    #[arg(long, value_name = "FILE")]
    pub owner_map: Option<PathBuf>,
    /// Where the run journal, the services state and the manifests for --to live.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/cm-migrate")]
    pub state_dir: PathBuf,
    /// Pass over a blocking finding of this check (repeatable; it is then shown as "not
    /// checked"): root, systemd, docker, compose, cgroup, inotify, space, sources, ports,
    /// ini, queue, target, transport.
    #[arg(long, value_name = "CHECK")]
    pub skip_check: Vec<String>,
    /// An ssh option for --to (as `ssh -o OPTION`; repeatable).
    #[arg(long, value_name = "OPTION")]
    pub ssh_option: Vec<String>,
    /// The ssh key for --to (as `ssh -i FILE`).
    #[arg(long, value_name = "FILE")]
    pub ssh_identity: Option<PathBuf>,
    /// An ssh client configuration for --to (as `ssh -F FILE`).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// The Compose v2 program (words allowed: "docker compose") [default: the `docker
    /// compose` plugin, else docker-compose, else docker-compose-v2, the first that is v2].
    #[arg(long, value_name = "PROGRAM")]
    pub compose: Option<String>,
    /// Move into the guide's layout (data/chatmail, data/chatmail-dkimkeys,
    /// data/chatmail-acme and .env below --project-dir, or below the --to directory)
    /// without reading a compose file.
    #[arg(long, value_name = "NAME", value_parser = ["guide"])]
    pub layout: Option<String>,
    /// Seconds to wait for the postfix queue to empty before stopping postfix.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub queue_timeout: u64,
    /// Seconds one stage of units may take to stop or start.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub unit_timeout: u64,
    /// How the copy is proven before the downtime ends: `full` runs cm-verify all (reads
    /// every file of source and copy); `changed` compares by content only the directories
    /// the change journal names (the bulk copy read every other copy back), plus cm-verify's
    /// env, layout and services checks, and falls back to `full` for whatever the journal
    /// could not follow. With --to the far side always checks the manifests in full.
    #[arg(long, value_name = "HOW", default_value = "full", value_parser = ["full", "changed"])]
    pub verify: String,
    /// Seconds --start waits for the container to serve.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub health_timeout: u64,
}

/// How the outcome is printed.
#[derive(Args, Debug, Clone, Copy)]
pub struct Out {
    /// One JSON document on stdout (also for errors: {"error": ..., "exit_code": N}).
    #[arg(long)]
    pub json: bool,
    /// Nothing on stdout but --json; problems still on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Every part of a run, built from the arguments.
pub struct Built {
    pub identity: RunIdentity,
    pub journal_file: PathBuf,
    pub lock_file: PathBuf,
    pub copier: Box<dyn Copier>,
    pub services: Box<dyn Services>,
    pub settings: Box<dyn Settings>,
    pub verifier: Box<dyn Verifier>,
    pub target: Box<dyn Target>,
    pub watch: FanotifyWatch,
    pub host: HostFacts,
}

/// What the host checks need.
pub struct HostFacts {
    pub ini: PathBuf,
    pub services_here: bool,
    pub docker_here: bool,
}

impl HostFacts {
    /// The host findings for preflight (`units`: the chatmail units the stop takes down).
    pub fn findings(&self, units: Option<Vec<String>>) -> Vec<Finding> {
        host_findings(
            &HostInput {
                euid: nix::unistd::geteuid().as_raw(),
                systemd_marker: Path::new("/run/systemd/system"),
                services_here: self.services_here,
                proc_root: Path::new("/proc"),
                ini: &self.ini,
                chatmail_units: units,
                docker_here: self.docker_here,
            },
            &mut Postqueue,
        )
    }
}

/// The suite's cm-verify: beside this binary, else in PATH.
fn cm_verify() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("cm-verify")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("cm-verify"))
}

fn compose_command(a: &FlowArgs) -> Vec<String> {
    match &a.compose {
        Some(c) => c.split_whitespace().map(String::from).collect(),
        None => vec!["docker".into(), "compose".into()],
    }
}

/// What every run needs, whatever the target: the relay's ini, the owner map given, the
/// old host's services (this machine's, or none), the journal and lock files, the host's
/// facts for preflight.
struct Common {
    ini: PathBuf,
    owners: Option<OwnerMap>,
    services: Box<dyn Services>,
    services_here: bool,
    journal_file: PathBuf,
    lock_file: PathBuf,
    health: Duration,
    facts: HostFacts,
}

fn common(a: &FlowArgs) -> Result<Common, String> {
    if !a.root.is_dir() {
        return Err(format!("--root {}: not a directory", a.root.display()));
    }
    let ini = a
        .ini
        .clone()
        .unwrap_or_else(|| a.root.join("usr/local/lib/chatmaild/chatmail.ini"));
    if !ini.is_file() {
        return Err(format!(
            "{}: no such file (the relay's chatmail.ini; give --ini)",
            ini.display()
        ));
    }
    let owners = match &a.owner_map {
        Some(f) => Some(OwnerMap::load(f, &a.root).map_err(|e| e.to_string())?),
        None => None,
    };
    let services_here = cm_core::copy::safety::resolve(&a.root) == Path::new("/");
    Ok(Common {
        services: services(a, services_here),
        facts: HostFacts {
            ini: ini.clone(),
            services_here,
            docker_here: a.to.is_none(),
        },
        ini,
        owners,
        services_here,
        journal_file: a.state_dir.join("run-journal.json"),
        lock_file: PathBuf::from(DEFAULT_RUN_LOCK_FILE),
        health: Duration::from_secs(a.health_timeout),
    })
}

/// The old host's units through systemd when they are this machine's, else none.
fn services(a: &FlowArgs, here: bool) -> Box<dyn Services> {
    if !here {
        return Box::new(NoServices {
            why: format!(
                "--root {} is not this machine's root: its services are not this machine's",
                a.root.display()
            ),
        });
    }
    let state_file = a.state_dir.join("services-state.json");
    Box::new(SystemdServices {
        stop: StopOptions {
            state_file: state_file.clone(),
            queue_timeout: Duration::from_secs(a.queue_timeout),
            unit_timeout: Duration::from_secs(a.unit_timeout),
            ..Default::default()
        },
        restore: RestoreOptions {
            state_file,
            unit_timeout: Duration::from_secs(a.unit_timeout),
            ..Default::default()
        },
    })
}

/// Build the parts; Err is a usage problem (exit 2).
pub fn build(a: &FlowArgs) -> Result<Built, String> {
    let c = common(a)?;
    match &a.to {
        Some(url) => build_far(a, c, url),
        None => build_here(a, c),
    }
}

/// The ssh connection of `--to`, with the run's ssh options.
fn remote_of(a: &FlowArgs, url: &str) -> Result<Remote, String> {
    let mut remote = Remote::parse(url)?;
    std::fs::create_dir_all(&a.state_dir)
        .map_err(|e| format!("--state-dir {}: {e}", a.state_dir.display()))?;
    remote.control_path = Some(a.state_dir.join("ssh-%C"));
    if let Some(f) = &a.ssh_config {
        remote
            .ssh_args
            .extend(["-F".to_string(), f.display().to_string()]);
    }
    for o in &a.ssh_option {
        remote.ssh_args.extend(["-o".to_string(), o.clone()]);
    }
    if let Some(k) = &a.ssh_identity {
        remote
            .ssh_args
            .extend(["-i".to_string(), k.display().to_string()]);
    }
    Ok(remote)
}

/// The far target of `--to`: resolved there (or the guide's layout by name).
fn far_target(a: &FlowArgs, c: &Common, remote: &Remote) -> project::Far {
    if a.layout.is_some() {
        return project::Far {
            volumes: default_volumes(&a.root, &remote.dir),
            target: None,
            findings: Vec::new(),
            owners: c.owners.clone(),
            env: remote.dir.join(".env"),
            ini_mount: None,
            compose: None,
            unusable: None,
        };
    }
    project::far(project::Inputs {
        root: &a.root,
        project_dir: &remote.dir,
        compose: a.compose.as_deref(),
        guide: false,
        owner_map: c.owners.clone(),
        ini: &c.ini,
        on: Runner(std::sync::Arc::new(remote.clone())),
    })
}

/// The volumes the far side's proof checks: read from the far target when it runs.
fn far_verify_volumes(a: &FlowArgs, far: &project::Far) -> Volumes {
    match &far.target {
        Some(tf) => Volumes::Target {
            target: Box::new(tf.target.clone()),
            root: a.root.clone(),
        },
        None => Volumes::Fixed(
            far.volumes
                .iter()
                .map(|v| VolumePair {
                    name: v.name.clone(),
                    src: v.src.clone(),
                    dst: v.dst.clone(),
                })
                .collect(),
        ),
    }
}

/// The parts of a move to another machine over ssh.
fn build_far(a: &FlowArgs, c: Common, url: &str) -> Result<Built, String> {
    let remote = remote_of(a, url)?;
    let far = far_target(a, &c, &remote);
    let resolved = a.layout.is_none().then(|| far.findings.clone());
    let verify_volumes = far_verify_volumes(a, &far);
    Ok(Built {
        identity: RunIdentity {
            root: a.root.clone(),
            project_dir: remote.dir.clone(),
            to: Some(remote.url()),
        },
        journal_file: c.journal_file,
        lock_file: c.lock_file,
        copier: Box::new(RsyncCopier {
            remote: remote.clone(),
            volumes: far.volumes,
            owners: far.owners.clone(),
            rsync: "rsync".into(),
            target: far.target,
            unusable: far.unusable,
        }),
        services: c.services,
        settings: Box::new(RemoteSettings {
            remote: remote.clone(),
            ini: c.ini,
            work: a.state_dir.join("remote/.env"),
            rsync: "rsync".into(),
            env: far.env,
            ini_mount: far.ini_mount,
        }),
        verifier: Box::new(RemoteVerifier {
            remote: remote.clone(),
            volumes: verify_volumes,
            owners: far.owners,
            manifest_dir: a.state_dir.join("manifests"),
            cm_verify: cm_verify(),
            rsync: "rsync".into(),
        }),
        target: Box::new(ComposeTarget {
            project_dir: remote.dir.clone(),
            host: Host::Remote(remote),
            compose: far.compose.unwrap_or_else(|| compose_command(a)),
            health_timeout: c.health,
            resolved,
        }),
        watch: FanotifyWatch::default(),
        host: c.facts,
    })
}

/// The parts of a move into a compose project on this machine.
fn build_here(a: &FlowArgs, c: Common) -> Result<Built, String> {
    let dir = a.project_dir.clone().expect("clap: --project-dir or --to");
    if !dir.is_dir() {
        return Err(format!(
            "--project-dir {}: not a directory (the compose project must exist)",
            dir.display()
        ));
    }
    let local = project::local(project::Inputs {
        root: &a.root,
        project_dir: &dir,
        compose: a.compose.as_deref(),
        guide: a.layout.is_some(),
        owner_map: c.owners,
        ini: &c.ini,
        on: Runner::default(),
    });
    let verifier = verifier(a, &dir, &c.ini, c.services_here, &local);
    Ok(Built {
        identity: RunIdentity {
            root: a.root.clone(),
            project_dir: dir.clone(),
            to: None,
        },
        journal_file: c.journal_file,
        lock_file: c.lock_file,
        target: Box::new(ComposeTarget {
            host: Host::Local,
            project_dir: dir,
            compose: local.compose.unwrap_or_else(|| compose_command(a)),
            health_timeout: c.health,
            resolved: Some(local.findings),
        }),
        copier: Box::new(local.copier),
        services: c.services,
        settings: local.settings,
        verifier,
        watch: FanotifyWatch::default(),
        host: c.facts,
    })
}

/// The arguments that give cm-verify the same target the run copies into.
fn target_args(a: &FlowArgs, dir: &Path, ini: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![
        "--project-dir".into(),
        dir.into(),
        "--root".into(),
        a.root.clone().into(),
        "--ini".into(),
        ini.into(),
    ];
    if a.layout.is_some() {
        v.extend(["--layout".into(), "guide".into()]);
    }
    if let Some(c) = &a.compose {
        v.extend(["--compose".into(), c.into()]);
    }
    if let Some(m) = &a.owner_map {
        v.extend(["--owner-map".into(), m.clone().into()]);
    }
    v
}

/// `cm-verify all` (`--verify full`), or the changed directories plus `cm-verify all
/// --no-trees` (`--verify changed`).
fn verifier(
    a: &FlowArgs,
    dir: &Path,
    ini: &Path,
    services_here: bool,
    local: &project::Local,
) -> Box<dyn Verifier> {
    let mut args = target_args(a, dir, ini);
    if !services_here {
        args.push("--no-services".into());
    }
    let full = VerifyCommand {
        program: cm_verify(),
        args: args.clone(),
    };
    let Some(t) = local.target.clone().filter(|_| a.verify == "changed") else {
        return Box::new(full);
    };
    let mut checks: Vec<OsString> = vec!["all".into()];
    checks.extend(args);
    checks.push("--no-trees".into());
    Box::new(ChangedVerify {
        program: cm_verify(),
        checks: vec![checks],
        volumes: Volumes::Target {
            target: Box::new(t),
            root: a.root.clone(),
        },
        owners: local.owners.clone().unwrap_or_default(),
        owner_map_file: a.owner_map.clone(),
        root: a.root.clone(),
        full,
    })
}

/// One finding as a line: `BLOCKS  ports: ... -> fix`.
pub fn finding_line(f: &Finding) -> String {
    let fix = f
        .fix
        .as_ref()
        .filter(|_| f.level != Level::Ok)
        .map(|x| format!("\n             -> {x}"))
        .unwrap_or_default();
    format!("  {:<11} {}: {}{fix}", f.level.as_str(), f.check, f.message)
}

/// Print a value as JSON with its exit code beside its fields.
pub fn print_json<T: Serialize>(v: &T, exit_code: i32) {
    #[derive(Serialize)]
    struct With<'a, T: Serialize> {
        exit_code: i32,
        #[serde(flatten)]
        v: &'a T,
    }
    match serde_json::to_string_pretty(&With { exit_code, v }) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("cm-migrate: error: serialising the report: {e}"),
    }
}

/// An error that ends the command: on stderr, and as JSON with --json. Returns the code.
pub fn fail(out: Out, msg: &str, code: i32) -> i32 {
    if out.json {
        println!("{}", serde_json::json!({"error": msg, "exit_code": code}));
    }
    eprintln!("cm-migrate: error: {msg}");
    code
}

/// Seconds for people.
pub fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// Run `f` with the parts of `b` (preflight's host checks ask systemd once for the units).
pub fn with_parts<R>(b: &mut Built, f: impl FnOnce(&mut cm_core::migration::Parts) -> R) -> R {
    let units = b.services.plan().ok();
    let facts = &b.host;
    let mut host = |_start: bool| facts.findings(units.clone());
    let mut p = cm_core::migration::Parts {
        host: &mut host,
        copier: &mut *b.copier,
        services: &mut *b.services,
        settings: &mut *b.settings,
        verifier: &mut *b.verifier,
        target: &mut *b.target,
        watch: &mut b.watch,
    };
    f(&mut p)
}

/// The findings that are not plain "ok", and what the target is, for people (all with
/// `all`).
pub fn print_findings(findings: &[Finding], all: bool) {
    for f in findings
        .iter()
        .filter(|f| all || f.level != Level::Ok || f.check == "target")
    {
        println!("{}", finding_line(f));
    }
}
