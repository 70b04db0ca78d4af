//! `cm-migrate run`: the whole move, printing one line per finished step (and what a step is
//! doing, on a terminal), then the steps, the measured downtime and the next step.

use crate::flow::{build, fail, print_findings, print_json, secs, with_parts, FlowArgs, Out};
use clap::Args;
use cm_core::migration::journal::Phase;
use cm_core::migration::steps::{DryRun, Status};
use cm_core::migration::{dry_run, run, RunEvent, RunOptions, RunReport, Step};
use std::io::IsTerminal;

/// The environment variable that makes a run kill itself with SIGKILL, for the crash tests
/// (never set it otherwise): `STEP:begun` or `STEP:done` at that boundary (once it is on
/// disk), `STEP:begun+MS` that many milliseconds after the step began (in the middle of it),
/// `STEP:progress:TEXT` at the step's first progress line starting with TEXT (a copy says
/// `VOLUME: SRC -> DST` before each volume).
pub const CRASH_AT: &str = "CM_MIGRATE_TEST_CRASH_AT";

fn die() {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGKILL);
}

/// Move the relay: preflight, live bulk copy, stop, delta, settings, verify [, start].
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Continue an interrupted run where it stopped (steps that must not repeat are not).
    #[arg(long)]
    pub resume: bool,
    /// Also bring the container up (docker compose up -d) and wait until it serves; the
    /// downtime then ends when it does.
    #[arg(long)]
    pub start: bool,
    /// Print the plan (findings, sizes, the steps, the expected downtime from a timed
    /// sample of the store); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub out: Out,
}

pub fn main(a: RunArgs) -> i32 {
    let mut b = match build(&a.flow) {
        Ok(b) => b,
        Err(e) => return fail(a.out, &e, 2),
    };
    if a.dry_run {
        let r = with_parts(&mut b, |p| dry_run(p, a.start, &a.flow.skip_check));
        return match r {
            Ok(d) => print_dry_run(&d, a.out, &b.identity.describe()),
            Err(e) => fail(a.out, &e.to_string(), e.exit_code()),
        };
    }
    let opts = RunOptions {
        journal_file: b.journal_file.clone(),
        lock_file: b.lock_file.clone(),
        identity: b.identity.clone(),
        resume: a.resume,
        start: a.start,
        skip_checks: a.flow.skip_check.clone(),
    };
    let crash = std::env::var(CRASH_AT).ok();
    let out = a.out;
    let tty = std::io::stderr().is_terminal();
    let r = with_parts(&mut b, |p| {
        run(p, &opts, &mut |e| progress(&e, out, tty, crash.as_deref()))
    });
    match r {
        Ok(r) => {
            let code = r.exit_code();
            if out.json {
                print_json(&r, code);
            } else {
                print_report(&r, out.quiet);
            }
            code
        }
        Err(e) => fail(out, &e.to_string(), e.exit_code()),
    }
}

/// Progress on stderr; the crash hook for the tests.
fn progress(e: &RunEvent, out: Out, tty: bool, crash: Option<&str>) {
    match e {
        RunEvent::Boundary { step, phase } => {
            let p = match phase {
                Phase::Begun => "begun",
                Phase::Done => "done",
                Phase::Failed => "failed",
            };
            let here = format!("{step}:{p}");
            match crash.and_then(|c| c.strip_prefix(here.as_str())) {
                Some("") => die(),
                Some(delay) => {
                    if let Some(ms) = delay.strip_prefix('+').and_then(|m| m.parse().ok()) {
                        std::thread::spawn(move || {
                            std::thread::sleep(std::time::Duration::from_millis(ms));
                            die();
                        });
                    }
                }
                None => {}
            }
        }
        RunEvent::Progress { step, msg } => {
            let at = format!("{step}:progress:");
            if let Some(text) = crash.and_then(|c| c.strip_prefix(at.as_str())) {
                if msg.starts_with(text) {
                    die();
                }
            }
            if tty && !out.quiet {
                eprintln!("cm-migrate: {step}: {msg}");
            }
        }
        RunEvent::Finished(s) if !out.quiet => eprintln!(
            "cm-migrate: {:<9} {:<7} {:>9}  {}",
            s.step.as_str(),
            status(s.status),
            secs(s.ms),
            s.summary
        ),
        _ => {}
    }
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Done => "done",
        Status::Skipped => "skipped",
        Status::Failed => "FAILED",
    }
}

