//! Golden tests over fixtures/ini: each `<case>.ini` comes with the files that say what must
//! happen to it, side by side. Adding a case is adding files:
//! - `<case>.iniconfig.json`: how the real Python iniconfig reads it (recorded with
//!   fixtures/ini/iniconfig-dump.py); cm-core's parser must agree exactly;
//! - `<case>.env` / `<case>.all.env`: stdout of `cm-ini-to-env <case>.ini` (without / with
//!   `--all`), and `<case>.stderr`: its warnings (absent = no warnings);
//! - `<case>.err`: for input that must be refused: the single stderr line (exit 2).
//!
//! `UPDATE_GOLDEN=1 cargo test -p cm-tests --test ini_to_env_golden` rewrites the output
//! files (review the diff before committing).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cm_core::ini::{self, IniError};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    cm_tests::repo_root().join("fixtures/ini")
}

fn cases() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(fixture_dir())
        .expect("fixtures/ini exists")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".ini").map(str::to_string)
        })
        .collect();
    v.sort();
    assert!(v.len() >= 20, "expected the fixture set, found {v:?}");
    v
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// Compare `actual` with the golden file `name` (absent file = empty), or rewrite it.
fn golden(name: &str, actual: &[u8], failures: &mut Vec<String>) {
    let path = fixture_dir().join(name);
    if updating() {
        if actual.is_empty() {
            let _ = fs::remove_file(&path);
        } else {
            fs::write(&path, actual).unwrap();
        }
        return;
    }
    let expected = fs::read(&path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{name} differs:\n--- expected\n{}\n--- actual\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        ));
    }
}

fn run_in_fixtures(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(cm_tests::bin("cm-ini-to-env"));
    for p in cm_core::params::PARAMS {
        cmd.env_remove(p.env_key());
    }
    cmd.args(args)
        .current_dir(fixture_dir())
        .output()
        .expect("run cm-ini-to-env")
}

