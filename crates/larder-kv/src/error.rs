//! [`KvError`]: every failure of the key-value store, naming the key, log or
//! file involved.

/// Shorthand for results whose error is [`KvError`].
pub type Result<T, E = KvError> = std::result::Result<T, E>;

/// Any failure of a [`crate::Kv`] operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key is empty, too long or not usable; nothing was written.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key (truncated to 80 bytes when longer).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value could not be encoded as CBOR; nothing was written.
    #[error("value of key {key:?} cannot be encoded: {reason}")]
    Encode {
        /// The key being written.
        key: String,
        /// The serializer's message.
        reason: String,
    },
    /// A stored value does not decode into the type asked for.
    #[error("value of key {key:?} does not decode as the requested type: {reason}")]
    Decode {
        /// The key read.
        key: String,
        /// The deserializer's message.
        reason: String,
    },
    /// A batch with no operation.
    #[error("empty batch: nothing to write")]
    EmptyBatch,
    /// Linearizable mode is designed (docs/kv.md) but not implemented yet.
    #[error(
        "linearizable mode (authority {authority}) is not implemented yet; use Consistency::Eventual"
    )]
    NotImplemented {
        /// The authority that was asked for.
        authority: String,
    },
    /// The commit or time given to `get_at` is not in this log.
    #[error("{at} is not a commit of log {log}")]
    NotInLog {
        /// What was asked for.
        at: String,
        /// The log's ref.
        log: String,
    },
    /// The view file could not be opened, written or rebuilt even after a
    /// heal (a second failure on a fresh file).
    #[error("key-value view {path}: {reason}")]
    View {
        /// The redb file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Encoding events (bad kind, payload too deep, bad actor).
    #[error(transparent)]
    Codec(#[from] larder_codec::CodecError),
    /// The hybrid logical clock or a projection.
    #[error(transparent)]
    Crdt(#[from] larder_crdt::CrdtError),
    /// The write-ahead log.
    #[error(transparent)]
    Wal(#[from] Box<larder_wal::WalError>),
    /// Sync with a remote.
    #[error(transparent)]
    Sync(#[from] Box<larder_sync::SyncError>),
    /// Snapshots.
    #[error(transparent)]
    Snapshot(#[from] Box<larder_snapshot::SnapshotError>),
    /// The git backend.
    #[error(transparent)]
    Git(#[from] Box<larder_git::GitError>),
}

impl From<larder_wal::WalError> for KvError {
    fn from(e: larder_wal::WalError) -> Self {
        KvError::Wal(Box::new(e))
    }
}

impl From<larder_sync::SyncError> for KvError {
    fn from(e: larder_sync::SyncError) -> Self {
        KvError::Sync(Box::new(e))
    }
}

impl From<larder_snapshot::SnapshotError> for KvError {
    fn from(e: larder_snapshot::SnapshotError) -> Self {
        KvError::Snapshot(Box::new(e))
    }
}

impl From<larder_git::GitError> for KvError {
    fn from(e: larder_git::GitError) -> Self {
        KvError::Git(Box::new(e))
    }
}

/// A key shortened for error messages.
pub(crate) fn shown(key: &str) -> String {
    if key.len() <= 80 {
        return key.to_owned();
    }
    let mut end = 80;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &key[..end])
}
