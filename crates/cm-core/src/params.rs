//! chatmail's parameters: every key of releases 1.1 to 1.12 (and the Docker branch), with
//! its default (as of 1.12), its type, and how chatmail interprets a value, so that values
//! are compared the way chatmail reads them: `False` equals the default `false`, `500m`
//! equals `500M`, `+60` equals `60`.
//!
//! This module is shared by cm-ini-to-env (what to write), cm-verify (ini vs .env) and the
//! start-up applier of the Docker image (env back onto chatmail.ini): use [`lookup`],
//! [`from_env_key`], [`values_equal`], [`diff_env`] and [`convert`].
//!
//! Invariant: for a known key, [`values_equal`] is true exactly when chatmail would behave
//! the same with either value (an absent key counts as its default; for `iroh_relay`
//! absent and empty differ).

use std::collections::BTreeMap;
use std::fmt;

use crate::ini::{py_repr, py_strip, IniError, IniFile, Section};

/// How chatmail interprets a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `mail_domain`: a domain, an IPv4 address, or a `_`-prefixed test domain. Required.
    Domain,
    /// Python `int()`: optional sign, decimal digits, `_` between digits, edge spaces.
    Int,
    /// Python `float()`.
    Float,
    /// Only `true` in any case is true; anything else is false.
    Bool,
    /// A number with optional `M` or `G`, optional trailing `B`, any case; bare = MB.
    Size,
    /// A file-system path (compared exactly).
    Path,
    /// Free text (compared exactly).
    Str,
    /// A space-separated list (compared word by word).
    Words,
    /// `iroh_relay`: unset means "run the local relay"; any value, even empty, disables it.
    IrohRelay,
    /// `mtail_address`: unset or empty means mtail does not run.
    Address,
    /// `tls_external_cert_and_key`: empty, or exactly two space-separated paths.
    CertAndKey,
}

/// Where a key stands in chatmail's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Read by chatmail 1.12.
    Active,
    /// Still read, but deprecated.
    Deprecated,
    /// No longer read (since the release in `until`).
    Unused,
    /// Only read by chatmail's Docker branch.
    DockerOnly,
}

/// One chatmail parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Param {
    /// The ini key (lowercase, case-sensitive in the ini).
    pub name: &'static str,
    /// The default as of 1.12 (`None`: unset; for `mail_domain`: required).
    pub default: Option<&'static str>,
    pub kind: Kind,
    /// First release whose template or code has the key.
    pub since: &'static str,
    /// Release from which the key is no longer read (for `Status::Unused`).
    pub until: Option<&'static str>,
    pub status: Status,
    /// One line for humans.
    pub doc: &'static str,
}

impl Param {
    /// The .env / environment variable name: the key uppercased.
    pub fn env_key(&self) -> String {
        self.name.to_ascii_uppercase()
    }
}

const fn p(
    name: &'static str,
    default: Option<&'static str>,
    kind: Kind,
    since: &'static str,
    doc: &'static str,
) -> Param {
    Param {
        name,
        default,
        kind,
        since,
        until: None,
        status: Status::Active,
        doc,
    }
}

