//! cm-verify: prove the migration. Thin layer over cm-core (tree, manifest, report).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use cm_cli::args::JobsArgs;
use cm_cli::{msg, Fail};
use cm_core::checks;
use cm_core::owners::OwnerMap;
use cm_core::report::{self, CheckReport, Verdict};
use cm_core::tree::{self, CompareOptions, ScanOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prove that a migration is complete and exact, and say exactly what is not.
///
/// Every check ends held, differs, or not checked (with the reason): a check that did not
/// run is never OK.
///
/// Exit status: 0 when every check ran and held (or the only ones not run were switched off
/// by your own flag, e.g. --no-services; the verdict names them); 1 when anything differs,
/// could not be read, or was not checked; 2 on a usage error or an input that does not exist
/// or cannot be used (a missing tree, --root or --project-dir, an invalid manifest or owner
/// map).
#[derive(Parser)]
#[command(
    name = "cm-verify",
    version = cm_core::version::text(),
    about,
    long_about,
    after_long_help = "Examples:
  cm-verify tree /home /srv/chatmail/data/chatmail --owner-map docker/users
  cm-verify all --project-dir /srv/chatmail --ini /usr/local/lib/chatmaild/chatmail.ini
  cm-verify all --project-dir /srv/chatmail --root /mnt/old --no-services --json"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

const EXIT_TREE: &str =
    "Exit status: 0 no differences; 1 differences, or entries that could not be read (not \
verified); 2 usage error, or a tree, manifest or owner map that does not exist or cannot be used.";

#[derive(Subcommand)]
enum Cmd {
    /// Compare two trees entry by entry: presence, type, mode, owner, size, mtime, content,
    /// symlink target, hard-link grouping, extended attributes and ACLs, device numbers.
    ///
    /// Symlinks are never followed; both trees are read-only and opened with O_NOATIME.
    /// atime is not compared unless --atime. Contents are compared byte for byte in parallel
    /// (--jobs), only where both sides have a regular file of the same size, each pair of
    /// inodes once; files that differ are reported with both SHA-256s. Sockets missing in the
    /// copy are a note (the copy leaves them out by design), not a difference.
    #[command(after_long_help = format!("{EXIT_TREE}\n\nExample:\n  cm-verify tree /home /srv/chatmail/data/chatmail --owner-map docker/users"))]
    Tree {
        /// The original tree (e.g. /home on the old host).
        src: PathBuf,
        /// The copy (e.g. data/chatmail in the compose project).
        dst: PathBuf,
        #[command(flatten)]
        cmp: CompareArgs,
        #[command(flatten)]
        out: ReportArgs,
    },
    /// Write or check a manifest (a per-tree record, see docs/manifest.md), for when the
    /// original and the copy are on different machines.
    #[command(subcommand, after_long_help = format!("{EXIT_TREE}\n\nExamples:\n  cm-verify manifest write /home -o /root/home.manifest\n  cm-verify manifest check /root/home.manifest /srv/chatmail/data/chatmail"))]
    Manifest(ManifestCmd),
    /// The .env carries exactly the ini's settings, compared as chatmail interprets them
    /// (an absent key means its default; `True` and `true` are the same boolean; ...).
    #[command(
        after_long_help = "Exit status: 0 the .env means the same to chatmail; 1 settings differ; \
2 usage error, or an ini or .env that does not exist or cannot be read.\n\nExample:\n  \
cm-verify env /usr/local/lib/chatmaild/chatmail.ini /srv/chatmail/.env"
    )]
    Env {
        /// chatmail.ini of the old host (/usr/local/lib/chatmaild/chatmail.ini).
        ini: PathBuf,
        /// The compose project's .env.
        env: PathBuf,
        #[command(flatten)]
        out: ReportArgs,
    },
    /// No chatmail unit (service, timer, path, socket) is active or enabled on this host, no
    /// legacy chatmail cron job is installed, and the ports the container needs are free
    /// (naming the process and unit holding each).
    #[command(
        after_long_help = "Exit status: 0 nothing of chatmail runs and every port is free; \
1 units, cron jobs or ports are in the way, or systemd cannot be asked (no systemd here: not \
checked, never OK); 2 usage error.\n\nExample:\n  cm-verify services --ports 25,143,993"
    )]
    Services {
        #[command(flatten)]
        svc: ServicesArgs,
        #[command(flatten)]
        out: ReportArgs,
    },
    /// The compose project is ready: the folders it mounts exist, the DKIM private key is
    /// there and private (and owned by the image's opendkim), every ACME live/<domain> link
    /// resolves inside the copied tree, the mailbox folder of mail_domain exists (owned by the
    /// image's vmail).
    ///
    /// The target is resolved as cm-copy-data resolves it: mounts come from the project's
    /// compose file read by Docker Compose v2 (`docker compose config`, override merged in):
    /// bind mounts at their host path, named volumes at their mountpoint (through the
    /// engine), the ini's file mount; owners are compared with the users of the image the
    /// service runs (read through the engine without starting it) unless --image-root or
    /// --image-users says. A directory without a compose file is refused (exit 2) unless
    /// `--layout guide` asks for the guide's layout (data/chatmail -> /home,
    /// data/chatmail-dkimkeys -> /etc/dkimkeys, data/chatmail-acme -> /var/lib/acme).
    #[command(
        after_long_help = "Exit status: 0 the layout holds; 1 something is missing or wrong; \
2 usage error, or a --project-dir that does not exist.\n\nExample:\n  \
cm-verify layout --project-dir /srv/chatmail --image-users docker/users"
    )]
    Layout {
        #[command(flatten)]
        lay: LayoutArgs,
        #[command(flatten)]
        out: ReportArgs,
    },
    /// Everything that applies, one verdict: env, layout, services, and each volume against
    /// its reference (printed): with --root its source under that root; without, what the
    /// copy recorded in its manifest (the source tree when the manifest was written on this
    /// machine and the tree is there, else the manifest).
    ///
    /// The verdict counts the checks (`5 hold, 1 not checked: services (--no-services)`) and
    /// says ALL OK only when every check ran and held.
    #[command(
        after_long_help = "Exit status: 0 every check ran and held, or the only ones not run \
were switched off with --no-env / --no-services (the verdict names them); 1 anything differs \
or was not checked for another reason (no systemd, no --ini, a source missing under --root); \
2 usage error, or a --root or --project-dir that does not exist.\n\nExamples:\n  \
cm-verify all --project-dir /srv/chatmail --ini /usr/local/lib/chatmaild/chatmail.ini\n  \
cm-verify all --project-dir /srv/chatmail --no-env --no-services --json"
    )]
    All {
        /// chatmail.ini of the old host, for the env check (and mail_domain).
        #[arg(long, value_name = "FILE", conflicts_with = "no_env")]
        ini: Option<PathBuf>,
        /// Switch off the env check (the verdict still names it).
        #[arg(long)]
        no_env: bool,
        /// Switch off the services check (e.g. when run on the new host; the verdict still
        /// names it).
        #[arg(long)]
        no_services: bool,
        /// Switch off the volume checks (e.g. when the trees are compared otherwise, as
        /// `cm-migrate run --verify changed` does; the verdict still names them).
        #[arg(long)]
        no_trees: bool,
        #[command(flatten)]
        lay: LayoutArgs,
        #[command(flatten)]
        svc: ServicesArgs,
        #[command(flatten)]
        cmp: CompareArgs,
        #[command(flatten)]
        out: ReportArgs,
    },
}

