//! Docker Compose v2, found the way an operator has it, and its model of a project.
//!
//! Invariant: a program is used only after its own `version` said it is Compose v2; an
//! explicit choice that is not is an error, never a silent fallback to another program.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::exec::Exec;
use super::TargetError;

/// The Compose v2 program: its argv prefix (`["docker", "compose"]`, or one binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    pub argv: Vec<String>,
    /// What its `version` said (`2.26.1`).
    pub version: String,
}

/// The candidates, in the order an operator has them: the `docker compose` plugin of a
/// stock Docker install, then standalone v2 binaries.
pub const CANDIDATES: &[&[&str]] = &[
    &["docker", "compose"],
    &["docker-compose"],
    &["docker-compose-v2"],
];

impl Compose {
    /// A command running `args` with this program.
    pub fn argv<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = self.argv.iter().map(String::as_str).collect();
        v.extend_from_slice(args);
        v
    }

    /// What it is called, as typed (`docker compose`).
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    /// The Docker CLI that talks to the engine this Compose uses: the program itself for
    /// the plugin (`docker compose` -> `docker`), else `docker`.
    pub fn docker(&self) -> String {
        match self.argv.as_slice() {
            [d, c] if c == "compose" => d.clone(),
            _ => "docker".into(),
        }
    }
}

/// The version a program's `version` output names when it is Compose v2 (`Docker Compose
/// version v2.26.1` or `2.26.1-4`), else None.
pub fn v2_version(out: &str) -> Option<String> {
    let line = out.lines().find(|l| l.contains("ompose version"))?;
    let v = line.rsplit(' ').next()?.trim().trim_start_matches('v');
    let major = v.split('.').next()?;
    (major.parse::<u32>().ok()? >= 2).then(|| v.to_string())
}

