//! larder's git backend: a thin layer over pure-Rust gitoxide (`gix`).
//!
//! [`GitRepo`] opens bare and non-bare repositories isolated from global
//! configuration; writes blobs, trees and commits without touching HEAD, the
//! index or the work tree — one at a time, or built in an [`ObjectBatch`] and
//! written as one pack; merges small packs by size tier
//! ([`ConsolidationPolicy`]); moves references only by compare-and-swap
//! ([`Expected`]); walks history with hidden tips; and classifies failures
//! (conflict, retryable lock, missing object) through gix's error API rather
//! than message strings. Commits carry a fixed larder [`Identity`] unless the
//! caller supplies one, so an unconfigured machine works.
#![deny(missing_docs)]

mod batch;
mod compact;
mod consolidate;
mod cruft;
mod error;
mod git_binary;
mod haves;
mod objects;
mod pack;
mod pack_scan;
mod reach;
mod refs;
mod remote;
mod repo;
mod transfer;

pub use batch::ObjectBatch;
pub use compact::{CompactOptions, DEFAULT_PRUNE_GRACE, PackOutcome, Unreachable};
pub use consolidate::{Consolidation, ConsolidationPolicy, DamagedPack, PackCheck};
pub use error::{GitError, Result};
pub use git_binary::{PushOutcome, parse_push};
pub use gix::ObjectId;
pub use haves::Haves;
pub use remote::{
    HTTP_FETCH, NetworkScheme, RemoteLocation, ResolvedRemote, classify as classify_remote,
};
pub use repo::{
    CommitInfo, DEFAULT_IDENTITY, EntryKind, Expected, GitRepo, Identity, MAX_PACK_INDEXES,
    TreeEntry,
};
