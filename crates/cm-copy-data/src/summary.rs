//! What cm-copy-data says after a copy: a line per volume (fits 100 columns), one overall
//! summary (totals, elapsed time and rate, the owner mapping applied, the next step) and,
//! with `-v`, every entry copied, linked and removed. Reads only the engine's `Plan` and
//! `Outcome`.

use crate::Args;
use cm_core::copy::{safety::human, Outcome, Plan, Severity};
use cm_core::owners::OwnerMap;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// One volume's result.
pub struct VolResult {
    pub out: Outcome,
    pub manifest: Option<PathBuf>,
    pub manifest_error: Option<String>,
}

/// Sums over every volume.
#[derive(Debug, Default, serde::Serialize)]
pub struct Totals {
    pub copied: u64,
    pub copied_bytes: u64,
    pub linked: u64,
    /// Compared by content and found equal.
    pub verified: u64,
    pub unchanged: u64,
    pub removed: u64,
    /// Entries no run of the suite wrote, moved aside (never deleted).
    pub moved_aside: u64,
    /// Temporaries of an interrupted run, removed (not entries of the source).
    pub leftovers: u64,
    pub not_copied: u64,
    pub elapsed_s: f64,
    /// Bytes copied or read back for checking, per second.
    pub bytes_per_s: u64,
}

pub fn totals(rs: &[VolResult], elapsed: Duration) -> Totals {
    let mut t = Totals::default();
    let mut moved = 0;
    for r in rs {
        let o = &r.out;
        t.copied += o.copied;
        t.copied_bytes += o.copied_bytes;
        t.linked += o.linked;
        t.verified += o.verified;
        t.unchanged += o.unchanged;
        t.removed += o.deleted;
        t.moved_aside += o.moved_aside;
        t.leftovers += o.leftovers;
        t.not_copied += o.failed;
        moved += o.copied_bytes;
    }
    t.elapsed_s = elapsed.as_secs_f64();
    t.bytes_per_s = (moved as f64 / t.elapsed_s.max(0.001)) as u64;
    t
}

/// `mail: copied 12 (3.0 KiB), linked 1, unchanged 40, removed 2` (`+N equal by content` and
/// `not copied N` only when there are any). Short enough for 100 columns.
pub fn volume_line(name: &str, o: &Outcome) -> String {
    let mut s = format!(
        "{name}: copied {} ({}), linked {}, unchanged {}",
        o.copied,
        human(o.copied_bytes),
        o.linked,
        o.unchanged
    );
    if o.verified > 0 {
        s.push_str(&format!(" (+{} equal by content)", o.verified));
    }
    s.push_str(&format!(", removed {}", o.deleted));
    if o.moved_aside > 0 {
        s.push_str(&format!(
            ", moved aside {} (not written by this suite)",
            o.moved_aside
        ));
    }
    if o.leftovers > 0 {
        s.push_str(&format!(
            ", removed {} leftover {} of an interrupted run",
            o.leftovers,
            if o.leftovers == 1 {
                "temporary"
            } else {
                "temporaries"
            }
        ));
    }
    if o.failed > 0 {
        s.push_str(&format!(", not copied {}", o.failed));
    }
    s
}

/// Two lines: the totals, then time and rate.
pub fn total_line(t: &Totals) -> String {
    let mut extra = String::new();
    if t.moved_aside > 0 {
        extra.push_str(&format!(", moved aside {}", t.moved_aside));
    }
    if t.leftovers > 0 {
        extra.push_str(&format!(", removed {} leftover temporaries", t.leftovers));
    }
    format!(
        "total: copied {} entries ({}), linked {}, unchanged {}, removed {}{extra}, not copied {}\n\
         time: {:.1} s, {}/s; every file copied was read back and checked",
        t.copied,
        human(t.copied_bytes),
        t.linked,
        t.unchanged + t.verified,
        t.removed,
        t.not_copied,
        t.elapsed_s,
        human(t.bytes_per_s)
    )
}

/// `owners mapped: vmail 1105 -> 901, ...` (or that numeric ids were kept).
pub fn owners_line(owners: Option<&OwnerMap>) -> String {
    let m: Vec<String> = owners
        .map(|o| o.mappings().iter().map(|l| l.to_string()).collect())
        .unwrap_or_default();
    if m.is_empty() {
        "owners: numeric ids kept (no --owner-map)".to_string()
            + if owners.is_some() {
                "; the owner map changes no id"
            } else {
                ""
            }
    } else {
        format!("owners mapped: {}", m.join(", "))
    }
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What to do next.
pub fn next_step(a: &Args, plans: &[Plan], failed: bool) -> String {
    if failed {
        return "next: fix the causes above and run the same command again: only what is missing or changed is copied".into();
    }
    if a.live {
        return "next: stop the relay (cm-migrate stop-services), then run the same command without --live: only the delta is copied".into();
    }
    let map = a
        .owners
        .owner_map
        .as_ref()
        .map(|m| format!(" --owner-map {}", shell_word(&m.to_string_lossy())))
        .unwrap_or_default();
    if a.maps.is_empty() {
        let root = if a.root == std::path::Path::new("/") {
            String::new()
        } else {
            format!(" --root {}", shell_word(&a.root.to_string_lossy()))
        };
        return format!(
            "next: verify the copy: cm-verify all --project-dir {}{root}{map}",
            shell_word(&a.project_dir.to_string_lossy())
        );
    }
    let cmds: Vec<String> = plans
        .iter()
        .filter(|p| p.skipped.is_none())
        .map(|p| {
            format!(
                "cm-verify tree {} {}{map}",
                shell_word(&p.volume.src.to_string_lossy()),
                shell_word(&p.volume.dst.to_string_lossy())
            )
        })
        .collect();
    format!("next: verify the copy: {}", cmds.join("; "))
}

/// `-v`: every entry copied, linked and removed (a dry run: that would be), one per line,
/// relative to the volume's target; entries that failed are left out (they are listed as
/// errors).
pub fn listing(p: &Plan, o: Option<&Outcome>) -> Vec<String> {
    let failed: HashSet<&str> = o
        .map(|o| {
            o.problems
                .iter()
                .filter(|x| x.severity == Severity::Error)
                .map(|x| x.path.as_str())
                .collect()
        })
        .unwrap_or_default();
    // escaped as the problems' paths are, without their quotes (added back to compare)
    let root = cm_core::quote::json_path(&p.src_root);
    let would = if o.is_none() { "would " } else { "" };
    o.map(|o| o.actions())
        .unwrap_or_else(|| p.actions())
        .into_iter()
        .filter_map(|(rel, act)| {
            let verb = match (act, o.is_some()) {
                ("copy", true) => "copied",
                ("link", true) => "linked",
                ("delete", true) => "removed",
                ("copy", false) => "copy",
                ("link", false) => "link",
                ("delete", false) => "remove",
                ("keep" | "hash" | "compare" | "skip", _) => return None,
                (other, _) => other,
            };
            let full = if rel.is_empty() {
                format!("\"{root}\"")
            } else {
                format!("\"{}/{rel}\"", root.trim_end_matches('/'))
            };
            if act != "delete" && failed.contains(full.as_str()) {
                return None;
            }
            // quoted as every printed name is (`rel` is escaped already)
            let shown = if rel.is_empty() {
                ".".to_string()
            } else {
                format!("\"{rel}\"")
            };
            Some(format!("  {would}{verb} {}/{shown}", p.volume.name))
        })
        .collect()
}
