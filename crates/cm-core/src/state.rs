//! The relay's state: every path of a bare-metal chatmail host that a move must carry, in
//! ONE table. The copy (cm-copy-data's default plan), the proof (cm-verify's volumes and
//! layout) and the target resolution ([`crate::target`]) all read it; none of them types a
//! path of its own.
//!
//! Invariant: a path is in [`STATE`] exactly once; `container` is where a chatmail container
//! expects it (the same path as on the old host, except the ini); `covers` lists the only
//! other container paths a target may mount it under (a mount of `/home` carries
//! `/home/vmail`).

use std::path::{Path, PathBuf};

/// A tree (a directory copied whole) or a single file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    Tree,
    File,
}

/// One piece of the relay's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct State {
    /// Short name: `mail`, `dkim`, `acme`, `ini`, `tls-cert`, `tls-key`, `nocreate`,
    /// `tls-external-cert`, `tls-external-key`.
    pub name: String,
    /// Where it is on the old host (absolute, below `--root`).
    #[serde(serialize_with = "crate::quote::serialize_path")]
    pub host: PathBuf,
    /// Where a chatmail container reads it.
    #[serde(serialize_with = "crate::quote::serialize_path")]
    pub container: PathBuf,
    /// Container paths above `container` that a target may mount instead (the mount's whole
    /// tree is then copied from the same path of the old host).
    #[serde(serialize_with = "crate::quote::serialize_paths")]
    pub covers: Vec<PathBuf>,
    pub form: Form,
    /// Keys: never readable by others, not even for a moment.
    pub secret: bool,
    /// The service user that owns it in the container (`root` for root).
    pub owner: String,
    /// Where the guide's layout keeps it, relative to the project directory (None: the
    /// guide's layout does not carry it).
    #[serde(serialize_with = "crate::quote::serialize_opt_path")]
    pub guide: Option<PathBuf>,
    /// The mount the guide's layout uses for it (`/home` for the mail store).
    #[serde(serialize_with = "crate::quote::serialize_opt_path")]
    pub guide_mount: Option<PathBuf>,
    /// A host without it is fine (ACME state exists only in ACME mode, the flag file only
    /// when account creation is off).
    pub optional: bool,
    /// The mail store: copied only while chatmail's services are stopped (or `--live`).
    pub mail_store: bool,
}

/// The ini of the old host (not the container's path: chatmail reads it from here on a
/// bare-metal install).
pub const HOST_INI: &str = "/usr/local/lib/chatmaild/chatmail.ini";
/// Where the maintained Docker deployment reads the ini.
pub const CONTAINER_INI: &str = "/etc/chatmail/chatmail.ini";
/// The relay version the old host deployed (a git hash, or a release).
pub const HOST_VERSION: &str = "/etc/chatmail-version";

struct Row {
    name: &'static str,
    host: &'static str,
    container: &'static str,
    covers: &'static [&'static str],
    form: Form,
    secret: bool,
    owner: &'static str,
    guide: Option<(&'static str, &'static str)>,
    optional: bool,
}

/// The fixed part of the table (the paths named by `tls_external_cert_and_key` come from
/// the ini: [`table`]).
const ROWS: &[Row] = &[
    Row {
        name: "dkim",
        host: "/etc/dkimkeys",
        container: "/etc/dkimkeys",
        covers: &[],
        form: Form::Tree,
        secret: true,
        owner: "opendkim",
        guide: Some(("data/chatmail-dkimkeys", "/etc/dkimkeys")),
        optional: true,
    },
    Row {
        name: "acme",
        host: "/var/lib/acme",
        container: "/var/lib/acme",
        covers: &[],
        form: Form::Tree,
        secret: true,
        owner: "root",
        guide: Some(("data/chatmail-acme", "/var/lib/acme")),
        optional: true,
    },
    Row {
        name: "mail",
        host: "/home/vmail",
        container: "/home/vmail",
        covers: &["/home"],
        form: Form::Tree,
        secret: true,
        owner: "vmail",
        guide: Some(("data/chatmail", "/home")),
        optional: false,
    },
    Row {
        name: "ini",
        host: HOST_INI,
        container: CONTAINER_INI,
        covers: &[],
        form: Form::File,
        secret: false,
        owner: "root",
        guide: None,
        optional: false,
    },
    Row {
        name: "tls-cert",
        host: "/etc/ssl/certs/mailserver.pem",
        container: "/etc/ssl/certs/mailserver.pem",
        covers: &[],
        form: Form::File,
        secret: false,
        owner: "root",
        guide: None,
        optional: true,
    },
    Row {
        name: "tls-key",
        host: "/etc/ssl/private/mailserver.key",
        container: "/etc/ssl/private/mailserver.key",
        covers: &[],
        form: Form::File,
        secret: true,
        owner: "root",
        guide: None,
        optional: true,
    },
    Row {
        name: "nocreate",
        host: "/etc/chatmail-nocreate",
        container: "/etc/chatmail-nocreate",
        covers: &[],
        form: Form::File,
        secret: false,
        owner: "root",
        guide: None,
        optional: true,
    },
];

