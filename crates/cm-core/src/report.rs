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
            " ({} entries in the source, {} in the copy, {} files / {} bytes compared by content)",
            s.source_entries, s.copy_entries, s.files_hashed, s.bytes_hashed
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
        let _ = writeln!(
            out,
            "DIFFERENT: {what}: {} differences ({}){scope}",
            diffs.len(),
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
        let _ = writeln!(s, "DIFFERENT: {what}: {} problems", out.findings.len());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
