//! cm-ini-to-env: chatmail.ini to the `.env` Docker Compose reads, exactly.
//! Thin: arguments here, logic in cm_core::{ini, params, dotenv}.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use cm_core::{dotenv, fsutil, ini, params};

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
/// Warnings (unknown keys with a suggestion, deprecated or unused keys, values chatmail
/// would reject) go to stderr. Exit codes: 0 done; 1 --check found differences; 2 unusable
/// input or arguments (one line on stderr, nothing written).
#[derive(Parser, Debug)]
#[command(
    name = "cm-ini-to-env",
    version,
    max_term_width = 100,
    after_long_help = "\
Examples:
  cm-ini-to-env                                   print the .env for this host's chatmail.ini
  cm-ini-to-env chatmail.ini /srv/chatmail/.env   write it (refuses to overwrite)
  cm-ini-to-env --merge chatmail.ini .env         update an existing .env, keep its other lines
  cm-ini-to-env chatmail.ini --check .env         exit 1 and list settings that differ

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
    #[arg(long, conflicts_with = "merge")]
    force: bool,

    /// Update an existing ENV: set the chatmail settings from the ini in place, drop
    /// chatmail settings the ini leaves at their defaults, and keep every other line and
    /// comment (Docker-only variables, notes). A backup is kept as with --force.
    #[arg(long)]
    merge: bool,

    /// Compare an existing .env with the ini instead of writing: lists every setting on
    /// which chatmail would behave differently, exits 1 if there is any, 0 if none.
    #[arg(long, value_name = "ENV", conflicts_with_all = ["env", "force", "merge", "all"])]
    check: Option<PathBuf>,

    /// Show what would be written (the .env on stdout, the action on stderr); write nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,

    /// No warnings or progress on stderr (errors are still printed).
    #[arg(long, short = 'q')]
    quiet: bool,

    /// Machine-readable output on stdout: the settings and warnings, or the differences
    /// with --check.
    #[arg(long)]
    json: bool,
}

/// An error that ends the run with a code and one line.
struct Fail(u8, String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(2, e.to_string())
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            eprintln!("cm-ini-to-env: {}", msg.replace('\n', " "));
            ExitCode::from(code)
        }
    }
}

fn run(args: &Args) -> Result<u8, Fail> {
    let parsed = ini::read(&args.ini)?;
    let conv = params::convert(&parsed)?;
    let text = conv.to_env(args.all)?;
    // Refuse an unusable ENV before any warning, so that bad input is one line.
    if let Some(env_path) = &args.env {
        if env_path.is_dir() {
            return Err(Fail(
                2,
                format!(
                    "{}: is a directory; give the path of the .env file",
                    env_path.display()
                ),
            ));
        }
        if same_file(env_path, &args.ini) {
            return Err(Fail(
                2,
                format!(
                    "{} is the ini itself; give another path for the .env",
                    env_path.display()
                ),
            ));
        }
        if env_path.symlink_metadata().is_ok() && !args.force && !args.merge {
            return Err(Fail(
                2,
                format!("{} already exists; use --merge to update the chatmail settings in it and keep its other lines, or --force to replace it (a backup is kept)", env_path.display()),
            ));
        }
    }
    if let Some(env_path) = &args.check {
        if !env_path.is_file() {
            let e = dotenv::read_file(env_path).err().map(|e| e.to_string());
            return Err(Fail(
                2,
                e.unwrap_or_else(|| format!("{}: not a regular file", env_path.display())),
            ));
        }
    }
    if !args.quiet {
        for w in &conv.warnings {
            match w.line {
                Some(l) => eprintln!("warning: {}:{l}: {}", conv.source, w.message),
                None => eprintln!("warning: {}: {}", conv.source, w.message),
            }
        }
    }
    if let Some(env_path) = &args.check {
        return check(args, &parsed, env_path);
    }
    let Some(env_path) = &args.env else {
        print_out(args, &conv, &text)?;
        return Ok(0);
    };
    write_env(args, &conv, env_path, &text)
}

