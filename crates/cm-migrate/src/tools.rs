//! `cm-migrate <tool> ...`: every tool of the suite, run in-process under the one name
//! (`cm-migrate copy-data`, `cm-migrate verify`, `cm-migrate ini-to-env`,
//! `cm-migrate env-apply`), beside cm-migrate's own subcommands. The separate binaries
//! (cm-copy-data, ...) keep working; this only saves remembering five names.
//!
//! Dispatch is on the first argument, not on the program's file name (clap's multicall fails
//! with exit 2 under any other name, e.g. a renamed or copied binary). A tool runs with
//! `cm-migrate copy-data` as its program name, so its usage lines and errors name the command
//! that was typed. [`command`] is cm-migrate's own definition with the tools added as
//! subcommands: what `cm-migrate --help`, the man pages and the completions are made from.

use std::ffi::OsString;
use std::process::ExitCode;

/// One tool of the suite that `cm-migrate` also runs as a subcommand.
pub struct Tool {
    /// Its subcommand of cm-migrate (`copy-data`).
    pub sub: &'static str,
    /// Its own binary (`cm-copy-data`).
    pub bin: &'static str,
    /// Its command-line definition (named `bin`).
    pub command: fn() -> clap::Command,
    /// Run it with these arguments (the first is the program name).
    pub run: fn(Vec<OsString>) -> ExitCode,
}

/// The tools, in the order a migration uses them.
pub static TOOLS: &[Tool] = &[
    Tool {
        sub: "ini-to-env",
        bin: "cm-ini-to-env",
        command: cm_ini_to_env::command,
        run: cm_ini_to_env::run::<Vec<OsString>, OsString>,
    },
    Tool {
        sub: "copy-data",
        bin: "cm-copy-data",
        command: cm_copy_data::command,
        run: cm_copy_data::run::<Vec<OsString>, OsString>,
    },
    Tool {
        sub: "verify",
        bin: "cm-verify",
        command: cm_verify::command,
        run: cm_verify::run::<Vec<OsString>, OsString>,
    },
    Tool {
        sub: "env-apply",
        bin: "cm-env-apply",
        command: cm_env_apply::command,
        run: cm_env_apply::run::<Vec<OsString>, OsString>,
    },
];

/// Every binary of the suite with its command-line definition: cm-migrate (with the tools
/// as subcommands, [`command`]) first, then each tool's own (for man pages and completions).
pub fn binaries() -> Vec<(&'static str, clap::Command)> {
    let mut all = vec![("cm-migrate", command())];
    all.extend(TOOLS.iter().map(|t| (t.bin, (t.command)())));
    all
}

/// cm-migrate's definition with every tool added as a subcommand (the tool's own arguments
/// and help, under its subcommand name).
pub fn command() -> clap::Command {
    TOOLS.iter().fold(crate::command(), |cmd, t| {
        cmd.subcommand((t.command)().name(t.sub))
    })
}

/// Run cm-migrate: a tool when the first argument names one, else cm-migrate's own
/// subcommands ([`crate::run`]), with `--help` and usage errors from [`command`] so that
/// they list the tools too.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if let Some(tool) = args.get(1).and_then(|a| TOOLS.iter().find(|t| a == t.sub)) {
        let mut tool_args = vec![OsString::from(format!("cm-migrate {}", tool.sub))];
        tool_args.extend(args[2..].iter().cloned());
        return (tool.run)(tool_args);
    }
    match command().try_get_matches_from(&args) {
        Ok(_) => crate::run(args),
        Err(e) => cm_cli::parse_error(&args, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_subcommands_without_clashes() {
        // clap's own consistency checks, duplicate subcommand names included
        command().debug_assert();
        for t in TOOLS {
            assert_eq!(t.bin, format!("cm-{}", t.sub));
            assert_eq!((t.command)().get_name(), t.bin);
            assert!(
                crate::command().find_subcommand(t.sub).is_none(),
                "{} clashes",
                t.sub
            );
        }
    }

    #[test]
    fn help_lists_every_tool() {
        let help = command().render_help().to_string();
        for t in TOOLS {
            assert!(help.contains(t.sub), "{} missing from:\n{help}", t.sub);
        }
        assert!(help.contains("stop-services"), "{help}");
    }

    #[test]
    fn a_tool_keeps_its_arguments_and_help() {
        let mut cmd = command();
        cmd.build();
        let sub = cmd.find_subcommand_mut("copy-data").expect("copy-data");
        let usage = sub.render_usage().to_string();
        assert!(usage.contains("cm-migrate copy-data"), "{usage}");
        assert!(sub
            .get_arguments()
            .any(|a| a.get_long() == Some("owner-map")));
    }
}

#[cfg(test)]
mod help_tests {
    /// Every command and subcommand of every binary, as `name sub sub`.
    fn walk(prefix: &str, cmd: &mut clap::Command, out: &mut Vec<(String, String)>) {
        let name = format!("{prefix}{}", cmd.get_name());
        if cmd.get_subcommands().next().is_none() || cmd.is_subcommand_required_set() {
            let help = cmd.render_long_help().to_string();
            out.push((name.clone(), help));
        }
        for sub in cmd.get_subcommands_mut() {
            if sub.get_name() == "help" {
                continue;
            }
            walk(&format!("{name} "), sub, out);
        }
    }

    #[test]
    fn every_subcommand_help_states_its_exit_codes_and_shows_an_example() {
        let mut all = Vec::new();
        for (_, mut cmd) in super::binaries() {
            cmd.build();
            walk("", &mut cmd, &mut all);
        }
        let missing: Vec<&str> = all
            .iter()
            .filter(|(_, h)| {
                !(h.contains("Exit status") || h.contains("Exit codes")) || !h.contains("Example")
            })
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(missing.is_empty(), "no exit codes or example: {missing:#?}");
    }
}
