//! cm-env-apply: the start-up applier of the chatmail Docker image (see docker/ and the
//! README's "docker" section). Thin: argument parsing and printing; the logic is in lib.rs
//! and cm-core.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use cm_env_apply::{apply, parse_environ, render_environ, settings_from_env, ApplyError};

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
#[command(name = "cm-env-apply", version, about, long_about)]
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
    Apply {
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
        /// Print what would change and write nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Print the changes as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Print nothing but errors and warnings.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Save the whole environment (0600, NUL-separated) and exec PROGRAM: the image's
    /// ENTRYPOINT, so that the start-up unit sees every variable of .env.
    ///
    /// A failure to save is reported and PROGRAM is started anyway (the start-up unit then
    /// fails visibly because MAIL_DOMAIN is missing).
    Boot {
        /// Where to save the environment.
        #[arg(long, value_name = "FILE", default_value = "/run/cm-env/environ")]
        save: PathBuf,
        /// The program to exec (PID 1: /lib/systemd/systemd) and its arguments.
        #[arg(required = true, last = true, value_name = "PROGRAM")]
        program: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Boot { save, program } => boot(&save, &program),
        Command::Apply {
            ini,
            environ_file,
            create,
            accept_invalid,
            check,
            dry_run,
            json,
            quiet,
        } => run_apply(&ApplyArgs {
            ini,
            environ_file,
            create,
            accept_invalid,
            check,
            dry_run,
            json,
            quiet,
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cm-env-apply: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn boot(save: &Path, program: &[OsString]) -> anyhow::Result<ExitCode> {
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let block = render_environ(vars.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    let saved = (|| -> std::io::Result<()> {
        if let Some(dir) = save.parent() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        cm_core::fsutil::write_atomic(save, &block, 0o600)
    })();
    if let Err(e) = saved {
        eprintln!(
            "cm-env-apply boot: cannot save the environment to {}: {e}; chatmail settings from .env will not be applied",
            save.display()
        );
    }
    let err = std::process::Command::new(&program[0])
        .args(&program[1..])
        .exec();
    bail!("cannot exec {}: {err}", Path::new(&program[0]).display())
}

struct ApplyArgs {
    ini: PathBuf,
    environ_file: Option<PathBuf>,
    create: bool,
    accept_invalid: bool,
    check: bool,
    dry_run: bool,
    json: bool,
    quiet: bool,
}

fn run_apply(a: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let vars: BTreeMap<String, String> = match &a.environ_file {
        Some(f) => {
            let data = std::fs::read(f)
                .with_context(|| format!("{}: cannot read the saved environment", f.display()))?;
            let (vars, bad) = parse_environ(&data);
            for b in &bad {
                eprintln!("cm-env-apply: warning: {}: {b} (ignored)", f.display());
            }
            vars
        }
        None => {
            let mut m = BTreeMap::new();
            for (k, v) in std::env::vars_os() {
                match (k.to_str(), v.to_str()) {
                    (Some(k), Some(v)) => {
                        m.insert(k.to_string(), v.to_string());
                    }
                    (Some(k), None) if cm_core::params::from_env_key(k).is_some() => {
                        bail!("variable {k} is not valid UTF-8: fix it in .env")
                    }
                    _ => {}
                }
            }
            m
        }
    };
    let settings = settings_from_env(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let shown = a.ini.display().to_string();
    let (text, mode, existed) = match std::fs::read(&a.ini) {
        Ok(data) => {
            let mode = std::fs::metadata(&a.ini)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o644);
            let text = String::from_utf8(data).map_err(|_| {
                anyhow::anyhow!("{shown}: not valid UTF-8; chatmail cannot read it either")
            })?;
            (text, mode, true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && a.create => {
            ("[params]\n".to_string(), 0o644, false)
        }
        Err(e) => bail!("{shown}: cannot read: {e} (use --create to start a new one)"),
    };
    let outcome = match apply(&shown, &text, &settings, a.accept_invalid) {
        Ok(o) => o,
        Err(ApplyError::Invalid(errs)) => {
            bail!(
                "{} setting(s) in the environment would stop chatmail; {shown} is unchanged:\n  {}\nFix them in .env (or pass --accept-invalid).",
                errs.len(),
                errs.join("\n  ")
            )
        }
        Err(e) => return Err(e).with_context(|| format!("{shown}: not changed")),
    };
    for w in &outcome.warnings {
        eprintln!("cm-env-apply: warning: {w}");
    }
    let changed = outcome.text != text || !existed;
    if a.json {
        let v = serde_json::json!({
            "ini": shown,
            "settings": settings.len(),
            "changes": outcome.changes,
            "warnings": outcome.warnings,
            "written": changed && !a.dry_run && !a.check,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !a.quiet {
        for c in &outcome.changes {
            let show = |v: &Option<String>| match v {
                Some(v) => format!("{v:?}"),
                None => "(not set)".to_string(),
            };
            println!("{}: {} -> {}", c.key, show(&c.from), show(&c.to));
        }
        let verb = if a.check || a.dry_run {
            "would change"
        } else {
            "changed"
        };
        println!(
            "{shown}: {} of {} setting(s) from the environment {verb}",
            outcome.changes.len(),
            settings.len()
        );
    }
    if a.check {
        return Ok(if outcome.changes.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if changed && !a.dry_run {
        cm_core::fsutil::write_atomic(&a.ini, outcome.text.as_bytes(), mode)
            .with_context(|| format!("{shown}: cannot write"))?;
    }
    Ok(ExitCode::SUCCESS)
}
