//! cm-core's params table anchored in chatmail's real templates
//! (fixtures/chatmail-ini-templates/, recorded from each release): a wrong default would pass
//! every round trip that judges "means the same" by the table itself, so the table is held
//! against what chatmail writes.

use std::collections::BTreeMap;

use cm_core::params;

/// A release, its set keys and its commented-out `#key = value` defaults.
type Template = (String, BTreeMap<String, String>, BTreeMap<String, String>);

/// (release, key, value as written) for every default a template writes: a set line, or in
/// 1.11.0 and later a commented-out `#key = value` line.
fn template_defaults() -> Vec<Template> {
    let dir = cm_tests::repo_root().join("fixtures/chatmail-ini-templates");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(release) = name.strip_prefix("chatmail.ini.f-") else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("{mail_domain}", "example.org");
        let ini = cm_core::ini::parse_str(&name, &text).unwrap();
        let set: BTreeMap<String, String> = ini
            .params()
            .unwrap()
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        // `#key = value` (no space after #: chatmail's commented defaults; `# key = ...` are
        // examples)
        let commented: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        out.push((release.to_string(), set, commented));
    }
    out.sort();
    assert_eq!(
        out.len(),
        8,
        "templates: {:?}",
        out.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    out
}

/// Defaults older releases wrote that chatmail has since changed: (key, value, releases).
const CHANGED: &[(&str, &str, &[&str])] = &[
    (
        "max_mailbox_size",
        "100M",
        &["1.1.0", "1.4.0", "1.7.0", "1.8.0"],
    ),
    ("delete_mails_after", "40", &["1.1.0"]),
    ("delete_inactive_users_after", "100", &["1.4.0"]),
];

/// Template lines that show an example rather than the default (the table's default, as
/// chatmail's code has it, is the empty path).
const EXAMPLES: &[(&str, &str)] = &[("www_folder", "www")];

fn numbered(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

#[test]
fn every_key_a_template_writes_is_in_the_table_for_that_release() {
    for (release, set, commented) in template_defaults() {
        for key in set.keys().chain(commented.keys()) {
            let p = params::lookup(key).unwrap_or_else(|| panic!("{release}: {key} unknown"));
            if release == "docker-rebase" {
                continue;
            }
            let r = numbered(&release).unwrap();
            assert!(
                numbered(p.since).is_some_and(|s| s <= r),
                "{release}: {key} is in the template, the table says since {}",
                p.since
            );
            if let Some(u) = p.until {
                assert!(
                    numbered(u).unwrap() > r,
                    "{release}: {key} unused since {u}"
                );
            }
        }
    }
}

#[test]
fn the_tables_defaults_are_the_ones_each_release_writes() {
    for (release, set, commented) in template_defaults() {
        let newest = release == "1.12.0" || release == "docker-rebase";
        for (key, value) in set.iter().chain(&commented) {
            let p = params::lookup(key).unwrap();
            if key == "mail_domain" || p.status == params::Status::Unused {
                continue;
            }
            if EXAMPLES.contains(&(key.as_str(), value.as_str())) {
                assert!(
                    commented.contains_key(key),
                    "{release}: {key} = {value} is set"
                );
                continue;
            }
            let same = params::values_equal(key, Some(value), None);
            let changed = CHANGED
                .iter()
                .any(|(k, v, rs)| k == key && v == value && rs.contains(&release.as_str()));
            assert!(
                same != changed,
                "{release}: {key} = {value:?} written; table default {:?} ({})",
                p.default,
                if newest {
                    "the newest release must match"
                } else {
                    "list it in CHANGED"
                }
            );
            assert!(!(newest && changed), "{release}: {key}");
        }
    }
    // every change listed is seen in a template (no stale entries)
    let all = template_defaults();
    for (k, v, rs) in CHANGED {
        for r in *rs {
            let t = all.iter().find(|t| t.0 == *r).unwrap();
            assert_eq!(t.1.get(*k).map(String::as_str), Some(*v), "{r}: {k}");
        }
    }
}

/// An old host's ini carries its release's defaults as set lines: cm-ini-to-env writes
/// exactly those that differ from today's defaults, each with the ini's raw value (not a value
/// the table thinks means the same), and leaves out the rest.
#[test]
fn converting_each_template_keeps_every_set_value_raw() {
    for (release, set, _) in template_defaults() {
        let text: String = std::iter::once("[params]".to_string())
            .chain(set.iter().map(|(k, v)| format!("{k} = {v}")))
            .collect::<Vec<_>>()
            .join("\n");
        let ini = cm_core::ini::parse_str(&release, &text).unwrap();
        let conv = params::convert(&ini).unwrap();
        let env: BTreeMap<String, String> = conv.env_entries(false).into_iter().collect();
        for (key, value) in &set {
            let p = params::lookup(key).unwrap();
            let written = env.get(&p.env_key());
            if params::values_equal(key, Some(value), None) && key != "mail_domain" {
                assert_eq!(written, None, "{release}: {key} = {value} is the default");
            } else if p.status != params::Status::Unused {
                assert_eq!(written, Some(value), "{release}: {key} written raw");
            }
        }
    }
}
