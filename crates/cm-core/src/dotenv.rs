//! `.env` files as Docker Compose v2 reads them (the compose-go dotenv parser).
//!
//! The writer always produces `KEY="..."` with `\` `"` `$` newline and carriage return
//! escaped, which Compose reads back byte for byte whatever the value (NUL is refused: no
//! environment can carry it). The reader follows Compose's rules so that files edited by
//! hand are read as Compose reads them:
//! - a UTF-8 BOM is dropped; blank lines and lines starting with `#` are skipped;
//! - `export KEY=...`, `KEY=v` and `KEY: v`; key characters are letters, digits, `_ . - [ ]`;
//!   a bare `KEY` line takes its value from the given environment (or is skipped);
//! - unquoted values run to the end of the line, an inline comment starts at ` #`, trailing
//!   whitespace is trimmed, backslashes are literal, `$` expansion applies;
//! - single quotes: literal, only `\'` is an escape; double quotes: may span lines, escapes
//!   `\a \b \f \n \r \t \v \" \\ \$` and octal `\0NNN`, then `$` expansion;
//! - expansion: `$$` is `$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//!   `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`; a variable comes from the
//!   given environment first, then from earlier keys of the file; unset is empty; a `$` not
//!   followed by a name, `{` or `$` stays literal; a malformed `${...}` is an error, as in
//!   Compose (checked against the real binary in tests/tests/compose_dotenv*.rs).
//!
//! [`merge`] updates some keys of an existing file and keeps every other line and comment.

use std::collections::BTreeMap;
use std::path::Path;

/// Why a .env cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    #[error("variable name {0:?} is not usable: it must match [A-Za-z_][A-Za-z0-9_]*")]
    BadKey(String),
    #[error("value of {0} contains a NUL byte, which no environment variable can carry")]
    Nul(String),
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
}

impl DotenvError {
    /// The message located in a file: `path:line: message` (or `path: message`).
    pub fn at(&self, path: &str) -> String {
        match self {
            DotenvError::Syntax { line, message } => format!("{path}:{line}: {message}"),
            other => format!("{path}: {other}"),
        }
    }
}

