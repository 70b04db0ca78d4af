//! cm-copy-data: copy DKIM keys, ACME state and the mail store into the Docker project's data
//! directories with every bit of metadata, checksummed and incrementally. All logic lives in
//! `cm_core::copy`; this binary parses arguments, reports progress and renders the outcome.

use anyhow::Result;
use clap::Parser;
use cm_core::copy::{self, safety, Counts, Event, Outcome, Plan, Severity, Volume};
use cm_core::owners::OwnerMap;
use cm_core::target::compose::COMPOSE_FILES;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod interrupt;
mod summary;
use summary::VolResult;

use cm_core::target::prepare::{self, Prepared};

/// Copy a chatmail relay's state (DKIM keys, ACME state, mail store) into a Docker project.
///
/// Default plan, from the old host's root (--root) into the compose project directory
/// (--project-dir): where each piece of the relay's state goes is read from the project's
/// compose file through Docker Compose v2 (`docker compose config`, the override file merged
/// in): a bind mount is written at its host path, a named volume at its mountpoint (created
/// with Compose's labels when it does not exist yet), and owners follow the users of the
/// image the service runs (read without starting it), mapped by name. State the old host has
/// and the target does not mount is reported first, with the compose line to add. A tree the
/// target mounts from the old host's own path is not copied: owners that differ from the
/// image's are reported with the exact fix, or set in place with --reown-in-place (an undo
/// record is written first; --undo-reown puts it back).
/// `--layout guide` copies into the guide's layout instead (no compose file needed):
/// /etc/dkimkeys -> data/chatmail-dkimkeys, /var/lib/acme -> data/chatmail-acme, /home ->
/// data/chatmail.
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

    /// The Docker compose project directory: the default plan's targets are read from its
    /// compose file.
    #[arg(long, default_value = ".", value_name = "DIR")]
    project_dir: PathBuf,

    /// Copy into the guide's layout (data/chatmail, data/chatmail-dkimkeys,
    /// data/chatmail-acme below --project-dir) without reading a compose file.
    #[arg(long, value_name = "NAME", value_parser = ["guide"])]
    layout: Option<String>,

    /// The Docker Compose v2 program that reads the compose file (words allowed: "docker
    /// compose"); default: the `docker compose` plugin, else docker-compose, else
    /// docker-compose-v2, the first whose `version` says v2.
    #[arg(long, value_name = "PROGRAM")]
    compose: Option<String>,

    /// Copy only these volumes of the default plan (comma-separated: dkim, acme, mail).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Vec<String>,

    /// Copy SRC to DST instead of the default plan (repeatable). SRC is taken as given; a
    /// relative DST is relative to --project-dir.
    #[arg(long = "map", value_name = "SRC=DST")]
    maps: Vec<String>,

    // owners are mapped while copying
    #[command(flatten)]
    owners: cm_cli::args::OwnerMapArgs,

    /// Decide what changed by comparing contents (SHA-256 of both sides), not only type,
    /// size, mtime, mode, owner, xattrs and ACLs.
    #[arg(long)]
    checksum: bool,

    /// Copy the mail store although chatmail services are running (the bulk copy of a
    /// two-phase migration; run again after stopping them). Files that keep changing while
    /// they are read are then warnings (left for the next run), not errors.
    #[arg(long)]
    live: bool,

    /// A first copy into a target that already holds entries (no manifest of an earlier
    /// run): take them as a partial copy instead of refusing. What the source lacks is moved
    /// aside into a dated folder beside the target, never deleted.
    #[arg(long)]
    adopt: bool,

    /// For a tree the target mounts from the old host's own path (nothing to copy), set the
    /// owners the target expects (the image's by name, or --owner-map) on the old host's
    /// files themselves; an undo record is written first, to
    /// <project-dir>/.cm-reown/<name>-<UTC>.undo.
    #[arg(long)]
    reown_in_place: bool,

    /// Put back every owner and mode an undo record of --reown-in-place holds, and exit.
    #[arg(long, value_name = "FILE", conflicts_with = "reown_in_place")]
    undo_reown: Option<PathBuf>,

    /// Print the plan (counts and sizes per volume, space needed, every path that would be
    /// removed or moved aside) and change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,

    /// Parallel workers (1 to 1024; default: 4 per CPU, at least 8, at most 32: a copy waits
    /// on the disk far more than on the CPU, so more reads in flight go faster).
    #[arg(long, short = 'j', value_name = "N", value_parser = cm_cli::args::parse_jobs)]
    jobs: Option<usize>,

    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,

    /// List every entry copied, linked and removed (with --dry-run: that would be).
    #[arg(long, short)]
    verbose: bool,

    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Unusable input or a refusal before anything is written: exit 2, printed (and with --json
/// given as a JSON document) by `cm_cli::main`.
fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    Err(cm_cli::exit::Fail::usage(msg))
}

