//! cm-copy-data: copy DKIM keys, ACME state and the mail store into the Docker project's data
//! directories with every bit of metadata, checksummed and incrementally. All logic lives in
//! `cm_core::copy`; this binary parses arguments, reports progress and renders the outcome.

use anyhow::Result;
use clap::Parser;
use cm_core::copy::{self, safety, Counts, Event, Outcome, Plan, Severity, Volume};
use cm_core::owners::OwnerMap;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// Copy a chatmail relay's state (DKIM keys, ACME state, mail store) into a Docker project.
///
/// Default plan, from the old host's root (--root) into the compose project directory
/// (--project-dir): /etc/dkimkeys -> data/chatmail-dkimkeys, /var/lib/acme ->
/// data/chatmail-acme, /home -> data/chatmail.
///
/// Everything is preserved: file types, permission bits (setuid, setgid, sticky), owners
/// (numeric, or mapped with --owner-map), mtime and atime to the nanosecond (symlinks' own
/// too), hard links, extended attributes and POSIX ACLs, sparse files, empty and read-only
/// directories. Every file is hashed (SHA-256) while it is read, the copy is read back and
/// checked, and a manifest per volume is written to <project-dir>/data/.cm-manifest/.
///
/// A second run copies only what changed and removes from the copy what the source no longer
/// has: copy the bulk with --live while the relay runs, stop it, run again for the delta.
/// An interrupted run leaves no half-written file under a final name; just run again.
///
/// Exit status: 0 everything copied; 1 something was not copied (listed), the target lacks
/// space, or chatmail services are running; 2 usage error or unusable input.
///
/// Examples:
///   cm-copy-data --project-dir /srv/chatmail --owner-map docker/users --live   # bulk, relay up
///   cm-copy-data --project-dir /srv/chatmail --owner-map docker/users          # the delta
///   cm-copy-data --project-dir /srv/chatmail --dry-run
#[derive(Parser, Debug)]
#[command(name = "cm-copy-data", version = cm_core::version::text(), verbatim_doc_comment)]
struct Args {
    /// The old host's root directory: the default plan's sources are below it.
    #[arg(long, default_value = "/", value_name = "DIR")]
    root: PathBuf,

    /// The Docker compose project directory: the default plan's targets are in its data/.
    #[arg(long, default_value = ".", value_name = "DIR")]
    project_dir: PathBuf,

    /// Copy only these volumes of the default plan (comma-separated: dkim, acme, mail).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Vec<String>,

    /// Copy SRC to DST instead of the default plan (repeatable). SRC is taken as given; a
    /// relative DST is relative to --project-dir.
    #[arg(long = "map", value_name = "SRC=DST")]
    maps: Vec<String>,

    /// Map owners while copying: lines `name uid gid` (the name's ids on the old host are
    /// read from --root's /etc/passwd and /etc/group) or `host-uid:host-gid=uid:gid`.
    /// Without it numeric ids are kept. ACL entries are mapped too.
    #[arg(long, value_name = "FILE")]
    owner_map: Option<PathBuf>,

    /// Decide what changed by comparing contents (SHA-256 of both sides), not only type,
    /// size, mtime, mode, owner, xattrs and ACLs.
    #[arg(long)]
    checksum: bool,

    /// Copy the mail store although chatmail services are running (the bulk copy of a
    /// two-phase migration; run again after stopping them). Files that keep changing while
    /// they are read are then warnings (left for the next run), not errors.
    #[arg(long)]
    live: bool,

    /// Print the plan (counts and sizes per volume, space needed) and change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,

    /// Parallel workers (1 to 1024; default: 4 per CPU, at least 8, at most 32: a copy waits
    /// on the disk far more than on the CPU, so more reads in flight go faster).
    #[arg(long, short = 'j', value_name = "N", value_parser = cm_cli::args::parse_jobs)]
    jobs: Option<usize>,

    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,

    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    json: bool,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    cm_cli::error_exit(2, &msg.to_string())
}

