//! `--project-dir`: the settings go where the target takes them (cm_core::target): an
//! `env_file` target gets the .env, an ini-mount target the old host's chatmail.ini at the
//! mount's source plus the variables its compose file interpolates in the project's .env.

use std::path::{Path, PathBuf};

use cm_core::target::{self, settings, Settings, Target};
use cm_core::{ini, state};

/// The old host's root, when the ini is at its usual place below one (`R/usr/local/lib/
/// chatmaild/chatmail.ini` -> `R`), else `/`.
pub fn root_of(ini: &Path) -> PathBuf {
    let s = ini.to_string_lossy();
    match s.strip_suffix(state::HOST_INI) {
        Some(r) if !r.is_empty() => PathBuf::from(r),
        _ => PathBuf::from("/"),
    }
}

/// Resolve the target of `dir`.
pub fn resolve(
    dir: &Path,
    compose: Option<&str>,
    guide: bool,
    ini: &Path,
) -> Result<Target, String> {
    target::resolve(
        dir,
        &target::Options {
            compose,
            guide,
            external_tls: target::external_tls(&root_of(ini)),
            on: Default::default(),
        },
    )
    .map_err(|e| e.to_string())
}

/// Settings whose default changed between the old host's release and the image's, as
/// warning lines.
pub fn changed_defaults(t: &Target, ini_path: &Path, parsed: &ini::IniFile) -> Vec<String> {
    settings::default_change_warnings(t.image.as_deref(), &root_of(ini_path), ini_path, parsed)
}

/// Write an ini-mount target's settings; returns the lines to report.
pub fn write_ini_mount(
    t: &Target,
    ini_path: &Path,
    parsed: &ini::IniFile,
    dry_run: bool,
) -> Result<(Vec<String>, serde_json::Value), String> {
    let Settings::IniMount { ini, env, vars } = &t.settings else {
        return Err("not an ini-mount target".into());
    };
    let p = parsed.params().map_err(|e| e.to_string())?;
    let values = settings::interpolated_values(vars, p);
    let w = settings::write_ini_mount(ini_path, ini, env, &values, dry_run)
        .map_err(|e| e.to_string())?;
    let verb = if dry_run { "would write" } else { "wrote" };
    let mut lines = vec![if w.ini_changed {
        format!(
            "{verb} {} (the old host's chatmail.ini, unchanged, mounted at {})",
            ini.display(),
            state::CONTAINER_INI
        )
    } else {
        format!("{} already is the old host's chatmail.ini", ini.display())
    }];
    if !w.env_set.is_empty() {
        lines.push(format!(
            "{verb} {} in {} (the compose file interpolates them)",
            w.env_set.join(", "),
            env.display()
        ));
    }
    for b in &w.backups {
        lines.push(format!("backup: {}", b.display()));
    }
    let json = serde_json::json!({"ini": ini, "ini_changed": w.ini_changed, "env": env,
        "env_set": w.env_set, "backups": w.backups, "dry_run": dry_run});
    Ok((lines, json))
}
