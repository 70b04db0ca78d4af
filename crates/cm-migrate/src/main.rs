//! cm-migrate: take the old bare-metal chatmail relay down safely (`stop-services`), and bring
//! it back if the move is aborted (`start-services --restore`). All logic is in
//! `cm_core::systemd`; this binary parses arguments, prints and maps outcomes to exit codes.

use clap::{Parser, Subcommand};
use cm_core::ports::CONTAINER_PORTS;
use cm_core::systemd::{
    self, ops::RestoreStep, Event, Plan, Postqueue, RestoreOptions, RestoreReport, StopOptions,
    StopReport, Systemctl, SystemdError,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Move a bare-metal chatmail relay into its Docker deployment: service control on the old host.
///
/// Exit codes: 0 done; 1 incomplete (a unit did not stop, mail is still queued, a port is
/// still in use: the output says what); 2 usage error or unusable host (not root, no systemd,
/// unreadable state file).
#[derive(Parser, Debug)]
#[command(name = "cm-migrate", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Stop and disable every chatmail unit on this host, in a safe order.
    ///
    /// Discovers chatmail's units from systemd itself (services, timers, path and socket
    /// units, template instances such as postfix@-.service, legacy units of old releases) and
    /// the legacy cron jobs in /etc/cron.d (expunge, chatmail-metrics, acmetool). Prints the
    /// plan, then: flushes the postfix queue and waits until it is empty; records every unit's
    /// prior state in the state file; moves the cron files aside (renamed to
    /// NAME.cm-migrate-disabled, which cron ignores); stops and disables the units: timers
    /// first, then postfix, filtermail, dovecot, chatmail's own services, opendkim, the web and
    /// relay services, unbound last. Afterwards checks that every unit is inactive and disabled
    /// and that the ports the container needs are free, naming the process holding any that
    /// is not. Units that are not chatmail's are never touched; units that look like
    /// chatmail's but are unknown are reported and left alone.
    StopServices {
        /// Print the plan (and the queue size) only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for the postfix queue to empty after flushing it.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        queue_timeout: u64,
        /// Stop postfix even if mail is still queued (it stays in postfix's queue directory
        /// on this host and is NOT moved into the container).
        #[arg(long)]
        allow_queued_mail: bool,
        /// Where to record the prior state of every unit (read by start-services --restore).
        /// A later run merges into it: the first recorded state of a unit is kept.
        #[arg(long, value_name = "FILE", default_value = systemd::DEFAULT_STATE_FILE)]
        state_file: PathBuf,
        /// Seconds one unit may take to stop before it is reported and the rest go on.
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        unit_timeout: u64,
        /// Print the report as JSON on stdout (and nothing else there).
        #[arg(long)]
        json: bool,
        /// Print nothing but problems (on stderr); the exit code tells the outcome.
        #[arg(long)]
        quiet: bool,
    },
    /// Undo stop-services: re-enable and start exactly what ran before.
    ///
    /// Reads the state file written by stop-services, re-enables the units that were enabled
    /// and starts those that were running, in reverse stop order (unbound first, timers last),
    /// moves the legacy cron files back, then checks every unit against its record. Units that
    /// were enabled but not running, or running but not enabled, stay so. On success the state
    /// file is renamed to FILE.restored.
    StartServices {
        /// Restore the state recorded by stop-services (required: nothing else is supported).
        #[arg(long, required = true)]
        restore: bool,
        /// Print what would be enabled and started; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The state file written by stop-services.
        #[arg(long, value_name = "FILE", default_value = systemd::DEFAULT_STATE_FILE)]
        state_file: PathBuf,
        /// Seconds one unit may take to start before it is reported and the rest go on.
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        unit_timeout: u64,
        /// Print the report as JSON on stdout (and nothing else there).
        #[arg(long)]
        json: bool,
        /// Print nothing but problems (on stderr); the exit code tells the outcome.
        #[arg(long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cm-migrate: error: {e}");
            e.exit_code()
        }
    };
    ExitCode::from(code as u8)
}

