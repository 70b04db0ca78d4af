//! How the target takes chatmail's settings, and what a move between releases changes.
//!
//! An `env_file` target gets the `.env` of cm-ini-to-env; an ini-mount target gets the old
//! host's chatmail.ini itself at the mount's source, plus the variables its compose file
//! interpolates in the project's `.env`. Settings whose default differs between the old
//! host's release and the image's are reported ([`changed_defaults`]).
//!
//! Invariant: files are written atomically; an existing file that would change is kept as a
//! backup beside it first; the ini keeps the mode it has (or the old host's).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Placement, Settings, Source, TargetError};
use crate::ini::Section;
use crate::{dotenv, fsutil, params};

/// The settings mode of a service: an ini bind mount wins (chatmail reads that file), else
/// an `env_file` naming the project's `.env`, else none.
pub fn mode(
    dir: &Path,
    placements: &[Placement],
    raw_service: Option<&serde_json::Value>,
    interpolated: &[String],
) -> Settings {
    let env = dir.join(".env");
    if let Some(Placement {
        source: Source::Bind { path },
        ..
    }) = placements.iter().find(|p| p.state.name == "ini")
    {
        return Settings::IniMount {
            ini: path.clone(),
            env,
            vars: interpolated.to_vec(),
        };
    }
    let env_files: Vec<PathBuf> = raw_service
        .and_then(|s| s.get("env_file"))
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("path").and_then(|p| p.as_str()).map(PathBuf::from))
        .collect();
    if env_files.iter().any(|p| p == &env) {
        return Settings::EnvFile { env };
    }
    Settings::Unknown
}

/// A default that changed between releases: before `release` chatmail behaved as `before`.
pub struct DefaultChange {
    pub key: &'static str,
    pub release: &'static str,
    pub before: &'static str,
}

/// Defaults that changed (the value after is the table's default, [`params::PARAMS`]).
pub const DEFAULT_CHANGES: &[DefaultChange] = &[
    DefaultChange {
        key: "max_imap_connections",
        release: "1.12",
        before: "50000",
    },
    DefaultChange {
        key: "max_smtp_connections",
        release: "1.12",
        before: "5000",
    },
];

