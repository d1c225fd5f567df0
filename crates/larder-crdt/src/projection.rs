//! Projections: deterministic folds of ordered events into state.

use std::fmt;

use larder_codec::{Envelope, Payload, blake2b256};

use crate::order::EventKey;
use crate::primitives::LwwMap;
use crate::{CrdtError, Result};

/// The BLAKE2b-256 of a projection's name, version and encoded state: equal
/// on two replicas exactly when their states are equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateHash(pub [u8; 32]);

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&larder_codec::to_hex(&self.0))
    }
}

impl fmt::Debug for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateHash({self})")
    }
}

/// A deterministic fold of events into state.
///
/// `apply` must depend only on the state and the event. Events are given in
/// the total order (see [`crate::order`]); a projection whose `apply`
/// commutes (such as one built on CRDT primitives) sets `COMMUTATIVE`, and
/// then also accepts events that arrive late.
pub trait Projection: Sized {
    /// A stable name, part of the state hash and of snapshot metadata.
    const NAME: &'static str;
    /// Bumped whenever `apply` or the state encoding changes meaning.
    const VERSION: u32;
    /// Whether applying events in any order gives the same state.
    const COMMUTATIVE: bool = false;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Envelope) -> Result<()>;

    /// A canonical encoding of the state: equal states, equal bytes.
    fn encode_state(&self) -> Vec<u8>;

    /// Restores a state from [`Projection::encode_state`]'s bytes.
    fn decode_state(bytes: &[u8]) -> Result<Self>;

    /// The hash of name, version and encoded state.
    fn state_hash(&self) -> StateHash {
        StateHash(blake2b256(&[
            Self::NAME.as_bytes(),
            &[0],
            &Self::VERSION.to_be_bytes(),
            &self.encode_state(),
        ]))
    }
}

/// What [`Projector::apply`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The event was folded in.
    Applied,
    /// The event is at or before the frontier of an order-sensitive
    /// projection: a duplicate, or a late arrival that needs a rebuild.
    NotAfterFrontier,
}

/// Drives a projection: remembers the last applied event (the frontier) so
/// that replaying a batch twice changes nothing, and reports late events to
/// order-sensitive projections instead of folding them in the wrong place.
#[derive(Debug, Clone)]
pub struct Projector<P> {
    state: P,
    frontier: Option<EventKey>,
    applied: u64,
}

impl<P: Projection + Default> Default for Projector<P> {
    fn default() -> Self {
        Self::new(P::default())
    }
}

impl<P: Projection> Projector<P> {
    /// Starts from `state` with nothing applied.
    pub fn new(state: P) -> Self {
        Self {
            state,
            frontier: None,
            applied: 0,
        }
    }

    /// Resumes from a saved state and frontier (e.g. a snapshot).
    pub fn resume(state: P, frontier: Option<EventKey>, applied: u64) -> Self {
        Self {
            state,
            frontier,
            applied,
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &Envelope) -> Result<Applied> {
        let key = EventKey::of(event);
        let after = self.frontier.as_ref().is_none_or(|f| key > *f);
        if !after && !P::COMMUTATIVE {
            return Ok(Applied::NotAfterFrontier);
        }
        self.state.apply(event)?;
        self.applied += 1;
        if after {
            self.frontier = Some(key);
        }
        Ok(Applied::Applied)
    }

    /// Applies events in order; returns how many were not after the frontier.
    pub fn apply_all<'a>(&mut self, events: impl IntoIterator<Item = &'a Envelope>) -> Result<u64> {
        let mut skipped = 0;
        for e in events {
            if self.apply(e)? == Applied::NotAfterFrontier {
                skipped += 1;
            }
        }
        Ok(skipped)
    }

    /// The state.
    pub fn state(&self) -> &P {
        &self.state
    }

    /// The greatest event key applied so far.
    pub fn frontier(&self) -> Option<&EventKey> {
        self.frontier.as_ref()
    }

    /// How many `apply` calls folded an event in.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Gives the state back.
    pub fn into_state(self) -> P {
        self.state
    }
}

/// Event kind of a key-value write: payload `[key (text), value (any)]`.
pub const KV_SET: &str = "kv.set";
/// Event kind of a key-value delete: payload `key (text)`.
pub const KV_DELETE: &str = "kv.delete";

/// A replicated key-value store's state: an [`LwwMap`] from text keys to
/// CBOR values, fed by `kv.set` / `kv.delete` events (other kinds are
/// ignored). Commutative and idempotent: the same events in any order, any
/// number of times, give the same state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvProjection {
    map: LwwMap<String, Payload>,
}

impl KvProjection {
    /// The current value of `key`.
    pub fn get(&self, key: &str) -> Option<&Payload> {
        self.map.get(key)
    }

    /// Live entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Payload)> {
        self.map.iter()
    }

    /// The underlying map.
    pub fn map(&self) -> &LwwMap<String, Payload> {
        &self.map
    }

    /// A `kv.set` payload.
    pub fn set_payload<V: serde::Serialize>(key: &str, value: &V) -> larder_codec::Result<Payload> {
        Payload::from_serde(&(key, value))
    }

    /// A `kv.delete` payload.
    pub fn delete_payload(key: &str) -> larder_codec::Result<Payload> {
        Payload::from_serde(key)
    }
}

fn bad(event: &Envelope, reason: &str) -> CrdtError {
    CrdtError::BadEvent {
        event: event.id().to_hex(),
        kind: event.kind().into(),
        reason: reason.into(),
    }
}

impl Projection for KvProjection {
    const NAME: &'static str = "larder.kv";
    const VERSION: u32 = 1;
    const COMMUTATIVE: bool = true;

    fn apply(&mut self, event: &Envelope) -> Result<()> {
        match event.kind() {
            KV_SET => {
                let items = event
                    .payload()
                    .array_payloads()
                    .ok_or_else(|| bad(event, "payload is not an array"))?;
                let Ok([key, value]) = <[Payload; 2]>::try_from(items) else {
                    return Err(bad(event, "expected [key, value]"));
                };
                let key = key.as_text().ok_or_else(|| bad(event, "key is not text"))?;
                self.map.set_by_ref(key, value, EventKey::of(event));
            }
            KV_DELETE => {
                let key = event
                    .payload()
                    .as_text()
                    .ok_or_else(|| bad(event, "key is not text"))?;
                self.map.delete(key.to_owned(), EventKey::of(event));
            }
            _ => {}
        }
        Ok(())
    }

    fn encode_state(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Serialising a BTreeMap of plain data into a Vec cannot fail.
        let _ = ciborium::into_writer(&self.map, &mut out);
        out
    }

    fn decode_state(bytes: &[u8]) -> Result<Self> {
        let map = ciborium::from_reader(bytes).map_err(|e| CrdtError::StateDecode {
            projection: Self::NAME,
            reason: e.to_string(),
        })?;
        Ok(Self { map })
    }
}
