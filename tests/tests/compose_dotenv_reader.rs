//! cm_core::dotenv's reader against the real Docker Compose v2 on generated, hand-edited-looking
//! .env files (unquoted, single- and double-quoted values, `export`, `K: v`, comments,
//! `$` references, escapes, multi-line values, and plenty of syntax errors). Each file is
//! given to compose as an `env_file:` with an empty environment; compose and our reader
//! must agree on every value, or both refuse the file.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use cm_core::dotenv;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const COMPOSE: &str = "/usr/local/bin/docker-compose-v2";

fn piece() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "b c",
        " ",
        "  ",
        "#",
        " #",
        "x#y",
        "$A",
        "${A}",
        "${B:-d}",
        "${NOPE-x}",
        "${NOPE:-}",
        "$$",
        "\\",
        "\\n",
        "\\t",
        "\\$",
        "\\\"",
        "\\'",
        "'",
        "\"",
        "=",
        ":",
        "é",
        "\t",
        "-",
        "$",
        "${",
    ])
    .prop_map(str::to_string)
}

fn body() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..5).prop_map(|v| v.concat())
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => body(),
        2 => body().prop_map(|b| format!("'{}'", b.replace('\'', "\\'"))),
        2 => body().prop_map(|b| format!("\"{}\"", b.replace('"', "\\\""))),
        1 => (body(), body()).prop_map(|(a, b)| format!("\"{}\n{}\"", a.replace('"', ""), b.replace('"', ""))),
    ]
}

fn line() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec!["A", "B", "C_1", "lower", "_U", "A"]);
    let sep = prop::sample::select(vec!["=", " = ", ": ", "="]);
    let export = prop::sample::select(vec!["", "", "export ", "  "]);
    let tail = prop::sample::select(vec!["", "", " # comment", "   ", "\t# c"]);
    prop_oneof![
        6 => (export, key, sep, value(), tail).prop_map(|(e, k, s, v, t)| format!("{e}{k}{s}{v}{t}")),
        1 => prop::sample::select(vec!["# comment", "", "   ", "  # indented comment"]).prop_map(str::to_string),
    ]
}

fn file() -> impl Strategy<Value = String> {
    (prop::collection::vec(line(), 1..7), any::<bool>()).prop_map(|(lines, crlf)| {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut s = lines.join(eol);
        s.push_str(eol);
        s
    })
}

/// compose's reading of `text` as an env_file: Ok(map) or Err(message).
fn compose_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("vars.env"), text).unwrap();
    fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  s:\n    image: scratch\n    env_file: vars.env\n",
    )
    .unwrap();
    let out = Command::new(PathBuf::from(COMPOSE))
        .args(["config", "--format", "json"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .expect("run docker-compose-v2");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(v["services"]["s"]["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    // compose prints a variable without value as null; a literal $ as $$
                    let s = v.as_str().unwrap_or("").replace("$$", "$");
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default())
}

#[test]
fn reader_agrees_with_compose_on_generated_files() {
    assert!(
        std::path::Path::new(COMPOSE).exists(),
        "{COMPOSE} is missing: run .ci/install-deps"
    );
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strat = file();
    let (mut agreed_ok, mut agreed_err) = (0, 0);
    for _ in 0..80 {
        let text = strat.new_tree(&mut runner).unwrap().current();
        let ours = dotenv::parse_map(&text);
        let theirs = compose_env_file(&text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "values differ for {text:?}");
                agreed_ok += 1;
            }
            (Err(_), Err(_)) => agreed_err += 1,
            _ => panic!("disagreement on {text:?}\nours: {ours:?}\ncompose: {theirs:?}"),
        }
    }
    assert!(
        agreed_ok >= 20 && agreed_err >= 5,
        "ok {agreed_ok}, err {agreed_err}"
    );
}
