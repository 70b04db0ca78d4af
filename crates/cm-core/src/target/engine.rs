//! The Docker engine behind a target: where a named volume's data lives (created with
//! Compose's own labels when it does not exist yet, so that `docker compose up` uses it
//! without a warning), and the image's users and groups read without starting it.
//!
//! Invariant: a container created to read the image is never started and always removed;
//! a volume is created only by [`Engine::ensure_volume`], never removed.

use std::path::{Path, PathBuf};

use super::exec::Exec;
use super::TargetError;

/// The Docker CLI (`docker`, or a path), run where the target is.
#[derive(Clone)]
pub struct Engine {
    pub docker: String,
    pub exec: std::sync::Arc<dyn Exec>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({} on {})", self.docker, self.exec.place())
    }
}

fn said(o: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&o.stderr);
    s.trim().chars().take(300).collect()
}

impl Engine {
    /// The engine of this host.
    pub fn new(docker: impl Into<String>) -> Engine {
        Engine::on(docker, std::sync::Arc::new(super::exec::Here))
    }

    /// The engine `exec` reaches.
    pub fn on(docker: impl Into<String>, exec: std::sync::Arc<dyn Exec>) -> Engine {
        Engine {
            docker: docker.into(),
            exec,
        }
    }

    fn run(&self, args: &[&str]) -> Result<std::process::Output, TargetError> {
        let mut a = vec![self.docker.as_str()];
        a.extend_from_slice(args);
        self.exec.output(&a).map_err(|e| {
            TargetError::Engine(format!(
                "cannot run {} on {}: {e}",
                self.docker,
                self.exec.place()
            ))
        })
    }

    /// Whether the engine has `image` (pulled or built); Err when the engine cannot be asked.
    pub fn has_image(&self, image: &str) -> Result<bool, TargetError> {
        let o = self.run(&["image", "inspect", "--format", "{{.Id}}", image])?;
        if o.status.success() {
            return Ok(true);
        }
        let err = said(&o);
        if err.to_ascii_lowercase().contains("no such image") {
            return Ok(false);
        }
        Err(TargetError::Engine(format!(
            "{} image inspect {image}: {err}",
            self.docker
        )))
    }

    /// The Mountpoint of volume `name`, or None when the engine has no such volume.
    pub fn mountpoint(&self, name: &str) -> Result<Option<PathBuf>, TargetError> {
        let o = self.run(&["volume", "inspect", "--format", "{{.Mountpoint}}", name])?;
        if o.status.success() {
            let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
            return Ok(Some(PathBuf::from(p)));
        }
        let err = said(&o);
        if err.to_ascii_lowercase().contains("no such volume") {
            return Ok(None);
        }
        Err(TargetError::Engine(format!(
            "{} volume inspect {name}: {err}",
            self.docker
        )))
    }

    /// The Mountpoint of volume `name`, created first when absent with the labels Compose
    /// gives the volumes it creates (project, volume key, Compose version). Returns the
    /// mountpoint and whether it was created.
    pub fn ensure_volume(
        &self,
        name: &str,
        project: &str,
        key: &str,
        compose_version: &str,
    ) -> Result<(PathBuf, bool), TargetError> {
        if let Some(p) = self.mountpoint(name)? {
            return Ok((p, false));
        }
        let labels = [
            format!("com.docker.compose.project={project}"),
            format!("com.docker.compose.volume={key}"),
            format!("com.docker.compose.version={compose_version}"),
        ];
        let mut args = vec!["volume", "create"];
        for l in &labels {
            args.extend(["--label", l.as_str()]);
        }
        args.push(name);
        let o = self.run(&args)?;
        if !o.status.success() {
            return Err(TargetError::Engine(format!(
                "{} volume create {name}: {}",
                self.docker,
                said(&o)
            )));
        }
        match self.mountpoint(name)? {
            Some(p) => Ok((p, true)),
            None => Err(TargetError::Engine(format!(
                "volume {name} was created but the engine does not show it"
            ))),
        }
    }

    /// The image's `/etc/passwd` and `/etc/group`, copied out of a container created from
    /// `image` and never started (then removed), into `dir/etc/`.
    pub fn image_etc(&self, image: &str, dir: &Path) -> Result<(), TargetError> {
        let o = self.run(&["create", image])?;
        if !o.status.success() {
            return Err(TargetError::Engine(format!(
                "cannot read the users of image {image} ({} create: {}): build or pull it first",
                self.docker,
                said(&o)
            )));
        }
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let etc = dir.join("etc");
        let result = std::fs::create_dir_all(&etc)
            .map_err(|e| TargetError::Io(format!("{}: {e}", etc.display())))
            .and_then(|_| {
                for f in ["passwd", "group"] {
                    // `docker cp C:F -` writes a tar stream: unpacked where the engine is,
                    // so that the same works over ssh
                    let from = format!("{id}:/etc/{f}");
                    let o = self
                        .exec
                        .output(&[
                            "sh",
                            "-c",
                            "\"$1\" cp \"$2\" - | tar -xO",
                            "sh",
                            &self.docker,
                            &from,
                        ])
                        .map_err(|e| {
                            TargetError::Engine(format!("{} cp {from}: {e}", self.docker))
                        })?;
                    if !o.status.success() || o.stdout.is_empty() {
                        return Err(TargetError::Engine(format!(
                            "{} cp {from}: {}",
                            self.docker,
                            said(&o)
                        )));
                    }
                    let dst = etc.join(f);
                    std::fs::write(&dst, &o.stdout)
                        .map_err(|e| TargetError::Io(format!("{}: {e}", dst.display())))?;
                }
                Ok(())
            });
        let rm = self.run(&["rm", "-f", &id]);
        result?;
        match rm {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(TargetError::Engine(format!(
                "{} rm {id}: {}",
                self.docker,
                said(&o)
            ))),
            Err(e) => Err(e),
        }
    }
}

