//! Differences and outcomes, grouped for humans and serialised for machines.
//!
//! Invariant: every path printed goes through [`crate::quote`], which is unambiguous and
//! reversible: a name with a newline, a quote or bytes that are not UTF-8 never looks like
//! another name.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::quote::{json_path, quote_path};
use crate::tree::{DiffKind, Difference, TreeStats};

/// Differences grouped by kind, in report order.
pub fn group(diffs: &[Difference]) -> BTreeMap<DiffKind, Vec<&Difference>> {
    let mut m: BTreeMap<DiffKind, Vec<&Difference>> = BTreeMap::new();
    for d in diffs {
        m.entry(d.kind).or_default().push(d);
    }
    m
}

fn describe(d: &Difference) -> String {
    let p = quote_path(&d.path);
    match d.kind {
        DiffKind::Missing => format!("{p} ({})", d.expected),
        DiffKind::Extra => format!("{p} ({})", d.actual),
        DiffKind::Unreadable => {
            let (side, msg) = if d.expected.is_empty() {
                ("copy", &d.actual)
            } else {
                ("source", &d.expected)
            };
            format!("{p}: {side}: {msg}")
        }
        _ => format!("{p}: expected {}, found {}", d.expected, d.actual),
    }
}

/// Human report: one block per kind with its count and the first `examples` differences;
/// ends with a one-line verdict. `what` names the comparison ("tree a vs b").
pub fn render_text(
    diffs: &[Difference],
    examples: usize,
    what: &str,
    stats: Option<&TreeStats>,
) -> String {
    let mut out = String::new();
    let groups = group(diffs);
    for (kind, ds) in &groups {
        let _ = writeln!(out, "{} ({}): {}", kind.title(), kind.key(), ds.len());
        for d in ds.iter().take(examples) {
            let _ = writeln!(out, "  {}", describe(d));
        }
        if ds.len() > examples {
            let _ = writeln!(
                out,
                "  ... and {} more (--json lists all)",
                ds.len() - examples
            );
        }
    }
    let scope = match stats {
        Some(s) => format!(
            " ({} entries in the source, {} in the copy, {} {} ({}) compared by content)",
            s.source_entries,
            s.copy_entries,
            s.files_hashed,
            plural(s.files_hashed as usize, "file", "files"),
            human_bytes(s.bytes_hashed)
        ),
        None => String::new(),
    };
    if diffs.is_empty() {
        let _ = writeln!(out, "OK: {what}: no differences{scope}");
    } else {
        let kinds: Vec<String> = groups
            .iter()
            .map(|(k, v)| format!("{} {}", v.len(), k.key()))
            .collect();
        let n = diffs.len();
        let _ = writeln!(
            out,
            "DIFFERENT: {what}: {n} {} ({}){scope}",
            plural(n, "difference", "differences"),
            kinds.join(", ")
        );
    }
    out
}

/// Machine report: every difference, counts by kind, and the verdict.
pub fn to_json(diffs: &[Difference], what: &str, stats: Option<&TreeStats>) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = group(diffs)
        .iter()
        .map(|(k, v)| (k.key().to_string(), serde_json::Value::from(v.len())))
        .collect();
    let list: Vec<serde_json::Value> = diffs
        .iter()
        .map(|d| {
            serde_json::json!({
                "kind": d.kind.key(),
                "path": json_path(&d.path),
                "expected": d.expected,
                "actual": d.actual,
            })
        })
        .collect();
    let mut v = serde_json::json!({
        "check": what,
        "ok": diffs.is_empty(),
        "counts": counts,
        "differences": list,
    });
    if let Some(s) = stats {
        v["stats"] = serde_json::json!({
            "source_entries": s.source_entries,
            "copy_entries": s.copy_entries,
            "files_compared": s.files_hashed,
            "bytes_compared": s.bytes_hashed,
        });
    }
    v
}

