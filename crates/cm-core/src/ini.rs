//! chatmail.ini read exactly as chatmail reads it: with the rules of the `iniconfig` Python
//! package (`IniConfig(path).sections["params"]`).
//!
//! The rules, checked against iniconfig's own source (2.x):
//! - the file is UTF-8; a leading UTF-8 BOM is dropped;
//! - lines are split the way Python's `str.splitlines` does: on `\n`, `\r\n`, `\r`, and also
//!   on `\x0b \x0c \x1c \x1d \x1e \x85 U+2028 U+2029` (line numbers count those too);
//! - "whitespace" is Python's `str.isspace` (Unicode White_Space plus `\x1c..\x1f`);
//! - a line whose first non-blank character is `#` or `;` is a comment, as is a blank line;
//! - a line starting with `[` is a section header when, after cutting it at the first `#` and
//!   at the first `;`, it ends with `]`; the name is what lies between (not stripped).
//!   Otherwise the whole line is a continuation line (yes, iniconfig does that);
//! - an indented line continues the previous value: its stripped text is appended after a
//!   newline (or replaces the value when the value is empty). Blank and comment lines in
//!   between do not end a value. A continuation right after a section header, or before
//!   anything, is an error;
//! - any other line is `name = value`, split on the first `=`, unless the part before it
//!   contains a `:` (or there is no `=`), in which case it is split on the first `:`; both
//!   sides are stripped. A line with neither is an error. Inline `#`/`;` stay in the value;
//! - keys are case-sensitive; a duplicate key in one section, a duplicate section, an empty
//!   section name `[]`, or a key before any section header is an error.
//!
//! Errors name the file and 1-based line. Line-level errors are reported before structural
//! ones (duplicates, key before a section), as iniconfig does.

use std::fmt;
use std::path::Path;

/// One `key = value` of a section, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key exactly as written (stripped, case kept).
    pub key: String,
    /// The value as iniconfig returns it (stripped, continuation lines joined with `\n`).
    pub value: String,
    /// 1-based line of the `key = value` line.
    pub line: usize,
    /// 1-based line of the last line belonging to this entry (continuations included).
    pub end_line: usize,
}

/// One `[section]` and its entries, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// 1-based line of the header.
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    /// The entry for `key` (case-sensitive), if present.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value for `key` (case-sensitive), if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    /// 1-based line where `key` is set.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.entry(key).map(|e| e.line)
    }
}

/// A parsed ini file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniFile {
    /// The file name used in messages (the path as given).
    pub path: String,
    pub sections: Vec<Section>,
}

impl IniFile {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The `[params]` section chatmail reads; its absence is an error, as in chatmail.
    pub fn params(&self) -> Result<&Section, IniError> {
        self.section("params").ok_or_else(|| IniError::NoParams {
            path: self.path.clone(),
        })
    }
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxKind {
    /// Neither `=` nor `:` on a non-indented line.
    UnexpectedLine(String),
    /// An indented line with no value before it to continue.
    UnexpectedContinuation,
    /// `[]`.
    EmptySectionName,
    /// `key = value` before any `[section]`.
    NoSectionHeader(String),
    DuplicateKey {
        key: String,
        first: usize,
    },
    DuplicateSection {
        name: String,
        first: usize,
    },
}

/// [`py_repr`] of at most the first 80 characters, then the length: a 20 MB line never
/// lands whole in one message.
pub fn repr_excerpt(s: &str) -> String {
    match s.char_indices().nth(80) {
        None => py_repr(s),
        Some((end, _)) => format!("{}... ({} bytes in all)", py_repr(&s[..end]), s.len()),
    }
}

impl fmt::Display for SyntaxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxKind::UnexpectedLine(l) => write!(
                f,
                "unexpected line {}: expected 'key = value', '[section]', a comment or an indented continuation",
                repr_excerpt(l)
            ),
            SyntaxKind::UnexpectedContinuation => f.write_str(
                "indented line continues no value (unexpected value continuation); remove the indentation",
            ),
            SyntaxKind::EmptySectionName => f.write_str("empty section name '[]'"),
            SyntaxKind::NoSectionHeader(k) => write!(
                f,
                "key {} before any section header; put it under [params]",
                repr_excerpt(k)
            ),
            SyntaxKind::DuplicateKey { key, first } => {
                write!(f, "duplicate key {} (first set on line {first})", repr_excerpt(key))
            }
            SyntaxKind::DuplicateSection { name, first } => write!(
                f,
                "duplicate section {} (first on line {first})",
                py_repr(&format!("[{name}]"))
            ),
        }
    }
}

