//! Snapshots of compacted events and projection state as git commits, and
//! the redb materialised view rebuilt from them.
//!
//! A snapshot is a commit under `refs/<ns>/<log>/snapshots/<name>` whose tree
//! holds `snapshot.json`, the events it covers in large chunks in the total
//! order, and optionally a projection's encoded state. The [`View`] keeps a
//! projection's state and the WAL position it reflects in one redb file
//! under the git dir, updated incrementally and rebuilt from the newest
//! verified snapshot plus the WAL tail. See `docs/snapshots.md`.
#![deny(missing_docs)]

pub mod contain;
mod error;
mod rebuild;
mod snapshot;
mod view;

pub use error::{Result, SnapshotError};
pub use rebuild::RebuildReport;
pub use snapshot::{
    ChunkEntry, SNAPSHOT_CHUNK_EVENTS, SNAPSHOT_FORMAT_VERSION, SnapshotInfo, SnapshotManager,
    SnapshotMeta, SnapshotPolicy, StateEntry,
};
pub use view::{HealCause, Healed, View};