fn run(cli: Cli) -> Result<i32, SystemdError> {
    match cli.cmd {
        Cmd::StopServices {
            dry_run,
            queue_timeout,
            allow_queued_mail,
            state_file,
            unit_timeout,
            json,
            quiet,
        } => {
            systemd::preflight()?;
            let opts = StopOptions {
                dry_run,
                queue_timeout: Duration::from_secs(queue_timeout),
                allow_queued_mail,
                state_file,
                unit_timeout: Duration::from_secs(unit_timeout),
                ..Default::default()
            };
            let human = !json && !quiet;
            let mut on = |e: Event| progress(e, human, quiet);
            let report =
                systemd::stop_services(&mut Systemctl::default(), &mut Postqueue, &opts, &mut on)?;
            if json {
                print_json(&report);
            } else {
                print_stop_result(&report, quiet);
            }
            Ok(report.exit_code())
        }
        Cmd::StartServices {
            restore: _,
            dry_run,
            state_file,
            unit_timeout,
            json,
            quiet,
        } => {
            systemd::preflight()?;
            let opts = RestoreOptions {
                dry_run,
                state_file,
                unit_timeout: Duration::from_secs(unit_timeout),
            };
            let human = !json && !quiet;
            let mut on = |e: Event| progress(e, human, quiet);
            let report = systemd::restore_services(&mut Systemctl::default(), &opts, &mut on)?;
            if json {
                print_json(&report);
            } else {
                print_restore_result(&report, quiet);
            }
            Ok(report.exit_code())
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("cm-migrate: error: serialising the report: {e}"),
    }
}

/// Plans go to stdout (human mode); progress to stderr (not with --quiet); failures always.
fn progress(e: Event, human: bool, quiet: bool) {
    let tty = std::io::stderr().is_terminal();
    match e {
        Event::Plan(p) if human => print_plan(&p),
        Event::RestorePlan(s) if human => print_restore_plan(&s),
        Event::Failed {
            unit,
            action,
            error,
        } => eprintln!("cm-migrate: {action} {unit} FAILED: {error}"),
        Event::QueueFlushFailed(e) if !quiet => {
            eprintln!("cm-migrate: warning: postqueue -f failed: {e}")
        }
        _ if quiet => {}
        Event::QueueFlushed => eprintln!("flushed the postfix queue"),
        Event::QueueWaiting(n) => eprintln!("waiting for the postfix queue: {n} message(s)"),
        Event::StateWritten(p) => eprintln!("prior state recorded in {}", p.display()),
        Event::CronMoved(m) => eprintln!("moved {} -> {}", m.from.display(), m.to.display()),
        Event::Stopping(u) if tty => eprintln!("stopping {u} ..."),
        Event::Stopped(u) => eprintln!("stopped  {u}"),
        Event::Disabled(u) => eprintln!("disabled {u}"),
        Event::Enabled(u) => eprintln!("enabled  {u}"),
        Event::Starting(u) if tty => eprintln!("starting {u} ..."),
        Event::Started(u) => eprintln!("started  {u}"),
        _ => {}
    }
}

fn print_plan(p: &Plan) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Plan: chatmail units in stop order");
    let mut stage = None;
    for u in &p.units {
        if stage != Some(u.class.stage) {
            stage = Some(u.class.stage);
            let _ = writeln!(out, "  [{}]", u.class.stage);
        }
        let mut what = Vec::new();
        if u.stop {
            what.push("stop");
        }
        if u.disable {
            what.push("disable");
        }
        let what = if what.is_empty() {
            "nothing to do".to_string()
        } else {
            what.join(" + ")
        };
        let mut note = String::new();
        if u.class.origin == systemd::Origin::Legacy {
            note.push_str(" (legacy)");
        }
        if let Some(t) = &u.triggers {
            note.push_str(&format!(" (triggers {t})"));
        }
        let _ = writeln!(
            out,
            "    {:<36} {:<10} {:<16} -> {what}{note}",
            u.unit, u.before.active_state, u.before.unit_file_state
        );
    }
    if p.units.is_empty() {
        let _ = writeln!(out, "  (no chatmail units found)");
    }
    if !p.cron_files.is_empty() {
        let _ = writeln!(
            out,
            "  [legacy cron jobs: moved aside to NAME{}]",
            systemd::catalog::CRON_ASIDE_SUFFIX
        );
        for c in &p.cron_files {
            let _ = writeln!(out, "    {}", c.display());
        }
    }
    if !p.leftovers.is_empty() {
        let _ = writeln!(
            out,
            "  [not touched: look like chatmail's but are unknown; check them by hand]"
        );
        for l in &p.leftovers {
            let _ = writeln!(
                out,
                "    {:<36} {:<10} {}",
                l.id, l.active_state, l.unit_file_state
            );
        }
    }
}

