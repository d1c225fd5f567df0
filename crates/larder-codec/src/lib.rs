//! larder's chunk codec.
//!
//! An event is an [`Envelope`]: actor, hybrid-logical-clock [`Timestamp`],
//! kind, a canonical CBOR [`Payload`] and an optional signature, identified
//! by an [`EventId`] that is the BLAKE2b-256 of a canonical preimage of those
//! fields. A batch of events is stored as one *chunk*: an 8-byte header and a
//! canonical CBOR array of envelopes, identified by the BLAKE2b-256 of its
//! bytes ([`ChunkId`]). The byte layout is specified in `docs/format.md`.
//!
//! Decoding never trusts its input: every length is bounded by the bytes
//! that remain, nesting is bounded by [`MAX_DEPTH`], every event id is
//! recomputed, and each failure is a distinct [`CodecError`] variant naming
//! the byte offset or event index. This crate never touches git.
//!
//! ```
//! use larder_codec::{ActorId, Envelope, Payload, Timestamp, decode_chunk, encode_chunk};
//!
//! let actor = ActorId::new("alice")?;
//! let event = Envelope::new(actor, Timestamp::new(1_700_000_000_000, 0), "note",
//!     Payload::from_serde(&"hello")?)?;
//! let chunk = encode_chunk(std::slice::from_ref(&event))?;
//! assert_eq!(decode_chunk(&chunk)?, vec![event]);
//! # Ok::<(), larder_codec::CodecError>(())
//! ```
#![deny(missing_docs)]

mod cbor;
mod chunk;
mod envelope;
mod error;
mod hash;
mod serde_impls;

pub use cbor::MAX_DEPTH;
pub use chunk::{
    CODEC_CBOR, ChunkDecoder, FORMAT_VERSION, HEADER_LEN, Limits, MAGIC, MAX_CHUNK_LEN,
    MAX_EVENT_LEN, chunk_id, decode_chunk, decode_chunk_verified, encode_chunk, encode_chunk_into,
    encode_chunk_into_with, encode_chunk_with, verify_chunk_id,
};
pub use envelope::{
    ActorId, Envelope, MAX_ACTOR_LEN, MAX_KIND_LEN, PREIMAGE_SCHEMA_VERSION, Payload, Timestamp,
    text_item,
};
pub use error::{CodecError, Result};
pub use hash::{ChunkId, EventId, blake2b256, to_hex};

/// Re-exported so callers can build payloads from generic CBOR values.
pub use ciborium::Value;
