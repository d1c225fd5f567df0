//! The event envelope: who wrote an event, when, what kind, and its payload.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

use crate::cbor::{self, Reader};
use crate::hash::blake2b256;
use crate::{CodecError, EventId, Result};

/// Version of the event-id preimage layout; part of every preimage so a
/// future layout can never produce an id equal to one of today's.
pub const PREIMAGE_SCHEMA_VERSION: u8 = 1;

/// The longest actor id accepted, in bytes.
pub const MAX_ACTOR_LEN: usize = 64;

/// The longest event kind accepted, in bytes.
pub const MAX_KIND_LEN: usize = 256;

/// A replica's identity.
///
/// 1 to 64 bytes of ASCII letters, digits, `_`, `-` and `.`; not starting
/// with `.` or `-`, not ending with `.` or `.lock`, and without `..`. These
/// rules make every actor id usable as one component of a git ref name.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorId(Arc<str>);

impl ActorId {
    /// Validates `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id: String = id.into();
        match actor_rule_broken(&id) {
            None => Ok(Self(id.into())),
            Some(reason) => Err(CodecError::InvalidActor { actor: id, reason }),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn actor_rule_broken(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        return Some("must not be empty");
    }
    if id.len() > MAX_ACTOR_LEN {
        return Some("longer than 64 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Some("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    if id.starts_with('.') || id.starts_with('-') {
        return Some("must not start with '.' or '-'");
    }
    if id.ends_with('.') || id.ends_with(".lock") {
        return Some("must not end with '.' or '.lock'");
    }
    if id.contains("..") {
        return Some("must not contain '..'");
    }
    None
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({:?})", self.0)
    }
}

impl std::str::FromStr for ActorId {
    type Err = CodecError;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// A hybrid-logical-clock timestamp: wall-clock milliseconds since the Unix
/// epoch plus a logical counter that orders events within one millisecond.
///
/// Ordered by `(millis, counter)`; the clock itself lives in `larder-crdt`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Timestamp {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub millis: u64,
    /// Logical counter within `millis`.
    pub counter: u32,
}

impl Timestamp {
    /// A timestamp from its two parts.
    pub const fn new(millis: u64, counter: u32) -> Self {
        Self { millis, counter }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.millis, self.counter)
    }
}

/// An event's application data: exactly one canonical CBOR data item.
///
/// Built from any `serde` value with [`Payload::from_serde`], which sorts map
/// keys so that equal values always produce equal bytes (and equal event ids).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Payload(Vec<u8>);

impl Payload {
    /// Encodes a serde value as a canonical CBOR payload.
    pub fn from_serde<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let value = ciborium::Value::serialized(value)
            .map_err(|e| CodecError::PayloadEncode(e.to_string()))?;
        Self::from_value(value)
    }

    /// Encodes a CBOR value canonically (map keys sorted, duplicates
    /// rejected). A value nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH)
    /// is refused with [`CodecError::PayloadTooDeep`], the bound every
    /// reader applies.
    pub fn from_value(value: ciborium::Value) -> Result<Self> {
        let depth = value_depth(&value);
        if depth > cbor::MAX_DEPTH {
            return Err(CodecError::PayloadTooDeep {
                depth,
                limit: cbor::MAX_DEPTH,
            });
        }
        let value = canonicalize(value)?;
        let mut out = Vec::new();
        ciborium::into_writer(&value, &mut out)
            .map_err(|e| CodecError::PayloadEncode(e.to_string()))?;
        Ok(Self(out))
    }

    /// Wraps bytes that must already be one canonical CBOR item.
    pub fn from_canonical_bytes(bytes: Vec<u8>) -> Result<Self> {
        cbor::validate_item(&bytes)?;
        Ok(Self(bytes))
    }

    /// The canonical CBOR bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw items of a payload that is a CBOR array, without decoding
    /// them: each is itself one canonical item. `None` if not an array.
    pub fn array_items(&self) -> Option<Vec<&[u8]>> {
        let mut reader = Reader::new(&self.0, 0);
        let n = reader.array("an array").ok()?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let (start, end) = reader.item(1).ok()?;
            items.push(reader.slice(start, end));
        }
        Some(items)
    }

    /// Like [`Payload::array_items`], with each item as its own payload
    /// (already validated by the walk, so not checked twice).
    pub fn array_payloads(&self) -> Option<Vec<Payload>> {
        Some(
            self.array_items()?
                .into_iter()
                .map(|item| Payload(item.to_vec()))
                .collect(),
        )
    }

    /// The text of a payload that is a single CBOR text item.
    pub fn as_text(&self) -> Option<&str> {
        text_item(&self.0)
    }

    /// Decodes the payload into an application type.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        ciborium::from_reader(self.0.as_slice())
            .map_err(|e| CodecError::PayloadDecode(e.to_string()))
    }

    /// Decodes the payload into a generic CBOR value.
    pub fn to_value(&self) -> Result<ciborium::Value> {
        self.deserialize()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

/// The text of `bytes` if they are exactly one CBOR text item.
pub fn text_item(bytes: &[u8]) -> Option<&str> {
    let mut reader = Reader::new(bytes, 0);
    let text = reader.text("text").ok()?;
    (reader.remaining() == 0).then_some(text)
}

/// How deeply `value` nests arrays, maps and tags (a scalar is 0, `[]` is
/// 1), measured without recursion so a pathological value cannot exhaust
/// the stack here.
fn value_depth(value: &ciborium::Value) -> usize {
    use ciborium::Value;
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, above)) = stack.pop() {
        let own = match v {
            Value::Array(items) => {
                stack.extend(items.iter().map(|i| (i, above + 1)));
                above + 1
            }
            Value::Map(entries) => {
                for (k, val) in entries {
                    stack.push((k, above + 1));
                    stack.push((val, above + 1));
                }
                above + 1
            }
            Value::Tag(_, inner) => {
                stack.push((inner, above + 1));
                above + 1
            }
            _ => above,
        };
        deepest = deepest.max(own);
    }
    deepest
}