fn volumes(a: &Args) -> Result<Vec<Volume>, String> {
    let rooted = |p: &str| a.root.join(p.trim_start_matches('/'));
    if !a.maps.is_empty() {
        if !a.only.is_empty() {
            return Err(
                "--only selects from the default plan; it cannot be combined with --map".into(),
            );
        }
        let mut v = Vec::new();
        for m in &a.maps {
            let (s, d) = m
                .split_once('=')
                .filter(|(s, d)| !s.is_empty() && !d.is_empty())
                .ok_or_else(|| format!("--map {m:?}: expected SRC=DST"))?;
            let dst = a.project_dir.join(d);
            let name = dst
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| d.to_string());
            let src = PathBuf::from(s);
            let mail = safety::resolve(&a.root) == Path::new("/")
                && safety::resolve(&src).starts_with("/home");
            v.push(Volume {
                name,
                src,
                dst,
                optional: false,
                mail_store: mail,
            });
        }
        return Ok(v);
    }
    let all = [
        (
            "dkim",
            "etc/dkimkeys",
            "data/chatmail-dkimkeys",
            true,
            false,
        ),
        ("acme", "var/lib/acme", "data/chatmail-acme", true, false),
        ("mail", "home", "data/chatmail", false, true),
    ];
    for o in &a.only {
        if !all.iter().any(|(n, ..)| n == o) {
            return Err(format!("--only {o:?}: expected dkim, acme or mail"));
        }
    }
    Ok(all
        .iter()
        .filter(|(n, ..)| a.only.is_empty() || a.only.iter().any(|o| o == n))
        .map(|&(n, s, d, optional, mail)| Volume {
            name: n.into(),
            src: rooted(s),
            dst: a.project_dir.join(d),
            optional,
            mail_store: mail,
        })
        .collect())
}

fn q(p: &Path) -> String {
    cm_core::quote::quote_path(p)
}

/// A path for JSON: any bytes, escaped as everywhere else (never a panic on non-UTF-8).
fn jp(p: &Path) -> String {
    cm_core::quote::json_path(p)
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    cm_core::report::plural(usize::try_from(n).unwrap_or(usize::MAX), one, many)
}

fn human(b: u64) -> String {
    safety::human(b)
}

fn plan_line(c: &Counts) -> String {
    format!(
        "copy {} entries ({}), link {}, verify {} ({}), remove {}, unchanged {}",
        c.copy,
        human(c.copy_bytes),
        c.link,
        c.verify,
        human(c.verify_bytes),
        c.delete,
        c.unchanged
    )
}

fn source_line(c: &Counts) -> String {
    format!(
        "{} {} ({}), {} {}, {} {}, {} fifos/devices, {} {}",
        c.files,
        plural(c.files, "file", "files"),
        human(c.bytes),
        c.dirs,
        plural(c.dirs, "directory", "directories"),
        c.symlinks,
        plural(c.symlinks, "symlink", "symlinks"),
        c.specials,
        c.sockets,
        plural(c.sockets, "socket", "sockets")
    )
}

/// The tool's command-line definition (for `--help`, man pages and completions).
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// Run the tool with these arguments (the first is the program name) and return its exit
/// status.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    cm_cli::main::<Args, _, _>(args, |a| Ok(run_args(a)))
}

