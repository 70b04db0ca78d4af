//! `cm-migrate preflight`: every check before the move, each saying what to do; exit 1 when
//! one blocks. Changes nothing.

use crate::flow::{build, fail, print_findings, print_json, with_parts, FlowArgs, Out};
use clap::Args;
use cm_core::migration::{findings, Level};

/// Check everything the move needs, change nothing.
#[derive(Args, Debug)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Check as for `run --start` (the container starts here: Docker, cgroup v2 and the
    /// inotify limits then block instead of warn).
    #[arg(long)]
    pub start: bool,
    #[command(flatten)]
    pub out: Out,
}

pub fn main(a: PreflightArgs) -> i32 {
    let mut b = match build(&a.flow) {
        Ok(b) => b,
        Err(e) => return fail(a.out, &e, 2),
    };
    let f = with_parts(&mut b, |p| findings(p, a.start, &a.flow.skip_check));
    let blocks = f.iter().filter(|x| x.level == Level::Block).count();
    let not_checked = f.iter().filter(|x| x.level == Level::NotChecked).count();
    let code = if blocks > 0 { 1 } else { 0 };
    if a.out.json {
        print_json(&serde_json::json!({"findings": f, "blocks": blocks}), code);
    } else if !a.out.quiet {
        println!("Preflight for {}:", b.identity.describe());
        print_findings(&f, true);
        println!(
            "{}: {} checks, {blocks} block the move, {not_checked} not checked.",
            if blocks > 0 { "BLOCKED" } else { "OK" },
            f.len()
        );
    } else {
        for x in f.iter().filter(|x| x.level == Level::Block) {
            eprintln!("cm-migrate: BLOCKS {}: {}", x.check, x.message);
        }
    }
    code
}