fn print_report(r: &RunReport, quiet: bool) {
    for s in r.steps.iter().filter(|s| s.status == Status::Failed) {
        for p in &s.problems {
            eprintln!("cm-migrate: {}: {p}", s.step);
        }
    }
    if quiet {
        if !r.complete {
            eprintln!("cm-migrate: INCOMPLETE: {}", r.next_step);
        }
        return;
    }
    println!(
        "cm-migrate run: {}{}",
        r.run.describe(),
        if r.resumed { " (resumed)" } else { "" }
    );
    if r.findings
        .iter()
        .any(|f| f.level != cm_core::migration::Level::Ok || f.check == "target")
    {
        println!("Preflight findings:");
        print_findings(&r.findings, false);
    }
    println!("Steps:");
    for s in &r.steps {
        println!(
            "  {:<9} {:<7} {:>9}  {}",
            s.step.as_str(),
            status(s.status),
            secs(s.ms),
            s.summary
        );
        for n in &s.notes {
            println!("                              note: {n}");
        }
    }
    if let Some(d) = &r.downtime {
        let parts: Vec<String> = Step::ALL
            .iter()
            .filter_map(|s| d.parts.get(s.as_str()).map(|v| format!("{s} {}", secs(*v))))
            .collect();
        println!(
            "Downtime: {} (first service stopped to {}): {}",
            secs(d.ms),
            d.ends_at,
            parts.join(", ")
        );
    }
    if r.complete {
        println!("OK: the move is done. Next: {}", r.next_step);
    } else if r.blocked {
        println!("BLOCKED: {}", r.next_step);
    } else {
        println!("INCOMPLETE: {}", r.next_step);
    }
}

/// The dry run's data: each volume, the space, the speeds measured.
fn print_dry_data(e: &cm_core::migration::Estimate) {
    println!("Data:");
    for v in &e.volumes {
        println!(
            "  {:<5} {} -> {}: {} entries, {}",
            v.name,
            v.source.display(),
            v.target,
            v.entries,
            cm_core::copy::safety::human(v.bytes)
        );
    }
    for s in &e.space {
        println!("  space: {s}");
    }
    println!(
        "  measured now: {:.0} entries/s walked, {:.0} files/s read and hashed (sample of {} files)",
        e.walk_per_sec, e.read_per_sec, e.sample_files
    );
}

/// The dry run's steps, each with what it would do and take.
fn print_dry_steps(d: &DryRun) {
    println!("Steps:");
    println!("  {:<9} {}", Step::Watch.as_str(), d.change_journal);
    println!(
        "  {:<9} every entry while the relay serves mail: about {:.0} s",
        Step::BulkCopy.as_str(),
        d.expected.bulk_copy_s
    );
    println!(
        "  {:<9} {} chatmail unit(s), one systemctl call per stage: {}",
        Step::Stop.as_str(),
        d.units.len(),
        d.units.join(" ")
    );
    println!(
        "  {:<9} the changed directories: about {:.1} s per 1000 changed files; a full rescan \
         (journal incomplete) about {:.0} s",
        Step::Delta.as_str(),
        d.expected.delta_per_1000_changed_s,
        d.expected.delta_full_rescan_s
    );
    println!("  {:<9} {}", Step::Settings.as_str(), d.settings);
    println!(
        "  {:<9} cm-verify all (reads source and copy): about {:.0} s",
        Step::Verify.as_str(),
        d.expected.verify_s
    );
}

fn print_dry_run(d: &DryRun, out: Out, what: &str) -> i32 {
    let code = if d.blocked { 1 } else { 0 };
    if out.json {
        print_json(d, code);
        return code;
    }
    if out.quiet {
        return code;
    }
    println!("Dry run of cm-migrate run: {what}; nothing is changed.");
    println!("Preflight:");
    print_findings(&d.findings, true);
    print_dry_data(&d.estimate);
    print_dry_steps(d);
    println!(
        "Expected downtime (stop not included): about {:.0} s with a complete change journal \
         and 1000 changed files; about {:.0} s without one.",
        d.expected.downtime_s, d.expected.downtime_without_journal_s
    );
    println!("Then: {}", d.next_step);
    if d.blocked {
        println!("BLOCKED: fix what blocks (above) first.");
    }
    code
}