/// Every known key, in a stable order (the order of the 1.12 template, then the rest).
/// The .env is written in this order.
pub static PARAMS: &[Param] = &[
    p(
        "mail_domain",
        None,
        Kind::Domain,
        "1.1",
        "the relay's mail domain (required)",
    ),
    p(
        "max_user_send_per_minute",
        Some("60"),
        Kind::Int,
        "1.1",
        "mails a user may send per minute",
    ),
    p(
        "max_user_send_burst_size",
        Some("10"),
        Kind::Int,
        "1.10",
        "burst size of the send rate limit",
    ),
    p(
        "max_mailbox_size",
        Some("500M"),
        Kind::Size,
        "1.1",
        "mailbox quota (100M before 1.10)",
    ),
    p(
        "max_message_size",
        Some("31457280"),
        Kind::Int,
        "1.4",
        "largest message, in bytes, no suffix",
    ),
    p(
        "delete_mails_after",
        Some("20"),
        Kind::Int,
        "1.1",
        "days after which mails are deleted (40 in 1.1)",
    ),
    p(
        "delete_large_after",
        Some("7"),
        Kind::Int,
        "1.7",
        "days after which large mails are deleted",
    ),
    p(
        "delete_inactive_users_after",
        Some("90"),
        Kind::Int,
        "1.4",
        "days after which inactive users are deleted",
    ),
    p(
        "username_min_length",
        Some("9"),
        Kind::Int,
        "1.1",
        "shortest username",
    ),
    p(
        "username_max_length",
        Some("9"),
        Kind::Int,
        "1.1",
        "longest username",
    ),
    p(
        "password_min_length",
        Some("9"),
        Kind::Int,
        "1.1",
        "shortest password",
    ),
    p(
        "max_load_1m",
        Some("5"),
        Kind::Float,
        "1.12",
        "1-minute load above which new addresses are refused",
    ),
    p(
        "min_available_memory",
        Some("200M"),
        Kind::Size,
        "1.12",
        "memory below which new addresses are refused",
    ),
    p(
        "min_free_disk_space",
        Some("1G"),
        Kind::Size,
        "1.12",
        "free disk below which new addresses are refused",
    ),
    p(
        "max_imap_connections",
        Some("10000"),
        Kind::Int,
        "1.12",
        "dovecot imap process limit",
    ),
    p(
        "max_smtp_connections",
        Some("1000"),
        Kind::Int,
        "1.12",
        "postfix process limit per submission port",
    ),
    p(
        "tls_external_cert_and_key",
        Some(""),
        Kind::CertAndKey,
        "1.10",
        "externally managed certificate and key paths",
    ),
    p(
        "www_folder",
        Some(""),
        Kind::Path,
        "1.8",
        "custom web pages directory",
    ),
    p(
        "disable_ipv6",
        Some("false"),
        Kind::Bool,
        "1.4",
        "disable IPv6",
    ),
    p(
        "acme_email",
        Some(""),
        Kind::Str,
        "1.8",
        "e-mail address given to Let's Encrypt",
    ),
    p(
        "iroh_relay",
        None,
        Kind::IrohRelay,
        "1.5",
        "external iroh relay URL; set (even empty) disables the local one",
    ),
    p(
        "mtail_address",
        None,
        Kind::Address,
        "1.5",
        "address mtail listens on; unset means no mtail",
    ),
    p(
        "imap_rawlog",
        Some("false"),
        Kind::Bool,
        "1.7",
        "log IMAP protocol to .in/.out files",
    ),
    p(
        "imap_compress",
        Some("false"),
        Kind::Bool,
        "1.8",
        "enable IMAP COMPRESS",
    ),
    p(
        "turn_socket_path",
        Some("/run/chatmail-turn/turn.socket"),
        Kind::Path,
        "1.8",
        "socket of the TURN server",
    ),
    p(
        "filtermail_smtp_port",
        Some("10080"),
        Kind::Int,
        "1.1",
        "outgoing filtermail SMTP port",
    ),
    p(
        "postfix_reinject_port",
        Some("10025"),
        Kind::Int,
        "1.1",
        "postfix reinjection port (outgoing)",
    ),
    p(
        "filtermail_smtp_port_incoming",
        Some("10081"),
        Kind::Int,
        "1.6",
        "incoming filtermail SMTP port",
    ),
    p(
        "postfix_reinject_port_incoming",
        Some("10026"),
        Kind::Int,
        "1.6",
        "postfix reinjection port (incoming)",
    ),
    p(
        "filtermail_http_port_incoming",
        Some("10082"),
        Kind::Int,
        "1.11",
        "incoming filtermail HTTP port",
    ),
    p(
        "filtermail_lmtp_port_transport",
        Some("10083"),
        Kind::Int,
        "1.11",
        "filtermail transport LMTP port",
    ),
    p(
        "privacy_postal",
        Some(""),
        Kind::Str,
        "1.1",
        "postal address of the privacy contact",
    ),
    p(
        "privacy_mail",
        Some(""),
        Kind::Str,
        "1.1",
        "e-mail address of the privacy contact",
    ),
    p(
        "privacy_pdo",
        Some(""),
        Kind::Str,
        "1.1",
        "postal address of the data protection officer",
    ),
    p(
        "privacy_supervisor",
        Some(""),
        Kind::Str,
        "1.1",
        "postal address of the privacy supervisor",
    ),
    Param {
        status: Status::Deprecated,
        ..p(
            "mailboxes_dir",
            None,
            Kind::Path,
            "1.1",
            "the mailbox directory, by default /home/vmail/mail/<mail_domain>",
        )
    },
    Param {
        status: Status::Deprecated,
        ..p(
            "passdb_path",
            Some("/home/vmail/passdb.sqlite"),
            Kind::Path,
            "1.1",
            "legacy sqlite password database, only read for a first migration",
        )
    },
    Param {
        status: Status::Unused,
        until: Some("1.11"),
        ..p(
            "passthrough_senders",
            Some(""),
            Kind::Words,
            "1.1",
            "unused since 1.11: senders allowed to send unencrypted mail",
        )
    },
    Param {
        status: Status::Unused,
        until: Some("1.11"),
        ..p(
            "passthrough_recipients",
            Some(""),
            Kind::Words,
            "1.1",
            "unused since 1.11: recipients of unencrypted mail",
        )
    },
    Param {
        status: Status::DockerOnly,
        ..p(
            "change_kernel_settings",
            Some("True"),
            Kind::Bool,
            "docker",
            "Docker branch only: set kernel inotify limits",
        )
    },
    Param {
        status: Status::DockerOnly,
        ..p(
            "fs_inotify_max_user_instances_and_watchers",
            Some("65535"),
            Kind::Int,
            "docker",
            "Docker branch only: inotify limits",
        )
    },
];