#[derive(Args)]
struct ServicesArgs {
    /// Where legacy chatmail cron jobs would be.
    #[arg(long, value_name = "DIR", default_value = "/etc/cron.d")]
    cron_dir: PathBuf,
    /// The proc file system to read sockets from.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    proc_root: PathBuf,
    /// Ports to require free (comma-separated; default: every port the container needs).
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    ports: Option<Vec<u16>>,
}

#[derive(Args)]
struct LayoutArgs {
    /// The compose project directory (it must exist).
    #[arg(long, value_name = "DIR", default_value = ".")]
    project_dir: PathBuf,
    /// chatmail's mail_domain (default: MAIL_DOMAIN from the project's .env, or --ini).
    #[arg(long, value_name = "DOMAIN")]
    mail_domain: Option<String>,
    /// A directory holding the image's etc/passwd and etc/group (e.g. from `docker cp`), to
    /// check owners against the image's vmail and opendkim.
    #[arg(long, value_name = "DIR", conflicts_with = "image_users")]
    image_root: Option<PathBuf>,
    /// The image's fixed users as docker/users lists them (`name uid gid`, `#fixed name uid
    /// gid`), to check owners against the image's vmail and opendkim without the image.
    #[arg(long, value_name = "FILE")]
    image_users: Option<PathBuf>,
    /// The Docker Compose v2 program that reads the compose file (words allowed: "docker
    /// compose"); default: the `docker compose` plugin, else docker-compose, else
    /// docker-compose-v2, the first whose `version` says v2.
    #[arg(long, value_name = "PROGRAM")]
    compose: Option<String>,
    /// Check the guide's layout (data/chatmail* below --project-dir) without reading a
    /// compose file.
    #[arg(long, value_name = "NAME", value_parser = ["guide"])]
    layout: Option<String>,
}