fn volumes(a: &Args) -> Result<Vec<Volume>, String> {
    // every source of the default plan is resolved inside --root as a chroot would
    let rooted =
        |p: &str| cm_core::root::resolve_in(&a.root, Path::new(p)).map_err(|e| e.to_string());
    cm_core::root::open_root(&a.root).map_err(|e| e.to_string())?;
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
                && safety::resolve(&src).starts_with(rooted("/home")?);
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
    for o in &a.only {
        if !cm_core::state::guide_trees().iter().any(|s| s.name == *o) {
            return Err(format!("--only {o:?}: expected dkim, acme or mail"));
        }
    }
    // the default plan: the target's trees (see `target`)
    Ok(Vec::new())
}

/// The project directory a default plan (or a relative `--map` target) copies into must exist
/// and be a compose project: a typo is never created.
fn check_project(a: &Args) -> Result<(), String> {
    let relative_map = a.maps.iter().any(|m| {
        m.split_once('=')
            .is_some_and(|(_, d)| Path::new(d).is_relative())
    });
    if !a.maps.is_empty() && !relative_map {
        return Ok(());
    }
    let p = &a.project_dir;
    match std::fs::metadata(p) {
        Err(e) => Err(format!(
            "--project-dir {}: {e}; give the Docker compose project's directory (it is never created)",
            p.display()
        )),
        Ok(m) if !m.is_dir() => Err(format!("--project-dir {}: not a directory", p.display())),
        Ok(_) if a.layout.is_none() && !COMPOSE_FILES.iter().any(|f| p.join(f).is_file()) => Err(format!(
            "--project-dir {}: no compose file there ({}): give the Docker compose project's directory, or ask for the guide's layout by name (--layout guide)",
            p.display(),
            COMPOSE_FILES.join(", ")
        )),
        Ok(_) => Ok(()),
    }
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
        "copy {} entries ({}), link {}, verify {} ({}), remove {}, move aside {}, remove leftover temporaries {}, unchanged {}",
        c.copy,
        human(c.copy_bytes),
        c.link,
        c.verify,
        human(c.verify_bytes),
        c.delete,
        c.aside,
        c.leftovers,
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
    cm_cli::main::<Args, _, _>(args, run_args)
}

fn run_args(a: Args) -> anyhow::Result<ExitCode> {
    if let Some(record) = &a.undo_reown {
        return undo_reown(&a, record);
    }
    let (vols, owners, resolved) = resolve_target(&a)?;
    preflight(&a, &vols, owners.as_ref())?;
    let opts = copy_options(&a, owners.as_ref());
    let mut plans = plan_volumes(&a, &vols, &opts)?;
    let caller = safety::check_caller(&plans, opts.ids, &safety::Caller::current());
    if let (Err(e), false) = (&caller, a.dry_run) {
        return usage(e);
    }
    let space = match safety::check_space_counting(&mut plans, &opts) {
        Ok(s) => s,
        Err(e) => return usage(format!("cannot check free space on the target: {e}")),
    };
    if a.dry_run {
        return Ok(dry_run(
            &a,
            &plans,
            &space,
            caller.err(),
            &target_json(&resolved),
        ));
    }
    if space.iter().any(|s| !s.ok()) {
        return Ok(short_of_space(&a, &space));
    }
    let code = execute(&a, &plans, &opts, owners.as_ref(), &target_json(&resolved));
    Ok(match &resolved {
        Some(r) if code == ExitCode::SUCCESS => copy_files(&a, r, &opts),
        _ => code,
    })
}

