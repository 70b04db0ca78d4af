//! `cm-migrate rollback`: the old relay back after an aborted or finished run.

use crate::flow::{build, fail, print_json, FlowArgs, Out};
use clap::Args;
use cm_core::migration::rollback;

/// Bring the old relay back: stop a container the run started, then restore every unit as
/// recorded; list what the run left in the target (nothing there is deleted).
#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    #[command(flatten)]
    pub out: Out,
}

pub fn main(a: RollbackArgs) -> i32 {
    let mut b = match build(&a.flow) {
        Ok(b) => b,
        Err(e) => return fail(a.out, &e, 2),
    };
    let mut left = b.copier.left_behind();
    left.extend(b.settings.left_behind());
    let quiet = a.out.quiet;
    let r = rollback(
        &b.journal_file,
        &b.lock_file,
        &mut *b.services,
        &mut *b.target,
        left,
        &mut |m| {
            if !quiet {
                eprintln!("cm-migrate: {m}");
            }
        },
    );
    let r = match r {
        Ok(r) => r,
        Err(e) => return fail(a.out, &e.to_string(), e.exit_code()),
    };
    let code = r.exit_code();
    if a.out.json {
        print_json(&r, code);
        return code;
    }
    let outcome = |o: &Option<cm_core::migration::StepOutcome>| {
        o.iter()
            .flat_map(|o| o.problems.clone())
            .collect::<Vec<_>>()
    };
    for p in outcome(&r.container)
        .into_iter()
        .chain(outcome(&r.services))
    {
        eprintln!("cm-migrate: {p}");
    }
    if quiet {
        return code;
    }
    if let Some(c) = &r.container {
        println!("container: {}", c.summary);
    }
    if let Some(s) = &r.services {
        println!("services: {}", s.summary);
    }
    if r.complete {
        println!("OK: the old relay is back.");
        if !r.left_behind.is_empty() {
            println!("Left in the target (not removed; delete it yourself once you are sure):");
            for l in &r.left_behind {
                println!("  {l}");
            }
        }
    } else {
        println!("INCOMPLETE: see above; fix the cause and run `cm-migrate rollback` again.");
    }
    code
}
