//! cm-ini-to-env: chatmail.ini to the `.env` Docker Compose reads, exactly.
//! Thin: arguments here, logic in cm_core::{ini, params, dotenv, envfile}.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use cm_cli::{msg, Fail};
use cm_core::{dotenv, envfile, ini, params};

mod project;

const DEFAULT_INI: &str = "/usr/local/lib/chatmaild/chatmail.ini";

/// Convert a bare-metal chatmail.ini into the .env file of chatmail's Docker deployment.
///
/// The ini is read exactly as chatmail reads it (iniconfig rules: inline `#` stays in the
/// value, indented lines continue a value, keys are case-sensitive, duplicates are errors).
/// The .env gets MAIL_DOMAIN and every setting whose value differs from chatmail's default
/// (compared as chatmail interprets them: `False` is the default `false`, `500m` is `500M`),
/// keys uppercased, in a fixed order, each written as KEY="..." so that Docker Compose v2
/// reads back exactly the ini's value, whatever characters it contains.
///
/// Warnings (unknown keys with a suggestion, deprecated or unused keys, values chatmail reads
/// differently than they look) go to stderr. A value chatmail would refuse (e.g.
/// max_message_size = 30M) is an error: nothing is written (see --accept-invalid).
///
/// Exit codes: 0 done; 1 --check found differences; 2 unusable input or arguments (one line
/// on stderr, nothing written).
#[derive(Parser, Debug)]
#[command(group(clap::ArgGroup::new("dest").args(["env", "project_dir"])))]
#[command(
    name = "cm-ini-to-env",
    version = cm_core::version::text(),
    max_term_width = 100,
    after_long_help = "\
Exit codes: 0 done; 1 --check found differences; 2 unusable input or arguments.

Examples:
  cm-ini-to-env                                   print the .env for this host's chatmail.ini
  cm-ini-to-env chatmail.ini /srv/chatmail/.env   write it (refuses to overwrite)
  cm-ini-to-env --merge chatmail.ini .env         update an existing .env, keep its other lines
  cm-ini-to-env chatmail.ini --check .env         exit 1 and list settings that differ
  cm-ini-to-env --project-dir /srv/chatmail --merge chatmail.ini
                                                  the settings the way the target takes them

Unknown keys are reported and not written (chatmail ignores them); other sections than
[params] are ignored, as chatmail does. Values are written as KEY=\"...\" with \\ \" $ and
line breaks escaped, which Docker Compose v2 reads back exactly."
)]
struct Args {
    /// chatmail.ini to read.
    #[arg(value_name = "INI", default_value = DEFAULT_INI)]
    ini: PathBuf,

    /// .env file to write (mode 0600, atomically). Without it, the .env goes to stdout.
    /// An existing file is never overwritten silently: see --force and --merge.
    #[arg(value_name = "ENV")]
    env: Option<PathBuf>,

    /// Write every setting present in the ini, not only those that differ from defaults.
    #[arg(long)]
    all: bool,

    /// Replace an existing ENV. The old file is kept beside it as ENV.bak-<UTC time>
    /// (mode 0600).
    #[arg(long, conflicts_with = "merge", requires = "dest")]
    force: bool,

    /// Update an existing ENV: set the chatmail settings from the ini in place, drop
    /// chatmail settings the ini leaves at their defaults, and keep every other line and
    /// comment (Docker-only variables, notes). A backup is kept as with --force; a merge
    /// that changes nothing writes nothing.
    #[arg(long, requires = "dest")]
    merge: bool,

    /// The compose project the settings go to, written the way its compose file takes
    /// them: an `env_file` .env gets the converted settings (as ENV would); a mounted
    /// /etc/chatmail/chatmail.ini gets the ini itself (atomically, its mode kept, an old one
    /// kept as a backup) and the project's .env the variables the compose file interpolates
    /// (MAIL_DOMAIN, ACME_EMAIL). Settings whose default changed between the old host's
    /// release and the image's are reported.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["env", "check"])]
    project_dir: Option<PathBuf>,

    /// With --project-dir: the Docker Compose v2 program that reads the compose file (words
    /// allowed: "docker compose"; default: the plugin, else docker-compose, else
    /// docker-compose-v2).
    #[arg(long, value_name = "PROGRAM", requires = "project_dir")]
    compose: Option<String>,

    /// With --project-dir: the guide's layout (settings in its .env), no compose file read.
    #[arg(long, value_name = "NAME", value_parser = ["guide"], requires = "project_dir")]
    layout: Option<String>,

    /// Write values chatmail would refuse (each is reported as a warning instead of an
    /// error).
    #[arg(long)]
    accept_invalid: bool,

    /// Compare an existing .env with the ini instead of writing: lists every setting on
    /// which chatmail would behave differently, exits 1 if there is any, 0 if none.
    #[arg(long, value_name = "ENV", conflicts_with_all = ["env", "force", "merge", "all"])]
    check: Option<PathBuf>,