/// The chatmail releases whose settings [`PARAMS`] describes, derived from the table itself
/// (every `since` and `until`), so that `--version` never claims more than the table knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownReleases {
    /// The oldest numbered release the table has a key of (e.g. "1.1").
    pub oldest: &'static str,
    /// The newest numbered release the table has a key of (e.g. "1.12").
    pub newest: &'static str,
    /// Whether keys only chatmail's Docker branch reads are known too.
    pub docker_branch: bool,
}

impl fmt::Display for KnownReleases {
    /// `chatmail 1.1 to 1.12 and its Docker branch`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chatmail {} to {}", self.oldest, self.newest)?;
        if self.docker_branch {
            write!(f, " and its Docker branch")?;
        }
        Ok(())
    }
}

/// The releases [`PARAMS`] covers (see [`KnownReleases`]).
pub fn known_releases() -> KnownReleases {
    let numbered = || {
        PARAMS
            .iter()
            .flat_map(|p| std::iter::once(p.since).chain(p.until))
            .filter_map(|r| release_number(r).map(|n| (n, r)))
    };
    let oldest = numbered().min().map_or("?", |(_, r)| r);
    let newest = numbered().max().map_or("?", |(_, r)| r);
    KnownReleases {
        oldest,
        newest,
        docker_branch: PARAMS.iter().any(|p| p.status == Status::DockerOnly),
    }
}

/// `"1.12"` -> `Some((1, 12))`; anything not `MAJOR.MINOR` (such as `"docker"`) -> None.
fn release_number(release: &str) -> Option<(u32, u32)> {
    let (major, minor) = release.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The parameter named `key` (case-sensitive, as chatmail reads it).
pub fn lookup(key: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == key)
}

/// The parameter whose environment variable is `env_key` (exactly the uppercased key).
pub fn from_env_key(env_key: &str) -> Option<&'static Param> {
    PARAMS
        .iter()
        .find(|p| p.name.len() == env_key.len() && p.name.to_ascii_uppercase() == env_key)
}

/// The environment variable name for an ini key (uppercased).
pub fn env_key(ini_key: &str) -> String {
    ini_key.to_ascii_uppercase()
}

/// Python `int()` of a str: the canonical decimal form, or None if Python would raise.
pub fn parse_py_int(s: &str) -> Option<String> {
    let s = py_strip(s);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let trimmed = clean.trim_start_matches('0');
    if trimmed.is_empty() {
        return Some("0".into());
    }
    Some(if neg {
        format!("-{trimmed}")
    } else {
        trimmed.to_string()
    })
}

/// Python `float()` of a str, or None if Python would raise.
pub fn parse_py_float(s: &str) -> Option<f64> {
    let s = py_strip(s);
    if s.is_empty() {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") && lower.len() - body.len() <= 1 {
        return lower
            .parse::<f64>()
            .ok()
            .or(Some(if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }));
    }
    // underscores only between digits
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let ok =
                i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit();
            if !ok {
                return None;
            }
        } else if !(c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')) {
            return None;
        }
    }
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    clean.parse::<f64>().ok()
}

