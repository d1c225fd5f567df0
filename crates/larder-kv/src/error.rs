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
    /// The authority could not be reached, or failed a request.
    /// `outcome_unknown`: the failure came while the chain ref was being
    /// swapped, so the write may or may not have taken effect (as with a
    /// timed-out request to any replicated store); otherwise nothing was
    /// written.
    #[error("authority {authority}: {reason}{}", if *outcome_unknown { " (the write may or may not have taken effect)" } else { "" })]
    Authority {
        /// The authority (remote name, path or URL).
        authority: String,
        /// What failed.
        reason: String,
        /// Whether the write may have taken effect.
        outcome_unknown: bool,
    },
    /// The authority's chain ref stayed locked (a `<ref>.lock` file left by
    /// a crashed writer, or a writer that never finishes); nothing was
    /// written. Remove the file once no writer is running.
    #[error(
        "authority {authority}: {chain} is locked by {lock_path}; remove it if no writer is running"
    )]
    AuthorityLocked {
        /// The authority.
        authority: String,
        /// The chain ref.
        chain: String,
        /// The lock file.
        lock_path: String,
    },
    /// Other writers kept winning the chain's compare-and-swap; nothing
    /// of this operation was written.
    #[error("{chain} on {authority} kept changing: gave up after {attempts} attempts")]
    Contention {
        /// The authority.
        authority: String,
        /// The chain ref.
        chain: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A commit of the authority's chain is not a larder append that
    /// verifies, or the chain is not linear; nothing of it was applied.
    #[error("{chain}: commit {commit} is not a valid chain commit: {reason}")]
    ForeignCommit {
        /// The chain ref and its authority.
        chain: String,
        /// The offending commit.
        commit: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local log holds commits that are not on the authority's chain
    /// (it was written in eventual mode, or the chain was rewritten); a
    /// linearizable store cannot serve it.
    #[error(
        "log {log} at {local} is not on {chain} (head {chain_head}): the local log has writes the authority never ordered"
    )]
    Diverged {
        /// The local log's ref.
        log: String,
        /// The local head.
        local: String,
        /// The chain ref and its authority.
        chain: String,
        /// The chain's head.
        chain_head: String,
    },
    /// The clock could not stamp a write later than the newest write the
    /// state holds (that write came from a clock running more than the
    /// drift bound ahead); nothing was written.
    #[error(
        "clock at {timestamp} is behind the newest write {frontier}; a linearizable write must sort after it"
    )]
    ClockBehind {
        /// The stamp the clock gave.
        timestamp: String,
        /// The newest write held.
        frontier: String,
    },
    /// Another handle holds the linearizable store's read lease: writes
    /// are refused until it is released or expires (plus the skew
    /// margin); nothing was written.
    #[error("the store's read lease is held by {holder} (token {token}) until {expires_ms} ms")]
    LeaseHeld {
        /// The holding handle.
        holder: String,
        /// Its fencing token.
        token: u64,
        /// When it expires, by the holder's clock (ms since the epoch).
        expires_ms: u64,
    },
    /// `--linearizable` / [`crate::Consistency::Linearizable`] without an
    /// authority, or a linearizable-only operation on an eventual store.
    #[error("{0}")]
    Mode(String),
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

impl KvError {
    /// This error as told to another request of the same group commit:
    /// the protocol's own errors are copied, others are described.
    pub(crate) fn for_another(&self, authority_name: &str) -> KvError {
        match self {
            KvError::Authority {
                authority,
                reason,
                outcome_unknown,
            } => KvError::Authority {
                authority: authority.clone(),
                reason: reason.clone(),
                outcome_unknown: *outcome_unknown,
            },
            KvError::AuthorityLocked {
                authority,
                chain,
                lock_path,
            } => KvError::AuthorityLocked {
                authority: authority.clone(),
                chain: chain.clone(),
                lock_path: lock_path.clone(),
            },
            KvError::Contention {
                authority,
                chain,
                attempts,
            } => KvError::Contention {
                authority: authority.clone(),
                chain: chain.clone(),
                attempts: *attempts,
            },
            KvError::ForeignCommit {
                chain,
                commit,
                reason,
            } => KvError::ForeignCommit {
                chain: chain.clone(),
                commit: commit.clone(),
                reason: reason.clone(),
            },
            KvError::Diverged {
                log,
                local,
                chain,
                chain_head,
            } => KvError::Diverged {
                log: log.clone(),
                local: local.clone(),
                chain: chain.clone(),
                chain_head: chain_head.clone(),
            },
            KvError::ClockBehind {
                timestamp,
                frontier,
            } => KvError::ClockBehind {
                timestamp: timestamp.clone(),
                frontier: frontier.clone(),
            },
            KvError::LeaseHeld {
                holder,
                token,
                expires_ms,
            } => KvError::LeaseHeld {
                holder: holder.clone(),
                token: *token,
                expires_ms: *expires_ms,
            },
            // Everything else failed before the swap: nothing was written.
            other => KvError::Authority {
                authority: authority_name.to_owned(),
                reason: format!("the group commit carrying this write failed: {other}"),
                outcome_unknown: false,
            },
        }
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
