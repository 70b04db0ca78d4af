//! cm-verify: prove the migration. Thin layer over cm-core (tree, manifest, report).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use cm_core::owners::OwnerMap;
use cm_core::report;
use cm_core::tree::{self, CompareOptions, Difference, ScanOptions, TreeStats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prove that a migration is complete and exact, and say exactly what is not.
///
/// Exit status: 0 when everything compared holds; 1 when anything differs (or could not be
/// read, so could not be verified); 2 on a usage error or an input that cannot be used (a
/// missing tree, an invalid manifest or owner map).
#[derive(Parser)]
#[command(name = "cm-verify", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compare two trees entry by entry: presence, type, mode, owner, size, mtime, content
    /// (SHA-256), symlink target, hard-link grouping, extended attributes and ACLs, device
    /// numbers.
    ///
    /// Symlinks are never followed. atime is not compared unless --atime. Files are hashed
    /// in parallel (--jobs), only where both sides have a regular file of the same size.
    Tree {
        /// The original tree (e.g. /home on the old host).
        src: PathBuf,
        /// The copy (e.g. data/chatmail in the compose project).
        dst: PathBuf,
        #[command(flatten)]
        cmp: CompareArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Write or check a manifest (a per-tree record, see docs/manifest.md), for when the
    /// original and the copy are on different machines.
    #[command(subcommand)]
    Manifest(ManifestCmd),
}

#[derive(Subcommand)]
enum ManifestCmd {
    /// Record ROOT (every entry's metadata and the SHA-256 of every file) in FILE.
    ///
    /// The file is written atomically with mode 0600. If any entry cannot be read, nothing
    /// is written and the exit status is 1.
    Write {
        /// The tree to record.
        root: PathBuf,
        /// Where to write the manifest.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Do not hash file contents (the manifest then proves metadata only).
        #[arg(long)]
        no_hash: bool,
        /// Do not record extended attributes and ACLs.
        #[arg(long)]
        no_xattrs: bool,
        /// Hashing threads (default: the number of CPUs).
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Compare the live tree DST with the manifest FILE (written by `manifest write` or by
    /// cm-copy-data).
    Check {
        /// The manifest.
        file: PathBuf,
        /// The tree to check against it.
        dst: PathBuf,
        #[command(flatten)]
        cmp: CompareArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

#[derive(Args)]
struct CompareArgs {
    /// Map the original's owners before comparing, as cm-copy-data --owner-map does. Lines
    /// `name uid gid` (the name's ids on the old host, from --root's /etc/passwd and
    /// /etc/group) or `host-uid:host-gid=uid:gid`; `#` comments.
    #[arg(long, value_name = "FILE")]
    owner_map: Option<PathBuf>,
    /// Root of the old host's file system, for resolving the names in --owner-map.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Also compare access times (off by default: reading a file may update them).
    #[arg(long)]
    atime: bool,
    /// Do not compare contents (no hashing: metadata only).
    #[arg(long)]
    no_content: bool,
    /// Do not compare extended attributes and ACLs.
    #[arg(long)]
    no_xattrs: bool,
    /// Leave out this relative path (and everything below it) on both sides. Repeatable.
    #[arg(long, value_name = "REL")]
    exclude: Vec<PathBuf>,
    /// Hashing threads (default: the number of CPUs).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
}

#[derive(Args)]
struct OutputArgs {
    /// Print a JSON report with every difference on stdout instead of the text report.
    #[arg(long)]
    json: bool,
    /// No progress and no text report: the exit status says it all (--json still prints).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// How many examples to show per kind of difference in the text report.
    #[arg(long, value_name = "N", default_value_t = 10)]
    examples: usize,
}

/// Progress on stderr, only on a terminal and without --quiet.
struct Bar(ProgressBar);

impl Bar {
    fn new(quiet: bool) -> Bar {
        let pb = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        } else {
            let pb = ProgressBar::new_spinner();
            pb.set_message("walking");
            pb.enable_steady_tick(std::time::Duration::from_millis(200));
            pb
        };
        Bar(pb)
    }
}

impl tree::Progress for Bar {
    fn scanned(&self, n: u64) {
        self.0.inc(n);
    }
    fn hash_start(&self, files: u64, bytes: u64) {
        self.0.set_style(
            ProgressStyle::with_template(
                "hashing {msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        self.0.set_message(format!("{files} files"));
        self.0.set_position(0);
        self.0.set_length(bytes);
    }
    fn hashed(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn compare_options(a: &CompareArgs) -> Result<CompareOptions> {
    let owner_map = match &a.owner_map {
        Some(f) => OwnerMap::load(f, &a.root)?,
        None => OwnerMap::identity(),
    };
    Ok(CompareOptions {
        owner_map,
        atime: a.atime,
        xattrs: !a.no_xattrs,
        content: !a.no_content,
        jobs: a.jobs.unwrap_or_else(tree::default_jobs).max(1),
        exclude: a.exclude.clone(),
    })
}

fn print_report(diffs: &[Difference], what: &str, stats: &TreeStats, out: &OutputArgs) {
    if out.json {
        let v = report::to_json(diffs, what, Some(stats));
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        );
    } else if !out.quiet {
        print!(
            "{}",
            report::render_text(diffs, out.examples, what, Some(stats))
        );
    }
}

fn verdict(diffs: &[Difference]) -> ExitCode {
    if diffs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn q(p: &Path) -> String {
    report::quote_path(p)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Tree { src, dst, cmp, out } => {
            let opts = compare_options(&cmp)?;
            let bar = Bar::new(out.quiet);
            let (diffs, stats) = tree::compare_trees(&src, &dst, &opts, &bar)?;
            drop(bar);
            print_report(
                &diffs,
                &format!("tree {} vs {}", q(&src), q(&dst)),
                &stats,
                &out,
            );
            Ok(verdict(&diffs))
        }
        Cmd::Manifest(ManifestCmd::Check {
            file,
            dst,
            cmp,
            out,
        }) => {
            let opts = compare_options(&cmp)?;
            let expected = cm_core::manifest::read(&file)?;
            let bar = Bar::new(out.quiet);
            let (diffs, stats) = tree::check_against(&expected, &dst, &opts, &bar)?;
            drop(bar);
            print_report(
                &diffs,
                &format!("manifest {} vs {}", q(&file), q(&dst)),
                &stats,
                &out,
            );
            Ok(verdict(&diffs))
        }
        Cmd::Manifest(ManifestCmd::Write {
            root,
            output,
            no_hash,
            no_xattrs,
            jobs,
            out,
        }) => {
            let opts = ScanOptions {
                xattrs: !no_xattrs,
                hash: !no_hash,
                jobs: jobs.unwrap_or_else(tree::default_jobs).max(1),
                exclude: Vec::new(),
            };
            let bar = Bar::new(out.quiet);
            let snap = tree::scan(&root, &opts, &bar)?;
            drop(bar);
            let (files, bytes) = snap.file_totals();
            if !snap.errors.is_empty() {
                for e in &snap.errors {
                    eprintln!("cm-verify: {}: {}", q(&e.path), e.message);
                }
                if out.json {
                    let errs: Vec<_> = snap
                        .errors
                        .iter()
                        .map(|e| serde_json::json!({"path": report::json_path(&e.path), "error": e.message}))
                        .collect();
                    println!(
                        "{}",
                        serde_json::json!({"ok": false, "written": false, "errors": errs})
                    );
                }
                eprintln!(
                    "cm-verify: {} entries of {} could not be read; {} was NOT written (fix the permissions or run as root, then rerun)",
                    snap.errors.len(),
                    q(&root),
                    q(&output)
                );
                return Ok(ExitCode::from(1));
            }
            let comments = vec![
                "written by cm-verify manifest write".to_string(),
                format!("root: {}", q(&root)),
                format!(
                    "entries: {}, files: {files}, bytes: {bytes}",
                    snap.entries.len()
                ),
            ];
            cm_core::manifest::write(&output, &snap, &comments)?;
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "written": true, "manifest": report::json_path(&output),
                        "entries": snap.entries.len(), "files": files, "bytes": bytes})
                );
            } else if !out.quiet {
                println!(
                    "wrote {}: {} entries, {files} files, {bytes} bytes{}",
                    q(&output),
                    snap.entries.len(),
                    if no_hash { " (no hashes)" } else { " hashed" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    match run(cli) {
        Ok(c) => c,
        Err(e) => {
            // cm-core's errors already carry their cause in their message.
            eprintln!("cm-verify: {e}");
            ExitCode::from(2)
        }
    }
}