/// What is copied where: the `--map` volumes, or the target's trees as
/// [`prepare::prepare`] resolves them (its notes and warnings said, `--reown-in-place`
/// done); and the owner map, the target image's when it gives one.
fn resolve_target(a: &Args) -> anyhow::Result<(Vec<Volume>, Option<OwnerMap>, Option<Prepared>)> {
    use cm_cli::exit::Fail;
    check_project(a).map_err(Fail::usage)?;
    let vols = volumes(a).map_err(Fail::usage)?;
    // its skipped lines are warned about later, after every refusal
    let mut owners = a.owners.load(&a.root, true).map_err(Fail::usage)?;
    if !a.maps.is_empty() {
        return Ok((vols, owners, None));
    }
    let r = prepare::prepare(
        &a.root,
        &a.project_dir,
        &prepare::Options {
            compose: a.compose.as_deref(),
            guide: a.layout.is_some(),
            only: &a.only,
            owner_map_given: a.owners.owner_map.is_some(),
            create: !a.dry_run,
            dry_run: a.dry_run,
            on: Default::default(),
        },
    )
    .map_err(Fail::usage)?;
    if !a.quiet {
        for n in &r.notes {
            cm_cli::msg::note(n);
        }
        for w in &r.warnings {
            cm_cli::msg::warning(w);
        }
    }
    if r.owners.is_some() {
        owners = r.owners.clone();
    }
    if a.reown_in_place {
        reown_in_place(a, &r, owners.as_ref())?;
    }
    Ok((r.volumes.clone(), owners, Some(r)))
}

/// The refusals before anything is planned (volumes that overlap, links in the target's
/// path, the mail store while services run), with the warnings said on the way.
fn preflight(a: &Args, vols: &[Volume], owners: Option<&OwnerMap>) -> anyhow::Result<()> {
    use cm_cli::exit::Fail;
    safety::check_overlap(vols).map_err(Fail::usage)?;
    safety::check_target_links(&a.project_dir, vols).map_err(Fail::usage)?;
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
        services_gate(a)?;
    }
    Ok(())
}

/// The copy engine's options from the arguments.
fn copy_options<'a>(a: &'a Args, owners: Option<&'a OwnerMap>) -> copy::Options<'a> {
    let jobs = a
        .jobs
        .unwrap_or_else(|| (cm_core::tree::default_jobs() * 4).clamp(8, 32));
    copy::Options {
        jobs,
        checksum: a.checksum,
        live: a.live,
        ids: owners
            .filter(|m| !m.is_identity())
            .map(|m| m as &dyn copy::MapIds),
        adopt: a.adopt,
        root: Some(&a.root),
        changed: None,
        list: a.verbose,
        // the plan's walk only for what shows its counts: a dry run, the progress bar's total
        lazy_plan: !a.dry_run
            && (a.quiet || a.json || !std::io::IsTerminal::is_terminal(&std::io::stderr())),
    }
}

/// Each volume planned, in order (its notes said, but for a dry run, which lists them).
fn plan_volumes(a: &Args, vols: &[Volume], opts: &copy::Options) -> anyhow::Result<Vec<Plan>> {
    let mut plans: Vec<Plan> = Vec::new();
    for v in vols {
        let p = copy::plan(v, opts)
            .map_err(|e| cm_cli::exit::Fail::usage(format!("{}: {e}", v.name)))?;
        if !a.quiet && !a.dry_run {
            for n in &p.notes {
                cm_cli::msg::note(n);
            }
        }
        plans.push(p);
    }
    Ok(plans)
}