/// Whether `key` can be written (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The double-quoted form of `value` that Compose reads back exactly.
pub fn quote(key: &str, value: &str) -> Result<String, DotenvError> {
    if value.contains('\0') {
        return Err(DotenvError::Nul(key.to_string()));
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// One `KEY="value"` line, with its newline.
pub fn line(key: &str, value: &str) -> Result<String, DotenvError> {
    if !valid_key(key) {
        return Err(DotenvError::BadKey(key.to_string()));
    }
    Ok(format!("{key}={}\n", quote(key, value)?))
}

/// A whole file: `header` lines (each prefixed with `# `), then one line per entry.
pub fn render(header: &[String], entries: &[(String, String)]) -> Result<String, DotenvError> {
    let mut out = String::new();
    for h in header {
        out.push_str("# ");
        out.push_str(&h.replace(['\n', '\r'], " "));
        out.push('\n');
    }
    for (k, v) in entries {
        out.push_str(&line(k, v)?);
    }
    Ok(out)
}

/// One assignment read from a .env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    pub key: String,
    pub value: String,
    /// 1-based line where the statement starts.
    pub line: usize,
    /// 1-based line where it ends (multi-line double-quoted values).
    pub end_line: usize,
}

fn go_is_space(c: char) -> bool {
    c.is_whitespace()
}

/// compose-go's `isSpace`: blanks but not the newline.
fn inline_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

fn valid_key_char(c: char) -> bool {
    matches!(c, '_' | '.' | '-' | '[' | ']') || c.is_alphabetic() || c.is_numeric()
}

struct Parser<'a> {
    src: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    fn line_at(&self, pos: usize) -> usize {
        let b = self.src.as_bytes();
        1 + b[..pos.min(b.len())]
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
    }

    fn err(&self, pos: usize, message: String) -> DotenvError {
        DotenvError::Syntax {
            line: self.line_at(pos),
            message,
        }
    }

    fn parse(&self) -> Result<Vec<EnvEntry>, DotenvError> {
        let mut out: Vec<EnvEntry> = Vec::new();
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut pos = 0;
        while let Some(start) = self.statement(pos) {
            let key_start = self.after_export(start);
            let (key, value_start, inherited) = self.key(start, key_start)?;
            pos = self.skip_inline(value_start);
            let (value, last) = if inherited {
                // `KEY` alone: the calling environment's value, if it has one
                let Some(v) = (self.lookup)(&key) else {
                    continue;
                };
                (v, start)
            } else {
                let (v, end) = self.value(pos, &vars)?;
                pos = end;
                (v, pos.saturating_sub(1).max(start))
            };
            vars.insert(key.clone(), value.clone());
            out.push(EnvEntry {
                key,
                value,
                line: self.line_at(start),
                end_line: self.line_at(last),
            });
        }
        Ok(out)
    }

    /// Where the next statement starts at or after `pos` (whitespace and comment lines
    /// skipped), None at the end.
    fn statement(&self, mut pos: usize) -> Option<usize> {
        let s = self.src;
        loop {
            pos += s[pos..].find(|c: char| !go_is_space(c))?;
            if !s[pos..].starts_with('#') {
                return Some(pos);
            }
            pos += s[pos..].find('\n')?;
        }
    }

    fn skip_inline(&self, pos: usize) -> usize {
        let rest = &self.src[pos..];
        pos + rest.len() - rest.trim_start_matches(inline_space).len()
    }

    /// Past an `export` prefix (`export` followed by [\t\n\f\r ]) at `pos`, if any.
    fn after_export(&self, pos: usize) -> usize {
        match self.src[pos..].strip_prefix("export") {
            Some(after) if after.starts_with(['\t', '\n', '\x0c', '\r', ' ']) => {
                self.skip_inline(pos + "export".len())
            }
            _ => pos,
        }
    }

    /// The key of the statement at `start` (read from `key_start`): the key, where its value
    /// starts, and whether it has none (`KEY` alone on its line: inherited).
    fn key(&self, start: usize, key_start: usize) -> Result<(String, usize, bool), DotenvError> {
        let s = self.src;
        let mut term: Option<(usize, char)> = None;
        for (i, c) in s[key_start..].char_indices() {
            if inline_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    term = Some((key_start + i, c));
                    break;
                }
                c if valid_key_char(c) => continue,
                c => {
                    let l = s[key_start..].split('\n').next().unwrap_or("");
                    return Err(self.err(
                        key_start + i,
                        format!("unexpected character {c:?} in variable name {l:?}"),
                    ));
                }
            }
        }
        let (key_end, value_start, inherited) = match term {
            Some((i, c)) => (i, i + c.len_utf8(), c == '\n'),
            None => (key_start, key_start, false),
        };
        let key = s[key_start..key_end].trim_end_matches(go_is_space);
        if key.contains(' ') {
            return Err(self.err(start, "key cannot contain a space".into()));
        }
        Ok((key.to_string(), value_start, inherited))
    }

    /// The value starting at `pos` (quoted, or to the end of the line less a ` #` comment),
    /// expanded with the variables so far; and where the statement ends.
    fn value(
        &self,
        pos: usize,
        vars: &BTreeMap<String, String>,
    ) -> Result<(String, usize), DotenvError> {
        let rest = &self.src[pos..];
        if let Some(q @ ('"' | '\'')) = rest.chars().next() {
            let Some((chars, end)) = quoted(rest, q) else {
                let l = rest.split('\n').next().unwrap_or("");
                return Err(self.err(pos, format!("unterminated quoted value {l}")));
            };
            let value = if q == '"' {
                self.expand(&expand_escapes(&chars), vars, pos)?
            } else {
                chars
            };
            return Ok((value, pos + end + 1));
        }
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let mut v = &rest[..line_end];
        if let Some(i) = v.find(" #") {
            v = &v[..i];
        }
        let v = v.trim_end_matches(go_is_space);
        Ok((self.expand(v, vars, pos)?, pos + line_end))
    }

    fn expand(
        &self,
        v: &str,
        vars: &BTreeMap<String, String>,
        pos: usize,
    ) -> Result<String, DotenvError> {
        let lookup = |name: &str| -> Option<String> {
            (self.lookup)(name).or_else(|| vars.get(name).cloned())
        };
        substitute(v, &lookup).map_err(|m| self.err(pos, m))
    }
}