fn print_stop_result(r: &StopReport, quiet: bool) {
    let problem = |s: String| {
        if quiet {
            eprintln!("cm-migrate: {s}");
        } else {
            println!("{s}");
        }
    };
    if let Some(q) = &r.queue_before {
        if r.blocked_by_queue {
            problem(format!(
                "NOT STOPPED: {} message(s) still in the postfix queue after waiting ({}). \
                 Nothing was changed. Let them be delivered (postqueue -p shows them), or pass \
                 --allow-queued-mail to stop anyway (they stay on this host).",
                q.total,
                q.describe()
            ));
            return;
        }
        if r.dry_run && q.total > 0 {
            problem(format!(
                "postfix queue: {} message(s) ({}); stop-services will flush and wait up to \
                 --queue-timeout for them",
                q.total,
                q.describe()
            ));
        }
    }
    if r.dry_run {
        if !quiet {
            println!("Dry run: nothing was changed.");
        }
        return;
    }
    for w in &r.warnings {
        eprintln!("cm-migrate: warning: {w}");
    }
    for a in r.actions.iter().filter(|a| !a.ok) {
        problem(format!(
            "FAILED: {} {}: {}",
            a.action,
            a.target,
            a.error.as_deref().unwrap_or("")
        ));
    }
    for p in &r.problems {
        problem(format!("NOT DOWN: {}: {}", p.unit, p.problem));
    }
    if let Some(q) = &r.queue_after {
        if q.total > 0 && !r.allow_queued_mail {
            problem(format!(
                "postfix queue holds {} message(s) after postfix stopped ({}): they are not \
                 moved into the container",
                q.total,
                q.describe()
            ));
        }
    }
    for l in &r.ports_in_use {
        problem(format!("PORT IN USE: {l}"));
    }
    if quiet {
        return;
    }
    let n = |a: &str| r.actions.iter().filter(|x| x.ok && x.action == a).count();
    println!(
        "Stopped {} unit(s), disabled {}, moved {} cron file(s); prior state in {}.",
        n("stop"),
        n("disable"),
        n("move-cron"),
        r.state_file.display()
    );
    if r.is_complete() {
        let ports: Vec<String> = CONTAINER_PORTS.iter().map(u16::to_string).collect();
        println!(
            "OK: every chatmail unit is inactive and disabled; ports {} are free.",
            ports.join(", ")
        );
    } else {
        println!("INCOMPLETE: see above. Undo with: cm-migrate start-services --restore");
    }
}

fn print_restore_plan(steps: &[RestoreStep]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Restore plan (reverse stop order)");
    for s in steps {
        let mut what = Vec::new();
        if s.enable {
            what.push("enable");
        }
        if s.start {
            what.push("start");
        }
        let what = if what.is_empty() {
            "nothing to do".into()
        } else {
            what.join(" + ")
        };
        let _ = writeln!(
            out,
            "    {:<36} was {:<10} {:<16} -> {what}",
            s.unit, s.prior_active_state, s.prior_unit_file_state
        );
    }
}

fn print_restore_result(r: &RestoreReport, quiet: bool) {
    let problem = |s: String| {
        if quiet {
            eprintln!("cm-migrate: {s}");
        } else {
            println!("{s}");
        }
    };
    if r.dry_run {
        if !quiet {
            for c in &r.cron {
                println!(
                    "    would move {} back to {}",
                    c.to.display(),
                    c.from.display()
                );
            }
            println!("Dry run: nothing was changed.");
        }
        return;
    }
    for a in r.actions.iter().filter(|a| !a.ok) {
        problem(format!(
            "FAILED: {} {}: {}",
            a.action,
            a.target,
            a.error.as_deref().unwrap_or("")
        ));
    }
    for m in &r.mismatches {
        problem(format!("NOT RESTORED: {}: {}", m.unit, m.problem));
    }
    if quiet {
        return;
    }
    if r.is_complete() {
        println!(
            "OK: every recorded unit is back in its prior state{}.",
            r.state_file_moved_to
                .as_ref()
                .map(|p| format!("; state file kept as {}", p.display()))
                .unwrap_or_default()
        );
    } else {
        println!(
            "INCOMPLETE: see above; the state file {} is kept.",
            r.state_file.display()
        );
    }
}
