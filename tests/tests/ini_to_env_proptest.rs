//! Property tests: arbitrary strings survive the .env writer then the Compose-rules reader,
//! and chatmail.ini -> .env -> reader; merges keep what they do not own. (The real Compose
//! reads the same writer output in compose_dotenv.rs.)

use std::collections::BTreeMap;

use cm_core::{dotenv, ini, params};
use proptest::prelude::*;

/// Strings biased towards characters that matter to .env and ini parsers.
fn nasty() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        "$", "$$", "${", "}", "{", "\\", "\"", "'", "`", "#", " #", " ", "\t", "\n", "\r", "\r\n",
        "=", ":", ";", "%", "\\n", "\\$", "\\0101", "export ", "ü", "🚀", "\u{a0}", "\u{85}",
        "\u{2028}", "\u{feff}", "a", "Z", "0", "_",
    ]);
    prop_oneof![
        "[^\u{0}]{0,32}",
        prop::collection::vec(special, 0..16).prop_map(|v| v.concat()),
    ]
}

/// Values iniconfig can carry: no edge whitespace and every continuation line usable.
fn ini_value() -> impl Strategy<Value = String> {
    nasty().prop_filter_map("not representable in an ini", |v| {
        let v = ini::py_strip(&v).to_string();
        ini::render_entry("k", &v).ok().map(|_| v)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn writer_then_reader_is_identity(v in nasty()) {
        prop_assume!(!v.contains('\0'));
        let text = dotenv::line("KEY", &v).unwrap();
        let m = dotenv::parse_map(&text).unwrap();
        prop_assert_eq!(m.get("KEY"), Some(&v));
    }

    #[test]
    fn whole_files_read_back(vals in prop::collection::vec(nasty(), 1..8)) {
        let entries: Vec<(String, String)> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("K_{i}"), v.replace('\0', "")))
            .collect();
        let text = dotenv::render(&["header with $ and \"".into()], &entries).unwrap();
        let m = dotenv::parse_map(&text).unwrap();
        let want: BTreeMap<String, String> = entries.into_iter().collect();
        prop_assert_eq!(m, want);
    }

    #[test]
    fn ini_then_env_then_reader(
        values in prop::collection::vec(ini_value(), 4),
        domain in "[a-z][a-z0-9-]{0,10}\\.[a-z]{2,5}",
    ) {
        let keys = ["privacy_postal", "acme_email", "www_folder", "iroh_relay"];
        let mut text = format!("# generated\n[params]\nmail_domain = {domain}\n");
        for (k, v) in keys.iter().zip(&values) {
            text.push_str(&ini::render_entry(k, v).unwrap());
            text.push_str("# a comment between entries\n\n");
        }
        let parsed = ini::parse_str("gen.ini", &text).unwrap();
        let section = parsed.params().unwrap();
        for (k, v) in keys.iter().zip(&values) {
            prop_assert_eq!(section.get(k), Some(v.as_str()));
        }
        let conv = params::convert(&parsed).unwrap();
        for all in [false, true] {
            let env = conv.to_env(all).unwrap();
            let m = dotenv::parse_map(&env).unwrap();
            prop_assert_eq!(&m["MAIL_DOMAIN"], &domain);
            for (k, v) in keys.iter().zip(&values) {
                let ek = params::env_key(k);
                if all || !params::is_default(k, Some(v)) {
                    prop_assert_eq!(m.get(&ek), Some(v));
                } else {
                    prop_assert!(!m.contains_key(&ek));
                }
            }
            prop_assert!(params::diff_env(section, &m).is_empty());
        }
    }

    #[test]
    fn ini_update_then_parse(
        old in ini_value(),
        new in ini_value(),
        keep in ini_value(),
    ) {
        let text = format!(
            "[params]\nmail_domain = a.org\n{}{}[other]\nx = 1\n",
            ini::render_entry("privacy_mail", &old).unwrap(),
            ini::render_entry("privacy_pdo", &keep).unwrap(),
        );
        let out = ini::update_section(
            &text,
            "params",
            &[("privacy_mail".into(), Some(new.clone())), ("acme_email".into(), Some(old.clone()))],
        )
        .unwrap();
        let f = ini::parse_str("u.ini", &out).unwrap();
        let p = f.params().unwrap();
        prop_assert_eq!(p.get("privacy_mail"), Some(new.as_str()));
        prop_assert_eq!(p.get("acme_email"), Some(old.as_str()));
        prop_assert_eq!(p.get("privacy_pdo"), Some(keep.as_str()));
        prop_assert_eq!(f.section("other").and_then(|s| s.get("x")), Some("1"));
    }

    #[test]
    fn merge_keeps_foreign_values(
        foreign in prop::collection::vec(nasty(), 1..5),
        ours in nasty(),
    ) {
        let ours = ours.replace('\0', "");
        let foreign: Vec<(String, String)> = foreign
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("FOREIGN_{i}"), v.replace('\0', "")))
            .collect();
        let mut existing = String::from("# hand-written\n");
        for (i, (k, v)) in foreign.iter().enumerate() {
            existing.push_str(&dotenv::line(k, v).unwrap());
            if i == 0 {
                existing.push_str("MAIL_DOMAIN=old.example.org\n# note\n");
            }
        }
        let (merged, _) = dotenv::merge(
            &existing,
            &[("MAIL_DOMAIN".into(), ours.clone()), ("NEW_KEY".into(), ours.clone())],
            &[],
            &["added".into()],
        )
        .unwrap();
        let m = dotenv::parse_map(&merged).unwrap();
        for (k, v) in &foreign {
            prop_assert_eq!(m.get(k), Some(v));
        }
        prop_assert_eq!(m.get("MAIL_DOMAIN"), Some(&ours));
        prop_assert_eq!(m.get("NEW_KEY"), Some(&ours));
        prop_assert!(merged.starts_with("# hand-written\n"));
        prop_assert!(merged.contains("# note\n"));
    }
}
