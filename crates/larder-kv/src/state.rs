//! [`KvState`]: the key-value state with each key's version visible — the
//! same name, version, encoding and hash as `larder_crdt::KvProjection`,
//! so snapshots written with either are read by both, and a view's state
//! hash can be compared with `KvProjection` folded over the log.

use std::fmt;

use larder_codec::{Envelope, Payload};
use larder_crdt::{CrdtError, EventKey, KvProjection, LwwRegister, Projection};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::record::{Record, parse_event};

type Register = LwwRegister<Option<Payload>>;

/// Key → last-writer-wins register of an optional value (`None`: deleted),
/// as a vector sorted by key: a snapshot's million entries decode without
/// a million tree insertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KvState {
    entries: Vec<(String, Register)>,
}

impl KvState {
    /// From entries already sorted by key, each key once.
    pub(crate) fn from_sorted(entries: Vec<(String, Register)>) -> Self {
        Self { entries }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every key's record (tombstones included), in key order.
    pub(crate) fn into_records(self) -> impl Iterator<Item = (String, Record)> {
        self.entries.into_iter().filter_map(|(k, reg)| {
            let version = reg.stamp()?.clone();
            let value = reg.get()?.as_ref().map(|p| p.as_bytes().to_vec());
            Some((k, Record { version, value }))
        })
    }

    /// The register of one key.
    pub(crate) fn get(&self, key: &str) -> Option<(EventKey, Option<&Payload>)> {
        let i = self
            .entries
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()?;
        let reg = &self.entries[i].1;
        Some((reg.stamp()?.clone(), reg.get()?.as_ref()))
    }
}

/// Serialises the entries as one CBOR map in key order: the bytes of a
/// `BTreeMap`, and so of `KvProjection`'s state.
struct AsMap<'a>(&'a [(String, Register)]);

impl Serialize for AsMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// Reads a CBOR map into a vector, sorting (and keeping the last of
/// duplicate keys) only if the input was not already in order.
struct Entries(Vec<(String, Register)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<(String, Register)>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of keys to registers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(entry) = map.next_entry::<String, Register>()? {
                    out.push(entry);
                }
                Ok(out)
            }
        }
        let mut entries = d.deserialize_map(V)?;
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|later, earlier| {
                if later.0 == earlier.0 {
                    std::mem::swap(later, earlier);
                    true
                } else {
                    false
                }
            });
        }
        Ok(Entries(entries))
    }
}

impl Projection for KvState {
    const NAME: &'static str = KvProjection::NAME;
    const VERSION: u32 = KvProjection::VERSION;
    const COMMUTATIVE: bool = true;

    fn apply(&mut self, event: &Envelope) -> larder_crdt::Result<()> {
        if let Some((key, record)) = parse_event(event) {
            let value =
                match record.value {
                    Some(bytes) => Some(Payload::from_canonical_bytes(bytes).map_err(|e| {
                        CrdtError::BadEvent {
                            event: event.id().to_hex(),
                            kind: event.kind().into(),
                            reason: e.to_string(),
                        }
                    })?),
                    None => None,
                };
            match self.entries.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => {
                    self.entries[i].1.set(value, record.version);
                }
                Err(i) => {
                    let mut reg = Register::default();
                    reg.set(value, record.version);
                    self.entries.insert(i, (key, reg));
                }
            }
        }
        Ok(())
    }

    fn encode_state(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Serialising plain data into a Vec cannot fail.
        let _ = ciborium::into_writer(&AsMap(&self.entries), &mut out);
        out
    }

    fn decode_state(bytes: &[u8]) -> larder_crdt::Result<Self> {
        let Entries(entries) =
            ciborium::from_reader(bytes).map_err(|e| CrdtError::StateDecode {
                projection: Self::NAME,
                reason: e.to_string(),
            })?;
        Ok(Self { entries })
    }
}
