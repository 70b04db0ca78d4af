//! cm-cli: the edges every binary of the suite shares, on the model of uutils' uucore.
//! cm-core stays print-free; everything a tool says at its edges is decided here once:
//!
//! - [`args`]: the common arguments as clap `Args` structs (`--json`, `-q/--quiet`,
//!   `-v/--verbose`; `-n/--dry-run`; `-j/--jobs` validated against [`args::JOBS_MAX`]).
//! - [`msg`]: the message prefix of every tool (`cm-verify: error: ...`,
//!   `cm-verify: warning: ...`, `cm-verify: note: ...`).
//! - [`exit`]: the exit code of cm-core's errors and outcomes ([`exit::ExitStatus`]) and an
//!   error that carries its own code ([`exit::Fail`]).
//! - [`main`]: the one wrapper around a tool's run: parse, run, print the error with the
//!   prefix (and as one JSON document with the exit code when `--json` was given, usage
//!   errors included), and end quietly on a closed pipe (exit 0, as ripgrep does).

pub mod args;
pub mod exit;
pub mod msg;
mod pipe;

use std::ffi::OsString;
use std::process::ExitCode;

pub use exit::{ExitStatus, Fail};

/// Run a tool: parse `args` (the first is the program name) into `P`, run `body`, and turn
/// what comes back into the exit code. Errors are printed as `<tool>: error: ...` on stderr
/// (never hidden by --quiet) and, when `--json` was given, also as one JSON document
/// `{"ok": false, "exit_code": N, "error": "..."}` on stdout. Usage errors exit 2, `--help`
/// and `--version` 0. A closed stdout (`| head`) ends the tool quietly with exit 0.
pub fn main<P, I, T>(args: I, body: impl FnOnce(P) -> anyhow::Result<ExitCode>) -> ExitCode
where
    P: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let json = json_requested(&args);
    msg::set_tool(&tool_name(&args));
    msg::set_json(json);
    pipe::quiet_on_broken_pipe(|| match P::try_parse_from(&args) {
        Ok(p) => match body(p) {
            Ok(code) => code,
            Err(e) => report_error(&e, json),
        },
        Err(e) => usage_error(&e, json),
    })
}

/// The program name messages are prefixed with: the file name of `args[0]` (a tool run by
/// `cm-migrate <tool>` is given `cm-migrate <tool>` as its name).
fn tool_name(args: &[OsString]) -> String {
    args.first()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cm-migrate".into())
}

/// End a run now with `code` and `message`, for a binary that returns its exit code itself:
/// the prefix on stderr and, under `--json`, the JSON document, as [`main`] does for errors.
pub fn error_exit(code: u8, message: &str) -> ExitCode {
    if msg::json() {
        print_error_json(code, message, false);
    }
    msg::error(message);
    ExitCode::from(code)
}

/// A clap error met outside [`main`] (cm-migrate parses with its whole command first): the
/// same prefix, exit code and JSON as there.
pub fn parse_error(args: &[OsString], e: &clap::Error) -> ExitCode {
    msg::set_tool(&tool_name(args));
    usage_error(e, json_requested(args))
}

/// `--json` among the options (before a `--` that ends them).
pub fn json_requested(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// A clap error: help and version on stdout with exit 0; anything else is a usage error
/// (exit 2), with the prefix and, under --json, one JSON document.
fn usage_error(e: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) || !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("usage error")
        .trim_start_matches("error: ")
        .to_string();
    if json {
        print_error_json(2, &first, true);
    }
    eprint!("{}: {}", msg::tool(), text);
    ExitCode::from(2)
}

/// An error that ended the run: its code from [`exit::code_of`], one line on stderr.
fn report_error(e: &anyhow::Error, json: bool) -> ExitCode {
    if pipe::is_broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    let code = exit::code_of(e);
    let text = msg::chain(e);
    if json {
        print_error_json(code, &text, false);
    }
    msg::error(&text);
    ExitCode::from(code)
}

fn print_error_json(code: u8, error: &str, usage: bool) {
    let mut v = serde_json::json!({"ok": false, "exit_code": code, "error": error});
    if usage {
        v["usage_error"] = serde_json::Value::Bool(true);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_seen_before_a_double_dash_only() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(json_requested(&a(&["t", "x", "--json"])));
        assert!(!json_requested(&a(&["t", "--", "--json"])));
        assert!(!json_requested(&a(&["--json"])));
    }

    #[test]
    fn tool_name_is_the_file_name_or_the_multicall_name() {
        let n = |s: &str| tool_name(&[OsString::from(s)]);
        assert_eq!(n("/usr/bin/cm-verify"), "cm-verify");
        assert_eq!(n("cm-migrate verify"), "cm-migrate verify");
    }
}
