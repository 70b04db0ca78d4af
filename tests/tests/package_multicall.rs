//! One name is enough: `cm-migrate <tool> ...` runs each tool in-process, with the tool's own
//! help, errors, output and exit codes; `--version` is the same line in every tool.

use std::path::Path;
use std::process::{Command, Output};

use cm_tests::{bin, repo_root};

const TOOLS: &[(&str, &str)] = &[
    ("ini-to-env", "cm-ini-to-env"),
    ("copy-data", "cm-copy-data"),
    ("verify", "cm-verify"),
    ("env-apply", "cm-env-apply"),
];

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .expect("spawn binary")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cm_migrate_help_lists_every_tool_and_its_own_subcommands() {
    let o = run(&bin("cm-migrate"), &["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let help = out(&o);
    for (sub, _) in TOOLS {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(sub)),
            "{sub} not listed:\n{help}"
        );
    }
    assert!(help.contains("stop-services"), "{help}");
}

#[test]
fn a_tool_under_cm_migrate_has_the_tools_help_under_the_typed_name() {
    for (sub, tool) in TOOLS {
        let via = run(&bin("cm-migrate"), &[sub, "--help"]);
        let own = run(&bin(tool), &["--help"]);
        assert_eq!(via.status.code(), Some(0), "{sub}: {}", err(&via));
        let via_text = out(&via);
        assert!(
            via_text.contains(&format!("Usage: cm-migrate {sub}")),
            "{sub}:\n{via_text}"
        );
        assert_eq!(
            via_text.replace(&format!("cm-migrate {sub}"), tool),
            out(&own),
            "cm-migrate {sub} --help differs from {tool} --help beyond the name"
        );
    }
    let help = run(&bin("cm-migrate"), &["help", "copy-data"]);
    assert_eq!(help.status.code(), Some(0), "{}", err(&help));
    assert!(out(&help).contains("--owner-map"), "{}", out(&help));
}

#[test]
fn usage_errors_name_the_typed_command_and_exit_2() {
    let o = run(&bin("cm-migrate"), &["copy-data", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("Usage: cm-migrate copy-data"),
        "{}",
        err(&o)
    );
    let o = run(&bin("cm-migrate"), &["no-such-tool"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no-such-tool"), "{}", err(&o));
}

#[test]
fn verify_and_ini_to_env_give_the_same_result_through_cm_migrate() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for t in [&a, &b] {
        std::fs::create_dir_all(t.join("sub")).unwrap();
        std::fs::write(t.join("sub/f"), "same").unwrap();
        for p in [t.join("sub/f"), t.join("sub"), t.to_path_buf()] {
            filetime::set_file_mtime(p, filetime::FileTime::from_unix_time(1, 0)).unwrap();
        }
    }
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for expect in [0, 1] {
        let via = run(&bin("cm-migrate"), &["verify", "tree", "--json", a, b]);
        let own = run(&bin("cm-verify"), &["tree", "--json", a, b]);
        assert_eq!(via.status.code(), Some(expect), "{}", err(&via));
        assert_eq!(own.status.code(), Some(expect), "{}", err(&own));
        assert_eq!(out(&via), out(&own));
        // a difference for the second round
        std::fs::write(Path::new(b).join("sub/f"), "other").unwrap();
    }
    let ini = repo_root().join("fixtures/ini/chars.ini");
    let ini = ini.to_str().unwrap();
    let via = run(&bin("cm-migrate"), &["ini-to-env", ini]);
    let own = run(&bin("cm-ini-to-env"), &[ini]);
    assert_eq!(via.status.code(), Some(0), "{}", err(&via));
    assert_eq!(own.status.code(), Some(0), "{}", err(&own));
    assert!(out(&via).contains("MAIL_DOMAIN="), "{}", out(&via));
    assert_eq!(out(&via), out(&own));
}

#[test]
fn dispatch_does_not_depend_on_the_programs_file_name() {
    // clap's multicall would fail here: the file is neither cm-migrate nor a tool's name
    let d = tempfile::tempdir().unwrap();
    let renamed = d.path().join("migrate-tool");
    std::fs::copy(bin("cm-migrate"), &renamed).unwrap();
    let o = run(&renamed, &["copy-data", "--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).contains("Usage: cm-migrate copy-data"),
        "{}",
        out(&o)
    );
}

#[test]
fn version_names_suite_and_chatmail_releases_identically_everywhere() {
    let releases = cm_core::params::known_releases().to_string();
    let want = format!("{} (", env!("CARGO_PKG_VERSION"));
    let mut lines = Vec::new();
    let mut check = |name: &str, o: Output| {
        assert_eq!(o.status.code(), Some(0), "{name}: {}", err(&o));
        let text = out(&o);
        let rest = text
            .strip_prefix(&format!("{name} "))
            .unwrap_or_else(|| panic!("{name} --version: {text}"));
        assert!(rest.starts_with(&want), "{name}: {text}");
        assert!(rest.contains(&releases), "{name}: {text} lacks {releases}");
        lines.push(rest.to_string());
    };
    check("cm-migrate", run(&bin("cm-migrate"), &["--version"]));
    for (sub, tool) in TOOLS {
        check(tool, run(&bin(tool), &["--version"]));
        check(tool, run(&bin("cm-migrate"), &[sub, "--version"]));
    }
    lines.dedup();
    assert_eq!(lines.len(), 1, "{lines:#?}");
}
