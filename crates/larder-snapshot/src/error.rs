//! The snapshot layer's single error type.

use larder_codec::CodecError;
use larder_crdt::CrdtError;
use larder_git::{GitError, ObjectId};
use larder_wal::WalError;

/// What went wrong creating, reading or using snapshots and the view.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A ref under `snapshots/` whose name larder did not write.
    #[error("snapshot ref {reference}: name is not <20-digit millis>-<16 hex>")]
    BadName {
        /// The ref.
        reference: String,
    },
    /// A snapshot's tree or `snapshot.json` is not what larder writes.
    #[error("snapshot {reference} ({commit}): {reason}")]
    BadSnapshot {
        /// The snapshot ref.
        reference: String,
        /// Its commit.
        commit: ObjectId,
        /// What was wrong.
        reason: String,
    },
    /// A snapshot chunk failed to decode or verify.
    #[error("snapshot {reference}: {path}: {source}")]
    Chunk {
        /// The snapshot ref.
        reference: String,
        /// The chunk's path in the snapshot tree.
        path: String,
        /// The codec's reason.
        #[source]
        source: Box<CodecError>,
    },
    /// Stored projection state does not hash to the id recorded for it.
    #[error(
        "snapshot {reference}: state {path} hashes to {computed}, snapshot.json says {expected}"
    )]
    StateMismatch {
        /// The snapshot ref.
        reference: String,
        /// The state's path.
        path: String,
        /// The recorded id.
        expected: String,
        /// The actual hash.
        computed: String,
    },
    /// There is nothing to snapshot yet.
    #[error("log {log} is empty: nothing to snapshot")]
    EmptyLog {
        /// The log's ref.
        log: String,
    },
    /// The projection failed.
    #[error(transparent)]
    Projection(#[from] CrdtError),
    /// The log failed.
    #[error(transparent)]
    Wal(#[from] Box<WalError>),
    /// The git backend failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The view's database failed.
    #[error("view {path}: {source}")]
    View {
        /// The database file.
        path: String,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// redb panicked on the view's file even after it was deleted and
    /// recreated (a corrupt file is rebuilt, not reported: see
    /// [`crate::View::healed`]).
    #[error("view {path}: redb panicked: {message}")]
    ViewPanic {
        /// The database file.
        path: String,
        /// The panic's message.
        message: String,
    },
}

impl From<WalError> for SnapshotError {
    fn from(e: WalError) -> Self {
        SnapshotError::Wal(Box::new(e))
    }
}

impl From<CodecError> for SnapshotError {
    fn from(e: CodecError) -> Self {
        SnapshotError::Wal(Box::new(WalError::from(e)))
    }
}

/// Shorthand for results whose error is [`SnapshotError`].
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;
