//! Parsers for `systemctl` output (`list-unit-files`, `list-units` with `--no-legend --plain`,
//! and `show -p ...`).
//!
//! Invariant: pure functions over text; every line they cannot read is an error naming the
//! command and the line, never silently skipped.

use super::{SystemdError, UnitInfo};

/// Unit names from `systemctl list-unit-files --no-legend --plain`: `UNIT STATE [PRESET]`.
pub fn parse_list_unit_files(cmd: &str, text: &str) -> Result<Vec<String>, SystemdError> {
    first_column(cmd, text, 2)
}

/// Unit names from `systemctl list-units --all --no-legend --plain`:
/// `UNIT LOAD ACTIVE SUB DESCRIPTION...`.
pub fn parse_list_units(cmd: &str, text: &str) -> Result<Vec<String>, SystemdError> {
    first_column(cmd, text, 4)
}

fn first_column(cmd: &str, text: &str, min_fields: usize) -> Result<Vec<String>, SystemdError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // some systemd versions mark failed units with a leading bullet even with --plain
        let line = line.trim_start_matches(['●', '*', ' ']);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < min_fields || !fields[0].contains('.') {
            return Err(SystemdError::Parse {
                cmd: cmd.to_string(),
                line: i + 1,
                text: line.to_string(),
            });
        }
        out.push(fields[0].to_string());
    }
    Ok(out)
}

/// The properties [`parse_show`] reads, to pass as `systemctl show -p`.
pub const SHOW_PROPERTIES: &[&str] = &[
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "TriggeredBy",
    "WantedBy",
    "RequiredBy",
    "FragmentPath",
    "ExecStart",
];

/// Blocks of `KEY=VALUE` lines from `systemctl show -p ... UNIT...`, separated by blank
/// lines, one block per unit (in systemd's property order, not ours).
pub fn parse_show(cmd: &str, text: &str) -> Result<Vec<UnitInfo>, SystemdError> {
    let mut out = Vec::new();
    let mut cur: Option<UnitInfo> = None;
    let mut cur_has_id = false;
    let finish = |cur: &mut Option<UnitInfo>,
                  has_id: &mut bool,
                  out: &mut Vec<UnitInfo>,
                  line: usize|
     -> Result<(), SystemdError> {
        if let Some(u) = cur.take() {
            if !*has_id {
                return Err(SystemdError::Parse {
                    cmd: cmd.to_string(),
                    line,
                    text: "a unit block without Id=".into(),
                });
            }
            out.push(u);
        }
        *has_id = false;
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            finish(&mut cur, &mut cur_has_id, &mut out, i + 1)?;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(SystemdError::Parse {
                cmd: cmd.to_string(),
                line: i + 1,
                text: line.to_string(),
            });
        };
        let u = cur.get_or_insert_with(UnitInfo::default);
        let list = || v.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        match k {
            "Id" => {
                u.id = v.to_string();
                cur_has_id = true;
            }
            "LoadState" => u.load_state = v.to_string(),
            "ActiveState" => u.active_state = v.to_string(),
            "SubState" => u.sub_state = v.to_string(),
            "UnitFileState" => u.unit_file_state = v.to_string(),
            "TriggeredBy" => u.triggered_by = list(),
            "WantedBy" => u.wanted_by = list(),
            "RequiredBy" => u.required_by = list(),
            "FragmentPath" => u.fragment_path = v.to_string(),
            "ExecStart" => u.exec_start = v.to_string(),
            _ => {}
        }
    }
    finish(&mut cur, &mut cur_has_id, &mut out, text.lines().count())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_unit_files_real_output() {
        let text = "postfix-resolvconf.path                disabled        enabled\n\
                    apt-daily.service                      static          -\n\
                    postfix@.service                       indirect        enabled\n\
                    chatmail-expire.timer                  enabled         enabled\n";
        assert_eq!(
            parse_list_unit_files("x", text).unwrap(),
            vec![
                "postfix-resolvconf.path",
                "apt-daily.service",
                "postfix@.service",
                "chatmail-expire.timer"
            ]
        );
    }

    #[test]
    fn list_units_real_output() {
        let text = "postfix.service                      loaded    active   exited    Postfix Mail Transport Agent\n\
                    postfix@-.service                    loaded    active   running   Postfix Mail Transport Agent (instance -)\n\
                    auditd.service                       not-found inactive dead      auditd.service\n";
        assert_eq!(
            parse_list_units("x", text).unwrap(),
            vec!["postfix.service", "postfix@-.service", "auditd.service"]
        );
    }

    #[test]
    fn list_units_garbage_is_a_located_error() {
        let err = parse_list_units(
            "systemctl list-units",
            "ok.service loaded active running d\nnonsense\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2") && msg.contains("nonsense"), "{msg}");
    }

    #[test]
    fn show_blocks_real_output() {
        let text = "ExecStart={ path=/usr/sbin/postmulti ; argv[]=/usr/sbin/postmulti -i - -p start ; ignore_errors=no }\n\
Id=postfix@-.service\n\
Triggers=\n\
TriggeredBy=\n\
WantedBy=postfix.service\n\
LoadState=loaded\n\
ActiveState=active\n\
SubState=running\n\
FragmentPath=/lib/systemd/system/postfix@.service\n\
UnitFileState=enabled-runtime\n\
\n\
Id=chatmail-expire.service\n\
TriggeredBy=chatmail-expire.timer other.path\n\
LoadState=loaded\n\
ActiveState=inactive\n\
SubState=dead\n\
UnitFileState=static\n\
\n\
Id=nosuch.service\n\
LoadState=not-found\n\
ActiveState=inactive\n\
UnitFileState=\n";
        let units = parse_show("x", text).unwrap();
        assert_eq!(units.len(), 3);
        assert_eq!(units[0].id, "postfix@-.service");
        assert_eq!(units[0].unit_file_state, "enabled-runtime");
        assert_eq!(units[0].wanted_by, vec!["postfix.service"]);
        assert!(units[0].exec_start.contains("postmulti"));
        assert_eq!(
            units[1].triggered_by,
            vec!["chatmail-expire.timer", "other.path"]
        );
        assert_eq!(units[2].load_state, "not-found");
        assert_eq!(units[2].unit_file_state, "");
    }

    #[test]
    fn show_block_without_id_is_an_error() {
        assert!(parse_show("x", "LoadState=loaded\n\nId=a.service\n").is_err());
    }
}
