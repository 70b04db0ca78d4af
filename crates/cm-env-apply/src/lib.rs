//! cm-env-apply: the start-up applier of the chatmail Docker image (see docker/ and the
//! README's "docker" section). Thin: argument parsing and printing; the logic is in
//! `cm_core::envapply`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use cm_core::envapply::{self, settings_from_env, ApplyError, InputError};

/// Apply chatmail settings from the environment to chatmail.ini, inside the container.
///
/// Every variable whose name is a chatmail.ini [params] key in UPPERCASE (MAIL_DOMAIN,
/// MAX_MAILBOX_SIZE, IROH_RELAY, ...) is written into chatmail.ini: an existing line is
/// replaced, a commented-out `# key = ...` line of the template is replaced in place, and a key
/// the file lacks is added to [params]. Nothing else in the file changes. A value that already
/// means the same to chatmail (500m vs 500M, False vs false) is left as written.
///
/// Exit status: 0 applied (or nothing to do); 1 --check found settings that differ;
/// 2 usage error, unreadable ini, or a value chatmail would refuse (nothing is written).
#[derive(Parser, Debug)]
#[command(
    name = "cm-env-apply",
    version = cm_core::version::text(),
    about,
    long_about,
    after_long_help = "Examples:
  cm-env-apply apply --ini /opt/chatmail/chatmail.ini --environ-file /run/cm-env/environ
  cm-env-apply boot -- /lib/systemd/systemd"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the chatmail settings of the environment into chatmail.ini.
    ///
    /// The variables come from this process's environment, or with --environ-file from the
    /// block that `cm-env-apply boot` saved (the container's environment as Docker gave it
    /// to PID 1; systemd does not pass it on to its units).
    #[command(
        after_long_help = "Exit status: 0 applied (or nothing to do); 1 --check found \
settings that differ; 2 usage error, unreadable ini, or a value chatmail would refuse (nothing \
written).\n\nExample:\n  cm-env-apply apply --ini /opt/chatmail/chatmail.ini --environ-file /run/cm-env/environ --dry-run"
    )]
    Apply(ApplyArgs),
    /// Save the whole environment (0600, NUL-separated) and exec PROGRAM: the image's
    /// ENTRYPOINT, so that the start-up unit sees every variable of .env.
    ///
    /// A failure to save is reported and PROGRAM is started anyway (the start-up unit then
    /// fails visibly because MAIL_DOMAIN is missing). Only a directory of FILE that boot
    /// creates is made private (0700); an existing one keeps its mode.
    #[command(
        after_long_help = "Exit status: none of its own when PROGRAM starts (it replaces \
this process); 2 when PROGRAM cannot be started.\n\nExample:\n  cm-env-apply boot --save /run/cm-env/environ -- /lib/systemd/systemd"
    )]
    Boot {
        /// Where to save the environment.
        #[arg(long, value_name = "FILE", default_value = "/run/cm-env/environ")]
        save: PathBuf,
        /// The program to exec (PID 1: /lib/systemd/systemd) and its arguments.
        #[arg(required = true, last = true, value_name = "PROGRAM")]
        program: Vec<OsString>,
    },
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
    cm_cli::main::<Cli, _, _>(args, |cli| match cli.command {
        Command::Boot { save, program } => boot(&save, &program),
        Command::Apply(a) => run_apply(&a),
    })
}