    #[command(flatten)]
    dry: cm_cli::args::DryRunArgs,

    #[command(flatten)]
    out: cm_cli::args::OutputArgs,
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
    cm_cli::main::<Args, _, _>(args, |a| Ok(ExitCode::from(convert(&a)?)))
}

fn convert(args: &Args) -> Result<u8> {
    let parsed = ini::read(&args.ini)?;
    let conv = params::convert(&parsed)?;
    refuse_invalid(args, &conv)?;
    let text = conv.to_env(args.all)?;
    // Everything that can refuse the input is decided before any warning is printed, so
    // that bad input is exactly one line.
    let check_env = match &args.check {
        Some(p) if p.is_dir() => {
            return Err(Fail::usage(format!(
                "{}: is a directory; give the path of the .env file",
                q(p)
            )))
        }
        Some(p) => Some((p, dotenv::read_file(p)?)),
        None => None,
    };
    let target = match &args.project_dir {
        Some(d) => Some(
            project::resolve(d, args.compose.as_deref(), args.layout.is_some(), &args.ini)
                .map_err(Fail::usage)?,
        ),
        None => None,
    };
    let env_path = env_path(args, target.as_ref().map(|t| &t.settings))?;
    let plan = match &env_path {
        Some(p) => Some(plan_write(args, &conv, p, &text)?),
        None => None,
    };
    if !args.out.quiet {
        warn(args, &conv);
        if let Some(t) = &target {
            for n in &t.notes {
                msg::note(n);
            }
            for w in project::changed_defaults(t, &args.ini, &parsed) {
                msg::warning(&w);
            }
        }
    }
    if let Some((path, env)) = check_env {
        return check(args, &parsed, path, &env);
    }
    if let Some(t) = target.as_ref().filter(|_| plan.is_none()) {
        return write_ini_mount(args, t, &parsed);
    }
    match plan {
        Some(plan) => execute(args, &conv, plan),
        None => {
            print_out(args, &conv, &text)?;
            Ok(0)
        }
    }
}

/// The .env to write: the one the project's compose file reads (none when it mounts the
/// ini instead), else `--env`'s; a compose file that takes the settings neither way is an
/// error.
fn env_path(
    args: &Args,
    settings: Option<&cm_core::target::Settings>,
) -> Result<Option<std::path::PathBuf>> {
    match settings {
        Some(cm_core::target::Settings::EnvFile { env }) => Ok(Some(env.clone())),
        Some(cm_core::target::Settings::IniMount { .. }) => Ok(None),
        Some(cm_core::target::Settings::Unknown) => Err(Fail::usage(format!(
            "{}: the compose file takes chatmail's settings neither from `env_file: .env` nor from a mounted {}: add `- ./chatmail.ini:{}` to the relay service's volumes",
            q(args.project_dir.as_deref().unwrap_or(Path::new("."))),
            cm_core::state::CONTAINER_INI,
            cm_core::state::CONTAINER_INI
        ))),
        None => Ok(args.env.clone()),
    }
}

/// The old ini written where the project's compose file mounts it.
fn write_ini_mount(args: &Args, t: &cm_core::target::Target, parsed: &ini::IniFile) -> Result<u8> {
    let (lines, json) =
        project::write_ini_mount(t, &args.ini, parsed, args.dry.dry_run).map_err(Fail::usage)?;
    if args.out.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if !args.out.quiet {
        for l in lines {
            eprintln!("{l}");
        }
    }
    Ok(0)
}

fn q(p: &Path) -> String {
    cm_core::quote::quote_path(p)
}

/// Values chatmail would refuse are an error (exit 2, nothing written) unless
/// --accept-invalid; --quiet never hides it.
fn refuse_invalid(args: &Args, conv: &params::Conversion) -> Result<()> {
    let refused: Vec<String> = conv
        .warnings
        .iter()
        .filter(|w| params::is_refusal(w))
        .map(|w| match w.line {
            Some(l) => format!("{}:{l}: {}", conv.source, w.message),
            None => format!("{}: {}", conv.source, w.message),
        })
        .collect();
    if refused.is_empty() || args.accept_invalid {
        return Ok(());
    }
    Err(Fail::usage(format!(
        "{} {} chatmail would refuse; nothing written: {} (fix the ini, or pass --accept-invalid)",
        refused.len(),
        if refused.len() == 1 {
            "value"
        } else {
            "values"
        },
        refused.join("; ")
    )))
}

