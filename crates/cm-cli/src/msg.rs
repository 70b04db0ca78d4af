//! The message prefix of every tool: `<tool>: error: ...`, `<tool>: warning: ...`,
//! `<tool>: note: ...`, all on stderr. The tool's name is set once by [`crate::main`].

use std::cell::RefCell;

thread_local! {
    static TOOL: RefCell<String> = RefCell::new("cm-migrate".into());
}

/// Set the name messages of this thread are prefixed with.
pub fn set_tool(name: &str) {
    TOOL.with(|t| *t.borrow_mut() = name.to_string());
}

/// The name messages are prefixed with.
pub fn tool() -> String {
    TOOL.with(|t| t.borrow().clone())
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
