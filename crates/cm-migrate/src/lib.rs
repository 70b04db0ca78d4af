//! cm-migrate: take the old bare-metal chatmail relay down safely (`stop-services`), and bring
//! it back if the move is aborted (`start-services --restore`). All logic is in
//! `cm_core::systemd`; this binary parses arguments, prints and maps outcomes to exit codes.

mod flow;
mod preflight;
mod rollback;
mod run;

use clap::{Parser, Subcommand};
use cm_core::systemd::{
    self, ops::ActionResult, ops::RestoreStep, Event, Plan, Postqueue, RestoreOptions,
    RestoreReport, StopOptions, StopReport, Systemctl, SystemdError,
};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub mod tools;

/// Move a bare-metal chatmail relay into its Docker deployment: service control on the old host.
///
/// stop-services takes the old relay's services down (and keeps them down across reboots)
/// before its data is copied into the container; start-services --restore brings back exactly
/// what ran before, for an operator who aborts the move. Run both as root on the old host.
#[derive(Parser, Debug)]
#[command(name = "cm-migrate", version = cm_core::version::text(), about, long_about, after_long_help = TOP_AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

const TOP_AFTER_HELP: &str = "\
Examples (typical use):
  cm-migrate stop-services --dry-run     # the plan and the queue size; changes nothing
  cm-migrate stop-services               # drain the mail queue, record, stop, disable, verify
  cm-migrate start-services --restore    # undo: bring back exactly what ran before

Files:
  /var/lib/cm-migrate/services-state.json   every unit's prior state: written by stop-services
                                            before its first change, read by start-services
                                            --restore (--state-file to choose another)
  /run/cm-migrate.lock                      held while a run is in progress: a second run
                                            exits 2 at once, naming the first one's pid

Output: plan and result on stdout; progress and warnings on stderr. --json: one JSON document
on stdout (also for errors). --quiet: nothing on stdout; problems only, on stderr.

Exit codes:
  0  done (or --dry-run)
  1  incomplete: mail still queued, a unit did not stop, start or disable, a port is still in
     use; the output says what
  2  usage error or unusable host: not root, systemd not running, another cm-migrate run in
     progress, no or unreadable state file";

const STOP_AFTER_HELP: &str = "\
Ports checked afterwards (TCP and UDP, all addresses): 25, 53, 80, 143, 402, 443, 465, 587, 993,
3340, 3903, 3904, 8443, 10025, 10026, 10080, 10081, 10082, 10083.

Undo: cm-migrate start-services --restore (add the same --state-file if you gave one).

Examples:
  cm-migrate stop-services --dry-run
  cm-migrate stop-services --queue-timeout 300 --json

Exit codes:
  0  every chatmail unit is inactive and disabled and the ports are free (or --dry-run)
  1  incomplete, the output says what: mail still queued after --queue-timeout (nothing was
     changed); a unit did not stop within --unit-timeout or could not be disabled; mail left in
     a stopped postfix's queue; a cron file could not be moved aside; a port is still in use
  2  not root, systemd not running, another cm-migrate run in progress (its pid is named),
     unreadable state file";

const START_AFTER_HELP: &str = "\
Example:
  cm-migrate start-services --restore --dry-run

Exit codes:
  0  every recorded unit is back in its prior state (or --dry-run)
  1  incomplete, the output says what: a unit could not be enabled or started, or differs from
     its record; a cron file could not be moved back. The state file is kept: fix the cause
     and run again.
  2  not root, systemd not running, another cm-migrate run in progress (its pid is named), no
     state file (nothing to restore) or not a cm-migrate state file";

