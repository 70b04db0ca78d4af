//! `cm-migrate stop-services` and `start-services --restore` against a REAL systemd (Debian 12,
//! systemd 252) booted in systemd-nspawn, with the real postfix, dovecot, nginx, opendkim and
//! unbound packages plus chatmail-like units. The harness is tests/harness/nspawn.sh; every test
//! boots its own container (--volatile=overlay: nothing persists, nothing is shared) with a
//! private network, so ports are the container's own and the binary runs inside it.
//!
//! Needs root, systemd-container and debootstrap: run .ci/install-deps first.

use cm_core::ports::{parse_proc_net, CONTAINER_PORTS};
use cm_core::systemd::UnitInfo;
use std::collections::BTreeMap;
use std::process::Output;

use cm_tests::nspawn::{self, stderr, stdout, text, LISTEN};
use cm_tests::relay::{self, all_units, chatmail_relay, service, summary, CHATMAIL_UNITS, FOREIGN};

/// A booted container with cm-migrate in it; halted when dropped.
struct Container(nspawn::Container);

impl std::ops::Deref for Container {
    type Target = nspawn::Container;
    fn deref(&self) -> &nspawn::Container {
        &self.0
    }
}

impl Container {
    /// A container on a volatile overlay: nothing it changes survives its halt.
    fn up(tag: &str) -> Container {
        Container(nspawn::Container::boot("cmt", tag, &[], &["cm-migrate"]))
    }

    /// A container whose changes survive [`Container::reboot`].
    fn up_persistent(tag: &str) -> Container {
        Container(nspawn::Container::boot(
            "cmt",
            tag,
            &["--persistent"],
            &["cm-migrate"],
        ))
    }

    /// Shut the container down cleanly and boot it again, as a reboot of the host would.
    fn reboot(&mut self) {
        self.0.reboot();
    }

    fn cm_migrate(&self, args: &[&str]) -> Output {
        let mut a = vec!["cm-migrate"];
        a.extend_from_slice(args);
        self.exec(&a)
    }

    /// ActiveState and UnitFileState of units, by Id.
    fn states(&self, units: &[&str]) -> BTreeMap<String, UnitInfo> {
        relay::states(self, units)
    }

    /// Ports among the container's that something listens on, inside the container.
    fn busy_ports(&self) -> Vec<u16> {
        let mut busy = Vec::new();
        for f in ["tcp", "tcp6", "udp", "udp6"] {
            let o = self.exec(&["cat", &format!("/proc/net/{f}")]);
            for s in parse_proc_net(&stdout(&o)) {
                let bound = if f.starts_with("tcp") {
                    s.state == 0x0A
                } else {
                    s.state == 0x07 && s.remote_port == 0
                };
                if bound && CONTAINER_PORTS.contains(&s.port) && !busy.contains(&s.port) {
                    busy.push(s.port);
                }
            }
        }
        busy.sort_unstable();
        busy
    }

    fn assert_ports_free(&self, when: &str) {
        assert_eq!(
            self.busy_ports(),
            Vec::<u16>::new(),
            "container ports in use {when}"
        );
    }

