//! The suite's version line, the same in every tool's `--version`: the suite's version and
//! the chatmail releases whose settings it knows (from [`crate::params::known_releases`]).

use std::sync::OnceLock;

/// The suite's version (every crate of the workspace shares it).
pub const SUITE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `0.1.0 (cm-migrate suite; knows the settings of chatmail 1.1 to 1.12 and its Docker
/// branch)`: what follows the tool's name in `--version` (clap's `version = ...`).
pub fn text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{SUITE_VERSION} (cm-migrate suite; knows the settings of {})",
            crate::params::known_releases()
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_version_and_releases() {
        let t = super::text();
        assert!(t.starts_with(&format!("{} (", super::SUITE_VERSION)), "{t}");
        assert!(t.contains("chatmail 1.1 to 1.12"), "{t}");
        assert!(!t.contains('\n'), "one line: {t}");
    }
}