fn release_key(r: &str) -> Option<(u32, u32)> {
    let mut it = r.trim().trim_start_matches('v').split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The release of the old host: `/etc/chatmail-version` when it names one (`1.11.0`), else
/// inferred from the ini's template (a 1.12 template mentions max_imap_connections, even
/// commented out). Returns the release and how it was found.
pub fn host_release(version_file: Option<&str>, ini_text: &str) -> (String, String) {
    if let Some(v) = version_file
        .map(str::trim)
        .filter(|v| release_key(v).is_some())
    {
        return (v.to_string(), "/etc/chatmail-version".into());
    }
    let why = match version_file {
        Some(v) => format!(
            "/etc/chatmail-version is {:?} (a git hash), so from the ini's template",
            v.trim()
        ),
        None => "no /etc/chatmail-version, so from the ini's template".into(),
    };
    let r = if ini_text.contains("max_imap_connections") {
        "1.12"
    } else {
        "1.11"
    };
    (r.into(), why)
}

/// The release an image tag names (`ghcr.io/chatmail/docker:1.12.0` -> `1.12.0`); a tag
/// that names none (`main`, `latest`, none) is taken as the newest release this suite
/// knows, and said so.
pub fn image_release(image: Option<&str>) -> (String, String) {
    let tag = image
        .and_then(|i| i.rsplit_once(':'))
        .map(|(_, t)| t)
        .filter(|t| !t.contains('/'));
    match tag {
        Some(t) if release_key(t).is_some() => (t.to_string(), format!("the image tag {t}")),
        _ => (
            params::known_releases().newest.to_string(),
            format!(
                "the image {} names no release: taken as the newest known",
                image.unwrap_or("(none)")
            ),
        ),
    }
}

/// Settings the ini leaves at their default whose default differs between `from` and
/// `to`: `(key, behaviour before, behaviour after)`.
pub fn changed_defaults(from: &str, to: &str, params: &Section) -> Vec<(String, String, String)> {
    let (Some(f), Some(t)) = (release_key(from), release_key(to)) else {
        return vec![];
    };
    DEFAULT_CHANGES
        .iter()
        .filter(|c| release_key(c.release).is_some_and(|r| f < r && r <= t))
        .filter(|c| params.get(c.key).is_none())
        .map(|c| {
            let after = params::lookup(c.key).and_then(|p| p.default).unwrap_or("?");
            (c.key.to_string(), c.before.to_string(), after.to_string())
        })
        .collect()
}

/// The values of the variables a compose file interpolates, as the old host's ini has
/// them: a variable named for a chatmail setting (`MAIL_DOMAIN`, `ACME_EMAIL`) gets its
/// value (empty when unset); others are not chatmail's and are left alone.
pub fn interpolated_values(vars: &[String], params: &Section) -> Vec<(String, String)> {
    vars.iter()
        .filter_map(|v| {
            let p = params::from_env_key(v)?;
            Some((v.clone(), params.get(p.name).unwrap_or("").to_string()))
        })
        .collect()
}

/// Settings whose default changed between the old host's release (under `root`:
/// `/etc/chatmail-version`, else the ini's template) and the release of `image`, as warning
/// lines that say how to keep the old behaviour.
pub fn default_change_warnings(
    image: Option<&str>,
    root: &Path,
    ini_path: &Path,
    parsed: &crate::ini::IniFile,
) -> Vec<String> {
    let version = std::fs::read_to_string(crate::state::under_root(
        root,
        Path::new(crate::state::HOST_VERSION),
    ))
    .ok();
    let text = std::fs::read_to_string(ini_path).unwrap_or_default();
    let (from, how) = host_release(version.as_deref(), &text);
    let (to, how_to) = image_release(image);
    let Ok(p) = parsed.params() else {
        return vec![];
    };
    changed_defaults(&from, &to, p)
        .into_iter()
        .map(|(k, before, after)| {
            format!(
                "{k}: the old host (chatmail {from}, {how}) ran with {before}; the target (chatmail {to}, {how_to}) defaults to {after}: set `{k} = {before}` in chatmail.ini to keep the old behaviour"
            )
        })
        .collect()
}

/// What [`write_ini_mount`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Written {
    pub ini: PathBuf,
    pub ini_changed: bool,
    pub env: PathBuf,
    pub env_set: Vec<String>,
    pub backups: Vec<PathBuf>,
}

fn io_err(p: &Path, e: std::io::Error) -> TargetError {
    TargetError::Io(format!("{}: {e}", p.display()))
}

/// Write `content` to `path` atomically with `mode`; an existing different file is kept
/// as a backup beside it first. Returns (changed, backup).
fn replace_file(
    path: &Path,
    content: &[u8],
    mode: u32,
) -> Result<(bool, Option<PathBuf>), TargetError> {
    let old = match std::fs::read(path) {
        Ok(o) => Some(o),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(path, e)),
    };
    if old.as_deref() == Some(content) {
        return Ok((false, None));
    }
    let mut backup = None;
    if let Some(old) = &old {
        let b = dotenv::backup_path(path, std::time::SystemTime::now());
        fsutil::write_atomic(&b, old, mode).map_err(|e| io_err(&b, e))?;
        backup = Some(b);
    }
    fsutil::write_atomic(path, content, mode).map_err(|e| io_err(path, e))?;
    Ok((true, backup))
}