    /// Wait (bounded) until all `ports` are in use: daemons bind after systemctl returns.
    fn wait_for_ports(&self, ports: &[u16]) -> Vec<u16> {
        let mut busy = Vec::new();
        for _ in 0..200 {
            busy = self.busy_ports();
            if ports.iter().all(|p| busy.contains(p)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        busy
    }
}

/// Every chatmail unit is in one of the ActiveStates `down` and not enabled.
/// `postfix@-.service` stays enabled-runtime: a generator links it into postfix.service.wants
/// in /run, inert once postfix is disabled.
fn assert_chatmail_down(states: &BTreeMap<String, UnitInfo>, down: &[&str], when: &str) {
    for u in CHATMAIL_UNITS {
        let a = &states[*u];
        assert!(
            down.contains(&a.active_state.as_str()),
            "{when}: {u} is {a:?}"
        );
        if *u == "postfix@-.service" {
            assert_eq!(a.unit_file_state, "enabled-runtime", "{when}: {a:?}");
        } else {
            assert!(!a.is_enabled(), "{when}: {u} still enabled: {a:?}");
        }
    }
}

/// The units that are not chatmail's are running and enabled, as the setup left them.
fn assert_foreign_running(states: &BTreeMap<String, UnitInfo>, why: &str) {
    for u in FOREIGN {
        let a = &states[*u];
        assert_eq!(
            (a.active_state.as_str(), a.unit_file_state.as_str()),
            ("active", "enabled"),
            "{u}: {why}"
        );
    }
}

#[test]
fn stop_services_takes_a_real_relay_down_and_restore_brings_back_exactly_the_prior_state() {
    let c = Container::up("main");
    chatmail_relay(&c);
    let before = c.states(&all_units());
    // the starting point is what the test claims it is
    for u in CHATMAIL_UNITS {
        assert_eq!(before[*u].load_state, "loaded", "{u}: {:?}", before[*u]);
    }
    assert_eq!(before["postfix.service"].active_state, "active");
    assert_eq!(before["postfix@-.service"].sub_state, "running");
    assert_eq!(before["dovecot.service"].sub_state, "running");
    assert_eq!(
        (
            before["lastlogin.service"].active_state.as_str(),
            before["lastlogin.service"].unit_file_state.as_str()
        ),
        ("inactive", "enabled")
    );
    assert_eq!(
        (
            before["turnserver.service"].active_state.as_str(),
            before["turnserver.service"].unit_file_state.as_str()
        ),
        ("active", "disabled")
    );
    let busy = c.wait_for_ports(&[25, 53, 80, 143, 3340, 10080, 10081, 10082, 10083]);
    for p in [25, 53, 80, 143, 3340, 10080, 10081, 10082, 10083] {
        assert!(
            busy.contains(&p),
            "port {p} should be in use before: {busy:?}"
        );
    }

    // --dry-run: prints the plan, changes nothing
    let o = c.cm_migrate(&["stop-services", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan = stdout(&o);
    let pos = |u: &str| {
        plan.find(&format!("    {u} "))
            .unwrap_or_else(|| panic!("{u} not in plan:\n{plan}"))
    };
    assert!(pos("chatmail-expire.timer") < pos("postfix.service"));
    assert!(pos("postfix.service") < pos("filtermail.service"));
    assert!(pos("filtermail-transport.service") < pos("dovecot.service"));
    assert!(pos("dovecot.service") < pos("doveauth.service"));
    assert!(pos("echobot.service") < pos("opendkim.service"));
    assert!(pos("opendkim.service") < pos("nginx.service"));
    assert!(pos("turnserver.service") < pos("unbound.service"));
    assert!(plan.contains("/etc/cron.d/expunge"), "{plan}");
    assert!(
        plan.contains("not touched") && plan.contains("chatmail-custom.service"),
        "{plan}"
    );
    assert!(!plan.contains("backup-agent"), "{plan}");
    assert_eq!(summary(&c.states(&all_units())), summary(&before));
    assert!(!c.exists("/var/lib/cm-migrate/services-state.json"));
    assert!(c.exists("/etc/cron.d/expunge"));

    // the real stop
    let o = c.cm_migrate(&["stop-services", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", text(&o)));
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["ports_in_use"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["exit_code"], 0, "{report:#}");
    assert_eq!(
        report["timing"]["stop_calls"], 8,
        "one stop per stage: {report:#}"
    );
    // measured, not asserted: the batched stop's figures, for the record
    eprintln!("stop-services timing: {}", report["timing"]);
    let after = c.states(&all_units());
    assert_chatmail_down(&after, &["inactive", "failed"], "after stop-services");
    assert_foreign_running(&after, "must not be touched");
    c.assert_ports_free("after stop-services");
    assert!(!c.exists("/etc/cron.d/expunge"));
    assert!(c.exists("/etc/cron.d/expunge.cm-migrate-disabled"));
    let state: serde_json::Value =
        serde_json::from_str(&c.sh("cat /var/lib/cm-migrate/services-state.json"))
            .expect("state file is JSON");
    let rec = |u: &str| {
        state["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["unit"] == u)
            .unwrap_or_else(|| panic!("{u} not recorded: {state:#}"))
            .clone()
    };
    assert_eq!(rec("nginx.service")["active_state"], "active");
    assert_eq!(rec("nginx.service")["unit_file_state"], "enabled");
    assert_eq!(rec("lastlogin.service")["active_state"], "inactive");
    assert_eq!(rec("turnserver.service")["unit_file_state"], "disabled");

    // a second run finds nothing to do and keeps the first record
    let o = c.cm_migrate(&["stop-services", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).is_empty(),
        "--quiet prints nothing: {}",
        text(&o)
    );

    // restore, dry run first: nothing changes
    let o = c.cm_migrate(&["start-services", "--restore", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("nginx.service"), "{}", text(&o));
    assert_eq!(summary(&c.states(&all_units())), summary(&after));

    let o = c.cm_migrate(&["start-services", "--restore", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    eprintln!("start-services --restore timing: {}", report["timing"]);
    let restored = c.states(&all_units());
    assert_eq!(
        summary(&restored),
        summary(&before),
        "restore must bring back exactly the prior state"
    );
    assert!(c.exists("/etc/cron.d/expunge"));
    assert!(!c.exists("/etc/cron.d/expunge.cm-migrate-disabled"));
    assert!(!c.exists("/var/lib/cm-migrate/services-state.json"));
    assert!(c.exists("/var/lib/cm-migrate/services-state.json.restored"));
    let busy = c.wait_for_ports(&[25, 53, 80, 143, 3340, 10080]);
    for p in [25, 53, 80, 143, 3340, 10080] {
        assert!(
            busy.contains(&p),
            "port {p} should be served again: {busy:?}"
        );
    }
}

#[test]
fn the_disabled_state_survives_a_reboot_and_restore_brings_the_enabled_units_back_after_one() {
    let mut c = Container::up_persistent("reboot");
    chatmail_relay(&c);
    let before = c.states(&all_units());
    let o = c.cm_migrate(&["stop-services", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    c.reboot();
    let after = c.states(&all_units());
    // not even "failed": nothing may have been started at boot
    assert_chatmail_down(&after, &["inactive"], "after stop-services and a reboot");
    assert_foreign_running(
        &after,
        "the boot must start enabled units (or this test proves nothing)",
    );
    c.assert_ports_free("after stop-services and a reboot");
    assert!(c.exists("/etc/cron.d/expunge.cm-migrate-disabled"));
    assert!(!c.exists("/etc/cron.d/expunge"));

    let o = c.cm_migrate(&["start-services", "--restore", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    c.reboot();
    let back = c.states(&all_units());
    for u in CHATMAIL_UNITS {
        let (b, a) = (&before[*u], &back[*u]);
        assert_eq!(a.unit_file_state, b.unit_file_state, "{u}: {a:?}");
        if (b.is_enabled() || b.is_enabled_runtime()) && b.is_active() {
            assert!(
                a.is_active(),
                "{u} was enabled and running before the move and must run after a reboot: {a:?}"
            );
        }
    }
    assert_eq!(
        back["turnserver.service"].active_state, "inactive",
        "turnserver was never enabled: restore must not enable it"
    );
    let ports = [25, 53, 80, 143, 3340, 10080, 10081, 10082, 10083];
    let busy = c.wait_for_ports(&ports);
    for p in ports {
        assert!(
            busy.contains(&p),
            "port {p} should be served after the reboot: {busy:?}"
        );
    }
    assert!(c.exists("/etc/cron.d/expunge"));
}

#[test]
fn queued_mail_blocks_the_stop_with_count_and_place_and_allow_queued_mail_proceeds() {
    let c = Container::up("queue");
    // no network in the container: the MX lookup fails temporarily and the message is deferred
    c.sh("echo 'Subject: test' | sendmail someone@example.org");
    let mut deferred = false;
    for _ in 0..100 {
        if c.sh("postqueue -j").contains("\"deferred\"") {
            deferred = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        deferred,
        "test setup: the message was not deferred:\n{}",
        c.sh("postqueue -p")
    );
    let before = c.states(&["postfix.service", "postfix@-.service", "nginx.service"]);

    // a second run while the first waits for the queue is refused at once, naming the first
    let out = c.sh(
        "cm-migrate stop-services --queue-timeout 300 >/dev/null 2>&1 & first=$!
         for i in $(seq 300); do [ -s /run/cm-migrate.lock ] && break; sleep 0.1; done
         echo first=$first
         rc=0; cm-migrate start-services --restore 2>&1 || rc=$?
         echo rc=$rc
         kill $first; wait $first || true",
    );
    let first = out
        .lines()
        .find_map(|l| l.strip_prefix("first="))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(out.contains("rc=2"), "refused with exit 2: {out}");
    assert!(
        out.contains(&format!(
            "another cm-migrate run is in progress (pid {first}, stop-services;"
        )) && out.contains("/run/cm-migrate.lock"),
        "{out}"
    );

    // the kernel dropped the killed run's lock: the next run goes ahead
    let o = c.cm_migrate(&["stop-services", "--queue-timeout", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains("1 message(s)") && out.contains("1 in /var/spool/postfix/deferred"),
        "{}",
        text(&o)
    );
    assert!(out.contains("--allow-queued-mail"), "{out}");
    assert_eq!(
        summary(&c.states(&["postfix.service", "postfix@-.service", "nginx.service"])),
        summary(&before),
        "nothing may change when the queue blocks"
    );
    assert!(!c.exists("/var/lib/cm-migrate/services-state.json"));

    let o = c.cm_migrate(&[
        "stop-services",
        "--queue-timeout",
        "1",
        "--allow-queued-mail",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stderr(&o).contains("1 message(s)"),
        "the warning names the count: {}",
        text(&o)
    );
    let after = c.states(&["postfix.service", "postfix@-.service"]);
    assert_eq!(after["postfix.service"].active_state, "inactive");
    assert_eq!(after["postfix@-.service"].active_state, "inactive");
    assert!(
        c.sh("postqueue -j 2>/dev/null")
            .contains("someone@example.org"),
        "the queued message stays in the queue"
    );
}

#[test]
fn a_unit_that_will_not_stop_is_reported_and_the_others_still_stop() {
    let c = Container::up("hang");
    service(
        &c,
        "mtail",
        "/bin/sleep infinity",
        "ExecStop=/bin/sleep 600\nTimeoutStopSec=900",
    );
    c.sh("systemctl daemon-reload; systemctl enable --now mtail 2>/dev/null");
    let o = c.cm_migrate(&["stop-services", "--unit-timeout", "2"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("stop mtail.service FAILED") && all.contains("did not finish within 2 s"),
        "{all}"
    );
    assert!(all.contains("NOT DOWN: mtail.service"), "{all}");
    let after = c.states(&["mtail.service", "unbound.service", "nginx.service"]);
    assert_eq!(after["mtail.service"].active_state, "deactivating");
    assert_eq!(
        after["mtail.service"].unit_file_state, "disabled",
        "disabled anyway"
    );
    assert_eq!(
        after["unbound.service"].active_state, "inactive",
        "the rest went on"
    );
    assert_eq!(after["nginx.service"].active_state, "inactive");
    // let the container halt quickly
    c.sh("systemctl kill --signal=KILL mtail.service");
}

#[test]
fn a_port_held_by_a_foreign_process_is_named_and_fails_the_stop() {
    let c = Container::up("port");
    c.write("/usr/local/bin/listen", LISTEN);
    c.sh("chmod 755 /usr/local/bin/listen");
    service(&c, "legacy-proxy", "/usr/local/bin/listen 8443", "");
    c.sh("systemctl daemon-reload; systemctl enable --now legacy-proxy 2>/dev/null");
    assert!(
        c.wait_for_ports(&[8443]).contains(&8443),
        "test setup: legacy-proxy does not listen on 8443"
    );
    let o = c.cm_migrate(&["stop-services", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ports = report["ports_in_use"].as_array().expect("ports_in_use");
    assert_eq!(ports.len(), 1, "{report:#}");
    assert_eq!(ports[0]["port"], 8443);
    assert_eq!(ports[0]["holders"][0]["name"], "listen");
    assert_eq!(ports[0]["holders"][0]["unit"], "legacy-proxy.service");
    assert_eq!(
        c.states(&["legacy-proxy.service"])["legacy-proxy.service"].active_state,
        "active",
        "a foreign unit is never stopped"
    );
    let o = c.cm_migrate(&["stop-services"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("PORT IN USE: tcp 0.0.0.0:8443 held by listen (pid"),
        "{}",
        text(&o)
    );
}

/// `cm-migrate ARGS` inside, as the user nobody.
fn as_nobody(c: &Container, args: &[&str]) -> Output {
    let mut a = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "cm-migrate",
    ];
    a.extend_from_slice(args);
    c.exec(&a)
}

#[test]
fn not_root_and_no_systemd_are_usage_errors() {
    let c = Container::up("errors");
    let o = as_nobody(&c, &["stop-services"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("must run as root"), "{}", text(&o));
    // --dry-run changes nothing: a user who is not root may look, and is told what was not
    // checked
    let o = as_nobody(&c, &["stop-services", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("    postfix.service "), "{}", text(&o));
    assert!(
        stdout(&o).contains("Dry run: nothing was changed."),
        "{}",
        text(&o)
    );
    assert!(
        stderr(&o).contains("not root: the run lock /run/cm-migrate.lock was not taken"),
        "{}",
        text(&o)
    );
    // inside, with /run hidden: no systemd marker
    let o = c.exec(&[
        "unshare",
        "-m",
        "sh",
        "-c",
        "mount -t tmpfs none /run && exec cm-migrate start-services --restore",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("systemd is not running"),
        "{}",
        text(&o)
    );
    // restore without a state file
    let o = c.cm_migrate(&["start-services", "--restore"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("nothing to restore"), "{}", text(&o));
    assert!(stdout(&o).is_empty(), "errors go to stderr: {}", text(&o));
    // --json: the error is a JSON document on stdout too
    let o = c.cm_migrate(&["start-services", "--restore", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("--json error is not JSON ({e}):\n{}", text(&o)));
    assert_eq!(v["exit_code"], 2, "{v:#}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("nothing to restore"),
        "{v:#}"
    );
}
