//! The sync layer's single error type.

use larder_git::{GitError, ObjectId};
use larder_wal::WalError;

/// Why a pull, push or sync failed. A failed pull leaves the local log as
/// it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The remote cannot be found or opened.
    #[error("remote {remote}: {reason}")]
    Remote {
        /// The remote as named by the caller.
        remote: String,
        /// What went wrong.
        reason: String,
    },
    /// A head failed verification where no quarantine applies
    /// ([`merge_log`](crate::merge_log) of one log into another); nothing
    /// was merged. Pulls quarantine bad heads instead (see
    /// [`SyncReport::rejected`](crate::SyncReport::rejected)).
    #[error("{remote}: {head_ref} failed verification: {source}")]
    Rejected {
        /// The remote.
        remote: String,
        /// The remote head that carried it.
        head_ref: String,
        /// What verification found.
        #[source]
        source: Box<WalError>,
    },
    /// Our own head ref on the remote is not an ancestor of our log (it was
    /// rewritten, or this replica lost history). Pushes are never forced.
    #[error(
        "remote {remote}: {head_ref} is at {remote_head}, which is not in our log; refusing to overwrite it"
    )]
    Diverged {
        /// The remote.
        remote: String,
        /// Our head ref there.
        head_ref: String,
        /// What it points at.
        remote_head: ObjectId,
    },
    /// Our head ref on the remote stayed locked through every retry: the
    /// remote repository holds `<ref>.lock`. A live pusher removes it within
    /// milliseconds; one that stays means a process (larder or git) was
    /// killed while updating that ref. Delete the file on the remote once
    /// no process is pushing there, then sync again.
    #[error(
        "remote {remote}: {head_ref} stays locked by {lock_path}: if no larder or git process is pushing to that repository, a killed one left it behind; delete it and sync again"
    )]
    RemoteLocked {
        /// The remote.
        remote: String,
        /// Our head ref there.
        head_ref: String,
        /// The lock file in the remote repository (as the remote's git
        /// named it, for network remotes).
        lock_path: String,
    },
    /// `sync`: the pull merged (its report is here: the local log changed),
    /// then the push failed. Retrying is safe.
    #[error("pulled and merged ({} commits, {} events received), then the push failed: {source}", pulled.commits_received, pulled.events_received)]
    PushAfterPull {
        /// What the pull did.
        pulled: Box<crate::SyncReport>,
        /// Why the push failed.
        #[source]
        source: Box<SyncError>,
    },
    /// The local log failed.
    #[error(transparent)]
    Wal(#[from] Box<WalError>),
    /// The git backend failed.
    #[error(transparent)]
    Git(#[from] GitError),
}

impl From<WalError> for SyncError {
    fn from(e: WalError) -> Self {
        SyncError::Wal(Box::new(e))
    }
}

/// Shorthand for results whose error is [`SyncError`].
pub type Result<T, E = SyncError> = std::result::Result<T, E>;
