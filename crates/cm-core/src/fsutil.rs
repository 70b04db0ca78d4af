//! Small file-system helpers shared by every module that writes files.
//!
//! Invariant: a file written through [`write_atomic`] is either the old content or the new
//! content, never a mix, and is never readable with wider permissions than `mode`, not even
//! for a moment (the temporary is created with `mode` before any byte is written).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What `path` is when it exists and is neither a regular file nor a directory (following
/// symlinks): `fifo`, `socket`, `character device`, `block device`. Reading one would block
/// or never end, so inputs are refused at once.
pub fn not_regular(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = fs::metadata(path).ok()?.file_type();
    Some(if t.is_file() || t.is_dir() {
        return None;
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    })
}

/// The temporary name used beside `path` while it is being written.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = format!(".{}.cm-tmp.{}", name, std::process::id());
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(tmp),
        _ => PathBuf::from(tmp),
    }
}

/// Write `data` to `path` atomically: a temporary beside it created with `mode`, written,
/// fsynced, then renamed into place (and the directory fsynced).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_path_for(path);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode`; never widen past it, but make it exact.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Why a versioned JSON record (a state file, a journal) could not be read.
#[derive(Debug)]
pub enum RecordError {
    Io(io::Error),
    /// Not such a record, or of another version: what is wrong.
    Format(String),
}

/// Read a JSON record whose version (`version_of`) must be `version`; `Ok(None)` when the
/// file does not exist.
pub fn read_record<T: serde::de::DeserializeOwned>(
    path: &Path,
    version: u32,
    version_of: fn(&T) -> u32,
) -> Result<Option<T>, RecordError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RecordError::Io(e)),
    };
    let v: T = serde_json::from_slice(&data).map_err(|e| RecordError::Format(e.to_string()))?;
    if version_of(&v) != version {
        return Err(RecordError::Format(format!(
            "version {} (this cm-migrate reads version {version})",
            version_of(&v)
        )));
    }
    Ok(Some(v))
}

/// Write a JSON record atomically, 0600, creating its directory (0700) if needed.
pub fn write_record<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
    }
    let mut data = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    data.push(b'\n');
    write_atomic(path, &data, 0o600)
}

/// The UTC calendar time of `secs` since 1970-01-01 (any sign): (year, month, day, hour,
/// minute, second), by Howard Hinnant's civil_from_days.
pub fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// A UTC time as `YYYYMMDDTHHMMSSZ` (for names of backups, moved-aside folders, records).
pub fn utc_stamp(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d, hh, mm, ss) = civil(secs);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_sets_mode_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.env");
        write_atomic(&p, b"A=1\n", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"A=1\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        write_atomic(&p, b"A=2\n", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"A=2\n");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }
}
