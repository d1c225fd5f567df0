//! The lock layer's single error type.

use larder_git::GitError;

/// Why a lock operation did not go through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another actor holds a live lease on the resource.
    #[error("{resource} is held by {holder} (token {token}) for another {expires_in_ms} ms")]
    Held {
        /// The resource.
        resource: String,
        /// The current holder.
        holder: String,
        /// Milliseconds until others may take over (expiry plus skew margin).
        expires_in_ms: u64,
        /// The holder's fencing token.
        token: u64,
    },
    /// The caller does not hold the lease it names (never did, or it was
    /// taken over by someone else).
    #[error("{resource}: not the holder of token {token} (current: {current})")]
    NotHolder {
        /// The resource.
        resource: String,
        /// The token the caller presented.
        token: u64,
        /// What the lock says now.
        current: String,
    },
    /// The lease ran out before it was renewed; acquire again (new token).
    #[error("{resource}: lease with token {token} expired {ago_ms} ms ago; acquire it again")]
    Expired {
        /// The resource.
        resource: String,
        /// The expired token.
        token: u64,
        /// How long ago it expired.
        ago_ms: u64,
    },
    /// The lock changed between our read and our compare-and-swap.
    #[error("{resource}: the lock changed concurrently; retry")]
    Stale {
        /// The resource.
        resource: String,
    },
    /// A lock ref holds something that is not a valid lock record.
    #[error("lock ref {reference}: malformed record: {reason}")]
    Malformed {
        /// The ref.
        reference: String,
        /// What was wrong.
        reason: String,
    },
    /// A record names another resource than the one whose hash named the ref.
    #[error("lock ref {reference} is for {found:?}, not {expected:?}")]
    ResourceMismatch {
        /// The ref.
        reference: String,
        /// The resource asked for.
        expected: String,
        /// The resource in the record.
        found: String,
    },
    /// A resource name that is empty or too long.
    #[error("invalid resource name: {reason}")]
    InvalidResource {
        /// Why.
        reason: &'static str,
    },
    /// The authority (local repository or remote) failed.
    #[error("lock authority {authority}: {source}")]
    Authority {
        /// Which authority.
        authority: String,
        /// The backend's error.
        #[source]
        source: GitError,
    },
    /// A remote that cannot be reached or used.
    #[error("remote {remote}: {reason}")]
    Remote {
        /// The remote.
        remote: String,
        /// What went wrong.
        reason: String,
    },
}

/// Shorthand for results whose error is [`LockError`].
pub type Result<T, E = LockError> = std::result::Result<T, E>;
