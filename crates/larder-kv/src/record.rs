//! How one key's latest write is stored: [`Record`] (version + value or
//! tombstone), its byte encoding with a per-entry checksum, and how a
//! `kv.set` / `kv.delete` event becomes one.

use larder_codec::{ActorId, Envelope, EventId, Timestamp};
use larder_crdt::{EventKey, KV_DELETE, KV_SET};

/// One key's latest write as stored: its version and its value's canonical
/// CBOR bytes (`None`: deleted — the tombstone keeps the version so that a
/// late, older write cannot resurrect the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) version: EventKey,
    pub(crate) value: Option<Vec<u8>>,
}

/// A write that took effect on the view: what watchers receive.
#[derive(Clone, Debug)]
pub(crate) struct RawChange {
    pub(crate) key: String,
    pub(crate) record: Record,
}

/// `kv.set` / `kv.delete` decoded: key and record. `None` for other kinds;
/// a malformed kv event is skipped with a warning (the log is input).
pub(crate) fn parse_event(e: &Envelope) -> Option<(String, Record)> {
    let version = EventKey::of(e);
    match e.kind() {
        KV_SET => {
            let items = e.payload().array_items();
            match items.as_deref() {
                Some([key, value]) => match larder_codec::text_item(key) {
                    Some(k) => Some((
                        k.to_owned(),
                        Record {
                            version,
                            value: Some(value.to_vec()),
                        },
                    )),
                    None => malformed(e, "key is not text"),
                },
                _ => malformed(e, "expected [key, value]"),
            }
        }
        KV_DELETE => match e.payload().as_text() {
            Some(k) => Some((
                k.to_owned(),
                Record {
                    version,
                    value: None,
                },
            )),
            None => malformed(e, "key is not text"),
        },
        _ => None,
    }
}

fn malformed<T>(e: &Envelope, reason: &str) -> Option<T> {
    tracing::warn!(event = %e.id(), kind = e.kind(), reason, "skipping a malformed key-value event");
    None
}

/// Entry layout: `[8 checksum][8 millis BE][4 counter BE][1 actor len]
/// [actor][32 event id][1 live][value CBOR]`; the checksum covers the key
/// and the rest ([`entry_sum`]).
pub(crate) fn encode_record(key: &str, r: &Record) -> Vec<u8> {
    let actor = r.version.actor.as_str().as_bytes();
    let value = r.value.as_deref().unwrap_or(&[]);
    let mut out = Vec::with_capacity(8 + 13 + actor.len() + 33 + value.len());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&r.version.timestamp.millis.to_be_bytes());
    out.extend_from_slice(&r.version.timestamp.counter.to_be_bytes());
    out.push(actor.len() as u8);
    out.extend_from_slice(actor);
    out.extend_from_slice(r.version.id.as_bytes());
    out.push(u8::from(r.value.is_some()));
    out.extend_from_slice(value);
    let sum = entry_sum(key, &out[8..]);
    out[..8].copy_from_slice(&sum);
    out
}

/// A 64-bit checksum of key and entry: catches damaged bytes (it is not a
/// defence against someone forging entries — whoever can write the file can
/// write the WAL's view of it too). Eight bytes a step, so a `get` or a
/// rebuild of a million entries pays little for it.
fn entry_sum(key: &str, rest: &[u8]) -> [u8; 8] {
    let mut h: u64 = 0x6c61_7264_6572_6b76 ^ (key.len() as u64);
    for part in [key.as_bytes(), rest] {
        let mut chunks = part.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = mix(h ^ u64::from_le_bytes(w));
        }
        let tail = chunks.remainder();
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        h = mix(h ^ u64::from_le_bytes(w) ^ ((tail.len() as u64) << 56));
    }
    mix(h ^ rest.len() as u64).to_le_bytes()
}

/// One round of a 64-bit mixer (splitmix64's finaliser).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Decodes an entry; `Err` names what is wrong (the view then heals).
pub(crate) fn decode_record(key: &str, bytes: &[u8]) -> std::result::Result<Record, String> {
    let bad = |what: &str| format!("entry {key:?}: {what}");
    if bytes.len() < 8 + 13 || entry_sum(key, &bytes[8..]) != bytes[..8] {
        return Err(bad("checksum mismatch"));
    }
    let rest = &bytes[8..];
    let millis = u64::from_be_bytes(rest[..8].try_into().map_err(|_| bad("short"))?);
    let counter = u32::from_be_bytes(rest[8..12].try_into().map_err(|_| bad("short"))?);
    let alen = usize::from(rest[12]);
    let rest = &rest[13..];
    if rest.len() < alen + 33 {
        return Err(bad("short"));
    }
    let actor = std::str::from_utf8(&rest[..alen]).map_err(|_| bad("actor"))?;
    let actor = ActorId::new(actor).map_err(|_| bad("actor"))?;
    let id: [u8; 32] = rest[alen..alen + 32].try_into().map_err(|_| bad("id"))?;
    let live = rest[alen + 32];
    let value = &rest[alen + 33..];
    Ok(Record {
        version: EventKey {
            timestamp: Timestamp::new(millis, counter),
            actor,
            id: EventId(id),
        },
        value: match live {
            0 => None,
            1 => Some(value.to_vec()),
            _ => return Err(bad("live flag")),
        },
    })
}