fn print_out(args: &Args, conv: &params::Conversion, text: &str) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    if args.json {
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

fn write_env(
    args: &Args,
    conv: &params::Conversion,
    env_path: &Path,
    text: &str,
) -> Result<u8, Fail> {
    // A symlinked .env (e.g. to a secrets directory) is written through, not replaced.
    let resolved;
    let env_path = match env_path.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(env_path).map_err(|e| {
                format!(
                    "{}: a symlink whose target cannot be used: {e}",
                    env_path.display()
                )
            })?;
            resolved.as_path()
        }
        _ => env_path,
    };
    if same_file(env_path, &args.ini) {
        return Err(Fail(
            2,
            format!(
                "{} is the ini itself; give another path for the .env",
                env_path.display()
            ),
        ));
    }
    let shown = env_path.display();
    let existing = match env_path.symlink_metadata() {
        Ok(m) if m.is_dir() => {
            return Err(Fail(
                2,
                format!("{shown}: is a directory; give the path of the .env file"),
            ))
        }
        Ok(_) => Some(std::fs::read(env_path).map_err(|e| format!("{shown}: cannot read: {e}"))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Fail(2, format!("{shown}: {e}"))),
    };
    let (content, action) = match &existing {
        None => (text.to_string(), "wrote".to_string()),
        Some(_) if !args.force && !args.merge => {
            return Err(Fail(
                2,
                format!("{shown} already exists; use --merge to update the chatmail settings in it and keep its other lines, or --force to replace it (a backup is kept)"),
            ))
        }
        Some(_) if args.force => (text.to_string(), "replaced".to_string()),
        Some(old) => {
            let old = std::str::from_utf8(old)
                .map_err(|_| format!("{shown}: not valid UTF-8; cannot merge into it (use --force to replace it)"))?;
            let set = conv.env_entries(args.all);
            let keep: BTreeSet<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
            let existing_keys = dotenv::parse(old, &|_| None).map_err(|e| {
                format!("{shown}: {e}; cannot merge into it (fix it, or use --force to replace it)")
            })?;
            let remove: Vec<String> = existing_keys
                .iter()
                .filter(|e| params::from_env_key(&e.key).is_some() && !keep.contains(e.key.as_str()))
                .map(|e| e.key.clone())
                .collect();
            let (merged, rep) = dotenv::merge(old, &set, &remove, &conv.header(args.all))
                .map_err(|e| format!("{shown}: {e}"))?;
            let mut what = format!(
                "merged ({} updated, {} added, {} removed",
                rep.updated.len(),
                rep.added.len(),
                rep.removed.len()
            );
            if !rep.removed.is_empty() {
                what.push_str(&format!(": {}", rep.removed.join(" ")));
            }
            what.push(')');
            (merged, what)
        }
    };
    if args.dry_run {
        std::io::stdout().lock().write_all(content.as_bytes())?;
        if !args.quiet {
            eprintln!("dry run: would have {action} {shown}; nothing written");
        }
        return Ok(0);
    }
    let mut backup_note = String::new();
    if let Some(old) = &existing {
        let backup = dotenv::backup_path(env_path, std::time::SystemTime::now());
        fsutil::write_atomic(&backup, old, 0o600)
            .map_err(|e| format!("{}: cannot write backup: {e}", backup.display()))?;
        backup_note = format!("; backup: {}", backup.display());
    }
    fsutil::write_atomic(env_path, content.as_bytes(), 0o600)
        .map_err(|e| format!("{shown}: cannot write: {e}"))?;
    let n = conv.env_entries(args.all).len();
    if args.json {
        let v = serde_json::json!({
            "source": conv.source,
            "env": env_path.display().to_string(),
            "action": action,
            "settings": n,
            "warnings": conv.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !args.quiet {
        eprintln!(
            "{action} {shown}: {n} settings from {}{backup_note}",
            conv.source
        );
    }
    Ok(0)
}

fn check(args: &Args, parsed: &ini::IniFile, env_path: &Path) -> Result<u8, Fail> {
    if env_path.is_dir() {
        return Err(Fail(
            2,
            format!(
                "{}: is a directory; give the path of the .env file",
                env_path.display()
            ),
        ));
    }
    let env = dotenv::read_file(env_path)?;
    let section = parsed.params()?;
    let diffs = params::diff_env(section, &env);
    if args.json {
        let v = serde_json::json!({
            "source": parsed.path,
            "env": env_path.display().to_string(),
            "matches": diffs.is_empty(),
            "differences": diffs,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if diffs.is_empty() {
        if !args.quiet {
            println!(
                "{} matches {}: chatmail would behave the same",
                env_path.display(),
                parsed.path
            );
        }
    } else {
        println!(
            "{} differs from {} in {} setting(s):",
            env_path.display(),
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

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