/// Human report of check findings (env, services, layout): grouped by check with counts,
/// the first `examples` of each, notes, and a verdict line.
pub fn render_findings(out: &crate::checks::Outcome, examples: usize, what: &str) -> String {
    let mut s = String::new();
    let mut groups: BTreeMap<&str, Vec<&crate::checks::Finding>> = BTreeMap::new();
    for f in &out.findings {
        groups.entry(f.check.as_str()).or_default().push(f);
    }
    for (check, fs) in &groups {
        let _ = writeln!(s, "{check}: {}", fs.len());
        for f in fs.iter().take(examples) {
            let _ = writeln!(s, "  {}: {}", f.subject, f.problem);
        }
        if fs.len() > examples {
            let _ = writeln!(
                s,
                "  ... and {} more (--json lists all)",
                fs.len() - examples
            );
        }
    }
    for n in &out.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if out.findings.is_empty() {
        let _ = writeln!(s, "OK: {what}");
    } else {
        let n = out.findings.len();
        let _ = writeln!(
            s,
            "DIFFERENT: {what}: {n} {}",
            plural(n, "problem", "problems")
        );
    }
    s
}

/// Machine report of check findings.
pub fn findings_json(out: &crate::checks::Outcome, what: &str) -> serde_json::Value {
    serde_json::json!({
        "check": what,
        "ok": out.findings.is_empty(),
        "findings": out.findings,
        "notes": out.notes,
    })
}

/// `one` for 1, else `many`.
pub fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// The copy leaves sockets out by design (the service that listens recreates its socket):
/// a socket missing in the copy is a note, not a difference. Returns the differences that
/// remain and the note, if any.
pub fn skipped_by_design(diffs: Vec<Difference>) -> (Vec<Difference>, Option<String>) {
    let (sockets, rest): (Vec<_>, Vec<_>) = diffs
        .into_iter()
        .partition(|d| d.kind == DiffKind::Missing && d.expected == "socket");
    if sockets.is_empty() {
        return (rest, None);
    }
    let n = sockets.len();
    let first: Vec<String> = sockets
        .iter()
        .take(3)
        .map(|d| quote_path(&d.path))
        .collect();
    let more = if n > 3 { ", ..." } else { "" };
    let note = format!(
        "{n} {} not in the copy, as the copy leaves them out by design (the service that listens on one creates it again): {}{more}",
        plural(n, "socket", "sockets"),
        first.join(", ")
    );
    (rest, Some(note))
}

pub use crate::checks::Status;

/// One check of cm-verify, in the one shape every subcommand reports: its kind (`env`,
/// `services`, `layout`, `tree`, `manifest`), its subject, its [`Status`], its findings,
/// its notes, and the text for people.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub kind: String,
    pub subject: String,
    pub status: Status,
    /// Every finding, as `--json` lists it (`check`, `subject`, `problem`, ...).
    pub findings: Vec<serde_json::Value>,
    pub notes: Vec<String>,
    /// Further fields of `--json` (`counts`, `stats`, `reference`).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The report for people (ends with its own verdict line).
    pub text: String,
}

impl CheckReport {
    /// A check of findings (env, services, layout).
    pub fn from_outcome(
        kind: &str,
        subject: String,
        o: &crate::checks::Outcome,
        examples: usize,
    ) -> CheckReport {
        CheckReport {
            kind: kind.into(),
            text: render_findings(o, examples, &subject),
            status: Status::of(o.ok()),
            findings: o
                .findings
                .iter()
                .map(|f| serde_json::to_value(f).unwrap_or_default())
                .collect(),
            notes: o.notes.clone(),
            extra: serde_json::Map::new(),
            subject,
        }
    }

