//! Ctrl-C (SIGINT) or SIGTERM during a copy: say what was left and how to finish, then exit
//! (130 or 143, as a shell reports a signal). The signals are blocked in every thread before
//! the copy's workers start and taken by one thread of their own with `sigwait`, so the
//! message is printed from ordinary code, not from a signal handler.

use indicatif::ProgressBar;
use nix::sys::signal::{SigSet, Signal};
use std::sync::{Arc, Mutex};

/// Where the copy is, for the message.
#[derive(Default)]
pub struct State {
    /// The volume being copied.
    pub volume: Option<String>,
    /// Volumes finished (their manifests written).
    pub done: Vec<String>,
    /// The volumes not started yet.
    pub pending: Vec<String>,
    /// Print a JSON document on stdout too.
    pub json: bool,
}

/// Block SIGINT and SIGTERM in this thread (threads started later inherit it) and start the
/// thread that waits for them. Call before the first worker starts.
pub fn install(pb: ProgressBar, state: Arc<Mutex<State>>) {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        return; // signals keep their default action: the process ends, as before
    }
    std::thread::spawn(move || {
        let Ok(sig) = set.wait() else { return };
        pb.finish_and_clear();
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        let msg = message(sig, &st);
        eprintln!("{msg}");
        if st.json {
            println!(
                "{}",
                serde_json::json!({"ok": false, "interrupted": sig.as_str(), "error": msg,
                    "exit_code": 128 + sig as i32, "volume": st.volume, "done": st.done,
                    "not_started": st.pending})
            );
        }
        std::process::exit(128 + sig as i32);
    });
}

fn message(sig: Signal, st: &State) -> String {
    let mut m = format!("cm-copy-data: interrupted ({})", sig.as_str());
    match &st.volume {
        Some(v) => m.push_str(&format!(
            " while copying {v}: the copy is incomplete. Left in its target: every entry done \
             so far, complete under its final name; the files in progress as private \
             temporaries (.cm-copy.*.tmp), which the next run removes; no new manifest for {v}"
        )),
        None => m.push_str(": nothing was being written"),
    }
    if !st.done.is_empty() {
        m.push_str(&format!(". Finished: {}", st.done.join(", ")));
    }
    if !st.pending.is_empty() {
        m.push_str(&format!(". Not started: {}", st.pending.join(", ")));
    }
    m.push_str(". Run the same command again to finish: only what is missing or changed is copied");
    m
}