/// The body of the value quoted with `q` that `rest` starts with (a backslash kept before
/// anything but `q`), and the offset of its closing quote; None when it is not closed.
fn quoted(rest: &str, q: char) -> Option<(String, usize)> {
    let mut chars = String::new();
    let mut esc = false;
    for (i, c) in rest.char_indices().skip(1) {
        if esc {
            esc = false;
            if c != q {
                chars.push('\\');
            }
            chars.push(c);
            continue;
        }
        if c == '\\' {
            esc = true;
        } else if c == q {
            return Some((chars, i));
        } else {
            chars.push(c);
        }
    }
    None
}

/// compose-go's `expandEscapes` for double-quoted values.
fn expand_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        let c = b[i + 1];
        let simple = match c {
            b'a' => Some("\x07"),
            b'b' => Some("\x08"),
            b'f' => Some("\x0c"),
            b'n' => Some("\n"),
            b'r' => Some("\r"),
            b't' => Some("\t"),
            b'v' => Some("\x0b"),
            b'"' => Some("\""),
            b'\\' => Some("\\"),
            b'$' => Some("$$"),
            b'c' => Some("\\c"), // in the regex, but not a Go escape: stays as is
            _ => None,
        };
        if let Some(r) = simple {
            out.push_str(&s[last..i]);
            out.push_str(r);
            i += 2;
            last = i;
            continue;
        }
        if c == b'0' {
            // `\0` then up to three digits; valid only as exactly three octal digits <= 0o377
            let mut j = i + 2;
            while j < b.len() && j < i + 5 && b[j].is_ascii_digit() {
                j += 1;
            }
            let digits = &s[i + 2..j];
            out.push_str(&s[last..i]);
            let ok = digits.len() == 3
                && digits.bytes().all(|d| (b'0'..=b'7').contains(&d))
                && u32::from_str_radix(digits, 8).is_ok_and(|v| v <= 0o377);
            if ok {
                let v = u32::from_str_radix(digits, 8).unwrap_or(0);
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            } else {
                out.push_str(&s[i..j]);
            }
            i = j;
            last = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Compose's variable substitution (`$$`, `$VAR`, `${VAR...}`); errors are messages.
pub fn substitute(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some(c) if is_name_start(c) => {
                let n = after
                    .find(|c: char| !is_name_char(c))
                    .unwrap_or(after.len());
                out.push_str(&lookup(&after[..n]).unwrap_or_default());
                rest = &after[n..];
            }
            Some('{') => {
                let body = &after[1..];
                let invalid = || format!("invalid template: {s:?}");
                let close = closing_brace(body).ok_or_else(invalid)?;
                out.push_str(
                    &braced(&body[..close], lookup).map_err(|e| e.unwrap_or_else(invalid))?,
                );
                rest = &body[close + 1..];
            }
            // a `$` not followed by a name, `{` or `$` is a literal `$`
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The offset of the `}` that closes a `${` whose body `body` is (nested `${` counted).
fn closing_brace(body: &str) -> Option<usize> {
    let bb = body.as_bytes();
    let mut depth = 1;
    let mut j = 0;
    while j < bb.len() {
        if bb[j] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
        } else if bb[j] == b'$' && bb.get(j + 1) == Some(&b'{') {
            depth += 1;
            j += 1;
        }
        j += 1;
    }
    None
}

/// What `${inner}` stands for: `NAME`, or `NAME` with `:-`, `-`, `:?`, `?`, `:+` or `+` and
/// its operand. An error is `None` for an invalid template, or the message.
fn braced(inner: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Option<String>> {
    let n = inner
        .find(|c: char| !is_name_char(c))
        .unwrap_or(inner.len());
    let name = &inner[..n];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(None);
    }
    let op = &inner[n..];
    let val = lookup(name);
    // compose substitutes the operand first, even when it is not used
    let (kind, operand) = ["", ":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .rev()
        .find_map(|k| op.strip_prefix(k).map(|rest| (*k, rest)))
        .filter(|(k, rest)| !k.is_empty() || rest.is_empty())
        .ok_or(None)?;
    let operand = substitute(operand, lookup)?;
    let set = val.is_some();
    let nonempty = val.as_deref().is_some_and(|v| !v.is_empty());
    Ok(match kind {
        "" => val.unwrap_or_default(),
        ":-" if nonempty => val.unwrap_or_default(),
        ":-" => operand,
        "-" if set => val.unwrap_or_default(),
        "-" => operand,
        ":?" if nonempty => val.unwrap_or_default(),
        "?" if set => val.unwrap_or_default(),
        ":?" | "?" => {
            return Err(Some(format!(
                "required variable {name} is missing a value: {operand}"
            )))
        }
        ":+" if nonempty => operand,
        "+" if set => operand,
        _ => String::new(),
    })
}

/// Parse .env text with Compose v2's rules; `lookup` is the calling environment.
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<EnvEntry>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Parser { src: text, lookup }.parse()
}

/// Parse with an empty calling environment; later keys override earlier ones.
pub fn parse_map(text: &str) -> Result<BTreeMap<String, String>, DotenvError> {
    Ok(parse(text, &|_| None)?
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect())
}

/// Why a .env file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid UTF-8")]
    Utf8 { path: String },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{message}")]
    Other { message: String },
}