/// The conversion's warnings, and the settings this shell would override: only those the
/// target's compose file interpolates (`${MAX_MAILBOX_SIZE}`); a value a service reads
/// through `env_file:` is the file's, whatever the shell has.
fn warn(args: &Args, conv: &params::Conversion) {
    for w in &conv.warnings {
        match w.line {
            Some(l) => msg::warning(&format!("{}:{l}: {}", conv.source, w.message)),
            None => msg::warning(&format!("{}: {}", conv.source, w.message)),
        }
    }
    let target = args
        .env
        .clone()
        .or(args.check.clone())
        .or(args.project_dir.as_ref().map(|d| d.join(".env")));
    let dir = match target.as_deref().and_then(Path::parent) {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(compose) = cm_core::checks::COMPOSE_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|f| f.is_file())
    else {
        return;
    };
    let names = std::fs::read_to_string(&compose)
        .map(|t| dotenv::interpolated_names(&t))
        .unwrap_or_default();
    for p in params::PARAMS {
        let k = p.env_key();
        if names.contains(&k) && std::env::var_os(&k).is_some() {
            msg::warning(&format!(
                "{k} is set in this shell's environment and {} interpolates it: docker compose run from here would use the shell's value there instead of the .env value",
                q(&compose)
            ));
        }
    }
}

fn print_out(args: &Args, conv: &params::Conversion, text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.out.json {
        let entries: Vec<_> = conv
            .settings
            .iter()
            .filter(|s| args.all || s.key == "mail_domain" || !s.is_default)
            .collect();
        let v = serde_json::json!({
            "source": conv.source,
            "mail_domain": conv.mail_domain,
            "all": args.all,
            "entries": entries,
            "warnings": conv.warnings,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}

fn plan_write(
    args: &Args,
    conv: &params::Conversion,
    env_path: &Path,
    text: &str,
) -> Result<envfile::Plan> {
    let existing = if args.force {
        envfile::Existing::Replace
    } else if args.merge {
        envfile::Existing::Merge
    } else {
        envfile::Existing::Refuse
    };
    Ok(envfile::plan(
        conv, args.all, text, &args.ini, env_path, existing,
    )?)
}

fn execute(args: &Args, conv: &params::Conversion, plan: envfile::Plan) -> Result<u8> {
    let shown = q(&plan.target);
    if args.dry.dry_run {
        std::io::stdout()
            .lock()
            .write_all(plan.content.as_bytes())?;
        if !args.out.quiet {
            let what = if plan.unchanged() {
                format!("{shown} already holds exactly this; nothing would change")
            } else {
                let done = plan.action.to_string();
                let would = match plan.action {
                    envfile::Action::Write => done.replacen("wrote", "would write", 1),
                    envfile::Action::Replace => done.replacen("replaced", "would replace", 1),
                    envfile::Action::Merge(_) => done.replacen("merged", "would merge", 1),
                };
                format!("{would} {shown}")
            };
            eprintln!("dry run: {what}; nothing written");
        }
        return Ok(0);
    }
    if plan.unchanged() {
        if args.out.json {
            let v = serde_json::json!({"source": conv.source, "env": cm_core::quote::json_path(&plan.target),
                "action": "unchanged", "written": false, "warnings": conv.warnings});
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else if !args.out.quiet {
            eprintln!(
                "unchanged {shown}: it already holds exactly this (nothing written, no backup)"
            );
        }
        return Ok(0);
    }
    let backup_note = match envfile::execute(&plan, std::time::SystemTime::now())? {
        Some(b) => format!("; backup: {}", q(&b)),
        None => String::new(),
    };
    let n = conv.env_entries(args.all).len();
    if args.out.json {
        let v = serde_json::json!({
            "source": conv.source,
            "env": cm_core::quote::json_path(&plan.target),
            "action": plan.action.to_string(),
            "written": true,
            "settings": n,
            "warnings": conv.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !args.out.quiet {
        eprintln!(
            "{} {shown}: {n} {} from {}{backup_note}",
            plan.action,
            if n == 1 { "setting" } else { "settings" },
            conv.source
        );
    }
    Ok(0)
}

fn check(
    args: &Args,
    parsed: &ini::IniFile,
    env_path: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<u8> {
    let section = parsed.params()?;
    let diffs = params::diff_env(section, env);
    if args.out.json {
        let v = serde_json::json!({
            "source": parsed.path,
            "env": cm_core::quote::json_path(env_path),
            "matches": diffs.is_empty(),
            "differences": diffs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if diffs.is_empty() {
        if !args.out.quiet {
            println!(
                "{} matches {}: chatmail would behave the same",
                q(env_path),
                parsed.path
            );
        }
    } else {
        println!(
            "{} differs from {} in {} setting(s):",
            q(env_path),
            parsed.path,
            diffs.len()
        );
        for d in &diffs {
            match d.line {
                Some(l) => println!("  {d} (ini line {l})"),
                None => println!("  {d}"),
            }
        }
    }
    Ok(if diffs.is_empty() { 0 } else { 1 })
}
