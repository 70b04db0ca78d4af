//! cm-core: the library under the cm-migrate suite.
//!
//! Every binary of the suite (cm-ini-to-env, cm-copy-data, cm-verify, cm-migrate) is a thin
//! layer over this crate: it parses arguments, calls in here, and renders what comes back.
//! Modules are named for what they are:
//!
//! - [`ini`]: chatmail.ini read exactly as chatmail's `iniconfig` reads it.
//! - [`params`]: chatmail's parameters, their defaults and types, compared as chatmail does.
//! - [`dotenv`]: `.env` written (and read back) exactly as Docker Compose v2 reads it.
//! - [`owners`]: mapping host uids/gids to the container image's.
//! - [`tree`]: walking a tree and recording every entry's metadata and content hash.
//! - [`manifest`]: the on-disk record of a tree that cm-copy-data writes and cm-verify reads.
//! - [`copy`]: the copy engine behind cm-copy-data.
//! - [`sys`]: descriptor-relative system calls, never through a symlink (the one lstat model).
//! - [`walk`]: sorted directory listings made ahead of a streaming walk by a thread pool.
//! - [`systemd`]: discovering, stopping and restoring chatmail's units.
//! - [`quote`]: byte names quoted for people and JSON, one style everywhere.
//! - [`report`]: differences and outcomes, grouped for humans and serialised for machines.
//! - [`envapply`]: the Docker image's start-up applier (environment -> chatmail.ini).
//! - [`envfile`]: writing the project's .env (new, replaced with a backup, or merged).
//! - [`fsutil`]: small file-system helpers shared by the rest (atomic writes).
//! - [`version`]: the version line every tool's `--version` prints.
//! - [`watch`]: a fanotify change journal: which directories changed during the live copy.
//! - [`state`]: the relay's state (every path a move carries), one table.
//! - [`target`]: the compose project a move goes into, resolved from its compose file.
//! - [`migration`]: the whole move (preflight, run journal, steps, downtime clock, rollback).

pub mod checks;
pub mod copy;
pub mod dotenv;
pub mod envapply;
pub mod envfile;
pub mod fsutil;
pub mod ini;
pub mod manifest;
pub mod migration;
pub mod owners;
pub mod params;
pub mod ports;
pub mod quote;
pub mod reown;
pub mod report;
pub mod root;
pub mod state;
pub mod sys;
pub mod systemd;
pub mod target;
pub mod tree;
pub mod version;
pub mod walk;
pub mod watch;