/// Read a .env file as Compose would (empty calling environment).
pub fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ReadError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| ReadError::Io {
        path: shown.clone(),
        source,
    })?;
    let text = String::from_utf8(data).map_err(|_| ReadError::Utf8 {
        path: shown.clone(),
    })?;
    parse_map(&text).map_err(|e| match e {
        DotenvError::Syntax { line, message } => ReadError::Syntax {
            path: shown,
            line,
            message,
        },
        other => ReadError::Other {
            message: other.at(&shown),
        },
    })
}

/// The name of a backup kept beside `path` before it is replaced:
/// `<name>.bak-YYYYMMDDTHHMMSSZ` (UTC), with `-N` added if that name is taken.
pub fn backup_path(path: &Path, now: std::time::SystemTime) -> std::path::PathBuf {
    let stamp = crate::fsutil::utc_stamp(now);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".env".into());
    let mut candidate = path.with_file_name(format!("{name}.bak-{stamp}"));
    let mut n = 1;
    while candidate.symlink_metadata().is_ok() {
        candidate = path.with_file_name(format!("{name}.bak-{stamp}-{n}"));
        n += 1;
    }
    candidate
}

/// What [`merge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Keys whose line was replaced in place.
    pub updated: Vec<String>,
    /// Keys appended at the end.
    pub added: Vec<String>,
    /// Keys whose lines were removed (listed in `remove`, or later duplicates).
    pub removed: Vec<String>,
}