impl Engine {
    /// The users and groups of `image` ([`Engine::image_etc`] into a private temporary
    /// directory, removed afterwards).
    pub fn image_ids(&self, image: &str) -> Result<Ids, TargetError> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("cm-image-ids.{}.{nanos}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| TargetError::Io(format!("{}: {e}", dir.display())))?;
        let r = self.image_etc(image, &dir).and_then(|_| Ids::load(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        r
    }
}

/// Users and groups of a passwd/group pair: name -> (uid, gid) and name -> gid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    pub users: std::collections::BTreeMap<String, (u32, u32)>,
    pub groups: std::collections::BTreeMap<String, u32>,
}

impl Ids {
    /// Read `root/etc/passwd` and `root/etc/group`.
    pub fn load(root: &Path) -> Result<Ids, TargetError> {
        let read = |f: &str| {
            let p = root.join(f);
            std::fs::read_to_string(&p)
                .map_err(|e| TargetError::Io(format!("{}: {e}", p.display())))
        };
        let mut ids = Ids::default();
        for line in read("etc/passwd")?.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let [name, _, uid, gid, ..] = f.as_slice() {
                if let (Ok(u), Ok(g)) = (uid.parse(), gid.parse()) {
                    ids.users.entry(name.to_string()).or_insert((u, g));
                }
            }
        }
        for line in read("etc/group")?.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let [name, _, gid, ..] = f.as_slice() {
                if let Ok(g) = gid.parse() {
                    ids.groups.entry(name.to_string()).or_insert(g);
                }
            }
        }
        Ok(ids)
    }
}

/// The service users whose files a move carries, mapped by name.
pub const SERVICE_USERS: &[&str] = &["vmail", "opendkim", "iroh", "echobot"];

/// One line of the owner mapping: a name, the old host's ids, the image's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mapped {
    pub name: String,
    pub host: (u32, u32),
    pub image: (u32, u32),
}

impl std::fmt::Display for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{}",
            self.name, self.host.0, self.host.1, self.image.0, self.image.1
        )
    }
}

/// The owner mapping by name: for each service user both have, the old host's uid and
/// group id to the image's. Returned as owner-map text (`name uid gid` lines, for
/// [`crate::owners::OwnerMap::parse`]) and the lines for people.
pub fn owner_map_text(host: &Ids, image: &Ids) -> (String, Vec<Mapped>) {
    let mut text = String::from("# service users by name: the image's ids\n");
    let mut shown = Vec::new();
    for name in SERVICE_USERS {
        let (Some(&(hu, hpg)), Some(&(iu, ipg))) = (host.users.get(*name), image.users.get(*name))
        else {
            continue;
        };
        let hg = host.groups.get(*name).copied().unwrap_or(hpg);
        let ig = image.groups.get(*name).copied().unwrap_or(ipg);
        text.push_str(&format!("{name} {iu} {ig}\n"));
        shown.push(Mapped {
            name: name.to_string(),
            host: (hu, hg),
            image: (iu, ig),
        });
    }
    (text, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_users_are_mapped_by_name() {
        let d = tempfile::tempdir().unwrap();
        let w = |root: &Path, p: &str, g: &str| {
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::write(root.join("etc/passwd"), p).unwrap();
            std::fs::write(root.join("etc/group"), g).unwrap();
        };
        let (h, i) = (d.path().join("h"), d.path().join("i"));
        w(
            &h,
            "root:x:0:0::/:\nvmail:x:1105:1105::/home/vmail:\nopendkim:x:1107:1107::/:\n",
            "vmail:x:1105:\nopendkim:x:1107:\n",
        );
        w(
            &i,
            "vmail:x:999:998::/home/vmail:\nopendkim:x:101:103::/:\n",
            "vmail:x:998:\nopendkim:x:103:\n",
        );
        let (text, shown) = owner_map_text(&Ids::load(&h).unwrap(), &Ids::load(&i).unwrap());
        assert_eq!(
            text.lines().skip(1).collect::<Vec<_>>(),
            ["vmail 999 998", "opendkim 101 103"]
        );
        assert_eq!(shown[0].to_string(), "vmail 1105:1105 -> 999:998");
        let m = crate::owners::OwnerMap::parse(&text, Path::new("image"), &h).unwrap();
        assert_eq!((m.uid(1105), m.gid(1105), m.uid(1107)), (999, 998, 101));
        assert!(Ids::load(&d.path().join("none")).is_err());
    }
}
