//! The two things stop-services drives: systemd (through `systemctl`) and the postfix queue
//! (through `postqueue`). Both are traits so that planning, ordering and the stop/restore
//! logic are tested with fakes; the real implementations run the real commands on this host.
//!
//! Invariant: the real runners never wait forever: every command that can block (stop,
//! start) has a deadline, after which the client is killed and a [`SystemdError::Timeout`]
//! says so.

use super::parse::{parse_list_unit_files, parse_list_units, parse_show, SHOW_PROPERTIES};
use super::{SystemdError, UnitInfo};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What stop-services needs from systemd.
pub trait ServiceManager {
    /// Every unit name systemd knows of the types services, timers, paths and sockets: unit
    /// files and loaded units (so that template instances such as `postfix@-.service` appear).
    fn list_unit_names(&mut self) -> Result<Vec<String>, SystemdError>;
    /// The current state of these units (an unknown name comes back with LoadState=not-found).
    fn show(&mut self, units: &[String]) -> Result<Vec<UnitInfo>, SystemdError>;
    /// Stop these units (one `systemctl stop` for all: systemd runs the jobs in parallel,
    /// in its own dependency order) and wait until they are stopped, at most `timeout`.
    fn stop(&mut self, units: &[String], timeout: Duration) -> Result<(), SystemdError>;
    /// Start these units (one call) and wait until they are started, at most `timeout`.
    fn start(&mut self, units: &[String], timeout: Duration) -> Result<(), SystemdError>;
    /// Disable these units (remove their install symlinks; one call) without reloading
    /// systemd: call [`ServiceManager::reload`] once after.
    fn disable(&mut self, units: &[String]) -> Result<(), SystemdError>;
    /// Enable these units (create their install symlinks; one call) without reloading.
    fn enable(&mut self, units: &[String]) -> Result<(), SystemdError>;
    /// Make systemd re-read unit files and links (`systemctl daemon-reload`).
    fn reload(&mut self) -> Result<(), SystemdError>;
}

/// The postfix mail queue.
pub trait MailQueue {
    /// Ask postfix to attempt delivery of everything queued now (`postqueue -f`).
    fn flush(&mut self) -> Result<(), SystemdError>;
    /// What is queued now, by queue (`postqueue -j`; works with postfix stopped too).
    fn status(&mut self) -> Result<QueueStatus, SystemdError>;
}

/// Messages in the postfix queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// Number of messages.
    pub total: usize,
    /// Messages per queue (`deferred`, `active`, `incoming`, `hold`, ...).
    pub by_queue: BTreeMap<String, usize>,
    /// postfix's queue_directory (where the queues live).
    pub queue_dir: PathBuf,
}