/// An ini-mount target's settings: the old host's `ini` (its bytes, unchanged) at `dst`
/// (the mode an existing `dst` has, else the old ini's), and `vars` set in `env` (merged
/// into an existing .env, keeping its other lines; a new one 0600). `dry_run` writes
/// nothing and says what would change.
pub fn write_ini_mount(
    ini: &Path,
    dst: &Path,
    env: &Path,
    vars: &[(String, String)],
    dry_run: bool,
) -> Result<Written, TargetError> {
    let bytes = std::fs::read(ini).map_err(|e| io_err(ini, e))?;
    if std::fs::symlink_metadata(dst).is_ok_and(|m| m.is_dir()) {
        return Err(TargetError::Io(format!(
            "{} is a directory: the compose file mounts it as chatmail.ini (Docker creates a directory when the file is missing at `up`; move it aside)",
            dst.display()
        )));
    }
    let mode = std::fs::metadata(dst)
        .or_else(|_| std::fs::metadata(ini))
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| io_err(ini, e))?;
    let mut w = Written {
        ini: dst.to_path_buf(),
        env: env.to_path_buf(),
        ..Default::default()
    };
    let old_env = match std::fs::read_to_string(env) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(env, e)),
    };
    let current: BTreeMap<String, String> = old_env
        .as_deref()
        .map(dotenv::parse_map)
        .transpose()
        .map_err(|e| TargetError::Io(e.at(&env.display().to_string())))?
        .unwrap_or_default();
    let set: Vec<(String, String)> = vars
        .iter()
        .filter(|(k, v)| current.get(k) != Some(v))
        .cloned()
        .collect();
    w.env_set = set.iter().map(|(k, _)| k.clone()).collect();
    w.ini_changed = std::fs::read(dst).ok().as_deref() != Some(&bytes[..]);
    if dry_run {
        return Ok(w);
    }
    let (_, b) = replace_file(dst, &bytes, mode)?;
    w.backups.extend(b);
    if !set.is_empty() {
        let header = vec![
            "# written by cm-ini-to-env: the variables the compose file interpolates".to_string(),
        ];
        let text = dotenv::merge(old_env.as_deref().unwrap_or(""), &set, &[], &header)
            .map_err(|e| TargetError::Io(e.at(&env.display().to_string())))?
            .0;
        let (_, b) = replace_file(env, text.as_bytes(), 0o600)?;
        w.backups.extend(b);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> crate::ini::IniFile {
        crate::ini::parse_str("chatmail.ini", text).unwrap()
    }

    #[test]
    fn defaults_that_changed_in_1_12_are_reported_for_older_hosts() {
        let ini = section("[params]\nmail_domain = a.org\nmax_smtp_connections = 7\n");
        let p = ini.params().unwrap();
        let c = changed_defaults("1.11", "1.12.0", p);
        assert_eq!(
            c,
            [(
                "max_imap_connections".into(),
                "50000".into(),
                "10000".into()
            )]
        );
        assert!(changed_defaults("1.12", "1.12.0", p).is_empty());
        assert_eq!(host_release(Some("1.10.0\n"), "").0, "1.10.0");
        assert_eq!(host_release(Some("05853144"), "").0, "1.11");
        assert_eq!(
            host_release(None, "#max_imap_connections = 10000").0,
            "1.12"
        );
        assert_eq!(
            image_release(Some("ghcr.io/chatmail/docker:1.12.0")).0,
            "1.12.0"
        );
        assert!(image_release(Some("ghcr.io/chatmail/docker:main"))
            .1
            .contains("newest"));
    }

    #[test]
    fn the_ini_is_written_unchanged_with_its_mode_and_the_env_merged() {
        let d = tempfile::tempdir().unwrap();
        let ini = d.path().join("old.ini");
        std::fs::write(&ini, "[params]\r\nmail_domain = a.org\r\n").unwrap();
        std::fs::set_permissions(&ini, std::fs::Permissions::from_mode(0o640)).unwrap();
        let dst = d.path().join("chatmail.ini");
        let env = d.path().join(".env");
        std::fs::write(&env, "# mine\nOTHER=1\n").unwrap();
        let p = section("[params]\nmail_domain = a.org\n");
        let vars = interpolated_values(
            &["MAIL_DOMAIN".into(), "ACME_EMAIL".into(), "GIT_HASH".into()],
            p.params().unwrap(),
        );
        assert_eq!(
            vars,
            [
                ("MAIL_DOMAIN".into(), "a.org".into()),
                ("ACME_EMAIL".into(), "".into())
            ]
        );
        let w = write_ini_mount(&ini, &dst, &env, &vars, false).unwrap();
        assert!(w.ini_changed && w.backups.len() == 1, "{w:?}");
        assert_eq!(std::fs::read(&dst).unwrap(), std::fs::read(&ini).unwrap());
        assert_eq!(
            std::fs::metadata(&dst).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let e = std::fs::read_to_string(&env).unwrap();
        assert!(
            e.starts_with("# mine\nOTHER=1\n") && e.contains("MAIL_DOMAIN=\"a.org\"\n"),
            "{e}"
        );
        // again: nothing changes, no backup
        let w = write_ini_mount(&ini, &dst, &env, &vars, false).unwrap();
        assert!(
            !w.ini_changed && w.env_set.is_empty() && w.backups.is_empty(),
            "{w:?}"
        );
    }
}