/// A size in bytes: a number with optional `M` or `G`, optional trailing `B`, any case;
/// a bare number is megabytes.
pub fn parse_size(s: &str) -> Option<u128> {
    let s = py_strip(s).to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = if let Some(n) = s.strip_suffix('g') {
        (n, 1u128 << 30)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 1u128 << 20)
    } else {
        (s, 1u128 << 20)
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.len() > 30 {
        return None;
    }
    num.parse::<u128>().ok().map(|n| n * mult)
}

/// The value as chatmail sees it, in a form where equal means "chatmail behaves the same".
/// `None` means "unset" (for keys where unset is distinct from every value).
pub fn canonical(param: &Param, value: Option<&str>) -> Option<String> {
    let value = match value {
        Some(v) => Some(v),
        None => param.default,
    };
    let v = value?;
    Some(match param.kind {
        Kind::Int => parse_py_int(v).map_or_else(|| format!("raw:{v}"), |n| format!("int:{n}")),
        Kind::Float => match parse_py_float(v) {
            Some(f) if f.is_nan() => format!("raw:{v}"),
            Some(f) => format!("float:{f:?}"),
            None => format!("raw:{v}"),
        },
        Kind::Bool => {
            if v.to_lowercase() == "true" {
                "bool:true".into()
            } else {
                "bool:false".into()
            }
        }
        Kind::Size => parse_size(v).map_or_else(|| format!("raw:{v}"), |n| format!("size:{n}")),
        Kind::Words | Kind::CertAndKey => {
            format!(
                "words:{}",
                v.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        }
        Kind::Address if v.is_empty() => return None,
        Kind::Domain | Kind::Path | Kind::Str | Kind::IrohRelay | Kind::Address => {
            format!("str:{v}")
        }
    })
}

/// Whether chatmail would behave the same with value `a` and value `b` for `key`
/// (`None` = the key is absent). Unknown keys compare as exact strings.
pub fn values_equal(key: &str, a: Option<&str>, b: Option<&str>) -> bool {
    match lookup(key) {
        Some(p) => canonical(p, a) == canonical(p, b),
        None => a == b,
    }
}

/// Whether `value` (None = absent) is what chatmail uses when the key is absent.
pub fn is_default(key: &str, value: Option<&str>) -> bool {
    values_equal(key, value, None)
}

/// What kind of warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    Unknown,
    Deprecated,
    Unused,
    DockerOnly,
    /// chatmail would refuse the value (fail to start) or read it differently than it looks.
    BadValue,
    /// A section other than [params]: chatmail ignores it.
    IgnoredSection,
}

/// Something the operator should know; not an error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub key: Option<String>,
    /// 1-based line in the ini.
    pub line: Option<usize>,
    pub kind: WarningKind,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The known key nearest to an unknown one, if any is close enough to be a likely typo.
pub fn suggest(key: &str) -> Option<&'static str> {
    let lower = key.to_lowercase();
    let mut best: Option<(&'static str, f64)> = None;
    for p in PARAMS {
        if p.name == lower {
            return Some(p.name);
        }
        let score = strsim::jaro_winkler(&lower, p.name);
        let dist = strsim::damerau_levenshtein(&lower, p.name);
        if score >= 0.85 || dist <= 2 {
            let s = score - dist as f64 * 0.01;
            let better = match best {
                None => true,
                Some((_, b)) => s > b,
            };
            if better {
                best = Some((p.name, s));
            }
        }
    }
    best.map(|(n, _)| n)
}

/// Whether a [`check_value`] message for `key` means chatmail would refuse the value (fail
/// to start or misuse it), rather than read it differently than it looks (a boolean that is
/// not `true`/`false` is read as false: a warning).
pub fn refuses(key: &str) -> bool {
    lookup(key).is_some_and(|p| p.kind != Kind::Bool)
}

/// A warning of [`convert`] that is a value chatmail would refuse ([`refuses`]).
pub fn is_refusal(w: &Warning) -> bool {
    w.kind == WarningKind::BadValue && w.key.as_deref().is_some_and(refuses)
}