/// The target is short of space or inodes: said (and as JSON with `--json`), nothing
/// copied, exit 1.
fn short_of_space(a: &Args, space: &[safety::SpaceCheck]) -> ExitCode {
    for m in space.iter().filter_map(|s| s.shortage()) {
        cm_cli::msg::error(&m.to_string());
    }
    cm_cli::msg::error("free space or inodes on that file system (or choose another target) and run again; nothing was copied");
    if a.json {
        println!(
            "{}",
            serde_json::json!({"ok": false, "exit_code": 1, "error": "the target is short of space or inodes", "space": space_json(space)})
        );
    }
    ExitCode::from(1)
}

/// `--reown-in-place`: each tree mounted from the old host's own path re-owned by the map,
/// its undo record first; a line each (stderr under --json).
fn reown_in_place(a: &Args, r: &Prepared, owners: Option<&OwnerMap>) -> anyhow::Result<()> {
    let Some(map) = owners.filter(|m| !m.is_identity()) else {
        if !a.quiet {
            cm_cli::msg::note("--reown-in-place: the owner map changes no id: nothing to re-own");
        }
        return Ok(());
    };
    let stamp = cm_core::fsutil::utc_stamp(std::time::SystemTime::now());
    for (path, _) in &r.in_place {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        let record = a
            .project_dir
            .join(".cm-reown")
            .join(format!("{name}-{stamp}.undo"));
        let done = cm_core::reown::reown(path, map, &record, a.dry_run)?;
        let verb = if a.dry_run {
            "would re-own"
        } else {
            "re-owned"
        };
        let line = format!(
            "{}: {verb} {} of {} entries in place{}",
            q(path),
            done.changed,
            done.entries,
            match &done.record {
                Some(rec) => format!(
                    " (undo: cm-copy-data --project-dir {} --undo-reown {})",
                    q(&a.project_dir),
                    q(rec)
                ),
                None => String::new(),
            }
        );
        if a.json {
            eprintln!("{line}");
        } else if !a.quiet {
            println!("{line}");
        }
    }
    Ok(())
}

