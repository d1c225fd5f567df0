//! larder's write-ahead log: events appended as git commits under custom refs.
//!
//! A [`WalManager`] owns one named log at `refs/<namespace>/<log>/wal`
//! (namespace `larder` by default). Each [`WalManager::append`] encodes a
//! batch of events as one chunk and writes one commit whose tree holds
//! `<chunk-id>.bin` — only its own chunk, so an append never rewrites a
//! tree that grows with the log — and whose message trailers hold its
//! record (format 2; format 1, still read and optionally written, kept the
//! record in `meta.json` beside `events/YYYY/MM/DD/<chunk-id>.bin`). The ref moves
//! by compare-and-swap, retried with backoff, so concurrent appenders
//! (threads or processes) never lose an event and a reader never sees half
//! a batch.
//!
//! Reads follow git parents (the log is a DAG once replicas merge), yield
//! events parents-first and in chunk order, verify every chunk id and event
//! id, and stream one chunk at a time. [`WalManager::verify`] lists every
//! bad object rather than stopping at the first. The layout is documented in
//! `docs/wal.md`.
#![deny(missing_docs)]

mod append;
mod error;
mod group;
mod incoming;
mod merge;
mod meta;
mod read;
mod trailers;
mod verify;
mod wal;
mod walk;

pub use error::{Result, WalError};
pub use incoming::{EventCheck, HeadVerdict};
pub use meta::{CommitKind, MAX_META_LEN, Meta, WAL_FORMAT_VERSION, WalFormat};
pub use read::{WalCommits, WalEvents, commits_between};
pub use trailers::{ACTOR_TRAILER, EVENTS_TRAILER, FORMAT_TRAILER};
pub use verify::VerifyReport;
pub use wal::{
    Committed, CompactReport, Durability, MERGE_ACTOR, MergeOutcome, RESERVED_LOG_NAMES, WalCommit,
    WalManager, WalOptions,
};
pub use walk::GENERATION_TRAILER;
