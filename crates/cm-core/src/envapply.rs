//! The start-up applier of the chatmail Docker image: every chatmail setting given in the
//! environment as an UPPERCASE variable (`MAX_MAILBOX_SIZE=1G`) is put into chatmail.ini.
//!
//! - An uncommented `key = ...` line is replaced in place (continuation lines included).
//! - A commented-out `#key = ...` / `# key: ...` line of the [params] section (what the
//!   templates of chatmail 1.11 and later contain) is replaced by the setting, so it stays
//!   beside its documentation.
//! - Otherwise the setting is added at the end of [params].
//!
//! Everything else in the file is kept. Values are read and compared exactly as
//! [`crate::params`] does (as chatmail reads them): a value that already means the same is
//! left as written; a value chatmail would refuse is an error naming the variable.
//!
//! Invariant: after [`apply`] succeeds, `params::diff_env(result, env)` is empty, and no line
//! of the input other than the ones of the applied keys has changed.
//!
//! The binary `cm-env-apply` is a thin layer over this module: [`vars_from_os`] /
//! [`read_environ_file`] take the variables, [`prepare`] reads the ini and computes the new
//! text, [`Prepared::write`] writes it; [`save_environ`] is what `cm-env-apply boot` does
//! before it execs systemd.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::ini::{self, IniError, IniUpdateError, IniValueError};
use crate::params::{self, Change};

/// Why the environment could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The ini file is not one chatmail could read.
    #[error(transparent)]
    Ini(#[from] IniError),
    /// One or more values would stop chatmail (each message names the variable).
    #[error("{} setting(s) in the environment would stop chatmail:\n  {}", .0.len(), .0.join("\n  "))]
    Invalid(Vec<String>),
    /// A value cannot be written into an ini file so that chatmail reads it back unchanged.
    #[error("{0}")]
    Unwritable(String),
}

impl From<IniUpdateError> for ApplyError {
    fn from(e: IniUpdateError) -> Self {
        match e {
            IniUpdateError::Parse(e) => ApplyError::Ini(e),
            IniUpdateError::Value(v) => ApplyError::Unwritable(unwritable(&v)),
        }
    }
}

fn unwritable(v: &IniValueError) -> String {
    format!("{v}: fix the variable in .env")
}

/// One setting taken from the environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EnvSetting {
    /// The ini key (`max_mailbox_size`).
    pub key: String,
    /// The variable (`MAX_MAILBOX_SIZE`).
    pub env_key: String,
    pub value: String,
}