#[test]
fn outputs_match_golden_files() {
    let mut failures = Vec::new();
    for case in cases() {
        let file = format!("{case}.ini");
        // bad-*: values chatmail would refuse: an error (exit 2, nothing on stdout) unless
        // --accept-invalid, with which they are written and warned about.
        let accept: &[&str] = if case.starts_with("bad-") {
            let refused = run_in_fixtures(&[&file]);
            if refused.status.code() != Some(2) || !refused.stdout.is_empty() {
                failures.push(format!(
                    "{file}: refused values must exit 2 and print nothing"
                ));
            }
            &["--accept-invalid"]
        } else {
            &[]
        };
        let mut args = accept.to_vec();
        args.push(&file);
        let out = run_in_fixtures(&args);
        let code = out.status.code();
        if case.starts_with("err-") {
            if code != Some(2) {
                failures.push(format!("{file}: exit {code:?}, expected 2"));
            }
            if !out.stdout.is_empty() {
                failures.push(format!("{file}: refused input printed on stdout"));
            }
            let lines = String::from_utf8_lossy(&out.stderr).lines().count();
            if lines != 1 {
                failures.push(format!(
                    "{file}: {lines} stderr lines, expected exactly one"
                ));
            }
            golden(&format!("{case}.err"), &out.stderr, &mut failures);
            assert!(
                !fixture_dir().join(format!("{case}.env")).exists(),
                "{case}.env must not exist for a refused input"
            );
            continue;
        }
        if code != Some(0) {
            failures.push(format!(
                "{file}: exit {code:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        golden(&format!("{case}.env"), &out.stdout, &mut failures);
        golden(&format!("{case}.stderr"), &out.stderr, &mut failures);
        let mut args = accept.to_vec();
        args.extend(["--all", "--quiet", &file]);
        let all = run_in_fixtures(&args);
        assert_eq!(all.status.code(), Some(0), "{file} --all");
        assert!(all.stderr.is_empty(), "--quiet prints no warnings");
        golden(&format!("{case}.all.env"), &all.stdout, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn parser_matches_recorded_iniconfig() {
    let mut checked = 0;
    for case in cases() {
        let rec = fixture_dir().join(format!("{case}.iniconfig.json"));
        let Ok(text) = fs::read_to_string(&rec) else {
            panic!(
                "{case}: no {case}.iniconfig.json; record it with fixtures/ini/iniconfig-dump.py"
            );
        };
        let want: Value = serde_json::from_str(&text).unwrap();
        let data = fs::read(fixture_dir().join(format!("{case}.ini"))).unwrap();
        let got = ini::parse_bytes(&format!("{case}.ini"), &data);
        match (&want["error"], got) {
            (Value::Null, Ok(f)) => {
                let secs = want["sections"].as_array().unwrap();
                assert_eq!(secs.len(), f.sections.len(), "{case}: sections");
                for (ws, gs) in secs.iter().zip(&f.sections) {
                    assert_eq!(ws["name"], gs.name.as_str(), "{case}");
                    let we = ws["entries"].as_array().unwrap();
                    assert_eq!(
                        we.len(),
                        gs.entries.len(),
                        "{case}: entries of [{}]",
                        gs.name
                    );
                    for (w, g) in we.iter().zip(&gs.entries) {
                        assert_eq!(w[0], g.key.as_str(), "{case}");
                        assert_eq!(w[1], g.value.as_str(), "{case}: value of {}", g.key);
                        assert_eq!(
                            w[2].as_u64(),
                            Some(g.line as u64),
                            "{case}: line of {}",
                            g.key
                        );
                    }
                }
            }
            (Value::Object(e), Err(err)) => {
                if e["msg"] == "UnicodeDecodeError" {
                    assert!(matches!(err, IniError::InvalidUtf8 { .. }), "{case}: {err}");
                } else {
                    let IniError::Syntax { line, kind, .. } = &err else {
                        panic!("{case}: expected a syntax error, got {err}");
                    };
                    assert_eq!(e["line"].as_u64(), Some(*line as u64), "{case}: {err}");
                    assert_eq!(e["msg"], cm_tests::iniconfig_msg(kind).as_str(), "{case}");
                }
            }
            (w, g) => panic!("{case}: iniconfig says {w}, cm-core says {g:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 20);
}

#[test]
fn every_template_key_is_known() {
    // The keys the fixture hosts (copied from chatmail's templates) set are all known.
    for case in ["host-1.1", "host-1.10", "host-1.12", "docker-branch"] {
        let f = ini::read(Path::new(&fixture_dir().join(format!("{case}.ini")))).unwrap();
        for e in &f.params().unwrap().entries {
            assert!(
                cm_core::params::lookup(&e.key).is_some(),
                "{case}: {} unknown",
                e.key
            );
        }
    }
}

#[test]
fn env_applied_back_onto_an_ini_means_the_same() {
    // What the container's start-up applier does: take the .env of each fixture and apply
    // it onto another host's ini (with non-default values of its own); the result must mean
    // exactly what the .env means, and applying it again must change nothing.
    let base = fs::read_to_string(fixture_dir().join("host-1.12.ini")).unwrap();
    for case in cases().into_iter().filter(|c| !c.starts_with("err-")) {
        let f = ini::read(&fixture_dir().join(format!("{case}.ini"))).unwrap();
        let conv = cm_core::params::convert(&f).unwrap();
        let env = cm_core::dotenv::parse_map(&conv.to_env(false).unwrap()).unwrap();
        let applied = cm_core::params::apply_env("base.ini", &base, &env, true).unwrap();
        let back = ini::parse_str("applied.ini", &applied.text).unwrap();
        let diffs = cm_core::params::diff_env(back.params().unwrap(), &env);
        assert!(diffs.is_empty(), "{case}: {diffs:?}\n{}", applied.text);
        // every carried value arrives byte for byte
        for (k, v) in &env {
            let p = cm_core::params::from_env_key(k).unwrap();
            assert_eq!(
                back.params().unwrap().get(p.name),
                Some(v.as_str()),
                "{case}: {k}"
            );
        }
        // and the original ini means the same as the applied one
        assert!(
            cm_core::params::diff_env(f.params().unwrap(), &env).is_empty(),
            "{case}"
        );
        let again = cm_core::params::apply_env("a.ini", &applied.text, &env, true).unwrap();
        assert!(again.changes.is_empty(), "{case}: {:?}", again.changes);
        assert_eq!(again.text, applied.text);
    }
}