/// Why a chatmail.ini cannot be used. Every message names the file (and line when there is one).
#[derive(Debug, thiserror::Error)]
pub enum IniError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no such file; give the path of chatmail.ini (on a chatmail host: /usr/local/lib/chatmaild/chatmail.ini)")]
    NotFound { path: String },
    #[error("{path}: is a directory, not a chatmail.ini file")]
    IsDirectory { path: String },
    #[error("{path}: is a {kind}, not a regular file; give the path of chatmail.ini")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path}:{line}: not valid UTF-8 (byte {offset} of the file); chatmail reads chatmail.ini as UTF-8, re-save it as UTF-8")]
    InvalidUtf8 {
        path: String,
        line: usize,
        offset: usize,
    },
    #[error("{path}:{line}: {kind}")]
    Syntax {
        path: String,
        line: usize,
        kind: SyntaxKind,
    },
    #[error("{path}: no [params] section; chatmail reads its settings from [params]")]
    NoParams { path: String },
}

impl IniError {
    /// 1-based line the error is about, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            IniError::InvalidUtf8 { line, .. } | IniError::Syntax { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// Python's `str.isspace`.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.splitlines` boundaries (besides `\r\n`).
pub fn is_py_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `repr()` of a str, for messages (`'abc'`, quotes and control characters escaped).
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if py_nonprintable(c) => {
                let n = c as u32;
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `not str.isprintable()` for one character (controls, format characters, separators
/// other than the ASCII space, private use), as far as it matters for messages.
fn py_nonprintable(c: char) -> bool {
    c != ' '
        && (c.is_control()
            || c.is_whitespace()
            || matches!(c,
                '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
                | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
                | '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..))
}

/// Split like Python's `str.splitlines()` (terminators dropped).
pub fn py_splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if is_py_line_break(c) {
            lines.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = it.peek() {
                    it.next();
                    end = j + 1;
                }
            }
            start = end;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// [`py_splitlines`] with each line's own ending (`\n`, `\r\n`, `\r`, ...; empty for a
/// last line without one), so that text can be put back together byte for byte.
pub fn py_splitlines_keepends(s: &str) -> Vec<(&str, &str)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if is_py_line_break(c) {
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = it.peek() {
                    it.next();
                    end = j + 1;
                }
            }
            lines.push((&s[start..i], &s[i..end]));
            start = end;
        }
    }
    if start < s.len() {
        lines.push((&s[start..], ""));
    }
    lines
}

/// `rendered` (lines ending in `\n`) with the line ending `eol` instead.
fn with_eol(rendered: &str, eol: &str) -> String {
    if eol == "\n" || eol.is_empty() {
        rendered.to_string()
    } else {
        rendered.replace('\n', eol)
    }
}

enum Token {
    Section {
        name: String,
        line: usize,
    },
    Value {
        key: String,
        parts: Vec<String>,
        line: usize,
        end: usize,
    },
}

/// Parse ini text. `path` is only used in messages.
pub fn parse_str(path: &str, text: &str) -> Result<IniFile, IniError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let err = |(line, kind): (usize, SyntaxKind)| IniError::Syntax {
        path: path.to_string(),
        line,
        kind,
    };
    let sections = tokens(text).and_then(sections).map_err(err)?;
    Ok(IniFile {
        path: path.to_string(),
        sections,
    })
}

/// A syntax error and its line.
type LineError = (usize, SyntaxKind);

/// Pass 1: lines to tokens (line-level errors), continuation lines joined to their value.
fn tokens(text: &str) -> Result<Vec<Token>, LineError> {
    let mut tokens: Vec<Token> = Vec::new();
    for (idx, raw) in py_splitlines(text).into_iter().enumerate() {
        let lineno = idx + 1;
        let trimmed_left = raw.trim_start_matches(is_py_space);
        if trimmed_left.is_empty() || trimmed_left.starts_with(['#', ';']) {
            continue;
        }
        let line = raw.trim_end_matches(is_py_space);
        match line_token(line, lineno).map_err(|k| (lineno, k))? {
            Ok(t) => tokens.push(t),
            Err(data) => match tokens.last_mut() {
                Some(Token::Value { parts, end, .. }) => {
                    parts.push(data);
                    *end = lineno;
                }
                _ => return Err((lineno, SyntaxKind::UnexpectedContinuation)),
            },
        }
    }
    Ok(tokens)
}

/// What line `lineno` (neither blank nor a comment, trailing space cut) is: a section
/// header or a `name = value`, else (`Err`) a continuation of the value before, stripped.
fn line_token(line: &str, lineno: usize) -> Result<Result<Token, String>, SyntaxKind> {
    let first = line.chars().next().unwrap_or(' ');
    if first == '[' {
        let cut = line.split('#').next().unwrap_or("");
        let cut = cut.trim_end_matches(is_py_space);
        let cut = cut.split(';').next().unwrap_or("");
        let cut = cut.trim_end_matches(is_py_space);
        if !(cut.ends_with(']') && cut.len() >= 2) {
            return Ok(Err(py_strip(line).to_string()));
        }
        let name = &cut[1..cut.len() - 1];
        if name.is_empty() {
            return Err(SyntaxKind::EmptySectionName);
        }
        return Ok(Ok(Token::Section {
            name: name.to_string(),
            line: lineno,
        }));
    }
    if is_py_space(first) {
        return Ok(Err(py_strip(line).to_string()));
    }
    let (name, value) = match line.split_once('=') {
        Some((n, v)) if !n.contains(':') => (n, v),
        _ => line
            .split_once(':')
            .ok_or_else(|| SyntaxKind::UnexpectedLine(line.to_string()))?,
    };
    let value = py_strip(value);
    Ok(Ok(Token::Value {
        key: py_strip(name).to_string(),
        parts: if value.is_empty() {
            Vec::new()
        } else {
            vec![value.to_string()]
        },
        line: lineno,
        end: lineno,
    }))
}

/// Pass 2: tokens to sections (structural errors).
fn sections(tokens: Vec<Token>) -> Result<Vec<Section>, LineError> {
    let mut sections: Vec<Section> = Vec::new();
    for tok in tokens {
        match tok {
            Token::Section { name, line } => {
                if let Some(prev) = sections.iter().find(|s| s.name == name) {
                    let first = prev.line;
                    return Err((line, SyntaxKind::DuplicateSection { name, first }));
                }
                sections.push(Section {
                    name,
                    line,
                    entries: Vec::new(),
                });
            }
            Token::Value {
                key,
                parts,
                line,
                end,
            } => {
                let Some(sec) = sections.last_mut() else {
                    return Err((line, SyntaxKind::NoSectionHeader(key)));
                };
                if let Some(prev) = sec.entry(&key) {
                    let first = prev.line;
                    return Err((line, SyntaxKind::DuplicateKey { key, first }));
                }
                sec.entries.push(Entry {
                    key,
                    value: parts.join("\n"),
                    line,
                    end_line: end,
                });
            }
        }
    }
    Ok(sections)
}

/// Parse raw bytes: they must be UTF-8 (the error names the line of the first bad byte).
pub fn parse_bytes(path: &str, data: &[u8]) -> Result<IniFile, IniError> {
    match std::str::from_utf8(data) {
        Ok(text) => parse_str(path, text),
        Err(e) => {
            let offset = e.valid_up_to();
            let line = 1 + data[..offset].iter().filter(|&&b| b == b'\n').count();
            Err(IniError::InvalidUtf8 {
                path: path.to_string(),
                line,
                offset,
            })
        }
    }
}

/// Read and parse a file. Messages use the path as given.
pub fn read(path: &Path) -> Result<IniFile, IniError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(IniError::IsDirectory { path: shown });
    }
    // A FIFO or a device would block the read (or never end): refused before opening.
    if let Some(kind) = crate::fsutil::not_regular(path) {
        return Err(IniError::NotRegular { path: shown, kind });
    }
    let data = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            IniError::NotFound {
                path: shown.clone(),
            }
        } else {
            IniError::Io {
                path: shown.clone(),
                source,
            }
        }
    })?;
    parse_bytes(&shown, &data)
}