/// Why chatmail would refuse `value` for `key` (or read it differently than it looks).
pub fn check_value(key: &str, value: &str) -> Option<String> {
    let p = lookup(key)?;
    let shown = crate::ini::repr_excerpt(value);
    match p.kind {
        Kind::Domain => check_domain(value, &shown),
        Kind::Int => check_int(key, value, &shown),
        Kind::Float => match parse_py_float(value) {
            None => Some(format!("{key} = {shown} is not a number: chatmail would fail to start")),
            Some(_) => None,
        },
        Kind::Size => match parse_size(value) {
            None => Some(format!(
                "{key} = {shown} is not a size chatmail understands (a number with optional M or G, e.g. 500M or 1G)"
            )),
            Some(_) => None,
        },
        Kind::Bool => {
            let l = value.to_lowercase();
            if l == "true" || l == "false" {
                None
            } else {
                Some(format!(
                    "{key} = {shown} means false to chatmail (only 'true', in any case, is true)"
                ))
            }
        }
        Kind::CertAndKey => {
            let n = value.split_whitespace().count();
            if n == 0 || n == 2 {
                None
            } else {
                Some(format!(
                    "{key} = {shown} must be exactly two space-separated paths (certificate, then key)"
                ))
            }
        }
        Kind::Path | Kind::Str | Kind::Words | Kind::IrohRelay | Kind::Address => None,
    }
}

/// Why `mail_domain = value` (shown as `shown`) is not the relay's domain.
fn check_domain(value: &str, shown: &str) -> Option<String> {
    if value.is_empty() {
        Some("mail_domain is empty; chatmail needs the relay's domain".into())
    } else if value.contains('{') || value.contains('}') {
        Some(format!(
            "mail_domain = {shown} looks like an unfilled template placeholder"
        ))
    } else if value
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        Some(format!("mail_domain = {shown} is not a domain name"))
    } else {
        None
    }
}

/// Why the integer setting `key = value` (shown as `shown`) is refused: not an integer
/// (for max_message_size, with what a size suffix would mean), not a port, negative.
fn check_int(key: &str, value: &str, shown: &str) -> Option<String> {
    let Some(n) = parse_py_int(value) else {
        let mut m = format!("{key} = {shown} is not an integer: chatmail would fail to start");
        if key == "max_message_size" {
            if let Some(b) = parse_size(value) {
                m.push_str(&format!(
                    " (it is a number of bytes without suffix: {value} is {b})"
                ));
            } else {
                m.push_str(" (it is a number of bytes without suffix, e.g. 31457280)");
            }
        }
        return Some(m);
    };
    let is_port = key.ends_with("_port") || key.contains("_port_");
    let v: i128 = n.parse().unwrap_or(-1);
    if is_port && !(1..=65535).contains(&v) {
        Some(format!("{key} = {shown} is not a TCP port (1 to 65535)"))
    } else if v < 0 {
        Some(format!("{key} = {shown} is negative"))
    } else {
        None
    }
}

/// Every warning about the [params] section (and ignored sections) of a parsed ini.
pub fn warnings(ini: &IniFile) -> Vec<Warning> {
    let mut out = Vec::new();
    for s in &ini.sections {
        if s.name != "params" {
            out.push(Warning {
                key: None,
                line: Some(s.line),
                kind: WarningKind::IgnoredSection,
                message: format!("section [{}] is ignored by chatmail; not written", s.name),
            });
        }
    }
    let Some(params) = ini.section("params") else {
        return out;
    };
    for e in &params.entries {
        let w = |kind, message| Warning {
            key: Some(e.key.clone()),
            line: Some(e.line),
            kind,
            message,
        };
        match lookup(&e.key) {
            None => out.push(w(WarningKind::Unknown, unknown_key(&e.key))),
            Some(p) => {
                if let Some((kind, m)) = status_warning(p) {
                    out.push(w(kind, m));
                }
                if let Some(m) = check_value(&e.key, &e.value) {
                    out.push(w(WarningKind::BadValue, m));
                }
            }
        }
    }
    out
}

/// What is said of a key chatmail does not know (with the known key it may be meant as).
fn unknown_key(key: &str) -> String {
    let hint = match suggest(key) {
        Some(s) if s.eq_ignore_ascii_case(key) => {
            format!(" (keys are case-sensitive: did you mean '{s}'?)")
        }
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => String::new(),
    };
    format!(
        "unknown key {}{hint}: chatmail ignores it; not written",
        py_repr(key)
    )
}

