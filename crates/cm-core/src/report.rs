//! Differences and outcomes, grouped for humans and serialised for machines; quoting of
//! byte names.
//!
//! Invariant: every path printed goes through [`quote_path`] (or the escape used by the
//! manifest), which is unambiguous and reversible ([`unescape`]): a name with a newline, a
//! quote or bytes that are not UTF-8 never looks like another name.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::tree::{DiffKind, Difference, TreeStats};

/// Escape bytes: characters for which `keep` is true are written as they are; `\` becomes
/// `\\`, newline `\n`, tab `\t`, `"` becomes `\"` (when not kept), and every other byte
/// (control characters, bytes that are not UTF-8, characters not kept) `\xHH` per byte.
pub fn escape_with(bytes: &[u8], keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c != '\\' && keep(c) {
                out.push(c);
            } else {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '"' => out.push_str("\\\""),
                    _ => {
                        let mut b = [0u8; 4];
                        for x in c.encode_utf8(&mut b).bytes() {
                            let _ = write!(out, "\\x{x:02x}");
                        }
                    }
                }
            }
        }
        for x in chunk.invalid() {
            let _ = write!(out, "\\x{x:02x}");
        }
    }
    out
}

/// Reverse of [`escape_with`] (for any `keep`): `\\`, `\n`, `\t`, `\"`, `\xHH`.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'"') => out.push(b'"'),
            Some(b'x') => {
                let h = b
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!(
                            "bad escape at byte {} of {s:?}: \\x needs two hex digits",
                            i + 1
                        )
                    })?;
                out.push(h);
                i += 4;
                continue;
            }
            _ => return Err(format!("bad escape at byte {} of {s:?}", i + 1)),
        }
        i += 2;
    }
    Ok(out)
}

/// Bytes quoted for humans: `"..."`, printable characters (spaces and non-ASCII text
/// included) as they are, everything else escaped as in [`escape_with`].
pub fn quote_bytes(b: &[u8]) -> String {
    format!("\"{}\"", escape_with(b, |c| !c.is_control() && c != '"'))
}

/// [`quote_bytes`] for an OsStr.
pub fn quote_bytes_os(s: &OsStr) -> String {
    quote_bytes(s.as_bytes())
}

/// A path quoted for humans (see [`quote_bytes`]).
pub fn quote_path(p: &Path) -> String {
    quote_bytes(p.as_os_str().as_bytes())
}

/// A path escaped for JSON (no surrounding quotes; the same escapes as [`quote_bytes`], so
/// non-UTF-8 names survive).
pub fn json_path(p: &Path) -> String {
    escape_with(p.as_os_str().as_bytes(), |c| !c.is_control() && c != '"')
}

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
    fn quoting_is_unambiguous_and_reversible() {
        let cases: [&[u8]; 6] = [
            b"plain/cur/1234.M1P2.host,S=1234:2,S",
            b"new\nline",
            b"quote\"and\\back",
            b"\xff\xfe not utf8",
            "Entw\u{fc}rfe tab\there".as_bytes(),
            b"\x1b[31mred",
        ];
        for c in cases {
            let q = quote_bytes(c);
            assert!(q.starts_with('"') && q.ends_with('"'));
            let inner = &q[1..q.len() - 1];
            assert!(!inner.contains('\n'));
            assert_eq!(unescape(inner).unwrap(), c, "{q}");
        }
        assert_eq!(quote_bytes(b"a\nb"), "\"a\\nb\"");
        assert_eq!(quote_bytes(b"\xff"), "\"\\xff\"");
        assert!(unescape("\\q").is_err());
        assert!(unescape("\\x4").is_err());
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