/// Why a value cannot be written into an ini file so that iniconfig reads it back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniValueError {
    #[error("value of {key} has leading or trailing whitespace, which iniconfig strips")]
    EdgeWhitespace { key: String },
    #[error("value of {key} has an empty line, a line with edge whitespace, or a line starting with '#' or ';', which iniconfig cannot read back")]
    BadLine { key: String },
    #[error("value of {key} contains a line break other than \\n")]
    LineBreak { key: String },
    #[error("key {0} cannot be written to an ini file")]
    BadKey(String),
}

/// The ini text of `key = value`, with continuation lines for values that contain `\n`.
/// Fails when iniconfig could not read the exact value back.
pub fn render_entry(key: &str, value: &str) -> Result<String, IniValueError> {
    if key.is_empty()
        || key != py_strip(key)
        || key.contains(['=', ':'])
        || key.starts_with(['#', ';', '['])
        || key.chars().any(is_py_line_break)
    {
        return Err(IniValueError::BadKey(key.to_string()));
    }
    if value.chars().any(|c| c != '\n' && is_py_line_break(c)) {
        return Err(IniValueError::LineBreak {
            key: key.to_string(),
        });
    }
    if value != py_strip(value) {
        return Err(IniValueError::EdgeWhitespace {
            key: key.to_string(),
        });
    }
    let mut lines = value.split('\n');
    let first = lines.next().unwrap_or("");
    if first != py_strip(first) {
        return Err(IniValueError::BadLine {
            key: key.to_string(),
        });
    }
    let mut out = if first.is_empty() {
        format!("{key} =")
    } else {
        format!("{key} = {first}")
    };
    for (i, l) in lines.enumerate() {
        // The first line may be empty only if the whole value is (then there is no '\n').
        if l.is_empty()
            || l != py_strip(l)
            || l.starts_with(['#', ';'])
            || (i == 0 && first.is_empty())
        {
            return Err(IniValueError::BadLine {
                key: key.to_string(),
            });
        }
        out.push_str("\n    ");
        out.push_str(l);
    }
    out.push('\n');
    Ok(out)
}