/// The warning a key's status calls for (none for an active key).
fn status_warning(p: &Param) -> Option<(WarningKind, String)> {
    match p.status {
        Status::Active => None,
        Status::Deprecated => Some((
            WarningKind::Deprecated,
            format!(
                "key '{}' is deprecated ({}); chatmail still reads it",
                p.name, p.doc
            ),
        )),
        Status::Unused => Some((
            WarningKind::Unused,
            format!(
                "key '{}' is unused since chatmail {}: it has no effect",
                p.name,
                p.until.unwrap_or("?")
            ),
        )),
        Status::DockerOnly => Some((
            WarningKind::DockerOnly,
            format!("key '{}' is only read by chatmail's Docker branch", p.name),
        )),
    }
}

/// Why an ini cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error(transparent)]
    Ini(#[from] IniError),
    #[error("{path}: no mail_domain in [params]; chatmail requires it")]
    NoMailDomain { path: String },
    #[error("{path}:{line}: mail_domain is empty; chatmail requires the relay's domain")]
    EmptyMailDomain { path: String, line: usize },
}

/// One known setting found in the ini.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    pub key: String,
    pub env_key: String,
    pub value: String,
    pub line: usize,
    /// Chatmail would behave the same without it.
    pub is_default: bool,
}

/// The settings of a chatmail.ini, ready to be written as .env.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conversion {
    pub source: String,
    pub mail_domain: String,
    /// Known keys present in [params], in [`PARAMS`] order (mail_domain first).
    pub settings: Vec<Setting>,
    pub warnings: Vec<Warning>,
}

impl Conversion {
    /// `(ENV_KEY, value)` pairs to write: mail_domain and every non-default setting, or every
    /// setting present in the ini when `all`.
    pub fn env_entries(&self, all: bool) -> Vec<(String, String)> {
        self.settings
            .iter()
            .filter(|s| all || s.key == "mail_domain" || !s.is_default)
            .map(|s| (s.env_key.clone(), s.value.clone()))
            .collect()
    }
}

impl Conversion {
    /// The header lines written above the settings (without `# `).
    pub fn header(&self, all: bool) -> Vec<String> {
        vec![
            format!("Written by cm-ini-to-env from {}", self.source),
            if all {
                "Every chatmail setting present in the ini, keys uppercased.".to_string()
            } else {
                "MAIL_DOMAIN and the settings that differ from chatmail's defaults.".to_string()
            },
        ]
    }

    /// The whole .env text (header, then `KEY="value"` lines in [`PARAMS`] order).
    pub fn to_env(&self, all: bool) -> Result<String, crate::dotenv::DotenvError> {
        crate::dotenv::render(&self.header(all), &self.env_entries(all))
    }
}

/// Read the [params] of a parsed ini as chatmail does: mail_domain is required; known keys
/// are kept (in [`PARAMS`] order); unknown keys only produce warnings.
pub fn convert(ini: &IniFile) -> Result<Conversion, ParamsError> {
    let params = ini.params()?;
    let md = params
        .entry("mail_domain")
        .ok_or_else(|| ParamsError::NoMailDomain {
            path: ini.path.clone(),
        })?;
    if md.value.is_empty() {
        return Err(ParamsError::EmptyMailDomain {
            path: ini.path.clone(),
            line: md.line,
        });
    }
    let settings = PARAMS
        .iter()
        .filter_map(|p| {
            params.entry(p.name).map(|e| Setting {
                key: p.name.to_string(),
                env_key: p.env_key(),
                value: e.value.clone(),
                line: e.line,
                is_default: is_default(p.name, Some(&e.value)),
            })
        })
        .collect();
    Ok(Conversion {
        source: ini.path.clone(),
        mail_domain: md.value.clone(),
        settings,
        warnings: warnings(ini),
    })
}

/// One setting where an ini and an environment (.env) disagree, as chatmail would see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    pub key: String,
    pub env_key: String,
    /// The ini's value (None: absent).
    pub ini: Option<String>,
    /// The environment's value (None: absent).
    pub env: Option<String>,
    /// 1-based line in the ini, when the key is there.
    pub line: Option<usize>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| match v {
            Some(v) => py_repr(v),
            None => "(absent)".to_string(),
        };
        write!(
            f,
            "{}: ini {} vs .env {}={}",
            self.key,
            show(&self.ini),
            self.env_key,
            show(&self.env)
        )
    }
}

