//! cm-core's ini parser against the real iniconfig (the Python package chatmail reads
//! chatmail.ini with), on generated files full of the lines that parsers get wrong: odd line
//! breaks, `=`/`:` splits, continuations, comment-looking lines, headers with comments,
//! duplicates, Unicode whitespace. One Python process reads them all.
//! iniconfig is installed by .ci/install.d/30-iniconfig.sh.

use std::fs;
use std::path::Path;
use std::process::Command;

use cm_core::ini::{self, IniError};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const PYTHON: &str = "/opt/cm-migrate/iniconfig-venv/bin/python";

fn line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "mail_domain",
        "max_mailbox_size",
        "a",
        "A",
        "k k",
        "a:b",
        "",
        " x ",
        "é",
        "k\u{a0}",
    ]);
    let val = prop::collection::vec(
        prop::sample::select(vec![
            "v", " ", "#", ";", "=", ":", "[", "]", "$", "%", "\\", "\"", "\t", "\u{a0}", "\u{1f}",
            "\u{3000}", "ü", "x y",
        ]),
        0..6,
    )
    .prop_map(|v| v.concat());
    let indent = prop::sample::select(vec!["", " ", "  ", "\t", "\u{a0}", "\u{1f}", "\u{2003}"]);
    prop_oneof![
        3 => (key.clone(), prop::sample::select(vec!["=", " = ", ":", ": ", " =", "= "]), val.clone())
            .prop_map(|(k, s, v)| format!("{k}{s}{v}")),
        2 => (indent.clone(), val.clone()).prop_map(|(i, v)| format!("{i}{v}")),
        1 => prop::sample::select(vec![
            "[params]", "[params] # c", "[params];c", "[other]", "[]", "[a;b]", "[a#b]",
            "[params]x", " [params]", "[params", "[ params ]",
        ])
        .prop_map(str::to_string),
        1 => (indent, prop::sample::select(vec!["#", ";"]), val.clone())
            .prop_map(|(i, c, v)| format!("{i}{c}{v}")),
        1 => val,
    ]
}

fn file() -> impl Strategy<Value = String> {
    let eol = prop::sample::select(vec![
        "\n", "\n", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\u{85}", "\u{2028}",
    ]);
    (
        any::<bool>(),
        prop::collection::vec((line(), eol), 0..12),
        any::<bool>(),
    )
        .prop_map(|(bom, lines, params_first)| {
            let mut s = String::new();
            if bom {
                s.push('\u{feff}');
            }
            if params_first {
                s.push_str("[params]\n");
            }
            for (l, e) in lines {
                s.push_str(&l);
                s.push_str(e);
            }
            s
        })
}

#[test]
fn parser_agrees_with_real_iniconfig_on_generated_files() {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run .ci/install-deps (installs the real iniconfig)"
    );
    let dump = cm_tests::repo_root().join("fixtures/ini/iniconfig-dump.py");
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strat = file();
    let n = 600;
    let mut texts = Vec::new();
    let mut paths = Vec::new();
    for i in 0..n {
        let t = strat.new_tree(&mut runner).unwrap().current();
        let p = dir.path().join(format!("g{i}.ini"));
        fs::write(&p, &t).unwrap();
        texts.push(t);
        paths.push(p);
    }
    let out = Command::new(PYTHON)
        .arg(&dump)
        .args(&paths)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ok_files = 0;
    for (i, t) in texts.iter().enumerate() {
        let rec = fs::read_to_string(dir.path().join(format!("g{i}.iniconfig.json"))).unwrap();
        let want: serde_json::Value = serde_json::from_str(&rec).unwrap();
        let got = ini::parse_str("g.ini", t);
        let ctx = format!("file {t:?}\niniconfig: {want}\ncm-core: {got:?}");
        match (&want["error"], got) {
            (serde_json::Value::Null, Ok(f)) => {
                let secs = want["sections"].as_array().unwrap();
                assert_eq!(secs.len(), f.sections.len(), "{ctx}");
                for (ws, gs) in secs.iter().zip(&f.sections) {
                    assert_eq!(ws["name"], gs.name.as_str(), "{ctx}");
                    let we = ws["entries"].as_array().unwrap();
                    assert_eq!(we.len(), gs.entries.len(), "{ctx}");
                    for (w, g) in we.iter().zip(&gs.entries) {
                        assert_eq!(w[0], g.key.as_str(), "{ctx}");
                        assert_eq!(w[1], g.value.as_str(), "{ctx}");
                        assert_eq!(w[2].as_u64(), Some(g.line as u64), "{ctx}");
                    }
                }
                ok_files += 1;
            }
            (serde_json::Value::Object(e), Err(IniError::Syntax { line, kind, .. })) => {
                assert_eq!(e["line"].as_u64(), Some(line as u64), "{ctx}");
                assert_eq!(e["msg"], cm_tests::iniconfig_msg(&kind).as_str(), "{ctx}");
            }
            _ => panic!("disagreement\n{ctx}"),
        }
    }
    // the generator must exercise both outcomes
    assert!(
        ok_files > n / 10 && ok_files < n - n / 10,
        "{ok_files} of {n} parsed"
    );
}