/// Set (Some) or remove (None) keys of one section in ini text, keeping every other line and
/// comment. An existing entry is replaced in place (with its continuation lines); a new key is
/// appended after the last entry of the section (the section is created at the end if missing).
/// Every untouched line keeps its bytes, its line ending included (a CRLF file stays CRLF);
/// a replaced or added line takes the ending of the line it replaces or follows. This is what
/// an applier inside the container uses to put environment values back into chatmail.ini.
pub fn update_section(
    text: &str,
    section: &str,
    updates: &[(String, Option<String>)],
) -> Result<String, IniUpdateError> {
    let parsed = parse_str("chatmail.ini", text).map_err(IniUpdateError::Parse)?;
    let mut rendered: Vec<(String, Option<String>)> = Vec::new();
    for (k, v) in updates {
        let r = match v {
            Some(v) => Some(render_entry(k, v).map_err(IniUpdateError::Value)?),
            None => None,
        };
        rendered.push((k.clone(), r));
    }
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = py_splitlines_keepends(body);
    // the file's own line ending, for lines that replace none
    let eol = lines
        .iter()
        .map(|l| l.1)
        .find(|e| !e.is_empty())
        .unwrap_or("\n");
    let edit = Edit::plan(&lines, parsed.section(section), &rendered, eol);
    let mut out = String::with_capacity(text.len() + edit.appended.len() + 16);
    if text.starts_with('\u{feff}') {
        out.push('\u{feff}');
    }
    edit.write(&lines, &mut out);
    if edit.insert_after.is_none() && !edit.appended.is_empty() {
        if !out.is_empty() && !out.ends_with(['\n', '\r']) {
            out.push_str(eol);
        }
        if !out.is_empty() && !out.ends_with(&format!("{eol}{eol}")) {
            out.push_str(eol);
        }
        out.push_str(&format!("[{section}]{eol}"));
        out.push_str(&edit.appended);
    }
    Ok(out)
}