fn from_row(r: &Row) -> State {
    State {
        name: r.name.into(),
        host: r.host.into(),
        container: r.container.into(),
        covers: r.covers.iter().map(PathBuf::from).collect(),
        form: r.form,
        secret: r.secret,
        owner: r.owner.into(),
        guide: r.guide.map(|(g, _)| g.into()),
        guide_mount: r.guide.map(|(_, m)| m.into()),
        optional: r.optional,
        mail_store: r.name == "mail",
    }
}

/// The relay's state: the fixed rows, plus the two paths of `tls_external_cert_and_key`
/// when the old host's ini names them (`external`: its value).
pub fn table(external: Option<&str>) -> Vec<State> {
    let mut v: Vec<State> = ROWS.iter().map(from_row).collect();
    if let Some(value) = external {
        let paths: Vec<&str> = value.split_whitespace().collect();
        if let [cert, key] = paths.as_slice() {
            for (name, p, secret) in [
                ("tls-external-cert", cert, false),
                ("tls-external-key", key, true),
            ] {
                v.push(State {
                    name: name.into(),
                    host: PathBuf::from(p),
                    container: PathBuf::from(p),
                    covers: vec![],
                    form: Form::File,
                    secret,
                    owner: "root".into(),
                    guide: None,
                    guide_mount: None,
                    optional: false,
                    mail_store: false,
                });
            }
        }
    }
    v
}

/// The entry named `name` of the fixed table.
pub fn get(name: &str) -> Option<State> {
    ROWS.iter().find(|r| r.name == name).map(from_row)
}

/// The trees the guide's layout carries (dkim, acme, mail), in copy order.
pub fn guide_trees() -> Vec<State> {
    table(None)
        .into_iter()
        .filter(|s| s.guide.is_some())
        .collect()
}

/// `path` below `root` (the old host's file system mounted at `root`).
pub fn under_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Does a mount at container path `target` carry `s`? (`s.container` itself, or one of
/// the paths in `covers`.)
pub fn mounted_by(s: &State, target: &Path) -> bool {
    s.container == target || s.covers.iter().any(|c| c == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_in_the_table_once() {
        let t = table(Some("/certs/a.pem /certs/a.key"));
        let mut hosts: Vec<&PathBuf> = t.iter().map(|s| &s.host).collect();
        hosts.sort();
        hosts.dedup();
        assert_eq!(hosts.len(), t.len());
        assert_eq!(t.len(), ROWS.len() + 2);
        assert!(t.iter().any(|s| s.name == "tls-external-key" && s.secret));
        // a malformed value names no paths
        assert_eq!(table(Some("/only-one")).len(), ROWS.len());
    }

    #[test]
    fn the_guide_carries_the_three_trees_under_its_data_dir() {
        let g = guide_trees();
        let names: Vec<&str> = g.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["dkim", "acme", "mail"]);
        let mail = get("mail").unwrap();
        assert!(mounted_by(&mail, Path::new("/home")));
        assert!(mounted_by(&mail, Path::new("/home/vmail")));
        assert!(!mounted_by(&mail, Path::new("/")));
        assert_eq!(
            under_root(Path::new("/old"), Path::new("/home/vmail")),
            Path::new("/old/home/vmail")
        );
    }
}