#[derive(Subcommand, Debug)]
enum Cmd {
    #[command(flatten)]
    Flow(Box<flow::FlowCmd>),
    /// Stop and disable every chatmail unit on this host, in a safe order.
    ///
    /// Discovers chatmail's units from systemd itself (services, timers, path and socket
    /// units, template instances such as postfix@-.service, legacy units of old releases) and
    /// the legacy cron jobs in /etc/cron.d (expunge, chatmail-metrics, acmetool). Prints the
    /// plan, then:
    ///
    /// 1. flushes the postfix queue and waits until it is empty (--queue-timeout); if mail is
    ///    still queued, changes nothing and says how many messages and where;
    ///
    /// 2. records every unit's prior state in the state file;
    ///
    /// 3. moves the cron files aside (renamed to NAME.cm-migrate-disabled, which cron ignores);
    ///
    /// 4. stops and disables the units: timers first, then postfix, filtermail, dovecot,
    ///    chatmail's own services, opendkim, the web and relay services, unbound last;
    ///
    /// 5. checks that every unit is inactive and disabled and that the ports the container
    ///    needs are free, naming the process (and unit) holding any that is not.
    ///
    /// Units that are not chatmail's are never touched; units that look like chatmail's but
    /// are unknown are listed as "not touched" for you to check by hand. Running it again is
    /// safe: it does what is left and keeps the first recorded state.
    #[command(after_long_help = STOP_AFTER_HELP)]
    StopServices {
        /// Print the plan and the number of queued messages; change nothing (the queue is not
        /// flushed, no state file is written).
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Seconds to wait for the postfix queue to empty after flushing it; 0 checks once
        /// without waiting. Mail still queued then blocks the stop (see --allow-queued-mail).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        queue_timeout: u64,
        /// Stop postfix even if mail is still queued after --queue-timeout. The messages stay
        /// in postfix's queue directory on this host and are NOT moved into the container;
        /// the count and place are printed as a warning.
        #[arg(long)]
        allow_queued_mail: bool,
        /// Where to record the prior state of every unit (read by start-services --restore).
        /// Written atomically, mode 0600, its directory created mode 0700. A later run merges
        /// into it: the first recorded state of a unit is kept.
        #[arg(long, value_name = "FILE", default_value = systemd::DEFAULT_STATE_FILE)]
        state_file: PathBuf,
        /// Seconds one unit may take to stop. A unit still stopping after that is reported
        /// (systemd goes on stopping it), disabled anyway, and the rest go on; exit 1.
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        unit_timeout: u64,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Undo stop-services: re-enable and start exactly what ran before.
    ///
    /// Reads the state file written by stop-services, re-enables the units that were enabled
    /// and starts those that were running, in reverse stop order (unbound first, timers last),
    /// moves the legacy cron files back, then checks every unit against its record. Units that
    /// were enabled but not running, or running but not enabled, stay so; units never recorded
    /// are not touched. When every unit matches its record the state file is renamed to
    /// FILE.restored, so that a later stop-services starts a fresh record; otherwise it is
    /// kept and the command can be run again.
    #[command(after_long_help = START_AFTER_HELP)]
    StartServices {
        /// Restore the state recorded by stop-services (required: nothing else is supported).
        #[arg(long, required = true)]
        restore: bool,
        /// Print what would be enabled and started; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// The state file written by stop-services.
        #[arg(long, value_name = "FILE", default_value = systemd::DEFAULT_STATE_FILE)]
        state_file: PathBuf,
        /// Seconds one unit may take to start. A unit still starting after that is reported
        /// and the rest go on; exit 1.
        #[arg(long, value_name = "SECS", default_value_t = 120)]
        unit_timeout: u64,
        #[command(flatten)]
        out: OutputArgs,
    },
}

// How the outcome is printed (shared by both subcommands): `--json` prints the report as
// one JSON document with "exit_code" beside its fields (an error that stops the run as
// {"ok": false, "error": "...", "exit_code": N}); `-q/--quiet` prints nothing on stdout and
// no progress, problems still go to stderr.
use cm_cli::args::OutputArgs;

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
    cm_cli::main::<Cli, _, _>(args, |cli| {
        let cli = match cli.cmd {
            Cmd::Flow(c) => return Ok(ExitCode::from(flow::main(*c) as u8)),
            cmd => Cli { cmd },
        };
        Ok(ExitCode::from(dispatch(cli)? as u8))
    })
}