/// Sorts every map's keys by their encoded bytes (RFC 8949 §4.2.1).
fn canonicalize(value: ciborium::Value) -> Result<ciborium::Value> {
    use ciborium::Value;
    Ok(match value {
        Value::Array(items) => {
            Value::Array(items.into_iter().map(canonicalize).collect::<Result<_>>()?)
        }
        Value::Tag(tag, inner) => Value::Tag(tag, Box::new(canonicalize(*inner)?)),
        Value::Map(entries) => {
            let mut keyed = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let k = canonicalize(k)?;
                let mut encoded = Vec::new();
                ciborium::into_writer(&k, &mut encoded)
                    .map_err(|e| CodecError::PayloadEncode(e.to_string()))?;
                keyed.push((encoded, k, canonicalize(v)?));
            }
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            if keyed.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(CodecError::PayloadEncode("map has a duplicate key".into()));
            }
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        other => other,
    })
}

fn kind_rule_broken(kind: &str) -> Option<&'static str> {
    if kind.is_empty() {
        Some("must not be empty")
    } else if kind.len() > MAX_KIND_LEN {
        Some("longer than 256 bytes")
    } else {
        None
    }
}

/// One event as stored in a chunk.
///
/// The id is derived from the other fields (except the signature) when the
/// envelope is built and re-checked whenever one is decoded, so an
/// `Envelope` value always carries the id its contents hash to — with one
/// marked exception: an *opened* envelope ([`Envelope::opened`]), the
/// decrypted view of an encrypted event, keeps the stored event's id next
/// to its plaintext payload, and no chunk can be encoded from it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Envelope {
    id: EventId,
    actor: ActorId,
    timestamp: Timestamp,
    kind: Arc<str>,
    payload: Payload,
    signature: Option<Vec<u8>>,
    opened: bool,
}

/// Strings shared between consecutive events of one chunk while decoding:
/// a chunk usually repeats one actor and a few kinds, so each is allocated
/// once instead of once per event.
#[derive(Default)]
pub(crate) struct DecodeCache {
    actor: Option<ActorId>,
    kind: Option<Arc<str>>,
}

impl Envelope {
    /// Builds an envelope and computes its event id.
    pub fn new(
        actor: ActorId,
        timestamp: Timestamp,
        kind: impl Into<String>,
        payload: Payload,
    ) -> Result<Self> {
        let kind: String = kind.into();
        if let Some(reason) = kind_rule_broken(&kind) {
            return Err(CodecError::InvalidKind { kind, reason });
        }
        let kind: Arc<str> = kind.into();
        let mut preimage = Vec::with_capacity(16 + actor.0.len() + kind.len() + payload.0.len());
        write_preimage_fields(&mut preimage, &actor, timestamp, &kind, &payload);
        let id = EventId(blake2b256(&[&PREIMAGE_PREFIX, &preimage]));
        Ok(Self {
            id,
            actor,
            timestamp,
            kind,
            payload,
            signature: None,
            opened: false,
        })
    }

    /// The decrypted view of this (encrypted) event: the same id, actor,
    /// timestamp, kind and signature, with `plaintext` as its payload, so
    /// a projection folding it sees the id every replica stores.
    ///
    /// Its id no longer hashes to its contents, so it is marked: encoding a
    /// chunk that holds it fails with [`CodecError::OpenedEnvelope`], and
    /// plaintext can never reach the log through it.
    pub fn opened(&self, plaintext: Payload) -> Self {
        Self {
            payload: plaintext,
            opened: true,
            ..self.clone()
        }
    }

    /// Whether this is the decrypted view of an event
    /// ([`Envelope::opened`]), which cannot be written.
    pub fn is_opened(&self) -> bool {
        self.opened
    }

    /// Attaches a signature. Signatures are not part of the event id, so a
    /// signed and an unsigned copy of one event share their id.
    pub fn with_signature(mut self, signature: Vec<u8>) -> Self {
        self.signature = Some(signature);
        self
    }

