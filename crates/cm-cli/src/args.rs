//! The arguments every tool spells the same way, as clap `Args` structs to flatten in
//! (`--json`, `-q/--quiet`, `-v/--verbose`, `-n/--dry-run`, `-j/--jobs`).

use std::path::{Path, PathBuf};

use clap::Args;
use cm_core::owners::{OwnerMap, OwnerMapError};

/// The largest `--jobs` accepted: more threads than this only add contention.
pub const JOBS_MAX: usize = 1024;

/// `-j/--jobs N`, validated: between 1 and [`JOBS_MAX`], the range named in the error.
pub fn parse_jobs(s: &str) -> Result<usize, String> {
    let range = format!("between 1 and {JOBS_MAX}");
    match s.parse::<usize>() {
        Ok(n) if (1..=JOBS_MAX).contains(&n) => Ok(n),
        Ok(n) => Err(format!(
            "{n} threads is out of range: give a number {range}"
        )),
        Err(_) => Err(format!("{s:?} is not a number: give a number {range}")),
    }
}

/// How the outcome is printed: text for people, `--json` for machines, `--quiet` for
/// scripts.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Print one JSON document on stdout instead of the text (also on errors: {"ok": false,
    /// "exit_code": N, "error": "..."}).
    #[arg(long)]
    pub json: bool,
    /// No progress, warnings or text report: the exit status says it all (errors are still
    /// printed on stderr; --json still prints).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `-v/--verbose`, for the tools that have more to say.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct VerboseArgs {
    /// Say more: every entry acted on, not only counts.
    #[arg(long, short = 'v', conflicts_with = "quiet")]
    pub verbose: bool,
}

impl OutputArgs {
    /// Text for people goes to stdout.
    pub fn human(&self) -> bool {
        !self.json && !self.quiet
    }
    /// Warnings and notes go to stderr.
    pub fn warnings(&self) -> bool {
        !self.quiet
    }
}

/// `-n/--dry-run`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct DryRunArgs {
    /// Show what would be done and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// `-j/--jobs N`.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct JobsArgs {
    /// Threads for walking and reading (1 to 1024; default: 4 per CPU, between 8 and 32: the
    /// work waits on the disk far more than on the CPU).
    #[arg(long, short = 'j', value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
}

impl JobsArgs {
    /// The number of threads: the one given, else `default`.
    pub fn or(&self, default: impl FnOnce() -> usize) -> usize {
        self.jobs.unwrap_or_else(default).max(1)
    }
}

/// `--owner-map FILE`: host ids to the container image's, as cm-copy-data applies them
/// while copying and cm-verify before comparing.
#[derive(Args, Debug, Clone, Default)]
pub struct OwnerMapArgs {
    /// Map owners: lines `name uid gid` (the name's ids on the old host are read from
    /// --root's etc/passwd and etc/group) or `host-uid:host-gid=uid:gid`; `#` comments.
    /// ACL entries are mapped too. Without it numeric ids are kept.
    #[arg(long, value_name = "FILE")]
    pub owner_map: Option<PathBuf>,
}

impl OwnerMapArgs {
    /// The map, names resolved under `root` (None without --owner-map); each line it had to
    /// skip is a warning on stderr unless `quiet`.
    pub fn load(&self, root: &Path, quiet: bool) -> Result<Option<OwnerMap>, OwnerMapError> {
        let Some(f) = &self.owner_map else {
            return Ok(None);
        };
        let m = OwnerMap::load(f, root)?;
        if !quiet {
            for s in m.skipped() {
                crate::msg::warning(&s.to_string());
            }
        }
        Ok(Some(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_outside_the_range_are_refused_naming_it() {
        for bad in ["0", "100000", "x", "-1"] {
            let e = parse_jobs(bad).unwrap_err();
            assert!(e.contains("between 1 and 1024"), "{bad}: {e}");
        }
        assert_eq!(parse_jobs("1"), Ok(1));
        assert_eq!(parse_jobs("1024"), Ok(1024));
    }
}