fn probe(exec: &dyn Exec, argv: &[String]) -> Result<String, String> {
    let mut a: Vec<&str> = argv.iter().map(String::as_str).collect();
    a.push("version");
    let out = exec
        .output(&a)
        .map_err(|e| format!("cannot run it ({e})"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match v2_version(&text) {
        Some(v) if out.status.success() => Ok(v),
        _ => {
            let said = text
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
                .find(|l| !l.trim().is_empty())
                .unwrap_or("nothing")
                .trim()
                .chars()
                .take(120)
                .collect::<String>();
            Err(format!("its `version` is not Compose v2: {said:?}"))
        }
    }
}

/// Find Compose v2. `explicit` (`--compose`) is a program with its leading words
/// (`"docker compose"`, `/usr/local/bin/docker-compose-v2`): used when it is Compose v2,
/// an error otherwise. Without it, [`CANDIDATES`] in order; the notes say which were passed
/// over and why.
pub fn find(
    exec: &dyn Exec,
    explicit: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Compose, TargetError> {
    if let Some(e) = explicit {
        let argv: Vec<String> = e.split_whitespace().map(String::from).collect();
        if argv.is_empty() {
            return Err(TargetError::Compose("--compose is empty".into()));
        }
        return match probe(exec, &argv) {
            Ok(version) => Ok(Compose { argv, version }),
            Err(why) => Err(TargetError::Compose(format!(
                "--compose {e:?}: {why}{}",
                if argv.len() == 1 && argv[0].ends_with("docker") {
                    " (the plugin is two words: --compose \"docker compose\")"
                } else {
                    ""
                }
            ))),
        };
    }
    let mut tried = Vec::new();
    for c in CANDIDATES {
        let argv: Vec<String> = c.iter().map(|s| s.to_string()).collect();
        match probe(exec, &argv) {
            Ok(version) => {
                if !tried.is_empty() {
                    notes.push(format!(
                        "using {} (Compose {version}); passed over: {}",
                        argv.join(" "),
                        tried.join("; ")
                    ));
                }
                return Ok(Compose { argv, version });
            }
            Err(why) => tried.push(format!("{}: {why}", argv.join(" "))),
        }
    }
    Err(TargetError::Compose(format!(
        "Docker Compose v2 not found ({}): install the Docker Compose plugin, or name the program with --compose",
        tried.join("; ")
    )))
}

/// The file names Docker Compose looks for in a project directory.
pub const COMPOSE_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The compose file of `dir` that Compose reads, if any.
pub fn compose_file(exec: &dyn Exec, dir: &Path) -> Option<PathBuf> {
    COMPOSE_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| exec.is_file(p))
}

fn run_config(exec: &dyn Exec, c: &Compose, dir: &Path, extra: &[&str]) -> std::io::Result<Output> {
    let d = dir.display().to_string();
    let mut args = vec![
        "--project-directory",
        d.as_str(),
        "config",
        "--format",
        "json",
    ];
    args.extend(extra);
    exec.in_dir(dir, &c.argv(&args))
}

fn failed(c: &Compose, o: &Output) -> TargetError {
    let err = String::from_utf8_lossy(&o.stderr);
    let err: String = err.trim().chars().take(600).collect();
    TargetError::Compose(format!(
        "{} config failed ({}): {err}",
        c.display(),
        o.status
    ))
}

/// `config --format json` of the project in `dir` (the override file merged in), and the
/// same with `--no-interpolate` (which keeps `env_file` and the `$VARIABLES` as written).
/// A project whose `env_file` names a `.env` that does not exist yet (cm-ini-to-env writes
/// it) is read with an empty one, created for that and removed again (a note says so).
pub fn model(
    exec: &dyn Exec,
    c: &Compose,
    dir: &Path,
    notes: &mut Vec<String>,
) -> Result<(serde_json::Value, serde_json::Value), TargetError> {
    let io = |e: std::io::Error| TargetError::Compose(format!("cannot run {}: {e}", c.display()));
    let raw = run_config(exec, c, dir, &["--no-interpolate"]).map_err(io)?;
    if !raw.status.success() {
        return Err(failed(c, &raw));
    }
    let mut out = run_config(exec, c, dir, &[]).map_err(io)?;
    let env = dir.join(".env");
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains(&format!("{} not found", env.display()))
        && !exec.exists(&env)
    {
        let e = env.display().to_string();
        // noclobber: created only when nothing is there, and then removed again
        let created = exec
            .output(&["sh", "-c", "set -C && : > \"$1\"", "sh", &e])
            .is_ok_and(|o| o.status.success());
        out = run_config(exec, c, dir, &[]).map_err(io)?;
        if created {
            let _ = exec.output(&["rm", "-f", "--", &e]);
            notes.push(format!(
                "{} does not exist yet: the compose file was read with an empty one",
                env.display()
            ));
        }
    }
    if !out.status.success() {
        return Err(failed(c, &out));
    }
    let parse = |o: &Output| {
        serde_json::from_slice(&o.stdout)
            .map_err(|e| TargetError::Compose(format!("{} config is not JSON: {e}", c.display())))
    };
    Ok((parse(&out)?, parse(&raw)?))
}

/// The variables a compose model (read with `--no-interpolate`) interpolates: every
/// `$NAME` and `${NAME...}` in its strings (`$$` is a literal dollar), sorted, once each.
pub fn interpolated(raw: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![raw];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) => scan_vars(s, &mut out),
            serde_json::Value::Array(a) => stack.extend(a.iter()),
            serde_json::Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

fn scan_vars(s: &str, out: &mut Vec<String>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let start = if b.get(i + 1) == Some(&b'{') {
            i + 2
        } else {
            i + 1
        };
        let mut j = start;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
            j += 1;
        }
        if j > start {
            out.push(s[start..j].to_string());
        }
        i = j.max(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines_of_v2_and_v1() {
        assert_eq!(
            v2_version("Docker Compose version 2.26.1-4\n").as_deref(),
            Some("2.26.1-4")
        );
        assert_eq!(
            v2_version("Docker Compose version v2.29.7\n").as_deref(),
            Some("2.29.7")
        );
        assert_eq!(v2_version("docker-compose version 1.29.2, build 5be"), None);
        assert_eq!(v2_version("Client:\n Version: 28.2.2\n"), None);
    }

    #[test]
    fn interpolated_variables_are_found() {
        let v = serde_json::json!({"services": {"c": {"environment": {
            "A": "$MAIL_DOMAIN", "B": "${ACME_EMAIL:-}", "C": "$$LITERAL", "D": "x${X_1}y$"}}}});
        assert_eq!(interpolated(&v), ["ACME_EMAIL", "MAIL_DOMAIN", "X_1"]);
    }

    #[test]
    fn an_explicit_program_that_is_not_compose_is_refused() {
        let mut notes = vec![];
        let e = find(&crate::target::exec::Here, Some("true"), &mut notes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not Compose v2"), "{e}");
        let e = find(
            &crate::target::exec::Here,
            Some("/nonexistent/compose"),
            &mut notes,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot run it"), "{e}");
        let c = Compose {
            argv: vec!["docker".into(), "compose".into()],
            version: "2".into(),
        };
        assert_eq!(c.docker(), "docker");
        assert_eq!(c.display(), "docker compose");
    }
}
