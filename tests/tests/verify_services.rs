//! `cm-verify services` against a REAL systemd (Debian 12) booted in systemd-nspawn with the
//! real postfix, dovecot, nginx, opendkim and unbound packages (tests/harness/nspawn.sh):
//! while the relay runs it names the active and enabled units, the legacy cron job and the
//! busy ports with their holders; after `cm-migrate stop-services` it passes.
//!
//! Needs root, systemd-container and debootstrap: run .ci/install-deps first.

use std::process::Output;

use cm_tests::nspawn::{self, text, LISTEN};

/// A booted container with cm-verify and cm-migrate in it; halted when dropped.
fn up(tag: &str) -> nspawn::Container {
    nspawn::Container::boot("cmv", tag, &[], &["cm-verify", "cm-migrate"])
}

fn findings(o: &Output) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(o)));
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings: {v}"))
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
                f["problem"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn services_names_what_still_runs_and_passes_after_stop_services() {
    let c = up("svc");
    // A chatmail unit of our own (filtermail on its port), enabled and running, a disabled
    // timer that is enabled, and the legacy expunge cron job, beside the real packages.
    c.write("/usr/local/bin/listen", LISTEN);
    c.write(
        "/etc/systemd/system/filtermail.service",
        "[Service]\nExecStart=/usr/local/bin/listen 10080\n[Install]\nWantedBy=multi-user.target\n",
    );
    c.write(
        "/etc/systemd/system/chatmail-expire.service",
        "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    );
    c.write(
        "/etc/systemd/system/chatmail-expire.timer",
        "[Timer]\nOnCalendar=*-01-01 00:00:00\n[Install]\nWantedBy=timers.target\n",
    );
    c.write(
        "/etc/cron.d/expunge",
        "2 0 * * * vmail find /home/vmail/mail -mtime +20 -delete\n",
    );
    c.sh("chmod 755 /usr/local/bin/listen
          systemctl daemon-reload
          systemctl enable --now filtermail.service 2>/dev/null
          systemctl enable chatmail-expire.timer 2>/dev/null");

    let o = c.exec(&["cm-verify", "services", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let f = findings(&o);
    let has = |check: &str, subject: &str, word: &str| {
        f.iter()
            .any(|(c, s, p)| c == check && s == subject && p.contains(word))
    };
    assert!(has("services", "postfix.service", "active"), "{f:#?}");
    assert!(has("services", "dovecot.service", "enabled"), "{f:#?}");
    assert!(has("services", "filtermail.service", "active"), "{f:#?}");
    assert!(
        has("services", "chatmail-expire.timer", "enabled"),
        "{f:#?}"
    );
    assert!(has("services", "/etc/cron.d/expunge", "cron"), "{f:#?}");
    // ports, with the process and unit that holds them
    assert!(has("ports", "tcp port 25", "master"), "{f:#?}");
    assert!(
        has("ports", "tcp port 10080", "filtermail.service"),
        "{f:#?}"
    );
    assert!(has("ports", "udp port 53", "unbound"), "{f:#?}");
    // the human report groups and counts
    let o = c.exec(&["cm-verify", "services"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("\nports: ") || out.starts_with("ports: "),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("DIFFERENT: services: "),
        "{out}"
    );

    let o = c.exec(&["cm-migrate", "stop-services", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = c.exec(&["cm-verify", "services"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("OK: services"),
        "{}",
        text(&o)
    );
}

/// The services check of `cm-verify all` on the real systemd (every other test of `all`
/// passes --no-services): it runs, names what still runs, and holds after stop-services.
#[test]
fn all_runs_its_services_check_on_the_real_systemd() {
    let c = up("all");
    c.write("/usr/local/bin/listen", LISTEN);
    c.write(
        "/etc/systemd/system/filtermail.service",
        "[Service]\nExecStart=/usr/local/bin/listen 10080\n[Install]\nWantedBy=multi-user.target\n",
    );
    c.sh("chmod 755 /usr/local/bin/listen
          systemctl daemon-reload
          systemctl enable --now filtermail.service 2>/dev/null
          mkdir -p /srv/p/data/chatmail/vmail");
    let services = |o: &Output| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(o)));
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "services")
            .cloned()
            .unwrap_or_else(|| panic!("no services check: {v:#}"))
    };
    let all = [
        "cm-verify",
        "all",
        "--project-dir",
        "/srv/p",
        "--layout",
        "guide",
        "--no-env",
        "--json",
    ];
    let o = c.exec(&all);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = services(&o);
    assert_eq!(s["status"], "differs", "{s:#}");
    let named = s["findings"].as_array().unwrap().iter().any(|f| {
        f["subject"] == "filtermail.service" && f["problem"].as_str().unwrap().contains("active")
    });
    assert!(named, "{s:#}");
    let o = c.exec(&["cm-migrate", "stop-services", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = services(&c.exec(&all));
    assert_eq!(s["status"], "held", "{s:#}");
    assert_eq!(s["ok"], true, "{s:#}");
}