fn run_args(a: Args) -> ExitCode {
    let vols = match volumes(&a) {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let owners = match &a.owner_map {
        Some(f) => match OwnerMap::load(f, &a.root) {
            Ok(m) => Some(m),
            Err(e) => return usage(e),
        },
        None => None,
    };
    if let Err(e) = safety::check_overlap(&vols) {
        return usage(e);
    }
    // Notes go to stderr unless --quiet; --json only keeps stdout for the JSON.
    let quiet = a.quiet;
    if !quiet && a.maps.is_empty() {
        if let Some(m) = cm_core::checks::not_a_chatmail_host(&a.root) {
            cm_cli::msg::warning(&format!(
                "{} does not look like a chatmail host ({m}); check --root",
                q(&a.root)
            ));
        }
    }
    if !quiet {
        for s in owners.iter().flat_map(|m| m.skipped()) {
            cm_cli::msg::warning(&s.to_string());
        }
    }
    if vols.iter().any(|v| v.mail_store) {
        match safety::mail_services(&a.root) {
            safety::Services::Running(units) if !a.live && !a.dry_run => {
                eprintln!(
                    "cm-copy-data: refusing to copy the mail store while chatmail services run: {}\n\
                     stop them first (cm-migrate stop-services), or pass --live for a bulk copy \
                     while the relay runs and copy again after stopping them",
                    units.join(", ")
                );
                return ExitCode::from(1);
            }
            safety::Services::NotChecked(why) if !quiet => eprintln!("cm-copy-data: note: {why}"),
            safety::Services::Running(units) if !a.live && !quiet => eprintln!(
                "cm-copy-data: note: chatmail services are running ({}): a real run refuses without --live",
                units.join(", ")
            ),
            _ => {}
        }
    }
    let jobs = a
        .jobs
        .unwrap_or_else(|| (cm_core::tree::default_jobs() * 4).clamp(8, 32));
    let opts = copy::Options {
        jobs,
        checksum: a.checksum,
        live: a.live,
        ids: owners
            .as_ref()
            .filter(|m| !m.is_identity())
            .map(|m| m as &dyn copy::MapIds),
    };
    let mut plans: Vec<Plan> = Vec::new();
    for v in &vols {
        let prev = match copy::load_prev(&v.dst) {
            Ok(p) => p,
            Err(e) => {
                if !quiet {
                    eprintln!("cm-copy-data: note: ignoring the earlier manifest ({e}); files already copied are read again to checksum them");
                }
                None
            }
        };
        match copy::plan(v, &opts, prev.as_ref()) {
            Ok(p) => plans.push(p),
            Err(e) => return usage(format!("{}: {e}", v.name)),
        }
    }
    let space = match safety::check_space(&plans) {
        Ok(s) => s,
        Err(e) => return usage(format!("cannot check free space on the target: {e}")),
    };
    if a.dry_run {
        return dry_run(&a, &plans, &space);
    }
    if let Some(s) = space.iter().find(|s| !s.ok()) {
        eprintln!("cm-copy-data: not enough space: {s}\nfree space on that file system (or choose another --project-dir) and run again; nothing was copied");
        if a.json {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": "not enough space", "space": space})
            );
        }
        return ExitCode::from(1);
    }
    execute(&a, &plans, &opts, quiet)
}

