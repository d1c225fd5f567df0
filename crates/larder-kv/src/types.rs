//! The values [`crate::Kv`] takes and returns: options, entries, versions,
//! expectations for compare-and-set, points in time, batches — and the
//! checks and codecs for keys and values.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder_codec::{Payload, Timestamp};
use larder_crdt::{Clock, EventKey, Hlc, KV_DELETE, KV_SET, KvProjection};
use larder_git::ObjectId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::shown;
use crate::record::Record;
use crate::{KvError, Result};

/// The hybrid logical clock a replica shares between its logs (the facade's
/// `Larder` passes its own, so key-value writes and other appends share
/// one causal order).
pub type SharedClock = Arc<Mutex<Hlc<Arc<dyn Clock>>>>;

/// A key's version: the [`EventKey`] (HLC timestamp, actor, event id) of
/// its last write — like etcd's `mod_revision`, but totally ordered across
/// replicas, so it is also what last-writer-wins compares.
pub type Version = EventKey;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The log a store uses unless told otherwise.
pub const DEFAULT_LOG: &str = "kv";

/// How operations are ordered across replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Writes commit locally (offline works) and replicas converge through
    /// any remote; concurrent writes to one key resolve by last writer
    /// wins on [`Version`]. See `docs/kv.md`.
    #[default]
    Eventual,
    /// Every operation takes effect at one compare-and-swap of a chain ref
    /// on `authority` (DESIGN.md, semantics 10; `docs/kv.md`).
    Linearizable {
        /// The authoritative remote (git-config name, path or URL).
        authority: String,
    },
}

/// How a [`Kv`] behaves.
#[derive(Clone, Debug)]
pub struct KvOptions {
    /// See [`Consistency`].
    pub consistency: Consistency,
    /// How often a [`Watch`] looks at the log's ref for writes of other
    /// processes and syncs (it also wakes at once for this handle's writes).
    pub poll_interval: Duration,
    /// Linearizable mode: how many lost compare-and-swaps of the chain one
    /// operation tolerates (re-checking its preconditions each time)
    /// before [`KvError::Contention`].
    pub max_attempts: u32,
    /// Linearizable mode, read leases: the most two writers' wall clocks
    /// may disagree (`Kv::acquire_lease`). Default 2 s.
    pub max_skew: Duration,
}

/// A read lease this handle holds (see `Kv::acquire_lease`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadLease {
    /// The holding handle's id (actor and a random part).
    pub holder: String,
    /// The fencing token: greater for every new holder.
    pub token: u64,
    /// When it expires by the holder's wall clock (ms since the epoch).
    pub expires_ms: u64,
}

impl Default for KvOptions {
    fn default() -> Self {
        Self {
            consistency: Consistency::Eventual,
            poll_interval: Duration::from_millis(100),
            max_attempts: 1000,
            max_skew: Duration::from_secs(2),
        }
    }
}

/// A live key as read: its value and version.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<V> {
    /// The key.
    pub key: String,
    /// The value.
    pub value: V,
    /// The version of the write that set it.
    pub version: Version,
}

/// One write to a key: a set (`Some`) or a delete (`None`), with its
/// version. What [`Kv::history`] lists and a [`Watch`] yields.
#[derive(Clone, Debug, PartialEq)]
pub struct Change<V> {
    /// The key.
    pub key: String,
    /// The value written, `None` for a delete.
    pub value: Option<V>,
    /// The write's version.
    pub version: Version,
}

/// What [`Kv::compare_and_set`] expects the key to hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect<V> {
    /// The key is absent (never set, or deleted).
    Absent,
    /// The key holds this value (compared as canonical CBOR).
    Value(V),
    /// The key is live and its last write has this version.
    Version(Version),
}

/// What [`Kv::compare_and_set`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Cas<V> {
    /// Whether the new value was written.
    pub swapped: bool,
    /// The key's entry afterwards (the new one if swapped, else the one
    /// that did not match), `None` if absent.
    pub current: Option<Entry<V>>,
}

/// A point in the log's past for [`Kv::get_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// As of a WAL commit: every write in its history, none after.
    Commit(ObjectId),
    /// As of a hybrid-logical-clock time (use `Timestamp::new(ms, u32::MAX)`
    /// for a wall time): every write the log holds now whose timestamp is
    /// at or before it.
    Time(Timestamp),
}

/// Several writes committed atomically by [`Kv::write`]: one chunk, one
/// commit — a reader, a sync or a crash sees all of them or none.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub(crate) ops: Vec<(&'static str, String, Payload)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a set; the key and value are checked now (typed errors naming
    /// the key).
    pub fn set<V: Serialize + ?Sized>(&mut self, key: &str, value: &V) -> Result<&mut Self> {
        let payload = set_payload(key, value)?;
        self.ops.push((KV_SET, key.to_owned(), payload));
        Ok(self)
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: &str) -> Result<&mut Self> {
        check_key(key)?;
        let payload = KvProjection::delete_payload(key).map_err(|e| KvError::Encode {
            key: shown(key),
            reason: e.to_string(),
        })?;
        self.ops.push((KV_DELETE, key.to_owned(), payload));
        Ok(self)
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Checks a key: 1 to [`MAX_KEY_LEN`] bytes, no control characters (they
/// would break the CLI's line formats).
pub(crate) fn check_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        Some("must not be empty".to_owned())
    } else if key.len() > MAX_KEY_LEN {
        Some(format!(
            "{} bytes, longer than the maximum {MAX_KEY_LEN}",
            key.len()
        ))
    } else if key.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(KvError::InvalidKey {
            key: shown(key),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn set_payload<V: Serialize + ?Sized>(key: &str, value: &V) -> Result<Payload> {
    check_key(key)?;
    KvProjection::set_payload(key, &value).map_err(|e| KvError::Encode {
        key: shown(key),
        reason: e.to_string(),
    })
}

pub(crate) fn decode<V: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<V> {
    ciborium::from_reader(bytes).map_err(|e| KvError::Decode {
        key: shown(key),
        reason: e.to_string(),
    })
}

pub(crate) fn entry_of<V: DeserializeOwned>(
    key: String,
    record: Record,
) -> Result<Option<Entry<V>>> {
    match record.value {
        Some(bytes) => Ok(Some(Entry {
            value: decode(&key, &bytes)?,
            key,
            version: record.version,
        })),
        None => Ok(None),
    }
}

pub(crate) fn change_of<V: DeserializeOwned>(key: String, record: Record) -> Result<Change<V>> {
    Ok(Change {
        value: match &record.value {
            Some(bytes) => Some(decode(&key, bytes)?),
            None => None,
        },
        key,
        version: record.version,
    })
}
