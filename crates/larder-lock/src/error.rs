//! The lock layer's single error type.

use larder_git::GitError;

/// Why a lock operation did not go through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Someone holds a live lease on the resource: another actor, or
    /// another acquisition by this same actor (a lease belongs to one
    /// acquisition, not to an actor, so a second `acquire` never joins it).
    #[error("{resource} is held by {holder}{} (token {token}) for another {expires_in_ms} ms", holder_id.as_ref().map_or(String::new(), |h| format!(" as holder {h}")))]
    Held {
        /// The resource.
        resource: String,
        /// The current holder's actor.
        holder: String,
        /// The current acquisition's holder id (`None` for a lease written
        /// by a format-1 build).
        holder_id: Option<String>,
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
    /// This actor's own lease has expired but others may not take it over
    /// until the clock-skew margin has passed, and neither may this actor:
    /// re-acquiring early would hand out a new token while another holder
    /// with a slower clock could still believe its lease is live.
    #[error(
        "{resource}: this actor's own lease ({holder}, token {token}) expired {expired_ago_ms} ms ago and is waiting out the clock-skew margin; it can be acquired again in {retry_in_ms} ms"
    )]
    OwnLeaseInSkewMargin {
        /// The resource.
        resource: String,
        /// This actor.
        holder: String,
        /// The expired lease's token.
        token: u64,
        /// How long ago it expired, by this actor's clock.
        expired_ago_ms: u64,
        /// How long until the margin has passed.
        retry_in_ms: u64,
    },
    /// The resource's last token is `u64::MAX`: no acquisition can get a
    /// greater one, so none is made (a wrapped or repeated token would let
    /// a stale holder past downstream fencing).
    #[error(
        "{resource}: fencing tokens are exhausted (the last one issued is {}) on lock ref {reference}; use another resource name",
        u64::MAX
    )]
    TokensExhausted {
        /// The resource.
        resource: String,
        /// The lock's ref.
        reference: String,
    },
    /// The lock's ref stayed locked by git's `<ref>.lock` file through
    /// every wait: most likely a process was killed in the middle of a
    /// lock change and left the file behind.
    #[error(
        "{resource}: lock ref file {lock_path} stays locked: if no larder or git process is using that repository, a crashed one left it behind; delete it"
    )]
    RefLocked {
        /// The resource.
        resource: String,
        /// The `.lock` file in the authority's repository.
        lock_path: String,
    },
    /// A downstream write carried a fencing token lower than one already
    /// seen: its holder's lease was taken over (see
    /// [`FencedStore`](crate::FencedStore)).
    #[error(
        "write with fencing token {token} refused: token {highest} was already seen, so its lease was taken over"
    )]
    Fenced {
        /// The token the write carried.
        token: u64,
        /// The highest token seen.
        highest: u64,
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
    /// A remote named for an authority that names no usable repository:
    /// a path without one, an unknown URL scheme, an empty name. The git
    /// backend's error names the remote and says what to give instead.
    #[error(transparent)]
    UnusableRemote(GitError),
    /// A remote that cannot be reached or used.
    #[error("remote {remote}: {reason}")]
    Remote {
        /// The remote.
        remote: String,
        /// What went wrong.
        reason: String,
    },
}

impl LockError {
    /// For an acquisition refused only for now ([`LockError::Held`],
    /// [`LockError::OwnLeaseInSkewMargin`]): how many milliseconds until
    /// it can succeed, if nobody renews meanwhile. `None` for every other
    /// error, which waiting does not fix.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            LockError::Held { expires_in_ms, .. } => Some(*expires_in_ms),
            LockError::OwnLeaseInSkewMargin { retry_in_ms, .. } => Some(*retry_in_ms),
            _ => None,
        }
    }
}

/// Shorthand for results whose error is [`LockError`].
pub type Result<T, E = LockError> = std::result::Result<T, E>;