impl QueueStatus {
    /// "2 in /var/spool/postfix/deferred, 1 in /var/spool/postfix/hold".
    pub fn describe(&self) -> String {
        self.by_queue
            .iter()
            .map(|(q, n)| format!("{n} in {}", self.queue_dir.join(q).display()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Output of a finished command.
#[derive(Debug)]
struct Output {
    stdout: String,
}

/// Run `program args`, capturing output; with a deadline, kill it when the deadline passes.
fn run(program: &str, args: &[&str], timeout: Option<Duration>) -> Result<Output, SystemdError> {
    let cmd_str = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SystemdError::Spawn {
            cmd: cmd_str.clone(),
            source,
        })?;
    // read both pipes in threads so that a large output never blocks the child
    let t_out = drain(child.stdout.take());
    let t_err = drain(child.stderr.take());
    let status = wait_for(&mut child, timeout, &cmd_str)?;
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(SystemdError::Command {
            cmd: cmd_str,
            status: status.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(Output { stdout })
}

/// All that `pipe` gives, read in a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut s);
        }
        s
    })
}

/// `child`'s exit status (`cmd` in errors); with a deadline, it is killed when that passes.
fn wait_for(
    child: &mut std::process::Child,
    timeout: Option<Duration>,
    cmd: &str,
) -> Result<std::process::ExitStatus, SystemdError> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(st),
            Ok(None) => {}
            Err(source) => {
                return Err(SystemdError::Spawn {
                    cmd: cmd.to_string(),
                    source,
                })
            }
        }
        if let Some(t) = timeout {
            if start.elapsed() >= t {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SystemdError::Timeout {
                    cmd: cmd.to_string(),
                    secs: t.as_secs(),
                });
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real [`ServiceManager`]: `systemctl` on this host.
#[derive(Clone, Debug)]
pub struct Systemctl {
    pub program: String,
}

impl Default for Systemctl {
    fn default() -> Self {
        Systemctl {
            program: "systemctl".into(),
        }
    }
}

const TYPES: &str = "--type=service,timer,path,socket";

/// Units per `systemctl show` call (one call for a whole host's units; the limit only keeps
/// the command line short).
const SHOW_CHUNK: usize = 1024;

impl Systemctl {
    /// `systemctl VERB... -- UNITS...`, one call, with a deadline; nothing for no units.
    fn batch(
        &self,
        verb: &[&str],
        units: &[String],
        timeout: Duration,
    ) -> Result<(), SystemdError> {
        if units.is_empty() {
            return Ok(());
        }
        let mut args = verb.to_vec();
        args.push("--");
        args.extend(units.iter().map(String::as_str));
        run(&self.program, &args, Some(timeout)).map(|_| ())
    }
}

impl ServiceManager for Systemctl {
    fn list_unit_names(&mut self) -> Result<Vec<String>, SystemdError> {
        type Parser = fn(&str, &str) -> Result<Vec<String>, SystemdError>;
        let queries: [(&[&str], Parser); 2] = [
            (&["list-unit-files"], parse_list_unit_files),
            (&["list-units", "--all"], parse_list_units),
        ];
        let mut names = BTreeSet::new();
        for (verb, parse) in queries {
            let mut a = verb.to_vec();
            a.extend(["--no-legend", "--plain", "--no-pager", TYPES]);
            let out = run(&self.program, &a, Some(Duration::from_secs(60)))?;
            names.extend(parse(&format!("systemctl {}", a.join(" ")), &out.stdout)?);
        }
        Ok(names.into_iter().collect())
    }

    fn show(&mut self, units: &[String]) -> Result<Vec<UnitInfo>, SystemdError> {
        let props = SHOW_PROPERTIES.join(",");
        let mut out = Vec::new();
        for chunk in units.chunks(SHOW_CHUNK) {
            let mut args = vec!["show", "--no-pager", "-p", &props, "--"];
            args.extend(chunk.iter().map(String::as_str));
            let o = run(&self.program, &args, Some(Duration::from_secs(60)))?;
            out.extend(parse_show("systemctl show", &o.stdout)?);
        }
        Ok(out)
    }

    fn stop(&mut self, units: &[String], timeout: Duration) -> Result<(), SystemdError> {
        self.batch(&["stop"], units, timeout)
    }

    fn start(&mut self, units: &[String], timeout: Duration) -> Result<(), SystemdError> {
        self.batch(&["start"], units, timeout)
    }

    fn disable(&mut self, units: &[String]) -> Result<(), SystemdError> {
        self.batch(&["disable", "--no-reload"], units, Duration::from_secs(300))
    }

    fn enable(&mut self, units: &[String]) -> Result<(), SystemdError> {
        self.batch(&["enable", "--no-reload"], units, Duration::from_secs(300))
    }

    fn reload(&mut self) -> Result<(), SystemdError> {
        run(
            &self.program,
            &["daemon-reload"],
            Some(Duration::from_secs(120)),
        )
        .map(|_| ())
    }
}

/// The real [`MailQueue`]: postfix's `postqueue` and `postconf`.
#[derive(Clone, Debug, Default)]
pub struct Postqueue;

impl MailQueue for Postqueue {
    fn flush(&mut self) -> Result<(), SystemdError> {
        run("postqueue", &["-f"], Some(Duration::from_secs(60))).map(|_| ())
    }

    fn status(&mut self) -> Result<QueueStatus, SystemdError> {
        let queue_dir = run(
            "postconf",
            &["-h", "queue_directory"],
            Some(Duration::from_secs(30)),
        )
        .map(|o| o.stdout.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/var/spool/postfix".into());
        let out = run("postqueue", &["-j"], Some(Duration::from_secs(60)))?;
        let mut st = parse_postqueue_json(&out.stdout)?;
        st.queue_dir = PathBuf::from(queue_dir);
        Ok(st)
    }
}

/// Count the messages in `postqueue -j` output (one JSON object per line).
pub fn parse_postqueue_json(text: &str) -> Result<QueueStatus, SystemdError> {
    let mut st = QueueStatus::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| SystemdError::Parse {
            cmd: "postqueue -j".into(),
            line: i + 1,
            text: format!("{e}: {line}"),
        })?;
        let q = v
            .get("queue_name")
            .and_then(|q| q.as_str())
            .unwrap_or("unknown")
            .to_string();
        *st.by_queue.entry(q).or_default() += 1;
        st.total += 1;
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postqueue_json_counts_by_queue() {
        let text = r#"{"queue_name": "deferred", "queue_id": "F195A70", "arrival_time": 1795961148, "message_size": 228, "forced_expire": false, "sender": "root@x", "recipients": [{"address": "a@example.org", "delay_reason": "Host not found"}]}
{"queue_name": "deferred", "queue_id": "A1", "recipients": []}
{"queue_name": "hold", "queue_id": "B2", "recipients": []}
"#;
        let mut st = parse_postqueue_json(text).unwrap();
        assert_eq!(st.total, 3);
        assert_eq!(st.by_queue["deferred"], 2);
        st.queue_dir = "/var/spool/postfix".into();
        assert_eq!(
            st.describe(),
            "2 in /var/spool/postfix/deferred, 1 in /var/spool/postfix/hold"
        );
        assert_eq!(parse_postqueue_json("").unwrap().total, 0);
        assert!(parse_postqueue_json("not json\n").is_err());
    }

    #[test]
    fn run_kills_a_command_past_its_deadline() {
        let e = run("sleep", &["5"], Some(Duration::from_millis(100))).unwrap_err();
        assert!(matches!(e, SystemdError::Timeout { .. }), "{e}");
        let e = run("false", &[], None).unwrap_err();
        assert!(matches!(e, SystemdError::Command { .. }), "{e}");
        assert_eq!(run("echo", &["hi"], None).unwrap().stdout, "hi\n");
    }
}