#[derive(Subcommand)]
enum ManifestCmd {
    /// Record ROOT (every entry's metadata and the SHA-256 of every file) in FILE.
    ///
    /// The file is written atomically with mode 0600. If any entry cannot be read, nothing
    /// is written and the exit status is 1.
    #[command(
        after_long_help = "Exit status: 0 written; 1 entries could not be read (nothing \
written); 2 usage error, or a ROOT that does not exist.\n\nExample:\n  \
cm-verify manifest write /home -o /root/home.manifest"
    )]
    Write {
        /// The tree to record.
        root: PathBuf,
        /// Where to write the manifest.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Do not hash file contents (the manifest then proves metadata only).
        #[arg(long)]
        no_hash: bool,
        /// Do not record extended attributes and ACLs.
        #[arg(long)]
        no_xattrs: bool,
        #[command(flatten)]
        jobs: JobsArgs,
        #[command(flatten)]
        out: cm_cli::args::OutputArgs,
    },
    /// Compare the live tree DST with the manifest FILE (written by `manifest write` or by
    /// cm-copy-data).
    #[command(after_long_help = format!("{EXIT_TREE}\n\nExample:\n  cm-verify manifest check /root/home.manifest /srv/chatmail/data/chatmail"))]
    Check {
        /// The manifest.
        file: PathBuf,
        /// The tree to check against it.
        dst: PathBuf,
        #[command(flatten)]
        cmp: CompareArgs,
        #[command(flatten)]
        out: ReportArgs,
    },
}

#[derive(Args)]
struct CompareArgs {
    // the original's owners are mapped before comparing, as cm-copy-data mapped them
    #[command(flatten)]
    owners: cm_cli::args::OwnerMapArgs,
    /// Root of the old host's file system (default /): where the names in --owner-map are
    /// resolved (its etc/passwd, etc/group), and for `all` where the volumes' sources are
    /// (home, etc/dkimkeys, var/lib/acme). It must exist.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Also compare access times (off by default: reading a file may update them).
    #[arg(long)]
    atime: bool,
    /// Do not compare contents (metadata only).
    #[arg(long)]
    no_content: bool,
    /// Do not compare extended attributes and ACLs.
    #[arg(long)]
    no_xattrs: bool,
    /// Leave out this relative path (and everything below it) on both sides. Repeatable.
    #[arg(long, value_name = "REL")]
    exclude: Vec<PathBuf>,
    #[command(flatten)]
    jobs: JobsArgs,
}

impl CompareArgs {
    /// --root, which must exist when given; `/` when not.
    fn root(&self) -> Result<&Path> {
        match &self.root {
            Some(r) if !r.is_dir() => Err(Fail::usage(format!(
                "--root {}: not a directory (give the old host's root)",
                q(r)
            ))),
            Some(r) => Ok(r),
            None => Ok(Path::new("/")),
        }
    }
}

