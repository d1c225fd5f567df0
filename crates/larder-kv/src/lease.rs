//! Read leases on a linearizable store: [`Kv::acquire_lease`] and
//! [`Kv::release_lease`] (the lease itself is a record on the chain; see
//! `linear.rs`).

use std::time::Duration;

use crate::kv::{Kv, lock};
use crate::linear::{LeaseRecord, Outcome, Request};
use crate::types::ReadLease;
use crate::{KvError, Result};

impl Kv {
    /// Linearizable mode: takes (or renews) the **read lease** for `ttl`.
    ///
    /// The lease is a record on the chain itself, written by one
    /// compare-and-swap like any write: while it is live, every other
    /// handle's writes are refused with [`KvError::LeaseHeld`] (they check
    /// it against the state they swap on, so the check and the write are
    /// one atomic step), and this handle answers reads from its view
    /// without a round trip to the authority. Clock assumption: wall
    /// clocks of all writers differ by less than [`KvOptions::max_skew`];
    /// the holder stops serving local reads `max_skew` before the lease
    /// expires by its clock, others write again only `max_skew` after it
    /// by theirs. Each new holder gets a greater fencing token.
    pub fn acquire_lease(&self, ttl: Duration) -> Result<ReadLease> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.lease_request(ttl_ms)
    }

    /// Gives the read lease up (records it as expired), so other handles
    /// write again at once. Reads go back to asking the authority.
    pub fn release_lease(&self) -> Result<()> {
        self.lease_request(0).map(|_| ())
    }

    fn lease_request(&self, ttl_ms: u64) -> Result<ReadLease> {
        let Some(linear) = &self.core.linear else {
            return Err(KvError::Mode(
                "read leases are for linearizable stores".into(),
            ));
        };
        let request = Request::Lease {
            holder: self.core.lease_holder.clone(),
            ttl_ms,
        };
        match linear.submit(&self.core, request)? {
            Outcome::Lease(record) => {
                *lock(&self.core.lease) = (ttl_ms > 0).then(|| record.clone());
                Ok(ReadLease {
                    holder: record.holder,
                    token: record.token,
                    expires_ms: record.expires_ms,
                })
            }
            Outcome::LeaseHeld(held) => {
                *lock(&self.core.lease) = None;
                Err(lease_held(held))
            }
            _ => Err(KvError::Mode("a lease request answered as a write".into())),
        }
    }
}

/// The error for a write refused by another holder's read lease.
pub(crate) fn lease_held(held: LeaseRecord) -> KvError {
    KvError::LeaseHeld {
        holder: held.holder,
        token: held.token,
        expires_ms: held.expires_ms,
    }
}

/// A random part for this handle's lease-holder id: no two handles (in
/// any process) share one.
pub(crate) fn holder_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{}/{}/{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    larder_codec::to_hex(&larder_codec::blake2b256(&[seed.as_bytes()])[..8])
}
