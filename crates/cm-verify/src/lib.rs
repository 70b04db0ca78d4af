//! cm-verify: prove the migration. Thin layer over cm-core (tree, manifest, report).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use cm_core::checks;
use cm_core::owners::OwnerMap;
use cm_core::report;
use cm_core::tree::{self, CompareOptions, Difference, ScanOptions, TreeStats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prove that a migration is complete and exact, and say exactly what is not.
///
/// Exit status: 0 when everything compared holds; 1 when anything differs (or could not be
/// read, so could not be verified); 2 on a usage error or an input that cannot be used (a
/// missing tree, an invalid manifest or owner map).
#[derive(Parser)]
#[command(name = "cm-verify", version = cm_core::version::text(), about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compare two trees entry by entry: presence, type, mode, owner, size, mtime, content,
    /// symlink target, hard-link grouping, extended attributes and ACLs, device numbers.
    ///
    /// Symlinks are never followed; both trees are read-only and opened with O_NOATIME.
    /// atime is not compared unless --atime. Contents are compared byte for byte in parallel
    /// (--jobs), only where both sides have a regular file of the same size, each pair of
    /// inodes once; files that differ are reported with both SHA-256s.
    Tree {
        /// The original tree (e.g. /home on the old host).
        src: PathBuf,
        /// The copy (e.g. data/chatmail in the compose project).
        dst: PathBuf,
        #[command(flatten)]
        cmp: CompareArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Write or check a manifest (a per-tree record, see docs/manifest.md), for when the
    /// original and the copy are on different machines.
    #[command(subcommand)]
    Manifest(ManifestCmd),
    /// The .env carries exactly the ini's settings, compared as chatmail interprets them
    /// (an absent key means its default; `True` and `true` are the same boolean; ...).
    Env {
        /// chatmail.ini of the old host (/usr/local/lib/chatmaild/chatmail.ini).
        ini: PathBuf,
        /// The compose project's .env.
        env: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// No chatmail unit (service, timer, path, socket) is active or enabled on this host, no
    /// legacy chatmail cron job is installed, and the ports the container needs are free
    /// (naming the process and unit holding each).
    Services {
        #[command(flatten)]
        svc: ServicesArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// The compose project is ready: the folders it mounts exist, the DKIM private key is
    /// there and private (and owned by the image's opendkim), every ACME live/<domain> link
    /// resolves inside the copied tree, the mailbox folder of mail_domain exists (owned by the
    /// image's vmail).
    ///
    /// Mounts come from `docker compose config` when the project has a compose file and
    /// Compose v2 is installed, else from the guide's layout (data/chatmail -> /home,
    /// data/chatmail-dkimkeys -> /etc/dkimkeys, data/chatmail-acme -> /var/lib/acme).
    Layout {
        #[command(flatten)]
        lay: LayoutArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Everything that applies, one verdict: env (with --ini and a project .env), layout,
    /// services (where systemd runs), and each volume against its source under --root (when
    /// that exists) or else against the manifest cm-copy-data wrote.
    All {
        /// chatmail.ini of the old host, for the env check (and mail_domain).
        #[arg(long, value_name = "FILE")]
        ini: Option<PathBuf>,
        /// Skip the services check (e.g. when run on the new host).
        #[arg(long)]
        no_services: bool,
        #[command(flatten)]
        lay: LayoutArgs,
        #[command(flatten)]
        svc: ServicesArgs,
        #[command(flatten)]
        cmp: CompareArgs,
        #[command(flatten)]
        out: OutputArgs,
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
    /// The compose project directory.
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
    /// The Compose v2 program used to read the compose file's mounts.
    #[arg(long, value_name = "PROGRAM", default_value = "docker-compose-v2")]
    compose: String,
}

#[derive(Subcommand)]
enum ManifestCmd {
    /// Record ROOT (every entry's metadata and the SHA-256 of every file) in FILE.
    ///
    /// The file is written atomically with mode 0600. If any entry cannot be read, nothing
    /// is written and the exit status is 1.
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
        /// Threads for walking and reading (default: 4 per CPU, between 8 and 32).
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Compare the live tree DST with the manifest FILE (written by `manifest write` or by
    /// cm-copy-data).
    Check {
        /// The manifest.
        file: PathBuf,
        /// The tree to check against it.
        dst: PathBuf,
        #[command(flatten)]
        cmp: CompareArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

#[derive(Args)]
struct CompareArgs {
    /// Map the original's owners before comparing, as cm-copy-data --owner-map does. Lines
    /// `name uid gid` (the name's ids on the old host, from --root's /etc/passwd and
    /// /etc/group) or `host-uid:host-gid=uid:gid`; `#` comments.
    #[arg(long, value_name = "FILE")]
    owner_map: Option<PathBuf>,
    /// Root of the old host's file system: where the names in --owner-map are resolved (its
    /// etc/passwd, etc/group), and where `all` finds the volumes' sources (home,
    /// etc/dkimkeys, var/lib/acme).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
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
    /// Threads for walking and reading (default: 4 per CPU, between 8 and 32).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
}

#[derive(Args)]
struct OutputArgs {
    /// Print a JSON report with every difference on stdout instead of the text report.
    #[arg(long)]
    json: bool,
    /// No progress and no text report: the exit status says it all (--json still prints).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// How many examples to show per kind of difference in the text report.
    #[arg(long, value_name = "N", default_value_t = 10)]
    examples: usize,
}

/// Progress on stderr, only on a terminal and without --quiet.
struct Bar(ProgressBar);

impl Bar {
    fn new(quiet: bool) -> Bar {
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
        Bar(pb)
    }
}

impl tree::Progress for Bar {
    fn scanned(&self, n: u64) {
        self.0.inc(n);
    }
    fn hash_start(&self, files: u64, bytes: u64) {
        self.0.set_style(
            ProgressStyle::with_template(
                "hashing {msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
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
    let owner_map = match &a.owner_map {
        Some(f) => OwnerMap::load(f, &a.root)?,
        None => OwnerMap::identity(),
    };
    if !quiet {
        for s in owner_map.skipped() {
            eprintln!("cm-verify: warning: {s}");
        }
    }
    Ok(CompareOptions {
        owner_map,
        atime: a.atime,
        xattrs: !a.no_xattrs,
        content: !a.no_content,
        jobs: a.jobs.unwrap_or_else(tree::default_io_jobs).max(1),
        exclude: a.exclude.clone(),
    })
}

fn print_report(diffs: &[Difference], what: &str, stats: &TreeStats, out: &OutputArgs) {
    if out.json {
        let v = report::to_json(diffs, what, Some(stats));
        print_json(&v);
    } else if !out.quiet {
        print!(
            "{}",
            report::render_text(diffs, out.examples, what, Some(stats))
        );
    }
}

/// Run one comparison with a progress bar, print its report, and map it to the exit code.
fn compare_and_report(
    what: &str,
    out: &OutputArgs,
    compare: impl FnOnce(&Bar) -> Result<(Vec<Difference>, TreeStats)>,
) -> Result<ExitCode> {
    let bar = Bar::new(out.quiet);
    let (diffs, stats) = compare(&bar)?;
    drop(bar);
    print_report(&diffs, what, &stats, out);
    Ok(verdict(diffs.is_empty()))
}

/// 0 when everything holds, 1 when something does not.
fn verdict(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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

fn print_findings(o: &checks::Outcome, what: &str, out: &OutputArgs) {
    if out.json {
        let v = report::findings_json(o, what);
        print_json(&v);
    } else if !out.quiet {
        print!("{}", report::render_findings(o, out.examples, what));
    }
}

fn services(a: &ServicesArgs) -> Result<checks::Outcome> {
    let ports = a
        .ports
        .clone()
        .unwrap_or_else(|| cm_core::ports::CONTAINER_PORTS.to_vec());
    let mut sm = cm_core::systemd::Systemctl::default();
    Ok(checks::check_services(
        &mut sm,
        &a.cron_dir,
        &a.proc_root,
        &ports,
    )?)
}

fn layout(a: &LayoutArgs, ini: Option<&Path>) -> Result<checks::Outcome> {
    Ok(checks::check_project_layout(&checks::ProjectLayout {
        project_dir: &a.project_dir,
        compose: &a.compose,
        mail_domain: a.mail_domain.clone(),
        ini,
        image_root: a.image_root.as_deref(),
        image_users: a.image_users.as_deref(),
    })?)
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Env { ini, env, out } => {
            let o = checks::check_env(&ini, &env)?;
            print_findings(&o, &format!("env {} vs {}", q(&ini), q(&env)), &out);
            Ok(verdict(o.ok()))
        }
        Cmd::Services { svc, out } => {
            let o = services(&svc)?;
            print_findings(&o, "services", &out);
            Ok(verdict(o.ok()))
        }
        Cmd::Layout { lay, out } => {
            let o = layout(&lay, None)?;
            print_findings(&o, &format!("layout of {}", q(&lay.project_dir)), &out);
            Ok(verdict(o.ok()))
        }
        Cmd::All {
            ini,
            no_services,
            lay,
            svc,
            cmp,
            out,
        } => all(ini, no_services, &lay, &svc, &cmp, &out),
        Cmd::Tree { src, dst, cmp, out } => {
            let opts = compare_options(&cmp, out.quiet)?;
            compare_and_report(&format!("tree {} vs {}", q(&src), q(&dst)), &out, |bar| {
                Ok(tree::compare_trees(&src, &dst, &opts, bar)?)
            })
        }
        Cmd::Manifest(ManifestCmd::Check {
            file,
            dst,
            cmp,
            out,
        }) => {
            let opts = compare_options(&cmp, out.quiet)?;
            compare_and_report(
                &format!("manifest {} vs {}", q(&file), q(&dst)),
                &out,
                |bar| Ok(cm_core::manifest::check(&file, &dst, &opts, bar)?),
            )
        }
        Cmd::Manifest(ManifestCmd::Write {
            root,
            output,
            no_hash,
            no_xattrs,
            jobs,
            out,
        }) => {
            let opts = ScanOptions {
                xattrs: !no_xattrs,
                hash: !no_hash,
                jobs: jobs.unwrap_or_else(tree::default_io_jobs).max(1),
                exclude: Vec::new(),
            };
            // A manifest inside the tree it records would be listed as extra by every check.
            if cm_core::manifest::inside_tree(&root, &output) {
                anyhow::bail!(
                    "{} is inside the tree {} it would record: write it elsewhere (cm-copy-data keeps them in data/.cm-manifest/)",
                    q(&output),
                    q(&root)
                );
            }
            if std::fs::symlink_metadata(&output).is_ok() {
                anyhow::bail!(
                    "{} exists already: a manifest is never overwritten; remove it or choose another file",
                    q(&output)
                );
            }
            let comments = vec![
                "written by cm-verify manifest write".to_string(),
                format!("root: {}", q(&root)),
            ];
            let header = cm_core::manifest::Header::of(Path::new("/"), &root);
            let bar = Bar::new(out.quiet);
            let done =
                cm_core::manifest::write_tree(&root, &output, &header, &comments, &opts, &bar)?;
            drop(bar);
            let (files, bytes) = (done.files, done.bytes);
            if !done.errors.is_empty() {
                for e in &done.errors {
                    eprintln!("cm-verify: {}: {}", q(&e.path), e.message);
                }
                if out.json {
                    let errs: Vec<_> = done
                        .errors
                        .iter()
                        .map(|e| serde_json::json!({"path": cm_core::quote::json_path(&e.path), "error": e.message}))
                        .collect();
                    println!(
                        "{}",
                        serde_json::json!({"ok": false, "written": false, "errors": errs})
                    );
                }
                eprintln!(
                    "cm-verify: {} entries of {} could not be read; {} was NOT written (fix the permissions or run as root, then rerun)",
                    done.errors.len(),
                    q(&root),
                    q(&output)
                );
                return Ok(ExitCode::from(1));
            }
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "written": true, "manifest": cm_core::quote::json_path(&output),
                        "entries": done.entries, "files": files, "bytes": bytes})
                );
            } else if !out.quiet {
                println!(
                    "wrote {}: {} entries, {files} files, {bytes} bytes{}",
                    q(&output),
                    done.entries,
                    if no_hash { " (no hashes)" } else { " hashed" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    match dispatch(cli) {
        Ok(c) => c,
        Err(e) => {
            // cm-core's errors already carry their cause in their message.
            eprintln!("cm-verify: {e}");
            ExitCode::from(2)
        }
    }
}

/// `all`: every check that applies, one verdict.
fn all(
    ini: Option<PathBuf>,
    no_services: bool,
    lay: &LayoutArgs,
    svc: &ServicesArgs,
    cmp: &CompareArgs,
    out: &OutputArgs,
) -> Result<ExitCode> {
    let mut sections: Vec<(String, bool, serde_json::Value, String)> = Vec::new();
    let mut push_findings = |name: String, o: &checks::Outcome| {
        let text = report::render_findings(o, out.examples, &name);
        sections.push((name.clone(), o.ok(), report::findings_json(o, &name), text));
    };
    let env_file = lay.project_dir.join(".env");
    match &ini {
        Some(ini) => {
            let o = checks::check_project_env(ini, &env_file)?;
            push_findings(format!("env {} vs {}", q(ini), q(&env_file)), &o);
        }
        None => push_findings(
            "env".into(),
            &checks::Outcome {
                findings: vec![],
                notes: vec!["not checked: give --ini".into()],
            },
        ),
    }
    let lo = layout(lay, ini.as_deref())?;
    push_findings(format!("layout of {}", q(&lay.project_dir)), &lo);
    if no_services {
        push_findings(
            "services".into(),
            &checks::Outcome {
                findings: vec![],
                notes: vec!["not checked (--no-services)".into()],
            },
        );
    } else {
        let o = services(svc).unwrap_or_else(|e| checks::Outcome {
            findings: vec![],
            notes: vec![format!("not checked: {e}")],
        });
        push_findings("services".into(), &o);
    }
    // Trees: each volume against its source under --root, else against its manifest.
    let opts = compare_options(cmp, out.quiet)?;
    let mut notes = Vec::new();
    for v in checks::volume_checks(&lay.project_dir, &cmp.root) {
        let bar = Bar::new(out.quiet);
        let (what, diffs, stats) = match v {
            checks::VolumeCheck::Tree { src, dst } => {
                let (d, s) = tree::compare_trees(&src, &dst, &opts, &bar)?;
                (format!("tree {} vs {}", q(&src), q(&dst)), d, s)
            }
            checks::VolumeCheck::Manifest { manifest, dst } => {
                // cm-copy-data records the copy after its owner map: compare ids as they are.
                let mopts = CompareOptions {
                    owner_map: OwnerMap::identity(),
                    ..opts.clone()
                };
                let (d, s) = cm_core::manifest::check(&manifest, &dst, &mopts, &bar)?;
                (format!("manifest {} vs {}", q(&manifest), q(&dst)), d, s)
            }
            checks::VolumeCheck::Unverifiable(note) => {
                notes.push(note);
                continue;
            }
        };
        drop(bar);
        let text = report::render_text(&diffs, out.examples, &what, Some(&stats));
        let json = report::to_json(&diffs, &what, Some(&stats));
        sections.push((what, diffs.is_empty(), json, text));
    }
    let ok = sections.iter().all(|s| s.1);
    if out.json {
        let v = serde_json::json!({
            "ok": ok,
            "checks": sections.iter().map(|s| s.2.clone()).collect::<Vec<_>>(),
            "notes": notes,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !out.quiet {
        for s in &sections {
            println!("== {}", s.0);
            print!("{}", s.3);
        }
        for n in &notes {
            println!("note: {n}");
        }
        let failed: Vec<&str> = sections
            .iter()
            .filter(|s| !s.1)
            .map(|s| s.0.as_str())
            .collect();
        if ok {
            println!("ALL OK: {} checks hold", sections.len());
        } else {
            println!(
                "NOT OK: {} of {} checks fail: {}",
                failed.len(),
                sections.len(),
                failed.join("; ")
            );
        }
    }
    Ok(verdict(ok))
}