    /// A comparison of trees (`tree`, or `manifest` against one). Sockets missing in the copy
    /// are a note ([`skipped_by_design`]).
    pub fn from_tree(
        kind: &str,
        subject: String,
        diffs: Vec<Difference>,
        stats: &TreeStats,
        examples: usize,
    ) -> CheckReport {
        let (diffs, note) = skipped_by_design(diffs);
        let mut text = render_text(&diffs, examples, &subject, Some(stats));
        if let Some(n) = &note {
            text.insert_str(0, &format!("note: {n}\n"));
        }
        let j = to_json(&diffs, &subject, Some(stats));
        let mut extra = serde_json::Map::new();
        for k in ["counts", "stats"] {
            if let Some(v) = j.get(k) {
                extra.insert(k.into(), v.clone());
            }
        }
        CheckReport {
            kind: kind.into(),
            status: Status::of(diffs.is_empty()),
            findings: diffs.iter().map(difference_json).collect(),
            notes: note.into_iter().collect(),
            extra,
            text,
            subject,
        }
    }

    /// A check that did not run, and why.
    pub fn not_checked(
        kind: &str,
        subject: String,
        reason: String,
        switched_off: bool,
    ) -> CheckReport {
        let reason = reason.trim().replace('\n', "; ");
        CheckReport {
            kind: kind.into(),
            text: format!("NOT CHECKED: {subject}: {reason}\n"),
            status: Status::NotChecked {
                reason,
                switched_off,
            },
            findings: Vec::new(),
            notes: Vec::new(),
            extra: serde_json::Map::new(),
            subject,
        }
    }

    /// The `--json` envelope: `kind`, `subject`, `status`, `ok` (held), `reason` and
    /// `switched_off` when not checked, `findings`, `notes`, and the extra fields.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "kind": self.kind,
            "subject": self.subject,
            "status": self.status.key(),
            "ok": self.status == Status::Held,
            "findings": self.findings,
            "notes": self.notes,
        });
        if let Status::NotChecked {
            reason,
            switched_off,
        } = &self.status
        {
            v["reason"] = reason.clone().into();
            v["switched_off"] = (*switched_off).into();
        }
        for (k, x) in &self.extra {
            v[k] = x.clone();
        }
        v
    }
}

/// One difference as a finding of the envelope.
fn difference_json(d: &Difference) -> serde_json::Value {
    serde_json::json!({
        "check": d.kind.key(),
        "subject": json_path(&d.path),
        "problem": describe(d),
        "expected": d.expected,
        "actual": d.actual,
    })
}

/// The verdict over checks: ALL OK only when every check ran and held; exit 0 only then, or
/// when the only checks that did not run were switched off by the user's own flag.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub checks: Vec<CheckReport>,
}

impl Verdict {
    fn count(&self, f: impl Fn(&Status) -> bool) -> usize {
        self.checks.iter().filter(|c| f(&c.status)).count()
    }

