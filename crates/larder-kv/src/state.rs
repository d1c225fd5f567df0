//! [`KvState`]: the key-value state with each key's version visible — the
//! same name, version, encoding and hash as `larder_crdt::KvProjection`,
//! so snapshots written with either are read by both, and a view's state
//! hash can be compared with `KvProjection` folded over the log.

use std::collections::BTreeMap;

use larder_codec::{Envelope, Payload};
use larder_crdt::{CrdtError, EventKey, KvProjection, LwwRegister, Projection};

use crate::store::{Record, parse_event};

/// Key → last-writer-wins register of an optional value (`None`: deleted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KvState {
    map: BTreeMap<String, LwwRegister<Option<Payload>>>,
}

impl KvState {
    pub(crate) fn from_map(map: BTreeMap<String, LwwRegister<Option<Payload>>>) -> Self {
        Self { map }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every key's record (tombstones included), in key order.
    pub(crate) fn into_records(self) -> impl Iterator<Item = (String, Record)> {
        self.map.into_iter().filter_map(|(k, reg)| {
            let version = reg.stamp()?.clone();
            let value = reg.get()?.as_ref().map(|p| p.as_bytes().to_vec());
            Some((k, Record { version, value }))
        })
    }

    /// The register of one key.
    pub(crate) fn get(&self, key: &str) -> Option<(EventKey, Option<&Payload>)> {
        let reg = self.map.get(key)?;
        Some((reg.stamp()?.clone(), reg.get()?.as_ref()))
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
            self.map.entry(key).or_default().set(value, record.version);
        }
        Ok(())
    }

    fn encode_state(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Serialising a BTreeMap of plain data into a Vec cannot fail.
        let _ = ciborium::into_writer(&self.map, &mut out);
        out
    }

    fn decode_state(bytes: &[u8]) -> larder_crdt::Result<Self> {
        let map = ciborium::from_reader(bytes).map_err(|e| CrdtError::StateDecode {
            projection: Self::NAME,
            reason: e.to_string(),
        })?;
        Ok(Self { map })
    }
}
