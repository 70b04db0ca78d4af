//! The real Docker Compose v2 reads what cm-ini-to-env and cm_core::dotenv write, byte for
//! byte. `docker compose config` needs no engine: each test writes a project directory with
//! a `.env` and a compose.yaml that references every variable twice (interpolated into
//! `environment:` from the project .env, and through `env_file:`), runs
//! `/usr/local/bin/docker-compose-v2 config --format json`, and compares the values.
//! In that JSON a literal `$` is printed as `$$`; the tests undo that.

use std::collections::BTreeMap;
use std::fs;

use cm_core::{dotenv, ini, params};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};

/// Undo compose's `$` -> `$$` in its output.
fn unescape_dollars(s: &str) -> String {
    s.replace("$$", "$")
}

/// Run `compose config` on `env_text` (the project .env) with a compose file referencing
/// `keys`; returns (interpolated environment, env_file environment).
fn compose_read(
    env_text: &str,
    keys: &[String],
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(".env"), env_text).unwrap();
    let mut yaml = String::from("services:\n  interp:\n    image: scratch\n    environment:\n");
    for k in keys {
        yaml.push_str(&format!("      - {k}=${{{k}}}\n"));
    }
    if keys.is_empty() {
        yaml.push_str("      - UNUSED=1\n");
    }
    yaml.push_str("  envfile:\n    image: scratch\n    env_file: .env\n");
    fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
    let out = cm_tests::compose_config(dir.path());
    assert!(
        out.status.success(),
        "compose config failed: {}\n.env was:\n{env_text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("compose json");
    let env_of = |svc: &str| -> BTreeMap<String, String> {
        v["services"][svc]["environment"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            unescape_dollars(
                                v.as_str()
                                    .unwrap_or_else(|| panic!("{svc}.{k} is not a string: {v}")),
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    (env_of("interp"), env_of("envfile"))
}

#[test]
fn every_fixture_env_arrives_byte_for_byte() {
    let mut compared = 0;
    for path in cm_tests::readable_ini_fixtures() {
        let parsed = ini::read(&path).unwrap();
        let section = parsed.params().unwrap();
        for all in [false, true] {
            let text = cm_tests::ini_to_env_quiet(&path, all);
            let mine = dotenv::parse_map(&text).unwrap();
            let keys: Vec<String> = mine.keys().cloned().collect();
            let (interp, envfile) = compose_read(&text, &keys);
            assert_eq!(
                interp,
                envfile,
                "{}: two compose paths disagree",
                path.display()
            );
            assert_eq!(interp.len(), keys.len(), "{}", path.display());
            for (k, v) in &interp {
                let p =
                    params::from_env_key(k).unwrap_or_else(|| panic!("{k} is not a chatmail key"));
                let want = section.get(p.name).unwrap();
                assert_eq!(
                    v,
                    want,
                    "{}: {k} arrived changed (all={all})",
                    path.display()
                );
                assert_eq!(mine[k], *v, "our reader disagrees with compose on {k}");
                compared += 1;
            }
            // what was left out is what chatmail does anyway
            if !all {
                assert!(
                    params::diff_env(section, &interp).is_empty(),
                    "{}",
                    path.display()
                );
            }
        }
    }
    assert!(compared > 50, "only {compared} values compared");
}

#[test]
fn arbitrary_values_arrive_byte_for_byte() {
    // One compose run over a few hundred generated values, plus hand-picked nasty ones.
    let mut values: Vec<String> = [
        "",
        " ",
        "  lead",
        "trail  ",
        "$",
        "$$",
        "${",
        "${X}",
        "$X",
        "${X:-d}",
        "\\",
        "a\\",
        "\\$",
        "\"",
        "'",
        "`",
        "#",
        " #",
        "a #b",
        "=",
        "k=v",
        "\n",
        "\r\n",
        "\t",
        "\\t",
        "\\n",
        "\\0101",
        "ünï ✓ 🚀",
        "\u{85}nel",
        "\u{a0}nbsp\u{a0}",
        "\u{2028}",
        "%(x)s",
        "'a\\'b'",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strat = "[^\u{0}]{0,40}";
    for _ in 0..300 {
        values.push(strat.new_tree(&mut runner).unwrap().current());
    }
    let wild = prop::collection::vec(
        prop::sample::select(vec![
            '$', '{', '}', '\\', '"', '\'', '#', ' ', '\n', '\r', '\t', 'a', '0', ':', '-', '?',
            '=',
        ]),
        0..24,
    );
    for _ in 0..300 {
        values.push(
            wild.new_tree(&mut runner)
                .unwrap()
                .current()
                .into_iter()
                .collect(),
        );
    }
    let entries: Vec<(String, String)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("V{i}"), v.clone()))
        .collect();
    let text = dotenv::render(&["generated".into()], &entries).unwrap();
    let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    let (interp, envfile) = compose_read(&text, &keys);
    for (k, v) in &entries {
        assert_eq!(interp.get(k), Some(v), "interpolated {k}");
        assert_eq!(envfile.get(k), Some(v), "env_file {k}");
    }
    assert_eq!(dotenv::parse_map(&text).unwrap().len(), entries.len());
}

#[test]
fn reader_agrees_with_compose_on_hand_edited_files() {
    // Files people write by hand: our reader must read them as compose does.
    let text = "\u{feff}# a comment\n\
        PLAIN=value\n\
        SPACED = two words   \n\
        INLINE=abc # comment\n\
        HASH=a#b\n\
        EMPTY=\n\
        EMPTYQ=\"\"\n\
        export EXPORTED=yes\n\
        YAML: style\n\
        SINGLE='no $PLAIN expansion \\' here'\n\
        DOUBLE=\"with $PLAIN and ${SPACED} and \\$ and \\\\ and \\n and \\t\"\n\
        DOLLARS=a$$b\n\
        DEFAULTED=${NOPE:-fallback}\n\
        HARD=${EMPTY-x}${NOPE-y}\n\
        ALT=${PLAIN:+set}\n\
        MULTI=\"line1\nline2\"\n\
        OCTAL=\"\\0101\\0102\"\n\
        UNKNOWNESC=\"\\x41\\q\"\n\
        BACKSLASH=c:\\path\\n\n\
        TRAILQ=\"v\"   # after quote\n\
        LATER=1\n\
        LATER=2\n\
        REF=$PLAIN-$LATER\n\
        \tINDENTED=ok\n";
    let mine = dotenv::parse_map(text).unwrap();
    let keys: Vec<String> = mine.keys().cloned().collect();
    let (interp, envfile) = compose_read(text, &keys);
    assert_eq!(mine, envfile, "env_file reading differs");
    assert_eq!(mine, interp, "project .env reading differs");
    assert_eq!(
        mine["DOUBLE"],
        "with value and two words and $ and \\ and \n and \t"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// ini -> cm-ini-to-env logic -> compose, for values iniconfig can represent.
    #[test]
    fn ini_values_survive_compose(v in "[^\u{0}\n\r\u{b}\u{c}\u{1c}-\u{1e}\u{85}\u{2028}\u{2029}]{0,30}") {
        let v = ini::py_strip(&v).to_string();
        let entry = ini::render_entry("privacy_postal", &v).unwrap();
        let text = format!("[params]\nmail_domain = p.example.org\n{entry}");
        let parsed = ini::parse_str("p.ini", &text).unwrap();
        let conv = params::convert(&parsed).unwrap();
        let env = conv.to_env(true).unwrap();
        let keys = vec!["MAIL_DOMAIN".to_string(), "PRIVACY_POSTAL".to_string()];
        let (interp, _) = compose_read(&env, &keys);
        prop_assert_eq!(&interp["PRIVACY_POSTAL"], &v);
    }
}