/// The changes [`update_section`] makes to the lines of a file.
struct Edit<'a> {
    /// Line index (0-based) -> replacement text (Some("") = delete).
    replace: Vec<Option<String>>,
    /// Continuation lines of a replaced entry.
    skip: Vec<bool>,
    /// The new keys' lines.
    appended: String,
    /// The 1-based line the new keys follow (the section's last entry, or its header);
    /// None when the section is not there yet.
    insert_after: Option<usize>,
    eol: &'a str,
}

impl<'a> Edit<'a> {
    fn plan(
        lines: &[(&str, &str)],
        sec: Option<&Section>,
        rendered: &[(String, Option<String>)],
        eol: &'a str,
    ) -> Edit<'a> {
        let mut e = Edit {
            replace: vec![None; lines.len()],
            skip: vec![false; lines.len()],
            appended: String::new(),
            insert_after: sec.map(|s| s.entries.iter().map(|e| e.end_line).max().unwrap_or(s.line)),
            eol,
        };
        for (k, r) in rendered {
            match sec.and_then(|s| s.entry(k)) {
                Some(entry) => {
                    let end = lines.get(entry.end_line - 1).map_or(eol, |l| l.1);
                    let r = r.as_deref().map(|r| e.replacement(r, end));
                    e.replace[entry.line - 1] = Some(r.unwrap_or_default());
                    for s in e.skip.iter_mut().take(entry.end_line).skip(entry.line) {
                        *s = true;
                    }
                }
                None => {
                    if let Some(r) = r {
                        e.appended.push_str(&with_eol(r, eol));
                    }
                }
            }
        }
        e
    }

    /// `rendered` in place of an entry whose last line ended with `end` (a last line
    /// without an ending stays without one).
    fn replacement(&self, rendered: &str, end: &str) -> String {
        if end.is_empty() {
            let t = with_eol(rendered, self.eol);
            t.strip_suffix(self.eol).unwrap_or(&t).to_string()
        } else {
            with_eol(rendered, end)
        }
    }

    /// The lines with the replacements, the new keys after the section's last entry.
    fn write(&self, lines: &[(&str, &str)], out: &mut String) {
        for (i, (l, end)) in lines.iter().enumerate() {
            if !self.skip[i] {
                match &self.replace[i] {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push_str(l);
                        out.push_str(end);
                    }
                }
            }
            if self.insert_after == Some(i + 1) && !self.appended.is_empty() {
                if !out.is_empty() && !out.ends_with(['\n', '\r']) {
                    out.push_str(self.eol);
                }
                out.push_str(&self.appended);
            }
        }
    }
}

