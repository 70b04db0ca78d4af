//! Quoting of byte names for people and for JSON: one style for every tool.
//!
//! Invariant: every quoted name is unambiguous and reversible ([`unescape`]): a name with a
//! newline, a quote or bytes that are not UTF-8 never looks like another name. This module
//! imports nothing of the crate, so every other module may use it.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

/// serde's `serialize_with` for a path in JSON: [`json_path`] (any bytes, never an error on a
/// name that is not UTF-8).
pub fn serialize_path<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&json_path(p))
}

/// [`serialize_path`] for a list of paths.
pub fn serialize_paths<S: serde::Serializer>(
    ps: &[std::path::PathBuf],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(ps.iter().map(|p| json_path(p)))
}

/// [`serialize_path`] for a path that may be absent (null).
pub fn serialize_opt_path<S: serde::Serializer>(
    p: &Option<std::path::PathBuf>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&json_path(p)),
        None => s.serialize_none(),
    }
}

/// [`serialize_path`] for pairs of paths (`[[host, container], ...]`).
pub fn serialize_path_pairs<S: serde::Serializer>(
    ps: &[(std::path::PathBuf, std::path::PathBuf)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(ps.iter().map(|(a, b)| [json_path(a), json_path(b)]))
}

/// At most `max` characters of `s` for a message: the start, then `... (N bytes in all)`,
/// so that a 20 MB line never lands whole in one error.
pub fn excerpt(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(s),
        Some((end, _)) => {
            std::borrow::Cow::Owned(format!("{}... ({} bytes in all)", &s[..end], s.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_text_is_cut_to_an_excerpt() {
        let long = "x".repeat(20 << 20);
        let e = super::excerpt(&long, 80);
        assert!(e.len() < 120, "{}", e.len());
        assert!(e.ends_with("... (20971520 bytes in all)"), "{e}");
        assert_eq!(super::excerpt("short", 80), "short");
    }

    use super::*;

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
}
