//! Who listens on a port: sockets from /proc/net/{tcp,tcp6,udp,udp6}, mapped to the processes
//! holding them through /proc/PID/fd, and to their systemd unit through /proc/PID/cgroup.
//!
//! Invariant: read-only; reads the network namespace of the calling process (run it where
//! the ports matter: on the host, or inside the container under test).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// The ports the chatmail container needs free on the host (it uses host networking).
pub const CONTAINER_PORTS: &[u16] = &[
    25, 53, 80, 143, 402, 443, 465, 587, 993, 3340, 3903, 3904, 8443, 10025, 10026, 10080, 10081,
    10082, 10083,
];

#[derive(Debug, thiserror::Error)]
#[error("reading {}: {source}", path.display())]
pub struct PortsError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A socket bound to a port: a TCP listener or a bound, unconnected UDP socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// `tcp`, `tcp6`, `udp` or `udp6`.
    pub proto: String,
    pub addr: String,
    pub port: u16,
    pub inode: u64,
    /// Processes holding the socket (empty if it could not be found, e.g. a kernel socket).
    pub holders: Vec<Holder>,
}

/// A process holding a socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// Its command name (/proc/PID/comm).
    pub name: String,
    /// The systemd unit it runs in, if any (from /proc/PID/cgroup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}:{}", self.proto, self.addr, self.port)?;
        if self.holders.is_empty() {
            write!(f, " (held by no process found; inode {})", self.inode)
        } else {
            let h: Vec<String> = self
                .holders
                .iter()
                .map(|h| match &h.unit {
                    Some(u) => format!("{} (pid {}, unit {u})", h.name, h.pid),
                    None => format!("{} (pid {})", h.name, h.pid),
                })
                .collect();
            write!(f, " held by {}", h.join(", "))
        }
    }
}

/// One socket line of /proc/net/{tcp,udp}[6].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub addr: String,
    pub port: u16,
    pub remote_port: u16,
    pub state: u8,
    pub inode: u64,
}

fn parse_addr(hex: &str) -> Option<String> {
    match hex.len() {
        8 => {
            let v = u32::from_str_radix(hex, 16).ok()?;
            // the kernel prints the in-memory (network order) bytes as a host-order number
            Some(Ipv4Addr::from(v.to_ne_bytes()).to_string())
        }
        32 => {
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                let v = u32::from_str_radix(&hex[w * 8..w * 8 + 8], 16).ok()?;
                bytes[w * 4..w * 4 + 4].copy_from_slice(&v.to_ne_bytes());
            }
            Some(format!("[{}]", Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

fn split_endpoint(s: &str) -> Option<(String, u16)> {
    let (a, p) = s.split_once(':')?;
    Some((parse_addr(a)?, u16::from_str_radix(p, 16).ok()?))
}

/// Parse /proc/net/{tcp,udp}[6] text; lines that are not sockets (the header) are skipped.
pub fn parse_proc_net(text: &str) -> Vec<Socket> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Some((addr, port)), Some((_, remote_port))) =
            (split_endpoint(f[1]), split_endpoint(f[2]))
        else {
            continue;
        };
        let (Ok(state), Ok(inode)) = (u8::from_str_radix(f[3], 16), f[9].parse::<u64>()) else {
            continue;
        };
        out.push(Socket {
            addr,
            port,
            remote_port,
            state,
            inode,
        });
    }
    out
}

const TCP_LISTEN: u8 = 0x0A;
const UDP_UNCONNECTED: u8 = 0x07;

/// Sockets bound to any of `ports` (TCP listeners, unconnected UDP sockets), with the
/// processes that hold them. `proc_root` is normally `/proc`.
pub fn listeners_on(proc_root: &Path, ports: &[u16]) -> Result<Vec<Listener>, PortsError> {
    let mut found = Vec::new();
    for proto in ["tcp", "tcp6", "udp", "udp6"] {
        let path = proc_root.join("net").join(proto);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // no IPv6
            Err(source) => return Err(PortsError { path, source }),
        };
        for s in parse_proc_net(&text) {
            let bound = if proto.starts_with("tcp") {
                s.state == TCP_LISTEN
            } else {
                s.state == UDP_UNCONNECTED && s.remote_port == 0
            };
            if bound && ports.contains(&s.port) {
                found.push(Listener {
                    proto: proto.to_string(),
                    addr: s.addr,
                    port: s.port,
                    inode: s.inode,
                    holders: Vec::new(),
                });
            }
        }
    }
    if !found.is_empty() {
        let holders = socket_holders(proc_root);
        for l in &mut found {
            if let Some(h) = holders.get(&l.inode) {
                l.holders = h.clone();
            }
        }
    }
    found.sort_by(|a, b| (a.port, &a.proto, &a.addr).cmp(&(b.port, &b.proto, &b.addr)));
    Ok(found)
}