fn dispatch(cli: Cli) -> Result<i32, SystemdError> {
    match &cli.cmd {
        // changes nothing: any user may look (what a user cannot check is said)
        Cmd::StopServices { dry_run: true, .. } | Cmd::StartServices { dry_run: true, .. } => {
            systemd::preflight_read_only()?
        }
        _ => systemd::preflight()?,
    }
    match cli.cmd {
        Cmd::Flow(_) => unreachable!("dispatched in run()"),
        Cmd::StopServices {
            dry_run,
            queue_timeout,
            allow_queued_mail,
            state_file,
            unit_timeout,
            out,
        } => {
            let opts = StopOptions {
                dry_run,
                queue_timeout: Duration::from_secs(queue_timeout),
                allow_queued_mail,
                state_file,
                unit_timeout: Duration::from_secs(unit_timeout),
                ..Default::default()
            };
            let report = systemd::stop_services(
                &mut Systemctl::default(),
                &mut Postqueue,
                &opts,
                &mut |e| progress(e, out),
            )?;
            Ok(emit(&report, report.exit_code(), out, print_stop_result))
        }
        Cmd::StartServices {
            restore: _,
            dry_run,
            state_file,
            unit_timeout,
            out,
        } => {
            let opts = RestoreOptions {
                dry_run,
                state_file,
                unit_timeout: Duration::from_secs(unit_timeout),
                ..Default::default()
            };
            let report = systemd::restore_services(&mut Systemctl::default(), &opts, &mut |e| {
                progress(e, out)
            })?;
            Ok(emit(&report, report.exit_code(), out, print_restore_result))
        }
    }
}

/// Print a report as JSON (with the exit code beside its fields) or for people; returns the
/// exit code.
fn emit<T: Serialize>(report: &T, exit_code: i32, out: OutputArgs, human: fn(&T, bool)) -> i32 {
    #[derive(Serialize)]
    struct WithExitCode<'a, T: Serialize> {
        exit_code: i32,
        #[serde(flatten)]
        report: &'a T,
    }
    if out.json {
        print_json(&WithExitCode { exit_code, report });
    } else {
        human(report, out.quiet);
    }
    exit_code
}

fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("cm-migrate: error: serialising the report: {e}"),
    }
}

/// Plans go to stdout (human mode only); progress and failures as they happen to stderr (not
/// with --quiet, whose summary prints the failures once).
fn progress(e: Event, out: OutputArgs) {
    if out.quiet {
        return;
    }
    let tty = std::io::stderr().is_terminal();
    match e {
        Event::Plan(p) if out.human() => print_plan(&p),
        Event::RestorePlan(s) if out.human() => print_restore_plan(&s),
        Event::Failed {
            unit,
            action,
            error,
        } => eprintln!("cm-migrate: {action} {unit} FAILED: {error}"),
        Event::QueueFlushFailed(e) => eprintln!("cm-migrate: warning: postqueue -f failed: {e}"),
        Event::QueueFlushed => eprintln!("flushed the postfix queue"),
        Event::QueueWaiting(n) => eprintln!("waiting for the postfix queue: {n} message(s)"),
        Event::StateWritten(p) => eprintln!("prior state recorded in {}", p.display()),
        Event::CronMoved(m) => eprintln!("moved {} -> {}", m.from.display(), m.to.display()),
        Event::CronRestored(m) => eprintln!("moved {} back", m.from.display()),
        Event::Stopping(u) if tty => eprintln!("stopping {u} ..."),
        Event::Stopped(u) => eprintln!("stopped  {u}"),
        Event::Disabled(u) => eprintln!("disabled {u}"),
        Event::Enabled(u) => eprintln!("enabled  {u}"),
        Event::Starting(u) if tty => eprintln!("starting {u} ..."),
        Event::Started(u) => eprintln!("started  {u}"),
        _ => {}
    }
}