    /// The event id.
    pub fn id(&self) -> EventId {
        self.id
    }
    /// The actor that wrote the event.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }
    /// The event's hybrid-logical-clock timestamp.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    /// The application-defined event kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// The application data.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }
    /// The optional signature bytes.
    pub fn signature(&self) -> Option<&[u8]> {
        self.signature.as_deref()
    }

    /// The canonical bytes whose BLAKE2b-256 is this event's id.
    pub fn preimage(&self) -> Vec<u8> {
        let mut out = PREIMAGE_PREFIX.to_vec();
        write_preimage_fields(
            &mut out,
            &self.actor,
            self.timestamp,
            &self.kind,
            &self.payload,
        );
        out
    }

    /// Appends this envelope's wire encoding (a CBOR array of six) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use ciborium_ll::Header;
        cbor::push_header(out, Header::Array(Some(6)));
        cbor::push_bytes(out, &self.id.0);
        write_preimage_fields(out, &self.actor, self.timestamp, &self.kind, &self.payload);
        match &self.signature {
            Some(sig) => cbor::push_bytes(out, sig),
            None => cbor::push_header(out, Header::Simple(ciborium_ll::simple::NULL)),
        }
    }

    /// Reads one envelope at the reader's position, verifying its id.
    pub(crate) fn decode(
        reader: &mut Reader<'_>,
        index: usize,
        cache: &mut DecodeCache,
    ) -> Result<Self> {
        let start = reader.pos();
        reader.array_of(6, "an event envelope (array of 6)")?;
        let stored = reader.bytes("the event id (32-byte string)")?;
        let stored: [u8; 32] = stored.try_into().map_err(|_| CodecError::UnexpectedType {
            offset: start + 1,
            expected: "a 32-byte event id",
        })?;
        let fields_start = reader.pos();
        let actor = reader.text("the actor id (text)")?;
        if let Some(reason) = actor_rule_broken(actor) {
            return Err(CodecError::InvalidActor {
                actor: actor.to_owned(),
                reason,
            });
        }
        let actor = match &cache.actor {
            Some(a) if &*a.0 == actor => a.clone(),
            _ => {
                let a = ActorId(actor.into());
                cache.actor = Some(a.clone());
                a
            }
        };
        reader.array_of(2, "a timestamp [millis, counter]")?;
        let millis = reader.uint("timestamp millis (unsigned)")?;
        let counter_at = reader.pos();
        let counter = reader.uint("timestamp counter (unsigned)")?;
        let counter = u32::try_from(counter).map_err(|_| CodecError::UnexpectedType {
            offset: counter_at,
            expected: "a timestamp counter below 2^32",
        })?;
        let kind = reader.text("the event kind (text)")?;
        if let Some(reason) = kind_rule_broken(kind) {
            return Err(CodecError::InvalidKind {
                kind: kind.to_owned(),
                reason,
            });
        }
        // Depth counts from the payload's root, exactly as the validator
        // behind `Payload::from_canonical_bytes` counts it.
        let (payload_start, payload_end) = reader.item(0)?;
        let fields_end = reader.pos();
        let signature = reader.optional_bytes("the signature (bytes or null)")?;

        let computed = EventId(blake2b256(&[
            &PREIMAGE_PREFIX,
            reader.slice(fields_start, fields_end),
        ]));
        if computed.0 != stored {
            return Err(CodecError::EventIdMismatch {
                index,
                offset: start,
                stored: EventId(stored),
                computed,
            });
        }
        Ok(Self {
            id: computed,
            actor,
            timestamp: Timestamp { millis, counter },
            kind: match &cache.kind {
                Some(k) if &**k == kind => k.clone(),
                _ => {
                    let k: Arc<str> = kind.into();
                    cache.kind = Some(k.clone());
                    k
                }
            },
            payload: Payload(reader.slice(payload_start, payload_end).to_vec()),
            signature: signature.map(<[u8]>::to_vec),
            opened: false,
        })
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("actor", &self.actor)
            .field("timestamp", &self.timestamp)
            .field("kind", &self.kind)
            .field("payload", &self.payload)
            .field("signed", &self.signature.is_some())
            .field("opened", &self.opened)
            .finish()
    }
}

/// `0x85` (array of 5) then the schema version: the preimage's first bytes.
const PREIMAGE_PREFIX: [u8; 2] = [0x85, PREIMAGE_SCHEMA_VERSION];

/// Writes actor, timestamp, kind and payload: the fields shared, byte for
/// byte, by the preimage and the wire envelope.
fn write_preimage_fields(
    out: &mut Vec<u8>,
    actor: &ActorId,
    ts: Timestamp,
    kind: &str,
    payload: &Payload,
) {
    use ciborium_ll::Header;
    cbor::push_text(out, &actor.0);
    cbor::push_header(out, Header::Array(Some(2)));
    cbor::push_header(out, Header::Positive(ts.millis));
    cbor::push_header(out, Header::Positive(u64::from(ts.counter)));
    cbor::push_text(out, kind);
    out.extend_from_slice(&payload.0);
}