fn boot(save: &Path, program: &[OsString]) -> anyhow::Result<ExitCode> {
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let saved =
        envapply::save_environ(save, vars.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    if let Err(e) = saved {
        cm_cli::msg::error(&format!(
            "cannot save the environment to {}: {e}; chatmail settings from .env will not be applied",
            cm_core::quote::quote_path(save)
        ));
    }
    let err = std::process::Command::new(&program[0])
        .args(&program[1..])
        .exec();
    bail!(
        "cannot exec {}: {err}",
        cm_core::quote::quote_path(Path::new(&program[0]))
    )
}

/// The options of `apply` (see its help).
#[derive(Args, Debug)]
struct ApplyArgs {
    /// chatmail.ini to update.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/opt/chatmail/chatmail.ini"
    )]
    ini: PathBuf,
    /// Read the variables from this NUL-separated KEY=value file instead of the
    /// environment (written by `cm-env-apply boot`).
    #[arg(long, value_name = "FILE")]
    environ_file: Option<PathBuf>,
    /// Create the ini (`[params]` only, then the settings) when it does not exist.
    #[arg(long)]
    create: bool,
    /// Write values chatmail would refuse (each is reported as a warning instead).
    #[arg(long)]
    accept_invalid: bool,
    /// Only compare: exit 1 when chatmail.ini differs from the environment; write nothing.
    #[arg(long, conflicts_with = "dry_run")]
    check: bool,
    #[command(flatten)]
    dry: cm_cli::args::DryRunArgs,
    #[command(flatten)]
    out: cm_cli::args::OutputArgs,
}

/// The environment to apply: the file `--environ-file` names (its bad lines warned and
/// ignored), else this process's.
fn environment(a: &ApplyArgs) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    Ok(match &a.environ_file {
        Some(f) => {
            let (vars, bad) = envapply::read_environ_file(f)?;
            for b in &bad {
                cm_cli::msg::warning(&format!("{}: {b} (ignored)", cm_core::quote::quote_path(f)));
            }
            vars
        }
        None => envapply::vars_from_os(std::env::vars_os())?,
    })
}

/// What the environment changes in the ini (of `settings` settings), as text or `--json`.
fn print_changes(
    a: &ApplyArgs,
    outcome: &envapply::Outcome,
    settings: usize,
    changed: bool,
) -> anyhow::Result<()> {
    let shown = cm_core::quote::quote_path(&a.ini);
    if a.out.json {
        let v = serde_json::json!({
            "ini": cm_core::quote::json_path(&a.ini),
            "settings": settings,
            "changes": outcome.changes,
            "warnings": outcome.warnings,
            "written": changed && !a.dry.dry_run && !a.check,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !a.out.quiet {
        for c in &outcome.changes {
            let show = |v: &Option<String>| match v {
                Some(v) => format!("{v:?}"),
                None => "(not set)".to_string(),
            };
            println!("{}: {} -> {}", c.key, show(&c.from), show(&c.to));
        }
        let verb = if a.check || a.dry.dry_run {
            "would change"
        } else {
            "changed"
        };
        println!(
            "{shown}: {} of {} setting(s) from the environment {verb}",
            outcome.changes.len(),
            settings
        );
    }
    Ok(())
}

fn run_apply(a: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let vars = environment(a)?;
    let settings = settings_from_env(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let shown = cm_core::quote::quote_path(&a.ini);
    let prepared = match envapply::prepare(&a.ini, a.create, &settings, a.accept_invalid) {
        Ok(p) => p,
        Err(InputError::Apply(ApplyError::Invalid(errs))) => {
            bail!(
                "{} setting(s) in the environment would stop chatmail; {shown} is unchanged:\n  {}\nFix them in .env (or pass --accept-invalid).",
                errs.len(),
                errs.join("\n  ")
            )
        }
        Err(InputError::Apply(e)) => {
            return Err(e).with_context(|| format!("{shown}: not changed"))
        }
        Err(e) => return Err(e.into()),
    };
    let outcome = &prepared.outcome;
    if !a.out.quiet {
        for w in &outcome.warnings {
            cm_cli::msg::warning(w);
        }
    }
    let changed = prepared.changed();
    print_changes(a, outcome, settings.len(), changed)?;
    if a.check {
        return Ok(if outcome.changes.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if changed && !a.dry.dry_run {
        prepared
            .write()
            .with_context(|| format!("{shown}: cannot write"))?;
    }
    Ok(ExitCode::SUCCESS)
}