/// "stop + disable", or "nothing to do".
fn what_to_do(steps: &[(bool, &str)]) -> String {
    let what: Vec<&str> = steps
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect();
    if what.is_empty() {
        "nothing to do".into()
    } else {
        what.join(" + ")
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
        let what = what_to_do(&[(u.stop, "stop"), (u.disable, "disable")]);
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

/// A problem in the result: on stdout with the rest of the result, or alone on stderr with
/// --quiet.
fn problem(quiet: bool, s: String) {
    if quiet {
        eprintln!("cm-migrate: {s}");
    } else {
        println!("{s}");
    }
}

fn print_failed_actions(actions: &[ActionResult], quiet: bool) {
    for a in actions.iter().filter(|a| !a.ok) {
        problem(
            quiet,
            format!(
                "FAILED: {} {}: {}",
                a.action,
                a.target,
                a.error.as_deref().unwrap_or("")
            ),
        );
    }
}

/// The command that undoes a stop written to `state_file`.
fn undo_command(state_file: &Path) -> String {
    if state_file == Path::new(systemd::DEFAULT_STATE_FILE) {
        "cm-migrate start-services --restore".into()
    } else {
        format!(
            "cm-migrate start-services --restore --state-file {}",
            state_file.display()
        )
    }
}

fn print_stop_result(r: &StopReport, quiet: bool) {
    if print_queue_before(r, quiet) {
        return;
    }
    for w in &r.warnings {
        eprintln!("cm-migrate: warning: {w}");
    }
    if r.dry_run {
        if !quiet {
            println!("Dry run: nothing was changed.");
        }
        return;
    }
    print_stop_problems(r, quiet);
    let undo = undo_command(&r.state_file);
    if quiet {
        if !r.is_complete() {
            eprintln!("cm-migrate: INCOMPLETE; undo with: {undo}");
        }
        return;
    }
    print_stop_summary(r, &undo);
}

/// The postfix queue before the stop; whether it blocked the stop (nothing more to say).
fn print_queue_before(r: &StopReport, quiet: bool) -> bool {
    let Some(q) = &r.queue_before else {
        return false;
    };
    if r.blocked_by_queue {
        problem(
            quiet,
            format!(
                "NOT STOPPED: {} message(s) still in the postfix queue after waiting ({}). \
                 Nothing was changed. Let them be delivered (postqueue -p shows them), or \
                 pass --allow-queued-mail to stop anyway (they stay on this host).",
                q.total,
                q.describe()
            ),
        );
        return true;
    }
    if r.dry_run && q.total > 0 {
        problem(
            quiet,
            format!(
                "postfix queue: {} message(s) ({}); stop-services will flush and wait up \
                 to --queue-timeout for them",
                q.total,
                q.describe()
            ),
        );
    } else if r.dry_run && !quiet {
        println!("postfix queue: empty");
    }
    false
}

/// What the stop could not do: failed actions, units not down, mail left in the queue,
/// ports still in use.
fn print_stop_problems(r: &StopReport, quiet: bool) {
    print_failed_actions(&r.actions, quiet);
    for p in &r.problems {
        problem(quiet, format!("NOT DOWN: {}: {}", p.unit, p.problem));
    }
    if let Some(q) = &r.queue_after {
        if q.total > 0 && !r.allow_queued_mail {
            problem(
                quiet,
                format!(
                    "postfix queue holds {} message(s) after postfix stopped ({}): they are \
                     not moved into the container",
                    q.total,
                    q.describe()
                ),
            );
        }
    }
    for l in &r.ports_in_use {
        problem(quiet, format!("PORT IN USE: {l}"));
    }
}

/// What was stopped, how long it took, and the verdict with the way back (`undo`).
fn print_stop_summary(r: &StopReport, undo: &str) {
    let n = |a: &str| r.actions.iter().filter(|x| x.ok && x.action == a).count();
    println!(
        "Stopped {} unit(s), disabled {}, moved {} cron file(s); prior state in {}.",
        n("stop"),
        n("disable"),
        n("move-cron"),
        r.state_file.display()
    );
    let t = &r.timing;
    println!(
        "Took {}: disable {} (one call), stop {} ({} call(s), one per stage), check {}.",
        secs(t.total_ms),
        secs(t.disable_ms),
        secs(t.stop_ms),
        t.stop_calls,
        secs(t.verify_ms)
    );
    if r.is_complete() {
        let ports: Vec<String> = r.ports_checked.iter().map(u16::to_string).collect();
        println!(
            "OK: every chatmail unit is inactive and disabled; ports {} are free.",
            ports.join(", ")
        );
        println!("To bring the old relay back: {undo}");
    } else {
        println!("INCOMPLETE: see above. Undo with: {undo}");
    }
}

/// Milliseconds as seconds for people: "1.25 s".
fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

fn print_restore_plan(steps: &[RestoreStep]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Restore plan (reverse stop order)");
    for s in steps {
        let what = what_to_do(&[(s.enable, "enable"), (s.start, "start")]);
        let _ = writeln!(
            out,
            "    {:<36} was {:<10} {:<16} -> {what}",
            s.unit, s.prior_active_state, s.prior_unit_file_state
        );
    }
}

fn print_restore_result(r: &RestoreReport, quiet: bool) {
    for w in &r.warnings {
        eprintln!("cm-migrate: warning: {w}");
    }
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
    print_failed_actions(&r.actions, quiet);
    for m in &r.mismatches {
        problem(quiet, format!("NOT RESTORED: {}: {}", m.unit, m.problem));
    }
    if !quiet {
        let t = &r.timing;
        println!(
            "Took {}: enable {} (one call), start {} ({} call(s), one per stage), check {}.",
            secs(t.total_ms),
            secs(t.enable_ms),
            secs(t.start_ms),
            t.start_calls,
            secs(t.verify_ms)
        );
    }
    if r.is_complete() {
        if !quiet {
            println!(
                "OK: every recorded unit is back in its prior state{}.",
                r.state_file_moved_to
                    .as_ref()
                    .map(|p| format!("; state file kept as {}", p.display()))
                    .unwrap_or_default()
            );
        }
    } else {
        problem(
            quiet,
            format!(
                "INCOMPLETE: see above; the state file {} is kept: fix the cause and run again.",
                r.state_file.display()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn long_help(sub: Option<&str>) -> String {
        let mut cmd = Cli::command();
        let c = match sub {
            Some(s) => cmd.find_subcommand_mut(s).expect("subcommand"),
            None => &mut cmd,
        };
        // words joined by single spaces: the wrapping depends on the terminal
        let text = c.render_long_help().to_string();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_names_the_files_exit_codes_and_the_undo() {
        let top = long_help(None);
        for s in [
            systemd::DEFAULT_STATE_FILE,
            systemd::DEFAULT_LOCK_FILE,
            "Exit codes",
            "start-services --restore",
        ] {
            assert!(top.contains(s), "cm-migrate --help lacks {s:?}:\n{top}");
        }
        let stop = long_help(Some("stop-services"));
        let ports: Vec<String> = cm_core::ports::CONTAINER_PORTS
            .iter()
            .map(u16::to_string)
            .collect();
        assert!(
            stop.contains(&ports.join(", ")),
            "stop-services --help must list exactly the ports checked:\n{stop}"
        );
        for s in [
            "Exit codes",
            "start-services --restore",
            systemd::DEFAULT_STATE_FILE,
            "[default: 60]",
            "[default: 120]",
        ] {
            assert!(
                stop.contains(s),
                "stop-services --help lacks {s:?}:\n{stop}"
            );
        }
        let start = long_help(Some("start-services"));
        for s in [
            "Exit codes",
            systemd::DEFAULT_STATE_FILE,
            ".restored",
            "[default: 120]",
        ] {
            assert!(
                start.contains(s),
                "start-services --help lacks {s:?}:\n{start}"
            );
        }
    }

    #[test]
    fn the_undo_command_names_a_state_file_that_is_not_the_default() {
        assert_eq!(
            undo_command(Path::new(systemd::DEFAULT_STATE_FILE)),
            "cm-migrate start-services --restore"
        );
        assert_eq!(
            undo_command(Path::new("/root/st.json")),
            "cm-migrate start-services --restore --state-file /root/st.json"
        );
    }
}