/// The output options of a report: the common ones and how many examples.
#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    common: cm_cli::args::OutputArgs,
    /// How many examples to show per kind of difference in the text report.
    #[arg(long, value_name = "N", default_value_t = 10)]
    examples: usize,
}

impl std::ops::Deref for ReportArgs {
    type Target = cm_cli::args::OutputArgs;
    fn deref(&self) -> &Self::Target {
        &self.common
    }
}

/// Progress on stderr, only on a terminal and without --quiet. `verb` names what the byte
/// phase does: `comparing` (two trees, byte for byte) or `hashing` (SHA-256, a manifest).
struct Bar(ProgressBar, &'static str);

impl Bar {
    fn new(quiet: bool, verb: &'static str) -> Bar {
        let pb = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        } else {
            let pb = ProgressBar::new_spinner();
            pb.set_style(
                ProgressStyle::with_template("{spinner} {msg}: {human_pos} entries")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb.set_message("walking");
            pb.enable_steady_tick(std::time::Duration::from_millis(200));
            pb
        };
        Bar(pb, verb)
    }
}

impl tree::Progress for Bar {
    fn scanned(&self, n: u64) {
        self.0.inc(n);
    }
    fn hash_start(&self, files: u64, bytes: u64) {
        self.0.set_style(
            ProgressStyle::with_template(&format!(
                "{} {{msg}} {{wide_bar}} {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} ETA {{eta}}",
                self.1
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.0.set_message(format!("{files} files"));
        self.0.set_position(0);
        self.0.set_length(bytes);
    }
    fn hashed(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// The comparison options; a skipped owner-map line is a warning on stderr (not with --quiet).
fn compare_options(a: &CompareArgs, quiet: bool) -> Result<CompareOptions> {
    let owner_map = a
        .owners
        .load(a.root()?, quiet)?
        .unwrap_or_else(OwnerMap::identity);
    Ok(CompareOptions {
        owner_map,
        atime: a.atime,
        xattrs: !a.no_xattrs,
        content: !a.no_content,
        jobs: a.jobs.or(tree::default_io_jobs),
        exclude: a.exclude.clone(),
    })
}

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn q(p: &Path) -> String {
    cm_core::quote::quote_path(p)
}

/// Print one check (its envelope under --json, its text otherwise) and return its exit code.
fn emit(c: CheckReport, out: &ReportArgs) -> ExitCode {
    let v = Verdict { checks: vec![c] };
    let code = v.exit_code();
    if out.json {
        let mut j = v.checks[0].to_json();
        j["exit_code"] = code.into();
        print_json(&j);
    } else if !out.quiet {
        print!("{}", v.checks[0].text);
    }
    ExitCode::from(code)
}

/// A path the user named must exist (exit 2 otherwise, never a fallback).
fn must_exist(what: &str, p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(_) => Ok(()),
        Err(e) => Err(Fail::usage(format!("{what} {}: {e}", q(p)))),
    }
}

fn services(a: &ServicesArgs) -> Result<checks::Outcome, checks::CheckError> {
    let ports = a
        .ports
        .clone()
        .unwrap_or_else(|| cm_core::ports::CONTAINER_PORTS.to_vec());
    let mut sm = cm_core::systemd::Systemctl::default();
    checks::check_services(&mut sm, &a.cron_dir, &a.proc_root, &ports)
}

fn layout(a: &LayoutArgs, ini: Option<&Path>) -> Result<checks::Outcome> {
    if !a.project_dir.is_dir() {
        return Err(Fail::usage(format!(
            "--project-dir {}: not a directory (give the compose project's directory)",
            q(&a.project_dir)
        )));
    }
    Ok(checks::check_project_layout(&project(a, ini))?)
}

fn project<'a>(a: &'a LayoutArgs, ini: Option<&'a Path>) -> checks::ProjectLayout<'a> {
    checks::ProjectLayout {
        project_dir: &a.project_dir,
        compose: a.compose.as_deref(),
        guide: a.layout.is_some(),
        mail_domain: a.mail_domain.clone(),
        ini,
        image_root: a.image_root.as_deref(),
        image_users: a.image_users.as_deref(),
    }
}

/// Compare two trees with a progress bar.
fn tree_check(
    src: &Path,
    dst: &Path,
    opts: &CompareOptions,
    out: &ReportArgs,
) -> Result<CheckReport> {
    must_exist("the tree", src)?;
    must_exist("the copy", dst)?;
    let bar = Bar::new(out.quiet, "comparing");
    let (diffs, stats) = tree::compare_trees(src, dst, opts, &bar)?;
    drop(bar);
    let what = format!("tree {} vs {}", q(src), q(dst));
    Ok(CheckReport::from_tree(
        "tree",
        what,
        diffs,
        &stats,
        out.examples,
    ))
}

/// Compare a tree with a manifest with a progress bar.
fn manifest_check(
    file: &Path,
    dst: &Path,
    opts: &CompareOptions,
    out: &ReportArgs,
) -> Result<CheckReport> {
    must_exist("the copy", dst)?;
    let bar = Bar::new(out.quiet, "hashing");
    let (diffs, stats) = cm_core::manifest::check(file, dst, opts, &bar)?;
    drop(bar);
    let what = format!("manifest {} vs {}", q(file), q(dst));
    Ok(CheckReport::from_tree(
        "manifest",
        what,
        diffs,
        &stats,
        out.examples,
    ))
}

/// `env`: the ini's settings against the .env's.
fn env_check(ini: &Path, env: &Path, out: &ReportArgs) -> Result<ExitCode> {
    must_exist("the ini", ini)?;
    must_exist("the .env", env)?;
    let o = checks::check_env(ini, env)?;
    let what = format!("env {} vs {}", q(ini), q(env));
    Ok(emit(
        CheckReport::from_outcome("env", what, &o, out.examples),
        out,
    ))
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Env { ini, env, out } => env_check(&ini, &env, &out),
        Cmd::Services { svc, out } => Ok(emit(services_check(&svc, false, out.examples), &out)),
        Cmd::Layout { lay, out } => {
            let o = layout(&lay, None)?;
            let what = format!("layout of {}", q(&lay.project_dir));
            Ok(emit(
                CheckReport::from_outcome("layout", what, &o, out.examples),
                &out,
            ))
        }
        Cmd::All {
            ini,
            no_env,
            no_services,
            no_trees,
            lay,
            svc,
            cmp,
            out,
        } => {
            let v = all(
                &AllArgs {
                    ini,
                    no_env,
                    no_services,
                    no_trees,
                    lay,
                    svc,
                    cmp,
                },
                &out,
            )?;
            Ok(ExitCode::from(v))
        }
        Cmd::Tree { src, dst, cmp, out } => {
            let opts = compare_options(&cmp, out.quiet)?;
            Ok(emit(tree_check(&src, &dst, &opts, &out)?, &out))
        }
        Cmd::Manifest(ManifestCmd::Check {
            file,
            dst,
            cmp,
            out,
        }) => {
            let opts = compare_options(&cmp, out.quiet)?;
            Ok(emit(manifest_check(&file, &dst, &opts, &out)?, &out))
        }
        Cmd::Manifest(ManifestCmd::Write {
            root,
            output,
            no_hash,
            no_xattrs,
            jobs,
            out,
        }) => manifest_write(&root, &output, no_hash, no_xattrs, jobs, &out),
    }
}

/// `manifest write`: record `root` in `output`; nothing is written when an entry cannot be
/// read (exit 1).
fn manifest_write(
    root: &Path,
    output: &Path,
    no_hash: bool,
    no_xattrs: bool,
    jobs: JobsArgs,
    out: &cm_cli::args::OutputArgs,
) -> Result<ExitCode> {
    must_exist("the tree", root)?;
    let opts = ScanOptions {
        xattrs: !no_xattrs,
        hash: !no_hash,
        jobs: jobs.or(tree::default_io_jobs),
        exclude: Vec::new(),
    };
    manifest_output_free(root, output)?;
    let comments = vec![
        "written by cm-verify manifest write".to_string(),
        format!("root: {}", q(root)),
    ];
    let header = cm_core::manifest::Header::of(Path::new("/"), root);
    let bar = Bar::new(out.quiet, "hashing");
    let done = cm_core::manifest::write_tree(root, output, &header, &comments, &opts, &bar)?;
    drop(bar);
    if !done.errors.is_empty() {
        manifest_not_written(root, output, &done, out);
        return Ok(ExitCode::from(1));
    }
    let (files, bytes) = (done.files, done.bytes);
    if out.json {
        print_json(
            &serde_json::json!({"ok": true, "exit_code": 0, "written": true,
            "manifest": cm_core::quote::json_path(output),
            "entries": done.entries, "files": files, "bytes": bytes}),
        );
    } else if !out.quiet {
        println!(
            "wrote {}: {} entries, {files} {} ({}){}",
            q(output),
            done.entries,
            report::plural(files as usize, "file", "files"),
            report::human_bytes(bytes),
            if no_hash { ", no hashes" } else { ", hashed" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `output` may take a new manifest of `root`: outside the tree (a manifest inside the
/// tree it records would be listed as extra by every check) and not there yet.
fn manifest_output_free(root: &Path, output: &Path) -> Result<()> {
    if cm_core::manifest::inside_tree(root, output) {
        return Err(Fail::usage(format!(
            "{} is inside the tree {} it would record: write it elsewhere (cm-copy-data keeps them in data/.cm-manifest/)",
            q(output),
            q(root)
        )));
    }
    if std::fs::symlink_metadata(output).is_ok() {
        return Err(Fail::usage(format!(
            "{} exists already: a manifest is never overwritten; remove it or choose another file",
            q(output)
        )));
    }
    Ok(())
}

/// The entries of `root` that could not be read, so `output` was not written.
fn manifest_not_written(
    root: &Path,
    output: &Path,
    done: &cm_core::manifest::Written,
    out: &cm_cli::args::OutputArgs,
) {
    for e in &done.errors {
        msg::error(&format!("{}: {}", q(&e.path), e.message));
    }
    if out.json {
        let errs: Vec<_> = done
            .errors
            .iter()
            .map(|e| serde_json::json!({"path": cm_core::quote::json_path(&e.path), "error": e.message}))
            .collect();
        print_json(
            &serde_json::json!({"ok": false, "exit_code": 1, "written": false, "errors": errs}),
        );
    }
    msg::error(&format!(
        "{} entries of {} could not be read; {} was NOT written (fix the permissions or run as root, then rerun)",
        done.errors.len(),
        q(root),
        q(output)
    ));
}

/// The tool's command-line definition (for `--help`, man pages and completions).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Run the tool with these arguments (the first is the program name) and return its exit
/// status.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    cm_cli::main::<Cli, _, _>(args, dispatch)
}

/// The arguments of `all`.
struct AllArgs {
    ini: Option<PathBuf>,
    no_env: bool,
    no_services: bool,
    no_trees: bool,
    lay: LayoutArgs,
    svc: ServicesArgs,
    cmp: CompareArgs,
}

/// The env check of `all`: run with --ini, switched off with --no-env, else not checked.
fn all_env(a: &AllArgs, t: &cm_core::target::Target, examples: usize) -> Result<CheckReport> {
    let env_file = a.lay.project_dir.join(".env");
    if let (Some(old), cm_core::target::Settings::IniMount { ini: m, env, vars }) =
        (&a.ini, &t.settings)
    {
        must_exist("--ini", old)?;
        let o = checks::project::check_ini_mount(old, m, env, vars)?;
        let what = format!("settings {} vs {}", q(old), q(m));
        return Ok(CheckReport::from_outcome("env", what, &o, examples));
    }
    Ok(match &a.ini {
        Some(ini) => {
            must_exist("--ini", ini)?;
            let o = checks::check_project_env(ini, &env_file)?;
            let what = format!("env {} vs {}", q(ini), q(&env_file));
            CheckReport::from_outcome("env", what, &o, examples)
        }
        None if a.no_env => CheckReport::not_checked("env", "env".into(), "--no-env".into(), true),
        None => CheckReport::not_checked(
            "env",
            "env".into(),
            "no --ini given (give the old host's chatmail.ini, or --no-env)".into(),
            false,
        ),
    })
}

/// The services check (of `services` and `all`): switched off with --no-services; not
/// checked (never OK) when systemd cannot be asked.
fn services_check(svc: &ServicesArgs, no_services: bool, examples: usize) -> CheckReport {
    if no_services {
        return CheckReport::not_checked(
            "services",
            "services".into(),
            "--no-services".into(),
            true,
        );
    }
    match services(svc) {
        Ok(o) => CheckReport::from_outcome("services", "services".into(), &o, examples),
        Err(e) => CheckReport::not_checked("services", "services".into(), e.to_string(), false),
    }
}

/// One volume against its reference; the reference and why it was chosen are a note.
fn all_volume(
    v: checks::VolumeCheck,
    opts: &CompareOptions,
    out: &ReportArgs,
) -> Result<CheckReport> {
    let (mut c, why) = match v {
        checks::VolumeCheck::Tree { src, dst, why } => (tree_check(&src, &dst, opts, out)?, why),
        checks::VolumeCheck::Manifest { manifest, dst, why } => {
            // cm-copy-data records the copy after its owner map: compare ids as they are.
            let mopts = CompareOptions {
                owner_map: OwnerMap::identity(),
                ..opts.clone()
            };
            (manifest_check(&manifest, &dst, &mopts, out)?, why)
        }
        checks::VolumeCheck::Unverifiable { dst, why } => {
            let c =
                CheckReport::not_checked("tree", format!("volume {}", q(&dst)), why.clone(), false);
            return Ok(c);
        }
    };
    c.text.insert_str(0, &format!("verified against {why}\n"));
    c.extra.insert("reference".into(), why.into());
    Ok(c)
}

/// `all`: every check that applies, one verdict; returns the exit code.
fn all(a: &AllArgs, out: &ReportArgs) -> Result<u8> {
    let root = a.cmp.root.as_ref().map(|_| a.cmp.root()).transpose()?;
    let mut v = Verdict::default();
    let lo = layout(&a.lay, a.ini.as_deref())?;
    let (t, resolved) = checks::project::resolve(&project(&a.lay, a.ini.as_deref()), false)?;
    v.checks.push(all_env(a, &t, out.examples)?);
    let what = format!("layout of {}", q(&a.lay.project_dir));
    v.checks
        .push(CheckReport::from_outcome("layout", what, &lo, out.examples));
    v.checks
        .push(services_check(&a.svc, a.no_services, out.examples));
    let mut opts = compare_options(&a.cmp, out.quiet)?;
    // owners follow the target's image, as cm-copy-data mapped them (unless --owner-map)
    if let (None, Some(engine), Some(_), false) = (
        &a.cmp.owners.owner_map,
        checks::project::engine_of(&t),
        &t.image,
        a.no_trees,
    ) {
        let r = root.unwrap_or(Path::new("/"));
        match cm_core::target::image_owners(&t, &engine, r) {
            Ok((map, shown)) => {
                opts.owner_map = map;
                if !out.quiet && !out.json {
                    let s: Vec<String> = shown.iter().map(|m| m.to_string()).collect();
                    msg::note(&format!(
                        "owners mapped by name to the image's: {}",
                        s.join(", ")
                    ));
                }
            }
            Err(e) => msg::note(&format!(
                "owners not mapped to the image's ({e}): give --owner-map"
            )),
        }
    }
    if a.no_trees {
        v.checks.push(CheckReport::not_checked(
            "tree",
            "volumes".into(),
            "--no-trees".into(),
            true,
        ));
    } else {
        for vol in checks::volume_checks_of(checks::project::volume_pairs(&t, &resolved), root) {
            v.checks.push(all_volume(vol, &opts, out)?);
        }
    }
    if out.json {
        print_json(&v.to_json());
    } else if !out.quiet {
        for c in &v.checks {
            println!("== {}", c.subject);
            print!("{}", c.text);
        }
        println!("{}", v.summary());
    }
    Ok(v.exit_code())
}
