//! The codec's single error type.

use crate::EventId;

/// Everything that can go wrong while encoding or decoding larder data.
///
/// Offsets are byte offsets from the start of the chunk (or of the payload
/// being validated); `index` is the position of an event within its chunk.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before a complete item could be read.
    #[error("input truncated at byte {offset}: expected {what}")]
    Truncated {
        /// Where the missing bytes should have started.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// The chunk does not start with the larder magic bytes.
    #[error("bad magic {found:02x?} at byte 0: not a larder chunk")]
    BadMagic {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// An event given to the encoder is the decrypted view of an encrypted
    /// event (`Envelope::opened`): its id does not hash to its plaintext
    /// payload, and writing it would put plaintext in the log.
    #[error("event {index} is a decrypted view of an encrypted event and cannot be written")]
    OpenedEnvelope {
        /// Its position among the events given.
        index: usize,
    },
    /// The chunk was written by an unknown format version.
    #[error("unsupported chunk format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
        /// The version this build understands.
        supported: u16,
    },
    /// The chunk body uses an unknown codec.
    #[error("unknown codec id {found} at byte 6 (this build knows codec 1, canonical CBOR)")]
    UnknownCodec {
        /// The codec id in the header.
        found: u8,
    },
    /// A reserved header byte is not zero.
    #[error("reserved header byte 7 is {found:#04x}, must be 0")]
    ReservedHeaderByte {
        /// The byte found.
        found: u8,
    },
    /// The bytes are not well-formed CBOR.
    #[error("malformed CBOR at byte {offset}: {reason}")]
    Malformed {
        /// Where the bad item starts.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Well-formed CBOR that is not in canonical (deterministic) form.
    #[error("non-canonical CBOR at byte {offset}: {reason}")]
    NonCanonical {
        /// Where the offending item starts.
        offset: usize,
        /// Which canonical rule was broken.
        reason: &'static str,
    },
    /// An item of the wrong CBOR type where the format requires another.
    #[error("unexpected CBOR item at byte {offset}: expected {expected}")]
    UnexpectedType {
        /// Where the item starts.
        offset: usize,
        /// What the format requires here.
        expected: &'static str,
    },
    /// A declared length is larger than the remaining input could hold.
    #[error(
        "declared length {declared} at byte {offset} exceeds the {remaining} bytes of input left"
    )]
    LengthExceedsInput {
        /// Where the length was read.
        offset: usize,
        /// The declared length (items or bytes).
        declared: u64,
        /// Bytes remaining after the header.
        remaining: usize,
    },
    /// Items nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    #[error("CBOR nested deeper than {limit} levels at byte {offset}")]
    TooDeep {
        /// Where the too-deep item starts.
        offset: usize,
        /// The nesting limit.
        limit: usize,
    },
    /// A payload value to encode nests deeper than
    /// [`MAX_DEPTH`](crate::MAX_DEPTH): no reader would accept it.
    #[error("payload nests {depth} levels deep; the limit is {limit}")]
    PayloadTooDeep {
        /// How deep the value nests.
        depth: usize,
        /// The nesting limit.
        limit: usize,
    },
    /// One event's encoding is larger than the limit in force.
    #[error("event {index} encodes to {size} bytes; the limit is {limit}")]
    EventTooLarge {
        /// The event's position in its chunk.
        index: usize,
        /// Its encoded size.
        size: usize,
        /// The limit (a writer's [`Limits`](crate::Limits), or the
        /// format's [`MAX_EVENT_LEN`](crate::MAX_EVENT_LEN) for readers).
        limit: usize,
    },
    /// A chunk is larger than the limit in force.
    #[error("chunk of {size} bytes; the limit is {limit}")]
    ChunkTooLarge {
        /// The chunk's size.
        size: usize,
        /// The limit (a writer's [`Limits`](crate::Limits), or the
        /// format's [`MAX_CHUNK_LEN`](crate::MAX_CHUNK_LEN) for readers).
        limit: usize,
    },
    /// Writer limits above what the format lets readers accept.
    #[error("{what} limit {requested} is above the format's ceiling {ceiling}")]
    LimitAboveCeiling {
        /// Which limit.
        what: &'static str,
        /// The value asked for.
        requested: usize,
        /// The format's ceiling.
        ceiling: usize,
    },
    /// A text item is not valid UTF-8.
    #[error("invalid UTF-8 in text at byte {offset}")]
    InvalidUtf8 {
        /// Where the text item starts.
        offset: usize,
    },
    /// A chunk must contain at least one event.
    #[error("a chunk must hold at least one event")]
    EmptyChunk,
    /// Bytes follow the end of the chunk's event array.
    #[error("{count} trailing bytes after the chunk's last event, at byte {offset}")]
    TrailingBytes {
        /// Where the trailing bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// An event's stored id does not match the hash of its contents.
    #[error("event {index} (at byte {offset}): stored id {stored} but contents hash to {computed}")]
    EventIdMismatch {
        /// Position of the event in its chunk.
        index: usize,
        /// Where the event starts.
        offset: usize,
        /// The id written in the chunk.
        stored: EventId,
        /// The id recomputed from the event's fields.
        computed: EventId,
    },
    /// The chunk's bytes do not hash to the id they were stored under.
    #[error("chunk hashes to {computed} but was stored as {expected}")]
    ChunkIdMismatch {
        /// The id the chunk was expected to have.
        expected: String,
        /// The id its bytes actually hash to.
        computed: String,
    },
    /// An actor id breaks the naming rules (see [`ActorId`](crate::ActorId)).
    #[error("invalid actor id {actor:?}: {reason}")]
    InvalidActor {
        /// The rejected actor id (lossy if it was not UTF-8).
        actor: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An event kind breaks the naming rules (see [`Envelope`](crate::Envelope)).
    #[error("invalid event kind {kind:?}: {reason}")]
    InvalidKind {
        /// The rejected kind.
        kind: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A hex string is not a valid 32-byte id.
    #[error("invalid id {text:?}: expected 64 lowercase hex digits")]
    InvalidHexId {
        /// The rejected text.
        text: String,
    },
    /// An application value could not be turned into a CBOR payload.
    #[error("cannot encode payload: {0}")]
    PayloadEncode(String),
    /// A payload could not be turned into the requested application type.
    #[error("cannot decode payload: {0}")]
    PayloadDecode(String),
}

/// Shorthand for results whose error is [`CodecError`].
pub type Result<T, E = CodecError> = std::result::Result<T, E>;