/// Every known key on which the ini's [params] and an environment map (ENV_KEY -> value)
/// disagree as chatmail would see it. Absent keys count as their defaults; variables that
/// are not chatmail keys are ignored.
pub fn diff_env(params: &Section, env: &BTreeMap<String, String>) -> Vec<Difference> {
    PARAMS
        .iter()
        .filter_map(|p| {
            let ek = p.env_key();
            let iv = params.get(p.name);
            let ev = env.get(&ek).map(String::as_str);
            if values_equal(p.name, iv, ev) {
                None
            } else {
                Some(Difference {
                    key: p.name.to_string(),
                    env_key: ek,
                    ini: iv.map(str::to_string),
                    env: ev.map(str::to_string),
                    line: params.line_of(p.name),
                })
            }
        })
        .collect()
}

/// One change [`apply_env`] made to an ini.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub key: String,
    /// Value before (None: absent).
    pub from: Option<String>,
    /// Value after (None: removed, so chatmail uses its default).
    pub to: Option<String>,
}

/// What [`apply_env`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The new ini text (every untouched line and comment kept).
    pub text: String,
    pub changes: Vec<Change>,
}

/// Why [`apply_env`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Ini(#[from] IniError),
    #[error(transparent)]
    Update(#[from] crate::ini::IniUpdateError),
}