/// The chatmail settings among `vars` (the whole environment): variables whose name is
/// exactly a known key uppercased. Other variables (PATH, the start-up switches...) are not
/// settings and are ignored.
pub fn settings_from_env<'a, I>(vars: I) -> Vec<EnvSetting>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out: Vec<EnvSetting> = vars
        .into_iter()
        .filter_map(|(k, v)| {
            params::from_env_key(k).map(|p| EnvSetting {
                key: p.name.to_string(),
                env_key: k.to_string(),
                value: v.to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Check every setting as chatmail would read it. Returns (errors, warnings): an error is a
/// value chatmail would refuse or misuse (not an integer, not a size, a port out of range...),
/// a warning one it reads differently than it looks (`DISABLE_IPV6=yes` is false).
pub fn check(settings: &[EnvSetting]) -> (Vec<String>, Vec<String>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for s in settings {
        if let Some(msg) = params::check_value(&s.key, &s.value) {
            let line = format!("{}: {msg}", s.env_key);
            if params::refuses(&s.key) {
                errors.push(line);
            } else {
                warnings.push(line);
            }
        }
        if let Err(e) = ini::render_entry(&s.key, &s.value) {
            errors.push(format!("{}: {}", s.env_key, unwritable(&e)));
        }
    }
    (errors, warnings)
}

/// What [`apply`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The new ini text.
    pub text: String,
    /// The settings that changed what chatmail does (key, before, after).
    pub changes: Vec<Change>,
    /// Values chatmail reads differently than they look (not refused).
    pub warnings: Vec<String>,
}

/// Apply `settings` to ini text (`path` only names it in messages). With `accept_invalid`,
/// values chatmail would refuse are written anyway (their messages become warnings).
pub fn apply(
    path: &str,
    text: &str,
    settings: &[EnvSetting],
    accept_invalid: bool,
) -> Result<Outcome, ApplyError> {
    let (errors, mut warnings) = check(settings);
    if !errors.is_empty() {
        if accept_invalid {
            warnings.extend(errors);
        } else {
            return Err(ApplyError::Invalid(errors));
        }
    }
    let env: BTreeMap<String, String> = settings
        .iter()
        .map(|s| (s.env_key.clone(), s.value.clone()))
        .collect();
    // What changes, against the file as it is (for the report)...
    let before = params::apply_env(path, text, &env, false).map_err(from_params)?;
    // ...and the text, with commented-out keys set where their comment is.
    let placed = place_commented(path, text, settings)?;
    let after = params::apply_env(path, &placed, &env, false).map_err(from_params)?;
    Ok(Outcome {
        text: after.text,
        changes: before.changes,
        warnings,
    })
}

fn from_params(e: params::ApplyError) -> ApplyError {
    match e {
        params::ApplyError::Ini(e) => ApplyError::Ini(e),
        params::ApplyError::Update(u) => u.into(),
    }
}

/// If `line` is a commented-out `key = ...` (or `key: ...`), the key.
fn commented_key(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(['#', ';'])?;
    let rest = rest.trim_start_matches(['#', ';']).trim_start();
    let end = rest.find(['=', ':'])?;
    let key = rest[..end].trim_end();
    if key.is_empty() || key.contains(char::is_whitespace) {
        None
    } else {
        Some(key)
    }
}

/// Replace, for each setting whose key is absent from [params], the first commented-out line
/// of that key in [params] by the setting. A comment followed by an indented line is left
/// alone (the setting would swallow it as a continuation). Every other line keeps its bytes
/// and its line ending; a placed setting takes the ending of the comment it replaces.
pub fn place_commented(
    path: &str,
    text: &str,
    settings: &[EnvSetting],
) -> Result<String, ApplyError> {
    let parsed = ini::parse_str(path, text)?;
    let section = parsed.params()?;
    let start = section.line; // 1-based header line
    let end = parsed
        .sections
        .iter()
        .map(|s| s.line)
        .filter(|&l| l > start)
        .min()
        .unwrap_or(usize::MAX);
    let bom = text.starts_with('\u{feff}');
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let with_ends = ini::py_splitlines_keepends(body);
    let lines: Vec<&str> = with_ends.iter().map(|l| l.0).collect();
    let mut replaced: BTreeMap<usize, String> = BTreeMap::new();
    for s in settings {
        if section.entry(&s.key).is_some() {
            continue;
        }
        // lines[i] is 1-based line i + 1
        let found = (start..lines.len().min(end - 1)).find(|&i| {
            !replaced.contains_key(&i)
                && commented_key(lines[i]) == Some(s.key.as_str())
                && lines
                    .get(i + 1)
                    .map(|n| !n.starts_with([' ', '\t']) || n.trim().is_empty())
                    .unwrap_or(true)
        });
        if let Some(i) = found {
            let r = ini::render_entry(&s.key, &s.value)
                .map_err(|e| ApplyError::Unwritable(unwritable(&e)))?;
            replaced.insert(i, r);
        }
    }
    if replaced.is_empty() {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len() + 64);
    if bom {
        out.push('\u{feff}');
    }
    for (i, (l, end)) in with_ends.iter().enumerate() {
        match replaced.get(&i) {
            // render_entry ends in \n; the comment's own ending replaces it
            Some(r) => {
                out.push_str(r.strip_suffix('\n').unwrap_or(r));
                out.push_str(if end.is_empty() { "\n" } else { end });
            }
            None => {
                out.push_str(l);
                out.push_str(end);
            }
        }
    }
    Ok(out)
}

/// Parse a NUL-separated environment block (`KEY=value\0...`, as /proc/PID/environ and
/// `cm-env-apply boot` write it). Entries that are not UTF-8 or have no `=` are returned as
/// errors (a setting must never be dropped silently); later entries override earlier ones.
pub fn parse_environ(data: &[u8]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut vars = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, raw) in data.split(|&b| b == 0).enumerate() {
        if raw.is_empty() {
            continue;
        }
        match std::str::from_utf8(raw) {
            Ok(s) => match s.split_once('=') {
                Some((k, v)) => {
                    vars.insert(k.to_string(), v.to_string());
                }
                None => bad.push(format!("entry {} has no '=': {:?}", i + 1, s)),
            },
            Err(_) => bad.push(format!(
                "entry {} is not UTF-8: {:?}",
                i + 1,
                String::from_utf8_lossy(raw)
            )),
        }
    }
    (vars, bad)
}

/// The NUL-separated block of `vars` (the format [`parse_environ`] reads).
pub fn render_environ<'a, I>(vars: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut out = Vec::new();
    for (k, v) in vars {
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Why the variables or the ini file could not be read (nothing has been written).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A variable named like a chatmail setting is not UTF-8.
    #[error("variable {0} is not valid UTF-8: fix it in .env")]
    VarNotUtf8(String),
    /// The block saved by `cm-env-apply boot` cannot be read.
    #[error("{}: cannot read the saved environment: {source}", .path.display())]
    Environ {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The ini cannot be read (and `create` was not asked for, or it exists but is unreadable).
    #[error("{}: cannot read: {source} (use --create to start a new one)", .path.display())]
    IniRead {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The ini is not UTF-8.
    #[error("{}: not valid UTF-8; chatmail cannot read it either", .0.display())]
    IniNotUtf8(PathBuf),
    /// The environment cannot be applied to the ini.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// The variables of an environment (this process's, as `std::env::vars_os()` gives it).
/// A variable that is not UTF-8 is ignored unless its name is a chatmail setting, which is an
/// error (a setting must never be dropped silently).
pub fn vars_from_os<I>(vars: I) -> Result<BTreeMap<String, String>, InputError>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut m = BTreeMap::new();
    for (k, v) in vars {
        match (k.to_str(), v.to_str()) {
            (Some(k), Some(v)) => {
                m.insert(k.to_string(), v.to_string());
            }
            (Some(k), None) if params::from_env_key(k).is_some() => {
                return Err(InputError::VarNotUtf8(k.to_string()))
            }
            _ => {}
        }
    }
    Ok(m)
}

/// The variables of the block saved by `cm-env-apply boot` (see [`parse_environ`]), and the
/// entries that could not be read (for warnings).
pub fn read_environ_file(
    path: &Path,
) -> Result<(BTreeMap<String, String>, Vec<String>), InputError> {
    let data = std::fs::read(path).map_err(|source| InputError::Environ {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_environ(&data))
}

/// Save the environment `vars` for the start-up unit: `path`'s folder is created (0700) and the
/// NUL-separated block written atomically, 0600.
pub fn save_environ<'a, I>(path: &Path, vars: I) -> std::io::Result<()>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let block = render_environ(vars);
    // Only a directory made here is made private: an existing one (/run, 1777) keeps its
    // mode, whoever else depends on it. The file itself is 0600 in any case.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if std::fs::symlink_metadata(dir).is_err() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    crate::fsutil::write_atomic(path, &block, 0o600)
}

/// The environment applied to one ini file, not yet written.
#[derive(Debug)]
pub struct Prepared {
    /// The ini file.
    pub path: PathBuf,
    /// The file's text before (`[params]\n` when it is to be created).
    pub before: String,
    /// The file's mode (0644 for a new file), kept when it is written.
    pub mode: u32,
    /// Whether the file exists.
    pub existed: bool,
    /// The new text, the changes and the warnings.
    pub outcome: Outcome,
}

impl Prepared {
    /// Whether writing would change the file (or create it).
    pub fn changed(&self) -> bool {
        self.outcome.text != self.before || !self.existed
    }

    /// Write the new text atomically with the file's mode.
    pub fn write(&self) -> std::io::Result<()> {
        crate::fsutil::write_atomic(&self.path, self.outcome.text.as_bytes(), self.mode)
    }
}

/// Read the ini at `path` (with `create`, a missing file starts as `[params]` alone) and apply
/// `settings` to it (see [`apply`]). Writes nothing.
pub fn prepare(
    path: &Path,
    create: bool,
    settings: &[EnvSetting],
    accept_invalid: bool,
) -> Result<Prepared, InputError> {
    let (before, mode, existed) = match std::fs::read(path) {
        Ok(data) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o644);
            let text =
                String::from_utf8(data).map_err(|_| InputError::IniNotUtf8(path.to_path_buf()))?;
            (text, mode, true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            ("[params]\n".to_string(), 0o644, false)
        }
        Err(source) => {
            return Err(InputError::IniRead {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let outcome = apply(
        &path.display().to_string(),
        &before,
        settings,
        accept_invalid,
    )?;
    Ok(Prepared {
        path: path.to_path_buf(),
        before,
        mode,
        existed,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(k: &str, v: &str) -> EnvSetting {
        settings_from_env([(k, v)]).pop().expect("known key")
    }

    const TEMPLATE: &str = "[params]\n\n# the domain\nmail_domain = old.example.org\n\n# Maximum mailbox size\n# max_mailbox_size = 500M\n\n# message size\n#max_message_size=31457280\n\n[other]\n# disable_ipv6 = false\n";

    #[test]
    fn commented_keys_are_set_in_place() {
        let set = [
            s("MAX_MAILBOX_SIZE", "1G"),
            s("MAX_MESSAGE_SIZE", "1000"),
            s("MAIL_DOMAIN", "new.example.org"),
            s("DISABLE_IPV6", "True"),
        ];
        let o = apply("c.ini", TEMPLATE, &set, false).unwrap();
        assert_eq!(
            o.text,
            "[params]\n\n# the domain\nmail_domain = new.example.org\n\n# Maximum mailbox size\nmax_mailbox_size = 1G\n\n# message size\nmax_message_size = 1000\ndisable_ipv6 = True\n\n[other]\n# disable_ipv6 = false\n"
        );
        let keys: Vec<_> = o.changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "mail_domain",
                "max_mailbox_size",
                "max_message_size",
                "disable_ipv6"
            ]
        );
        let parsed = ini::parse_str("c.ini", &o.text).unwrap();
        let env: BTreeMap<String, String> = set
            .iter()
            .map(|s| (s.env_key.clone(), s.value.clone()))
            .collect();
        assert!(params::diff_env(parsed.params().unwrap(), &env).is_empty());
    }

    #[test]
    fn same_meaning_is_left_alone_and_nothing_else_moves() {
        let text = "[params]\r\nmail_domain = a.org\r\nmax_mailbox_size = 500m\r\n";
        let o = apply("c.ini", text, &[s("MAX_MAILBOX_SIZE", "500M")], false).unwrap();
        assert_eq!(o.text, text);
        assert!(o.changes.is_empty());
    }

    #[test]
    fn continuation_after_comment_is_not_swallowed() {
        let text =
            "[params]\nmail_domain = a.org\nprivacy_mail = x\n# privacy_postal = p\n    more\n";
        // "    more" continues privacy_mail across the comment? Either way the comment is not
        // replaced: the setting goes to the end.
        let parsed = ini::parse_str("c.ini", text);
        if parsed.is_ok() {
            let o = apply("c.ini", text, &[s("PRIVACY_POSTAL", "Street 1")], false).unwrap();
            assert!(o.text.contains("# privacy_postal = p\n    more\n"));
            assert!(
                o.text.ends_with("privacy_postal = Street 1\n"),
                "{}",
                o.text
            );
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_name() {
        let text = "[params]\nmail_domain = a.org\n";
        let set = [
            s("MAX_MESSAGE_SIZE", "30M"),
            s("FILTERMAIL_SMTP_PORT", "70000"),
            s("DISABLE_IPV6", "yes"),
            s("PRIVACY_MAIL", " edge "),
        ];
        match apply("c.ini", text, &set, false) {
            Err(ApplyError::Invalid(e)) => {
                assert_eq!(e.len(), 3, "{e:?}");
                assert!(e.iter().any(|m| m.starts_with("FILTERMAIL_SMTP_PORT: ")));
                assert!(e.iter().any(|m| m.starts_with("MAX_MESSAGE_SIZE: ")));
                assert!(e.iter().any(|m| m.starts_with("PRIVACY_MAIL: ")));
            }
            other => panic!("{other:?}"),
        }
        let set = [s("MAX_MESSAGE_SIZE", "30M"), s("DISABLE_IPV6", "yes")];
        let o = apply("c.ini", text, &set, true).unwrap();
        assert_eq!(o.warnings.len(), 2);
        assert!(o.text.contains("max_message_size = 30M\n"));
    }

    #[test]
    fn non_settings_are_ignored_and_iroh_empty_counts() {
        let v = settings_from_env([
            ("PATH", "/bin"),
            ("mail_domain", "x"),
            ("IROH_RELAY", ""),
            ("CMDEPLOY_STAGES", "install"),
        ]);
        assert_eq!(v.len(), 1);
        let o = apply("c.ini", "[params]\nmail_domain = a.org\n", &v, false).unwrap();
        assert_eq!(o.text, "[params]\nmail_domain = a.org\niroh_relay =\n");
    }

    #[test]
    fn environ_round_trip() {
        let block = render_environ([(&b"A"[..], &b"1=2"[..]), (&b"B"[..], &b"line\nnext"[..])]);
        let (vars, bad) = parse_environ(&block);
        assert!(bad.is_empty());
        assert_eq!(vars["A"], "1=2");
        assert_eq!(vars["B"], "line\nnext");
        let (_, bad) = parse_environ(b"X\0Y=\xff\0");
        assert_eq!(bad.len(), 2);
    }

    #[test]
    fn prepare_creates_keeps_mode_and_reports_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("chatmail.ini");
        let set = [s("MAIL_DOMAIN", "a.org")];
        match prepare(&ini, false, &set, false) {
            Err(InputError::IniRead { path, .. }) => assert_eq!(path, ini),
            other => panic!("{other:?}"),
        }
        let p = prepare(&ini, true, &set, false).unwrap();
        assert!(!p.existed && p.changed());
        assert_eq!(p.outcome.text, "[params]\nmail_domain = a.org\n");
        p.write().unwrap();
        std::fs::set_permissions(&ini, std::fs::Permissions::from_mode(0o640)).unwrap();
        let p = prepare(&ini, false, &set, false).unwrap();
        assert!(p.existed && !p.changed());
        assert_eq!(p.mode, 0o640);
        std::fs::write(&ini, b"[params]\n\xff\n").unwrap();
        assert!(matches!(
            prepare(&ini, false, &set, false),
            Err(InputError::IniNotUtf8(_))
        ));
    }

    #[test]
    fn saved_environ_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cm-env/environ");
        save_environ(&f, [(&b"MAIL_DOMAIN"[..], &b"a.org"[..])]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(f.parent().unwrap()), 0o700);
        let (vars, bad) = read_environ_file(&f).unwrap();
        assert!(bad.is_empty());
        assert_eq!(vars["MAIL_DOMAIN"], "a.org");
    }

    #[test]
    fn non_utf8_setting_variable_is_an_error_others_are_ignored() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"\xff".to_vec());
        let v = vars_from_os([("PATH".into(), bad.clone()), ("A".into(), "1".into())]).unwrap();
        assert_eq!(v.len(), 1);
        assert!(matches!(
            vars_from_os([("MAIL_DOMAIN".into(), bad)]),
            Err(InputError::VarNotUtf8(k)) if k == "MAIL_DOMAIN"
        ));
    }
}