/// Update an existing .env: each key of `set` replaces its first definition in place (later
/// definitions of it are dropped, since they would override it) or is appended after
/// `append_header` (comment lines); every definition of a key in `remove` is dropped; every
/// other line, comment and blank line is kept byte for byte.
pub fn merge(
    existing: &str,
    set: &[(String, String)],
    remove: &[String],
    append_header: &[String],
) -> Result<(String, MergeReport), DotenvError> {
    let bom = existing.starts_with('\u{feff}');
    let body = existing.strip_prefix('\u{feff}').unwrap_or(existing);
    let entries = parse(body, &|_| None)?;
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    let mut replace: Vec<Option<String>> = vec![None; lines.len()];
    let mut drop = vec![false; lines.len()];
    let mut report = MergeReport::default();
    let mut done: Vec<&str> = Vec::new();
    for e in &entries {
        let new = set.iter().find(|(k, _)| *k == e.key);
        let gone = remove.contains(&e.key);
        if new.is_none() && !gone {
            continue;
        }
        for d in drop.iter_mut().take(e.end_line).skip(e.line - 1) {
            *d = true;
        }
        match new {
            Some((k, v)) if !done.contains(&k.as_str()) => {
                replace[e.line - 1] = Some(line(k, v)?);
                done.push(k);
                report.updated.push(k.clone());
            }
            _ => report.removed.push(e.key.clone()),
        }
    }
    refuse_shared_lines(&entries, set, remove, &drop)?;
    let mut out = String::with_capacity(existing.len() + 64);
    if bom {
        out.push('\u{feff}');
    }
    for (i, l) in lines.iter().enumerate() {
        if let Some(r) = &replace[i] {
            out.push_str(r);
        } else if !drop[i] {
            out.push_str(l);
        }
    }
    let missing: Vec<(String, String)> = set
        .iter()
        .filter(|(k, _)| !done.contains(&k.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&render(append_header, &missing)?);
        report.added.extend(missing.into_iter().map(|(k, _)| k));
    }
    Ok((out, report))
}

/// An untouched assignment sharing a line with a replaced or dropped one (`drop`, per
/// line) would be lost: refused.
fn refuse_shared_lines(
    entries: &[EnvEntry],
    set: &[(String, String)],
    remove: &[String],
    drop: &[bool],
) -> Result<(), DotenvError> {
    for e in entries {
        let touched = set.iter().any(|(k, _)| *k == e.key) || remove.contains(&e.key);
        if !touched && (e.line - 1..e.end_line).any(|i| drop.get(i) == Some(&true)) {
            return Err(DotenvError::Syntax {
                line: e.line,
                message: format!(
                    "{} shares its line with another assignment; put each on its own line before merging",
                    e.key
                ),
            });
        }
    }
    Ok(())
}