/// `--undo-reown FILE`: the owners and modes of the record put back.
fn undo_reown(a: &Args, record: &Path) -> anyhow::Result<ExitCode> {
    use cm_core::reown::ReownError;
    match cm_core::reown::undo(record) {
        Ok(n) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "restored": n, "record": jp(record)})
                );
            } else if !a.quiet {
                println!(
                    "restored the owners and modes of {n} entries from {}",
                    q(record)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ ReownError::Format { .. }) => usage(e),
        Err(ReownError::Io { path, source }) if path == record => {
            usage(format!("{}: {source}", q(&path)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The target as `--json` gives it: how it was resolved (layout, service, each piece of
/// state's mount, settings), the owners mapped by name from its image, what was noted and
/// warned on the way; null for `--map`.
fn target_json(r: &Option<Prepared>) -> serde_json::Value {
    let Some(r) = r else {
        return serde_json::Value::Null;
    };
    // every path of the target serialises through quote::json_path: no name can fail here
    let resolved = serde_json::to_value(&r.target)
        .unwrap_or_else(|e| serde_json::Value::String(format!("not serialisable: {e}")));
    let mapped = serde_json::to_value(&r.mapped).unwrap_or_default();
    serde_json::json!({"resolved": resolved, "owners_by_name": mapped,
        "notes": r.notes, "warnings": r.warnings})
}

/// The single files the target mounts (self-signed TLS, the account-creation switch,
/// external TLS), after the trees.
fn copy_files(a: &Args, r: &Prepared, opts: &copy::Options) -> ExitCode {
    match cm_core::target::plan::copy_files(&r.target, &a.root, opts.ids, false) {
        Ok(files) => {
            if !a.quiet && !a.json {
                for f in files {
                    println!(
                        "{}: {} -> {}{}",
                        f.name,
                        q(&f.src),
                        q(&f.dst),
                        if f.changed { "" } else { " (unchanged)" }
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            cm_cli::msg::error(&e.to_string());
            ExitCode::from(1)
        }
    }
}

/// Refuse the mail store while chatmail services run, or when whether they run could not be
/// checked (exit 1 and 2), unless `--live`; a dry run only says what a real run would do.
fn services_gate(a: &Args) -> anyhow::Result<()> {
    use cm_cli::exit::Fail;
    use safety::Services;
    let quiet = a.quiet;
    match safety::mail_services(&a.root) {
        Services::Running(units) if !a.live && !a.dry_run => {
            return Err(Fail::incomplete(format!(
                "refusing to copy the mail store while chatmail services run: {}; \
                 stop them first (cm-migrate stop-services), or pass --live for a bulk copy \
                 while the relay runs and copy again after stopping them",
                units.join(", ")
            )));
        }
        Services::Running(units) if !a.live && !quiet => cm_cli::msg::note(&format!(
            "chatmail services are running ({}): a real run refuses without --live",
            units.join(", ")
        )),
        Services::NotChecked(why) if !a.live && !a.dry_run => {
            return Err(Fail::usage(format!(
                "refusing to copy the mail store: whether chatmail services are running was not checked: {why}; \
                 make systemctl work (or stop the services with cm-migrate stop-services and check with systemctl), \
                 or pass --live to copy anyway while they may run (and copy again after stopping them)"
            )));
        }
        Services::NotChecked(why) if !quiet => cm_cli::msg::note(&format!(
            "whether chatmail services are running was not checked ({why}){}",
            if a.live {
                "; copying anyway (--live)"
            } else {
                ": a real run refuses without --live"
            }
        )),
        Services::NotApplicable(why) if !quiet => cm_cli::msg::note(&why),
        _ => {}
    }
    Ok(())
}

/// The space checks for `--json`, each with the resources it lacks (`short`).
fn space_json(space: &[safety::SpaceCheck]) -> Vec<serde_json::Value> {
    space
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("short".into(), serde_json::json!(s.short()));
            }
            v
        })
        .collect()
}

/// The plan; exit 1 when a real run would be refused (short of space or inodes, `refusal`).
fn dry_run(
    a: &Args,
    plans: &[Plan],
    space: &[safety::SpaceCheck],
    refusal: Option<String>,
    target: &serde_json::Value,
) -> ExitCode {
    let space_ok = space.iter().all(|s| s.ok());
    if let Some(r) = &refusal {
        cm_cli::msg::note(&format!("a real run refuses: {r}"));
    }
    let code = if space_ok && refusal.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if a.json {
        let v: Vec<_> = plans
            .iter()
            .map(|p| {
                serde_json::json!({
                    "volume": p.volume.name, "source": jp(&p.volume.src), "target": jp(&p.volume.dst),
                    "skipped": p.skipped, "plan": p.counts, "problems": p.problems,
                    "removals": p.removals, "notes": p.notes,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"dry_run": true, "ok": space_ok && refusal.is_none(),
                "refused": refusal, "volumes": v, "space": space_json(space), "space_ok": space_ok,
                "target": target})
        );
        return code;
    }
    println!("dry run: nothing is changed");
    for p in plans {
        dry_run_volume(a, p);
    }
    for s in space {
        match s.shortage() {
            None => println!("space ok: {s}"),
            Some(m) => println!("NOT OK: {m}"),
        }
    }
    if !space_ok {
        eprintln!(
            "cm-copy-data: the target is short of space or inodes (above): a real run refuses"
        );
    }
    code
}

/// A volume's lines in a dry run: what it holds and what a run would do, `-v`'s listing,
/// notes, removals and problems.
fn dry_run_volume(a: &Args, p: &Plan) {
    println!(
        "{}: {} -> {}",
        p.volume.name,
        q(&p.volume.src),
        q(&p.volume.dst)
    );
    if let Some(s) = &p.skipped {
        println!("  skipped: {s}");
        return;
    }
    println!("  source: {}", source_line(&p.counts));
    println!("  would {}", plan_line(&p.counts));
    if a.verbose {
        for l in summary::listing(p, None) {
            println!("{l}");
        }
    }
    if let Some(n) = &p.note {
        println!("  note: {n}");
    }
    for n in &p.notes {
        println!("  note: {n}");
    }
    for r in &p.removals {
        println!("  would {}: {}", r.action, r.path);
    }
    for pr in &p.problems {
        let level = match pr.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        println!("  {level}: {}: {}", pr.path, pr.message);
    }
}

fn progress_bar(a: &Args, total_bytes: u64) -> ProgressBar {
    if a.quiet || a.json {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Copy one planned volume and write its manifest.
fn copy_volume(p: &Plan, opts: &copy::Options, on: &(dyn Fn(Event) + Sync)) -> VolResult {
    let out = copy::execute(p, opts, on);
    let comments = vec![format!(
        "written by cm-copy-data {} (volume {})",
        env!("CARGO_PKG_VERSION"),
        p.volume.name
    )];
    let (manifest, manifest_error) = if !out.has_manifest() {
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
    VolResult {
        out,
        manifest,
        manifest_error,
    }
}

/// Copy every planned volume, then report: each volume's lines and the totals (or one JSON
/// document); exit 1 when anything was not copied.
fn execute(
    a: &Args,
    plans: &[Plan],
    opts: &copy::Options,
    owners: Option<&OwnerMap>,
    target: &serde_json::Value,
) -> ExitCode {
    let started = Instant::now();
    let results = copy_all(a, plans, opts);
    let any_error = results
        .iter()
        .any(|r| r.out.errors() > 0 || r.manifest_error.is_some());
    let totals = summary::totals(&results, started.elapsed());
    let next = summary::next_step(a, plans, any_error);
    if a.json {
        let mapped: Vec<_> = owners.map(|o| o.mappings()).unwrap_or_default();
        println!(
            "{}",
            serde_json::json!({"ok": !any_error, "volumes": volumes_json(plans, &results),
                "totals": totals, "owners_mapped": mapped, "target": target, "next": next})
        );
    } else {
        for (p, r) in plans.iter().zip(&results) {
            report_volume(a, p, r);
        }
        if !a.quiet {
            println!("{}", summary::total_line(&totals));
            println!("{}", summary::owners_line(owners));
            println!("{next}");
        }
        if any_error {
            cm_cli::msg::error("the copy is incomplete (see above); fix the cause and run again: only what is missing or changed is copied");
        }
    }
    if any_error {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Each planned volume copied in order behind one progress bar (a skipped one gets an empty
/// result); the interrupt handler is told which volume is copied and which are done.
fn copy_all(a: &Args, plans: &[Plan], opts: &copy::Options) -> Vec<VolResult> {
    let total_bytes: u64 = plans
        .iter()
        .map(|p| p.counts.copy_bytes + p.counts.verify_bytes)
        .sum();
    let total_items: u64 = plans
        .iter()
        .map(|p| p.counts.copy + p.counts.link + p.counts.verify)
        .sum();
    let pb = progress_bar(a, total_bytes);
    let state = Arc::new(Mutex::new(interrupt::State {
        json: a.json,
        pending: plans
            .iter()
            .filter(|p| p.skipped.is_none())
            .map(|p| p.volume.name.clone())
            .collect(),
        ..Default::default()
    }));
    interrupt::install(pb.clone(), state.clone());
    let files = AtomicU64::new(0);
    let mut results: Vec<VolResult> = Vec::new();
    for p in plans {
        if p.skipped.is_some() {
            results.push(VolResult {
                out: Outcome::default(),
                manifest: None,
                manifest_error: None,
            });
            continue;
        }
        if let Ok(mut st) = state.lock() {
            st.pending.retain(|v| *v != p.volume.name);
            st.volume = Some(p.volume.name.clone());
        }
        pb.set_prefix(p.volume.name.clone());
        if let Some(n) = &p.note {
            if !a.quiet {
                pb.suspend(|| cm_cli::msg::note(n));
            }
        }
        results.push(copy_volume(p, opts, &progress(&pb, &files, total_items)));
        if let Ok(mut st) = state.lock() {
            st.volume = None;
            st.done.push(p.volume.name.clone());
        }
    }
    pb.finish_and_clear();
    results
}

/// The copy engine's events on the progress bar: bytes done, entries done (every 64th and
/// the last), the phase.
fn progress<'a>(
    pb: &'a ProgressBar,
    files: &'a AtomicU64,
    total_items: u64,
) -> impl Fn(Event) + Sync + 'a {
    move |e: Event| match e {
        Event::Done { bytes } => {
            pb.inc(bytes);
            let f = files.fetch_add(1, Ordering::Relaxed) + 1;
            if f % 64 == 0 || f == total_items {
                pb.set_message(format!("{f}/{total_items} entries"));
            }
        }
        Event::Phase(ph) => pb.set_message(ph.to_string()),
        Event::Problem(_) => {}
    }
}

/// Each volume as `--json` gives it after a copy: its plan, outcome and manifest.
fn volumes_json(plans: &[Plan], results: &[VolResult]) -> Vec<serde_json::Value> {
    plans
        .iter()
        .zip(results)
        .map(|(p, r)| {
            serde_json::json!({
                "volume": p.volume.name, "source": jp(&p.volume.src), "target": jp(&p.volume.dst),
                "skipped": p.skipped, "plan": if p.counted == copy::Counted::Walked { &p.counts } else { &r.out.walked }, "outcome": r.out,
                "manifest": r.manifest.as_deref().map(jp), "manifest_error": r.manifest_error,
            })
        })
        .collect()
}

/// A volume's lines: its counts, its paths and manifest, `-v`'s listing, warnings and errors.
fn report_volume(a: &Args, p: &Plan, r: &VolResult) {
    let o = &r.out;
    if !a.quiet {
        if let Some(s) = &p.skipped {
            println!("{}: skipped: {s}", p.volume.name);
            return;
        }
        println!("{}", summary::volume_line(&p.volume.name, o));
        println!(
            "  {} -> {}{}",
            p.volume.src.display(),
            p.volume.dst.display(),
            r.manifest
                .as_ref()
                .map(|m| format!(" (manifest {})", m.display()))
                .unwrap_or_default()
        );
        if let Some(d) = &o.aside_dir {
            println!(
                "  moved aside into {} ({} entries no run of this suite wrote; nothing deleted)",
                cm_core::quote::quote_path(d),
                o.moved_aside
            );
        }
        if p.counted != copy::Counted::Walked {
            // the notes of the walk (an unreadable earlier manifest): the run's, not the plan's
            for n in &o.notes {
                cm_cli::msg::note(n);
            }
        }
        if a.verbose {
            for l in summary::listing(p, Some(o)) {
                println!("{l}");
            }
        }
        for w in o
            .problems
            .iter()
            .filter(|x| x.severity == Severity::Warning)
        {
            cm_cli::msg::warning(&format!("{}: {}", w.path, w.message));
        }
    }
    if let Some(me) = &r.manifest_error {
        eprintln!("{}: {me}", p.volume.name);
    }
    let errs: Vec<_> = o
        .problems
        .iter()
        .filter(|x| x.severity == Severity::Error)
        .collect();
    if !errs.is_empty() || o.failed > 0 {
        eprintln!(
            "{}: {} entries not copied, {} errors:",
            p.volume.name,
            o.failed,
            errs.len()
        );
        for e in errs {
            eprintln!("  {}: {}", e.path, e.message);
        }
    }
}
