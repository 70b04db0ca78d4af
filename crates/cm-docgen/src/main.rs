//! cm-docgen: write (or check) the suite's man pages and completions below a directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Generate the suite's man pages and shell completions from the tools' clap definitions.
///
/// Writes DIR/man/*.1 and DIR/completions/{bash,zsh,fish}/*, and removes files there that
/// are no longer generated (those directories are the generator's own). With --check, writes
/// nothing and exits 1 listing every file that differs.
///
/// Refresh the committed copies: packaging/build-deb --regenerate-only
#[derive(Parser, Debug)]
#[command(name = "cm-docgen", version = cm_core::version::text())]
struct Args {
    /// Compare instead of writing: exit 1 when any file differs, is missing or is extra.
    #[arg(long)]
    check: bool,
    /// The output directory (packaging/ for the committed copies).
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let want = cm_docgen::generate();
    let result = cm_docgen::changes(&args.dir, &want).and_then(|changes| {
        if !args.check {
            cm_docgen::apply(&args.dir, &want, &changes)?;
        }
        Ok(changes)
    });
    let changes = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cm-docgen: {e}");
            return ExitCode::from(2);
        }
    };
    for (rel, change) in &changes {
        let done = match (args.check, change) {
            (true, c) => c.as_str(),
            (false, cm_docgen::Change::Extra) => "removed",
            (false, _) => "wrote",
        };
        println!("{done}: {}", args.dir.join(rel).display());
    }
    if args.check && !changes.is_empty() {
        eprintln!(
            "cm-docgen: {} generated file(s) out of date in {}; refresh them: packaging/build-deb --regenerate-only",
            changes.len(),
            args.dir.display()
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
