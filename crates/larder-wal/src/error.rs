//! The WAL's single error type.

use larder_codec::CodecError;
use larder_git::{GitError, ObjectId};

/// What went wrong reading or writing a log. Errors about stored data name
/// the commit and the path inside its tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// `append` was called with no events.
    #[error("cannot append an empty batch: a chunk holds at least one event")]
    EmptyBatch,
    /// A batch mixed events of several actors.
    #[error(
        "a batch must come from one actor: event {index} is by {found}, the batch by {expected}"
    )]
    MixedActors {
        /// The batch's actor (its first event's).
        expected: String,
        /// The other actor found.
        found: String,
        /// Position of the first such event.
        index: usize,
    },
    /// A log or namespace name that cannot be part of a ref name.
    #[error("invalid log name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// `read_since` was given a commit that is not in this log's history.
    #[error("commit {commit} is not in the history of log {log}")]
    NotInLog {
        /// The commit asked for.
        commit: ObjectId,
        /// The log's ref.
        log: String,
    },
    /// The ref kept moving under us for longer than the retry budget.
    #[error("gave up appending to {log} after {attempts} lost compare-and-swap attempts")]
    Contention {
        /// The log's ref.
        log: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The log's ref stayed locked (`<ref>.lock` exists) through every retry.
    /// Another writer holds it, or a writer crashed while holding it: if no
    /// larder process is running, delete the lock file.
    #[error(
        "{log} stays locked by {lock_path}: if no other writer is running, a crashed one left it; delete it"
    )]
    Locked {
        /// The log's ref.
        log: String,
        /// The lock file.
        lock_path: String,
    },
    /// An object the log refers to is missing.
    #[error("commit {commit}: {path} is missing (object {id})")]
    MissingObject {
        /// The WAL commit being read.
        commit: ObjectId,
        /// The path in its tree (or `<commit>` for the commit itself).
        path: String,
        /// The missing object.
        id: ObjectId,
    },
    /// A tree does not have the shape larder writes.
    #[error("commit {commit}: unexpected tree layout at {path}: {reason}")]
    BadTree {
        /// The WAL commit.
        commit: ObjectId,
        /// The path in its tree.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The commit's record (`meta.json` in format 1, the message trailers
    /// in format 2) is unreadable or inconsistent with its commit.
    #[error("commit {commit}: bad record (meta.json or trailers): {reason}")]
    BadMeta {
        /// The WAL commit.
        commit: ObjectId,
        /// What was wrong.
        reason: String,
    },
    /// A commit was written by an unknown WAL format version.
    #[error(
        "commit {commit}: WAL format version {found}, this build reads formats 1 to {supported}"
    )]
    UnsupportedFormat {
        /// The WAL commit.
        commit: ObjectId,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A chunk failed to decode or verify.
    #[error("commit {commit}: {path}: {source}")]
    Chunk {
        /// The WAL commit.
        commit: ObjectId,
        /// The chunk's path.
        path: String,
        /// The codec's reason.
        #[source]
        source: Box<CodecError>,
    },
    /// A codec error outside any stored chunk (encoding a new batch).
    #[error(transparent)]
    Codec(Box<CodecError>),
    /// An event of an incoming commit was refused by the caller's check
    /// (`WalManager::incoming_each_checked`), e.g. a signature policy: the
    /// commit itself is well formed.
    #[error("commit {commit}: {path}: event {index} ({event}, actor {actor}) refused: {reason}")]
    EventRefused {
        /// The WAL commit holding the event.
        commit: ObjectId,
        /// Its chunk's path in the commit's tree.
        path: String,
        /// The event's position in the chunk.
        index: usize,
        /// The event id (boxed: the error stays small).
        event: Box<larder_codec::EventId>,
        /// The event's actor.
        actor: String,
        /// Why the check refused it.
        reason: String,
    },
    /// The git backend failed.
    #[error("commit {commit}: {source}", commit = commit.map_or("-".to_string(), |c| c.to_string()))]
    Git {
        /// The WAL commit being processed, when there is one.
        commit: Option<ObjectId>,
        /// The backend's error.
        #[source]
        source: GitError,
    },
}

impl WalError {
    /// The stored commit the error is about, when it is about one.
    pub fn commit(&self) -> Option<ObjectId> {
        match self {
            WalError::MissingObject { commit, .. }
            | WalError::BadTree { commit, .. }
            | WalError::BadMeta { commit, .. }
            | WalError::UnsupportedFormat { commit, .. }
            | WalError::Chunk { commit, .. }
            | WalError::EventRefused { commit, .. }
            | WalError::NotInLog { commit, .. } => Some(*commit),
            WalError::Git { commit, .. } => *commit,
            _ => None,
        }
    }

    /// The path inside the commit's tree the error is about, when known;
    /// `<record>` for the commit's record (format 1's `meta.json`, format
    /// 2's trailers).
    pub fn path(&self) -> Option<&str> {
        match self {
            WalError::MissingObject { path, .. }
            | WalError::BadTree { path, .. }
            | WalError::Chunk { path, .. }
            | WalError::EventRefused { path, .. } => Some(path),
            // Format 1 keeps the record in meta.json, format 2 in the
            // commit message's trailers.
            WalError::BadMeta { .. } | WalError::UnsupportedFormat { .. } => Some("<record>"),
            _ => None,
        }
    }
}

impl From<CodecError> for WalError {
    fn from(e: CodecError) -> Self {
        WalError::Codec(Box::new(e))
    }
}

impl From<GitError> for WalError {
    fn from(source: GitError) -> Self {
        WalError::Git {
            commit: None,
            source,
        }
    }
}

/// Shorthand for results whose error is [`WalError`].
pub type Result<T, E = WalError> = std::result::Result<T, E>;