/// The variables a compose file interpolates (`$NAME`, `${NAME}`, `${NAME:-default}`, ...;
/// `$$` is a literal dollar). Only these can the calling shell's environment override: values
/// a service gets from `env_file:` are the file's, whatever the shell has.
pub fn interpolated_names(compose_text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let b = compose_text.as_bytes();
    let name_at = |i: usize| -> String {
        b[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .map(|&c| c as char)
            .collect()
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'{') => {
                let n = name_at(i + 2);
                i += 2 + n.len();
                if !n.is_empty() {
                    out.insert(n);
                }
            }
            _ => {
                let n = name_at(i + 1);
                i += 1 + n.len();
                if n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                    out.insert(n);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn interpolated_names_are_found_and_double_dollars_are_not() {
        let n = super::interpolated_names(
            "x: ${MAIL_DOMAIN}\ny: $MAX_MAILBOX_SIZE/z\nw: $${NOT_ME} ${A:-1} $$B\n",
        );
        let n: Vec<&str> = n.iter().map(String::as_str).collect();
        assert_eq!(n, ["A", "MAIL_DOMAIN", "MAX_MAILBOX_SIZE"]);
    }

    use super::*;

    fn m(text: &str) -> BTreeMap<String, String> {
        parse_map(text).unwrap()
    }

    #[test]
    fn writer_round_trips_nasty_values() {
        let vals = [
            "",
            "plain",
            "a$b",
            "${X}",
            "$$",
            "q\"uote",
            "back\\",
            "\\n literal",
            " edge ",
            "multi\nline\r\n",
            "tab\there",
            "#hash",
            "a #b",
            "'single'",
            "ünïcödé ✓",
            "k=v",
            "\\0123",
            "\\$",
            "$",
        ];
        for v in vals {
            let text = line("K", v).unwrap();
            assert_eq!(m(&text).get("K").map(String::as_str), Some(v), "{text}");
        }
        assert!(line("K", "a\0b").is_err());
        assert!(line("1K", "x").is_err());
        assert!(line("K-1", "x").is_err());
    }

    #[test]
    fn reader_follows_compose() {
        let got = m("\u{feff}# c\nexport A=1\nB: two words  # comment\nC=a#b\nD='x\\'y $A'\nE=\"$A-${B}\"\nF=a$$b\nG=\nH=\"l1\nl2\"\nI = ${Z:-dflt}\nJ=\\x41\n");
        let want: BTreeMap<String, String> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "a#b"),
            ("D", "x'y $A"),
            ("E", "1-two words"),
            ("F", "a$b"),
            ("G", ""),
            ("H", "l1\nl2"),
            ("I", "dflt"),
            ("J", "\\x41"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
        assert!(parse_map("A=\"unterminated\n").is_err());
        assert!(parse_map("A=${\n").is_err());
        assert_eq!(m("A=x$ $1 $}\n")["A"], "x$ $1 $}");
        assert!(parse_map("A=${1}\n").is_err());
        assert!(parse_map("A B=1\n").is_err());
        let inherited = parse("HOME\n", &|k| (k == "HOME").then(|| "/root".to_string())).unwrap();
        assert_eq!(inherited[0].value, "/root");
    }

    #[test]
    fn backup_name_is_utc_stamp() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let p = backup_path(Path::new("/nonexistent/dir/.env"), t);
        assert_eq!(p, Path::new("/nonexistent/dir/.env.bak-20261118T110640Z"));
    }

    #[test]
    fn multibyte_value_at_end_of_file() {
        assert_eq!(m("A=é")["A"], "é");
        assert_eq!(m("A=x\\é\n")["A"], "x\\é");
        assert_eq!(parse("A=\"é\"", &|_| None).unwrap()[0].end_line, 1);
    }

    #[test]
    fn escapes() {
        assert_eq!(m("A=\"\\0101\\t\\q\"\n")["A"], "A\t\\q");
        assert_eq!(m("A=\"\\012\"\n")["A"], "\\012");
    }

    #[test]
    fn merge_keeps_foreign_lines() {
        let old = "# mine\nCOMPOSE_PROJECT_NAME=chatmail\nMAIL_DOMAIN=\"old.org\"\nX=\"multi\nline\"\n\nMAIL_DOMAIN=again\nGONE=1\n";
        let (new, rep) = merge(
            old,
            &[
                ("MAIL_DOMAIN".into(), "new.org".into()),
                ("X".into(), "y".into()),
                ("ADDED".into(), "$".into()),
            ],
            &["GONE".into()],
            &["from chatmail.ini".into()],
        )
        .unwrap();
        assert_eq!(
            new,
            "# mine\nCOMPOSE_PROJECT_NAME=chatmail\nMAIL_DOMAIN=\"new.org\"\nX=\"y\"\n\n# from chatmail.ini\nADDED=\"\\$\"\n"
        );
        assert_eq!(rep.updated, vec!["MAIL_DOMAIN", "X"]);
        assert_eq!(rep.added, vec!["ADDED"]);
        assert_eq!(rep.removed, vec!["MAIL_DOMAIN", "GONE"]);
        assert_eq!(m(&new)["ADDED"], "$");
        let shared = merge("A=\"1\" B=\"2\"\n", &[("A".into(), "x".into())], &[], &[]);
        assert!(
            matches!(shared, Err(DotenvError::Syntax { line: 1, .. })),
            "{shared:?}"
        );
    }
}