fn dry_run(a: &Args, plans: &[Plan], space: &[safety::SpaceCheck]) -> ExitCode {
    if a.json {
        let v: Vec<_> = plans
            .iter()
            .map(|p| {
                serde_json::json!({
                    "volume": p.volume.name, "source": jp(&p.volume.src), "target": jp(&p.volume.dst),
                    "skipped": p.skipped, "plan": p.counts, "problems": p.problems,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"dry_run": true, "volumes": v, "space": space,
                "space_ok": space.iter().all(|s| s.ok())})
        );
        return ExitCode::SUCCESS;
    }
    println!("dry run: nothing is changed");
    for p in plans {
        println!(
            "{}: {} -> {}",
            p.volume.name,
            q(&p.volume.src),
            q(&p.volume.dst)
        );
        if let Some(s) = &p.skipped {
            println!("  skipped: {s}");
            continue;
        }
        println!("  source: {}", source_line(&p.counts));
        println!("  would {}", plan_line(&p.counts));
        if let Some(n) = &p.note {
            println!("  note: {n}");
        }
        for pr in &p.problems {
            let level = match pr.severity {
                Severity::Warning => "warning",
                Severity::Error => "error",
            };
            println!("  {level}: {}: {}", pr.path, pr.message);
        }
    }
    for s in space {
        println!(
            "{} {s}",
            if s.ok() {
                "space ok:"
            } else {
                "NOT ENOUGH SPACE:"
            }
        );
    }
    ExitCode::SUCCESS
}

fn execute(a: &Args, plans: &[Plan], opts: &copy::Options, quiet: bool) -> ExitCode {
    let total_bytes: u64 = plans
        .iter()
        .map(|p| p.counts.copy_bytes + p.counts.verify_bytes)
        .sum();
    let total_items: u64 = plans
        .iter()
        .map(|p| p.counts.copy + p.counts.link + p.counts.verify)
        .sum();
    let pb = if quiet || a.json {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    };
    let files = AtomicU64::new(0);
    let mut results: Vec<(usize, Outcome, Option<PathBuf>, Option<String>)> = Vec::new();
    let mut any_error = false;
    for (k, p) in plans.iter().enumerate() {
        if p.skipped.is_some() {
            results.push((k, Outcome::default(), None, None));
            continue;
        }
        pb.set_prefix(p.volume.name.clone());
        if let Some(n) = &p.note {
            if !quiet {
                pb.suspend(|| eprintln!("cm-copy-data: note: {n}"));
            }
        }
        let on = |e: Event| match e {
            Event::Done { bytes } => {
                pb.inc(bytes);
                let f = files.fetch_add(1, Ordering::Relaxed) + 1;
                if f % 64 == 0 || f == total_items {
                    pb.set_message(format!("{f}/{total_items} entries"));
                }
            }
            Event::Phase(ph) => pb.set_message(ph.to_string()),
            Event::Problem(_) => {}
        };
        let out = copy::execute(p, opts, &on);
        let comments = vec![format!(
            "written by cm-copy-data {} (volume {})",
            env!("CARGO_PKG_VERSION"),
            p.volume.name
        )];
        let (mpath, merr) =
            if out.failed as usize == p.counts.entries as usize && out.records.is_empty() {
                (
                    None,
                    Some("nothing copied; no manifest written".to_string()),
                )
            } else {
                match copy::write_manifest(p, &out, &comments) {
                    Ok(m) => (Some(m), None),
                    Err(e) => (None, Some(format!("cannot write the manifest: {e}"))),
                }
            };
        any_error |= out.errors() > 0 || merr.is_some();
        results.push((k, out, mpath, merr));
    }
    pb.finish_and_clear();
    if a.json {
        let v: Vec<_> = results
            .iter()
            .map(|(k, o, m, me)| {
                let p = &plans[*k];
                serde_json::json!({
                    "volume": p.volume.name, "source": jp(&p.volume.src), "target": jp(&p.volume.dst),
                    "skipped": p.skipped, "plan": p.counts, "outcome": o, "manifest": m.as_deref().map(jp),
                    "manifest_error": me,
                })
            })
            .collect();
        println!("{}", serde_json::json!({"ok": !any_error, "volumes": v}));
    } else {
        for (k, o, m, me) in &results {
            let p = &plans[*k];
            if !quiet {
                if let Some(s) = &p.skipped {
                    println!("{}: skipped: {s}", p.volume.name);
                    continue;
                }
                println!(
                    "{}: {} -> {}: copied {} ({}, each read back and checked), linked {}, unchanged {}{}, removed {}{}",
                    p.volume.name,
                    q(&p.volume.src),
                    q(&p.volume.dst),
                    o.copied,
                    human(o.copied_bytes),
                    o.linked,
                    o.unchanged,
                    if o.verified > 0 {
                        format!(" (+{} found equal by content)", o.verified)
                    } else {
                        String::new()
                    },
                    o.deleted,
                    m.as_ref()
                        .map(|m| format!("; manifest {}", q(m)))
                        .unwrap_or_default()
                );
                for w in o
                    .problems
                    .iter()
                    .filter(|x| x.severity == Severity::Warning)
                {
                    cm_cli::msg::warning(&format!("{}: {}", w.path, w.message));
                }
            }
            if let Some(me) = me {
                eprintln!("{}: {me}", p.volume.name);
            }
            let errs: Vec<_> = o
                .problems
                .iter()
                .filter(|x| x.severity == Severity::Error)
                .collect();
            if !errs.is_empty() {
                eprintln!("{}: {} not copied:", p.volume.name, errs.len());
                for e in errs {
                    eprintln!("  {}: {}", e.path, e.message);
                }
            }
        }
        if any_error {
            eprintln!("cm-copy-data: the copy is incomplete (see above); fix the cause and run again: only what is missing or changed is copied");
        }
    }
    if any_error {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