/// Why [`update_section`] failed.
#[derive(Debug, thiserror::Error)]
pub enum IniUpdateError {
    #[error(transparent)]
    Parse(IniError),
    #[error(transparent)]
    Value(IniValueError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_section_keeps_every_untouched_line_byte_for_byte_crlf_included() {
        let text = "[params]\r\n# keep me\r\nmail_domain = a.org\r\nmax_mailbox_size = 500m\r\n\r\n[privacy]\rx = 1";
        let up = |k: &str, v: &str| vec![(k.to_string(), Some(v.to_string()))];
        let out = update_section(text, "params", &up("max_mailbox_size", "1G")).unwrap();
        assert_eq!(
            out,
            "[params]\r\n# keep me\r\nmail_domain = a.org\r\nmax_mailbox_size = 1G\r\n\r\n[privacy]\rx = 1"
        );
        let out = update_section(text, "params", &up("max_message_size", "1000")).unwrap();
        assert_eq!(
            out,
            "[params]\r\n# keep me\r\nmail_domain = a.org\r\nmax_mailbox_size = 500m\r\nmax_message_size = 1000\r\n\r\n[privacy]\rx = 1"
        );
        // nothing set: nothing changes, not even the missing last line ending
        assert_eq!(update_section(text, "params", &[]).unwrap(), text);
    }

    fn params(text: &str) -> Vec<(String, String)> {
        let f = parse_str("t.ini", text).unwrap();
        f.params()
            .unwrap()
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn basics() {
        assert_eq!(
            params("[params]\na = 1 # not a comment\nb: 2\nc=\nd:e=f\ng=h:i\n"),
            vec![
                kv("a", "1 # not a comment"),
                kv("b", "2"),
                kv("c", ""),
                kv("d", "e=f"),
                kv("g", "h:i")
            ]
        );
    }

    #[test]
    fn continuation_joins_and_survives_blank_and_comment_lines() {
        assert_eq!(
            params("[params]\na = 1\n  x\n\n# c\n\ty\nb =\n  z\n"),
            vec![kv("a", "1\nx\ny"), kv("b", "z")]
        );
    }

    #[test]
    fn bom_crlf_and_odd_line_breaks() {
        assert_eq!(
            params("\u{feff}[params]\r\na = 1\r\nb = 2\x0cc = 3\r"),
            vec![kv("a", "1"), kv("b", "2"), kv("c", "3")]
        );
    }

    #[test]
    fn section_header_quirks() {
        // inline comment cut from a header
        assert!(parse_str("t", "[params] # x\na=1\n")
            .unwrap()
            .section("params")
            .is_some());
        // a header that does not end in ']' is a continuation line
        assert_eq!(
            params("[params]\na = 1\n[x;y]\n"),
            vec![kv("a", "1\n[x;y]")]
        );
        let e = parse_str("t", "[]\n").unwrap_err();
        assert_eq!(e.to_string(), "t:1: empty section name '[]'");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse_str(
            "chatmail.ini",
            "[params]\nmax_message_size = 1\n\n\n\n\nmax_message_size = 2\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "chatmail.ini:7: duplicate key 'max_message_size' (first set on line 2)"
        );
        let e = parse_str("c.ini", "a = 1\n[params]\n").unwrap_err();
        assert_eq!(e.line(), Some(1));
        let e = parse_str("c.ini", "[params]\n  x\n").unwrap_err();
        assert!(matches!(
            e,
            IniError::Syntax {
                line: 2,
                kind: SyntaxKind::UnexpectedContinuation,
                ..
            }
        ));
        let e = parse_str("c.ini", "[params]\nnovalue\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        let e = parse_str("c.ini", "[a]\n[b]\n[a]\n").unwrap_err();
        assert!(e
            .to_string()
            .contains("duplicate section '[a]' (first on line 1)"));
        // line-level errors come first, as in iniconfig
        let e = parse_str("c.ini", "[p]\na=1\na=2\nbad\n").unwrap_err();
        assert_eq!(e.line(), Some(4));
        let f = parse_str("c.ini", "[other]\na=1\n").unwrap();
        assert!(matches!(f.params(), Err(IniError::NoParams { .. })));
    }

    #[test]
    fn keys_are_case_sensitive() {
        assert_eq!(
            params("[params]\nA=1\na=2\n"),
            vec![kv("A", "1"), kv("a", "2")]
        );
    }

    #[test]
    fn invalid_utf8_names_line() {
        let e = parse_bytes("x.ini", b"[params]\na = \xff\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
    }

    #[test]
    fn render_and_update_round_trip() {
        let text = "# head\n[params]\nmail_domain = a.org\nx = 1\n  2\n# keep\n[other]\nq = 1\n";
        let out = update_section(
            text,
            "params",
            &[
                ("x".into(), Some("3".into())),
                ("y".into(), Some("multi\nline".into())),
                ("mail_domain".into(), None),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "# head\n[params]\nx = 3\ny = multi\n    line\n# keep\n[other]\nq = 1\n"
        );
        assert_eq!(params(&out), vec![kv("x", "3"), kv("y", "multi\nline")]);
        assert!(render_entry("k", " lead").is_err());
        assert!(render_entry("k", "a\n\nb").is_err());
        assert!(render_entry("k", "a\n#b").is_err());
    }

    #[test]
    fn py_helpers() {
        assert_eq!(py_splitlines("a\r\nb\rc\n"), vec!["a", "b", "c"]);
        assert_eq!(py_splitlines("a\n\nb"), vec!["a", "", "b"]);
        assert_eq!(py_strip("\x1f a \u{3000}"), "a");
        assert_eq!(py_repr("it's"), "\"it's\"");
    }
}