/// The reverse of [`convert`], for the start-up applier inside the container: put the chatmail
/// settings found in `env` (ENV_KEY -> value, e.g. the process environment) into chatmail.ini
/// text. A key is rewritten only when chatmail would behave differently (an ini spelling that
/// means the same is kept). With `reset_absent`, known keys that `env` does not set are
/// removed from the ini when they are not at their default (never `mail_domain`), so that the
/// result means exactly what `env` means: afterwards [`diff_env`] of the result and `env` is
/// empty. `path` is used in messages.
pub fn apply_env(
    path: &str,
    ini_text: &str,
    env: &BTreeMap<String, String>,
    reset_absent: bool,
) -> Result<Applied, ApplyError> {
    let parsed = crate::ini::parse_str(path, ini_text)?;
    let params = parsed.params()?;
    let mut updates: Vec<(String, Option<String>)> = Vec::new();
    let mut changes = Vec::new();
    for p in PARAMS {
        let iv = params.get(p.name);
        let to = match env.get(&p.env_key()) {
            Some(ev) if !values_equal(p.name, iv, Some(ev)) => Some(ev.clone()),
            Some(_) => continue,
            None if reset_absent
                && p.name != "mail_domain"
                && iv.is_some()
                && !is_default(p.name, iv) =>
            {
                None
            }
            None => continue,
        };
        updates.push((p.name.to_string(), to.clone()));
        changes.push(Change {
            key: p.name.to_string(),
            from: iv.map(str::to_string),
            to,
        });
    }
    let text = if updates.is_empty() {
        ini_text.to_string()
    } else {
        crate::ini::update_section(ini_text, "params", &updates)?
    };
    Ok(Applied { text, changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_releases_come_from_the_table() {
        let k = known_releases();
        // numerically, not as text: "1.12" is newer than "1.4", "1.1" older than "1.10"
        assert_eq!((k.oldest, k.newest, k.docker_branch), ("1.1", "1.12", true));
        assert_eq!(k.to_string(), "chatmail 1.1 to 1.12 and its Docker branch");
        for p in PARAMS {
            for r in std::iter::once(p.since).chain(p.until) {
                let n = release_number(r);
                assert!(n.is_some() || r == "docker", "{}: release {r:?}", p.name);
                if let Some(n) = n {
                    assert!(n >= release_number(k.oldest).unwrap());
                    assert!(n <= release_number(k.newest).unwrap());
                }
            }
        }
        assert_eq!(release_number("docker"), None);
        assert_eq!(release_number("1.x"), None);
    }

    #[test]
    fn table_is_consistent() {
        for (i, p) in PARAMS.iter().enumerate() {
            assert_eq!(p.name, p.name.to_ascii_lowercase());
            assert!(
                PARAMS[..i].iter().all(|q| q.name != p.name),
                "{} twice",
                p.name
            );
            if let Some(d) = p.default {
                assert!(
                    check_value(p.name, d).is_none(),
                    "default of {} is bad",
                    p.name
                );
            }
            assert_eq!(from_env_key(&p.env_key()).map(|q| q.name), Some(p.name));
        }
        assert!(from_env_key("Mail_Domain").is_none());
    }

    #[test]
    fn semantic_equality() {
        assert!(values_equal("disable_ipv6", Some("False"), None));
        assert!(values_equal("disable_ipv6", Some("yes"), Some("false")));
        assert!(!values_equal("disable_ipv6", Some("TRUE"), None));
        assert!(values_equal("max_mailbox_size", Some("500m"), Some("500M")));
        assert!(values_equal("max_mailbox_size", Some("500MB"), None));
        assert!(values_equal("max_mailbox_size", Some("500"), None));
        assert!(values_equal("min_free_disk_space", Some("1024M"), None));
        assert!(!values_equal("max_mailbox_size", Some("100M"), None));
        assert!(values_equal("max_message_size", Some("+31_457_280"), None));
        assert!(values_equal("max_load_1m", Some("5.0"), None));
        assert!(!values_equal("iroh_relay", Some(""), None));
        assert!(values_equal("mtail_address", Some(""), None));
        assert!(values_equal("privacy_mail", Some(""), None));
        assert!(values_equal(
            "passthrough_recipients",
            Some(" a  b "),
            Some("a b")
        ));
        assert!(!values_equal("max_message_size", Some("30M"), None));
        assert!(values_equal("unknown_thing", Some("x"), Some("x")));
    }

    #[test]
    fn python_int_and_float() {
        assert_eq!(parse_py_int(" -007 ").as_deref(), Some("-7"));
        assert_eq!(parse_py_int("1_000").as_deref(), Some("1000"));
        assert_eq!(parse_py_int("1__0"), None);
        assert_eq!(parse_py_int("30M"), None);
        assert_eq!(parse_py_int(""), None);
        assert_eq!(parse_py_float("5"), Some(5.0));
        assert_eq!(parse_py_float("1e1"), Some(10.0));
        assert_eq!(parse_py_float("x"), None);
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1k"), None);
    }

    #[test]
    fn warnings_and_suggestions() {
        let ini = crate::ini::parse_str(
            "c.ini",
            "[params]\nmail_domain = x.org\nmax_mesage_size = 1\nMail_Domain = y\nmax_message_size = 30M\npassthrough_senders =\nmailboxes_dir = /x\ndisable_ipv6 = yes\n[extra]\n",
        )
        .unwrap();
        let w = warnings(&ini);
        let msgs: Vec<_> = w.iter().map(|w| w.message.as_str()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("did you mean 'max_message_size'")),
            "{msgs:?}"
        );
        assert!(msgs
            .iter()
            .any(|m| m.contains("case-sensitive: did you mean 'mail_domain'")));
        assert!(msgs.iter().any(|m| m.contains("30M is 31457280")));
        assert!(w.iter().any(|w| w.kind == WarningKind::Unused));
        assert!(w.iter().any(|w| w.kind == WarningKind::Deprecated));
        assert!(w.iter().any(|w| w.kind == WarningKind::IgnoredSection));
        assert!(msgs.iter().any(|m| m.contains("means false")));
    }

    #[test]
    fn convert_and_diff() {
        let ini = crate::ini::parse_str(
            "c.ini",
            "[params]\nmax_mailbox_size = 1G\nmail_domain = x.org\ndisable_ipv6 = False\niroh_relay =\n",
        )
        .unwrap();
        let c = convert(&ini).unwrap();
        assert_eq!(
            c.env_entries(false),
            vec![
                ("MAIL_DOMAIN".to_string(), "x.org".to_string()),
                ("MAX_MAILBOX_SIZE".to_string(), "1G".to_string()),
                ("IROH_RELAY".to_string(), String::new()),
            ]
        );
        assert_eq!(c.env_entries(true).len(), 4);
        let mut env: BTreeMap<String, String> = c.env_entries(false).into_iter().collect();
        assert!(diff_env(ini.params().unwrap(), &env).is_empty());
        env.remove("IROH_RELAY");
        env.insert("DISABLE_IPV6".into(), "true".into());
        let d = diff_env(ini.params().unwrap(), &env);
        assert_eq!(d.len(), 2);
        let no_domain = crate::ini::parse_str("c.ini", "[params]\na=1\n").unwrap();
        assert!(matches!(
            convert(&no_domain),
            Err(ParamsError::NoMailDomain { .. })
        ));
    }
}
