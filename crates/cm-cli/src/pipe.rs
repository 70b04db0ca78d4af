//! A closed stdout (`cm-verify tree A B --json | head -c 10`) ends the tool quietly with
//! exit 0, as ripgrep does: nobody reads what is left, and that is not an error.
//!
//! `println!` panics when stdout is gone (Rust ignores SIGPIPE); the panic hook installed
//! here keeps that panic's message off stderr and [`quiet_on_broken_pipe`] turns it into
//! exit 0. Every other panic keeps its message and its exit code 101. Errors returned
//! through `writeln!(...)?` are recognised by [`is_broken_pipe`].

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::Once;

/// The text std's print macros panic with when stdout's reader is gone.
fn is_pipe_panic(msg: &str) -> bool {
    msg.contains("failed printing to stdout") && msg.contains("Broken pipe")
}

fn payload_text(p: &(dyn std::any::Any + Send)) -> Option<&str> {
    p.downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| p.downcast_ref::<&str>().copied())
}

/// Run `f`; a print to a closed stdout inside it ends it with exit 0 and no message.
pub fn quiet_on_broken_pipe(f: impl FnOnce() -> ExitCode) -> ExitCode {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if payload_text(info.payload()).is_some_and(is_pipe_panic) {
                return;
            }
            prev(info)
        }));
    });
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(p) if payload_text(p.as_ref()).is_some_and(is_pipe_panic) => ExitCode::SUCCESS,
        Err(p) => panic::resume_unwind(p),
    }
}

/// The error (or one of its causes) is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
