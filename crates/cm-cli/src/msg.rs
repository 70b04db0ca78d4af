//! The message prefix of every tool: `<tool>: error: ...`, `<tool>: warning: ...`,
//! `<tool>: note: ...`, all on stderr. The tool's name is set once by [`crate::main`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

// One tool runs per process (cm-migrate runs a tool in-process, once), and its worker
// threads speak with its name too: process-wide, not per thread.
static TOOL: Mutex<String> = Mutex::new(String::new());
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether this run was given `--json` (set by [`crate::main`]).
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Whether this run was given `--json`.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Set the name messages are prefixed with.
pub fn set_tool(name: &str) {
    if let Ok(mut t) = TOOL.lock() {
        *t = name.to_string();
    }
}

/// The name messages are prefixed with (`cm-migrate` before [`set_tool`]).
pub fn tool() -> String {
    match TOOL.lock() {
        Ok(t) if !t.is_empty() => t.clone(),
        _ => "cm-migrate".into(),
    }
}

/// `<tool>: error: MSG` on stderr. Never hidden by --quiet.
pub fn error(msg: &str) {
    eprintln!("{}: error: {msg}", tool());
}

/// `<tool>: warning: MSG` on stderr (callers leave it out under --quiet).
pub fn warning(msg: &str) {
    eprintln!("{}: warning: {msg}", tool());
}

/// `<tool>: note: MSG` on stderr (callers leave it out under --quiet).
pub fn note(msg: &str) {
    eprintln!("{}: note: {msg}", tool());
}

/// An error and its causes on one line, each cause once: a cause whose text the message
/// already carries (cm-core's errors often embed their source) is left out, so an OS error
/// is never said twice.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if c.is_empty() || out.contains(&c) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&c);
    }
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_is_said_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let e = anyhow::Error::new(io).context(format!(
            "cannot read /x: {}",
            std::io::Error::from_raw_os_error(2)
        ));
        let text = chain(&e);
        assert_eq!(text.matches("os error 2").count(), 1, "{text}");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain(&e), "outer: inner");
    }
}