/// Map socket inode -> processes holding it, from /proc/*/fd (unreadable processes skipped:
/// they exit while we look, or are not ours to read).
pub fn socket_holders(proc_root: &Path) -> BTreeMap<u64, Vec<Holder>> {
    let mut map: BTreeMap<u64, Vec<Holder>> = BTreeMap::new();
    let Ok(rd) = fs::read_dir(proc_root) else {
        return map;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        let mut inodes = Vec::new();
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(n) = t
                    .strip_prefix("socket:[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    inodes.push(n);
                }
            }
        }
        if inodes.is_empty() {
            continue;
        }
        let name = fs::read_to_string(e.path().join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        let unit = fs::read_to_string(e.path().join("cgroup"))
            .ok()
            .and_then(|c| unit_from_cgroup(&c));
        inodes.sort_unstable();
        inodes.dedup();
        for n in inodes {
            map.entry(n).or_default().push(Holder {
                pid,
                name: name.clone(),
                unit: unit.clone(),
            });
        }
    }
    map
}

/// The systemd unit in a /proc/PID/cgroup text (the name=systemd hierarchy, or the unified
/// one on cgroup v2): the last path component that names a unit.
pub fn unit_from_cgroup(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.contains(":name=systemd:"))
        .or_else(|| text.lines().find(|l| l.starts_with("0::")))?;
    let path = line.splitn(3, ':').nth(2)?;
    path.split('/')
        .rev()
        .find(|c| {
            c.ends_with(".service")
                || c.ends_with(".socket")
                || c.ends_with(".scope")
                || c.ends_with(".mount")
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_proc_net_lines() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21361 1 00000000228ba5d1 100 0 0 10 5\n\
   4: 00000000:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22027 1 00000000aab39cb3 100 0 0 10 0\n";
        let s = parse_proc_net(tcp);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].addr.as_str(), s[0].port, s[0].state),
            ("127.0.0.1", 53, 0x0A)
        );
        assert_eq!(
            (s[1].addr.as_str(), s[1].port, s[1].inode),
            ("0.0.0.0", 25, 22027)
        );
        let udp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 3427: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21358 2 000000006658e6cf 0\n";
        let s = parse_proc_net(udp6);
        assert_eq!(
            (s[0].addr.as_str(), s[0].port, s[0].state),
            ("[::1]", 53, 7)
        );
    }

    #[test]
    fn cgroup_names_the_unit() {
        let v1 = "12:pids:/system.slice/nginx.service\n1:name=systemd:/system.slice/nginx.service\n0::/system.slice/nginx.service\n";
        assert_eq!(unit_from_cgroup(v1).as_deref(), Some("nginx.service"));
        let v2 = "0::/user.slice/user-0.slice/session-1.scope\n";
        assert_eq!(unit_from_cgroup(v2).as_deref(), Some("session-1.scope"));
        assert_eq!(unit_from_cgroup("0::/\n"), None);
    }

    #[test]
    fn finds_our_own_listener_and_names_us() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = listeners_on(Path::new("/proc"), &[port]).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].proto, "tcp");
        assert_eq!(found[0].addr, "127.0.0.1");
        let me = std::process::id();
        assert!(
            found[0].holders.iter().any(|h| h.pid == me),
            "holder must be this process: {found:?}"
        );
        drop(l);
        assert!(listeners_on(Path::new("/proc"), &[port])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn finds_a_bound_udp_socket() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        let found = listeners_on(Path::new("/proc"), &[port]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].proto, "udp");
    }
}