    /// Every check ran and held.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|c| c.status == Status::Held)
    }

    /// 0: all held, or the only ones not run were switched off by the user; else 1.
    pub fn exit_code(&self) -> u8 {
        let fails = |s: &Status| match s {
            Status::Held => false,
            Status::Differs => true,
            Status::NotChecked { switched_off, .. } => !switched_off,
        };
        u8::from(self.checks.iter().any(|c| fails(&c.status)))
    }

    /// The verdict line: `ALL OK: 6 checks hold`, `OK: 5 hold, 1 not checked: services
    /// (--no-services)`, `NOT OK: 1 differs: tree ...; 4 hold; 1 not checked: ...`.
    pub fn summary(&self) -> String {
        let held = self.count(|s| *s == Status::Held);
        if self.all_ok() {
            return format!("ALL OK: {held} {} hold", plural(held, "check", "checks"));
        }
        let differs: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Differs)
            .map(|c| c.subject.as_str())
            .collect();
        let not: Vec<String> = self
            .checks
            .iter()
            .filter_map(|c| match &c.status {
                // the user's own flag is named; other reasons are in the check's lines
                Status::NotChecked {
                    reason,
                    switched_off: true,
                } => Some(format!("{} ({reason})", c.subject)),
                Status::NotChecked { .. } => Some(c.subject.clone()),
                _ => None,
            })
            .collect();
        let mut parts = Vec::new();
        if !differs.is_empty() {
            parts.push(format!(
                "{} {}: {}",
                differs.len(),
                plural(differs.len(), "differs", "differ"),
                differs.join("; ")
            ));
        }
        parts.push(format!("{held} {}", plural(held, "holds", "hold")));
        if !not.is_empty() {
            parts.push(format!("{} not checked: {}", not.len(), not.join("; ")));
        }
        let head = if self.exit_code() == 0 {
            "OK"
        } else {
            "NOT OK"
        };
        format!("{head}: {}", parts.join(", "))
    }

    /// `--json`: `ok` (all held), `exit_code`, `verdict` (the line), counts, every check.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.all_ok(),
            "exit_code": self.exit_code(),
            "verdict": self.summary(),
            "held": self.count(|s| *s == Status::Held),
            "differs": self.count(|s| *s == Status::Differs),
            "not_checked": self.count(|s| matches!(s, Status::NotChecked { .. })),
            "checks": self.checks.iter().map(CheckReport::to_json).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_verdict_is_all_ok_only_when_every_check_ran_and_held() {
        let held = |n: &str| CheckReport::from_outcome("env", n.into(), &Default::default(), 5);
        let off =
            CheckReport::not_checked("services", "services".into(), "--no-services".into(), true);
        let cannot =
            CheckReport::not_checked("services", "services".into(), "no bus".into(), false);
        let v = Verdict {
            checks: vec![held("a"), held("b")],
        };
        assert_eq!(
            (v.summary().as_str(), v.exit_code()),
            ("ALL OK: 2 checks hold", 0)
        );
        let v = Verdict {
            checks: vec![held("a"), off.clone()],
        };
        assert_eq!(
            v.summary(),
            "OK: 1 holds, 1 not checked: services (--no-services)"
        );
        assert_eq!(v.exit_code(), 0, "switched off by the user's own flag");
        assert!(!v.all_ok());
        assert_eq!(v.to_json()["checks"][1]["ok"], false);
        let v = Verdict {
            checks: vec![held("a"), cannot],
        };
        assert_eq!(v.summary(), "NOT OK: 1 holds, 1 not checked: services");
        assert_eq!(v.exit_code(), 1, "not checked for another reason fails");
        let mut bad = held("c");
        bad.status = Status::Differs;
        let v = Verdict {
            checks: vec![bad, off],
        };
        assert!(
            v.summary().starts_with("NOT OK: 1 differs: c, 0 hold"),
            "{}",
            v.summary()
        );
        assert_eq!(v.exit_code(), 1);
    }

    #[test]
    fn text_groups_by_kind_with_counts_and_examples() {
        let d = |kind, p: &str| Difference {
            kind,
            path: PathBuf::from(p),
            expected: "0600".into(),
            actual: "0644".into(),
        };
        let diffs = vec![
            d(DiffKind::Mode, "a"),
            d(DiffKind::Mode, "b"),
            d(DiffKind::Mode, "c"),
            d(DiffKind::Missing, "x\ny"),
        ];
        let t = render_text(&diffs, 2, "tree s vs d", None);
        assert!(t.contains("permission bits differ (mode): 3"), "{t}");
        assert!(t.contains("  \"a\": expected 0600, found 0644"), "{t}");
        assert!(t.contains("... and 1 more"), "{t}");
        assert!(t.contains("\"x\\ny\""), "{t}");
        assert!(
            t.lines()
                .last()
                .unwrap()
                .starts_with("DIFFERENT: tree s vs d: 4 differences"),
            "{t}"
        );
        let j = to_json(&diffs, "t", None);
        assert_eq!(j["counts"]["mode"], 3);
        assert_eq!(j["ok"], false);
        assert_eq!(j["differences"][3]["path"], "x\\ny");
        assert!(render_text(&[], 5, "t", None).starts_with("OK: t"));
    }
}
