//! Lease locks in git refs, with fencing tokens.
//!
//! One ref per resource, `refs/<namespace>/locks/<blake2b-256(resource)>`,
//! points at a commit whose message holds the lock record (resource,
//! holder, holder id, token, acquired/expiry times, nonce) as JSON, with
//! git's empty tree: one object per state. Each new state's parent is the
//! previous one. Every change — acquire, renew, release, takeover of an
//! expired lease — is one compare-and-swap of that ref on the
//! [`Authority`]: the local repository, or a shared remote. At most one
//! holder is live at any point of the authority's history, and every
//! acquisition gets a fencing token strictly greater than all before it.
//!
//! A lease belongs to one acquisition, not to an actor: two processes or
//! threads of one clone acting as the same actor exclude each other, and
//! only the [`Lease`] an acquisition returned (or its token) renews or
//! releases it. Downstream systems reject a stale holder's writes with
//! [`LockManager::is_current`] or a [`FencedStore`].
//! The safety argument is in `docs/locks.md`.
#![deny(missing_docs)]

mod authority;
mod error;
mod fence;
mod manager;
mod record;

pub use authority::Authority;
pub use error::{LockError, Result};
pub use fence::FencedStore;
pub use manager::{Lease, ListEntry, LockInfo, LockManager, LockOptions, MAX_RESOURCE_LEN};
pub use record::{LOCK_FORMAT_VERSION, LockRecord};
