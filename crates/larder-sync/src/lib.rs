//! Sync: many replicas of one log converge through ordinary git remotes.
//!
//! Each replica publishes its head at its own ref on the remote
//! (`refs/<ns>/<log>/heads/<actor>`), so simultaneous pushes never contend;
//! a pull fetches every head into staging refs, verifies every new commit,
//! and merges them (fast-forward, or one deterministic octopus merge). The
//! union of events is the CRDT; `larder-crdt` orders and folds it. See
//! `docs/sync.md`.
#![deny(missing_docs)]

mod error;
mod pull;
mod push;
mod sync;

pub use error::{Result, SyncError};
pub use sync::{
    EventCheck, RejectedHead, StaleRef, SyncManager, SyncReport, Transport, Upkeep, merge_log,
};
