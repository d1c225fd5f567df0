//! Chunks: a fixed header followed by a canonical CBOR array of envelopes.

use crate::cbor::{self, Reader};
use crate::envelope::DecodeCache;
use crate::hash::blake2b256;
use crate::{ChunkId, CodecError, Envelope, Result};

/// The four bytes every chunk starts with.
pub const MAGIC: [u8; 4] = *b"LRDR";
/// The chunk format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Codec id 1: the body is canonical CBOR.
pub const CODEC_CBOR: u8 = 1;
/// Length of the fixed header: magic, version (u16 big-endian), codec, reserved.
pub const HEADER_LEN: usize = 8;

/// The largest encoded event (one envelope) any reader accepts: 16 MiB.
/// Part of the format, like [`MAX_DEPTH`](crate::MAX_DEPTH): a writer's
/// [`Limits`] can never exceed it, so what one replica writes every other
/// replica reads.
pub const MAX_EVENT_LEN: usize = 16 << 20;

/// The largest chunk any reader accepts: 256 MiB.
pub const MAX_CHUNK_LEN: usize = 256 << 20;

/// The size limits a writer applies when it encodes a chunk.
///
/// Defaults: 1 MiB per event, 64 MiB per chunk — room for any event a log
/// of application records should hold, and small enough that a reader's
/// memory stays modest. Configurable up to the format's ceilings
/// ([`MAX_EVENT_LEN`], [`MAX_CHUNK_LEN`]) and no further, because readers
/// enforce those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_event_bytes: usize,
    max_chunk_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 1 << 20,
            max_chunk_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// Limits of `max_event_bytes` per encoded event and `max_chunk_bytes`
    /// per chunk; [`CodecError::LimitAboveCeiling`] above the format's
    /// ceilings.
    pub fn new(max_event_bytes: usize, max_chunk_bytes: usize) -> Result<Self> {
        for (what, requested, ceiling) in [
            ("event", max_event_bytes, MAX_EVENT_LEN),
            ("chunk", max_chunk_bytes, MAX_CHUNK_LEN),
        ] {
            if requested > ceiling {
                return Err(CodecError::LimitAboveCeiling {
                    what,
                    requested,
                    ceiling,
                });
            }
        }
        Ok(Self {
            max_event_bytes,
            max_chunk_bytes,
        })
    }

    /// The format's ceilings: what readers accept.
    pub const fn ceilings() -> Self {
        Self {
            max_event_bytes: MAX_EVENT_LEN,
            max_chunk_bytes: MAX_CHUNK_LEN,
        }
    }

    /// The most bytes one encoded event may take.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// The most bytes one chunk may take.
    pub fn max_chunk_bytes(&self) -> usize {
        self.max_chunk_bytes
    }
}

/// The smallest possible encoded envelope, used to bound declared counts.
const MIN_ENVELOPE_LEN: usize = 1 + 33 + 2 + 3 + 2 + 1 + 1;

fn header_bytes() -> [u8; HEADER_LEN] {
    let v = FORMAT_VERSION.to_be_bytes();
    [
        MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1], CODEC_CBOR, 0,
    ]
}

/// Encodes `events`, in the order given, as one chunk, within the
/// format's ceilings (what every reader accepts).
pub fn encode_chunk(events: &[Envelope]) -> Result<Vec<u8>> {
    encode_chunk_with(events, &Limits::ceilings())
}

/// Encodes `events` as one chunk within `limits`: an event or a chunk over
/// its limit is a typed error naming the event and the sizes.
pub fn encode_chunk_with(events: &[Envelope], limits: &Limits) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_chunk_into_with(events, limits, &mut out)?;
    Ok(out)
}

/// Encodes `events` as one chunk, appending to a caller-owned buffer
/// (cleared first) so hot loops can reuse one allocation. Bounded by the
/// format's ceilings.
pub fn encode_chunk_into(events: &[Envelope], out: &mut Vec<u8>) -> Result<()> {
    encode_chunk_into_with(events, &Limits::ceilings(), out)
}

/// [`encode_chunk_into`] within `limits`.
pub fn encode_chunk_into_with(
    events: &[Envelope],
    limits: &Limits,
    out: &mut Vec<u8>,
) -> Result<()> {
    if events.is_empty() {
        return Err(CodecError::EmptyChunk);
    }
    out.clear();
    out.extend_from_slice(&header_bytes());
    cbor::push_header(out, ciborium_ll::Header::Array(Some(events.len())));
    for (index, event) in events.iter().enumerate() {
        if event.is_opened() {
            return Err(CodecError::OpenedEnvelope { index });
        }
        let before = out.len();
        event.encode_into(out);
        let size = out.len() - before;
        if size > limits.max_event_bytes {
            return Err(CodecError::EventTooLarge {
                index,
                size,
                limit: limits.max_event_bytes,
            });
        }
        if out.len() > limits.max_chunk_bytes {
            return Err(CodecError::ChunkTooLarge {
                size: out.len(),
                limit: limits.max_chunk_bytes,
            });
        }
    }
    Ok(())
}

/// The chunk id: BLAKE2b-256 of the complete chunk bytes.
pub fn chunk_id(chunk: &[u8]) -> ChunkId {
    ChunkId(blake2b256(&[chunk]))
}

/// Decodes and fully verifies a chunk: header, canonical form, every event
/// id, and the absence of trailing bytes.
pub fn decode_chunk(chunk: &[u8]) -> Result<Vec<Envelope>> {
    let decoder = ChunkDecoder::new(chunk)?;
    // The declared count is already bounded by the input length.
    let mut events = Vec::with_capacity(decoder.len());
    for event in decoder {
        events.push(event?);
    }
    Ok(events)
}

/// Like [`decode_chunk`], but first checks that the bytes hash to `expected`
/// (the id the chunk was stored under).
pub fn decode_chunk_verified(chunk: &[u8], expected: &ChunkId) -> Result<Vec<Envelope>> {
    verify_chunk_id(chunk, expected)?;
    decode_chunk(chunk)
}

/// Checks that `chunk` hashes to `expected`.
pub fn verify_chunk_id(chunk: &[u8], expected: &ChunkId) -> Result<()> {
    let computed = chunk_id(chunk);
    if &computed != expected {
        return Err(CodecError::ChunkIdMismatch {
            expected: expected.to_hex(),
            computed: computed.to_hex(),
        });
    }
    Ok(())
}

/// Streams a chunk's envelopes one at a time, verifying each as it goes.
///
/// Only the header and the event count are read up front; each call to
/// `next` decodes one envelope. After the last envelope the decoder checks
/// for trailing bytes and yields [`CodecError::TrailingBytes`] if any. After
/// any error the iterator is finished.
pub struct ChunkDecoder<'a> {
    reader: Reader<'a>,
    total: usize,
    next_index: usize,
    done: bool,
    cache: DecodeCache,
}

impl<'a> ChunkDecoder<'a> {
    /// Checks the header and reads the event count.
    pub fn new(chunk: &'a [u8]) -> Result<Self> {
        if chunk.len() < HEADER_LEN {
            if chunk.len() >= 4 && chunk[..4] != MAGIC {
                return Err(CodecError::BadMagic {
                    found: [chunk[0], chunk[1], chunk[2], chunk[3]],
                });
            }
            return Err(CodecError::Truncated {
                offset: chunk.len(),
                what: "the 8-byte chunk header",
            });
        }
        let magic = [chunk[0], chunk[1], chunk[2], chunk[3]];
        if magic != MAGIC {
            return Err(CodecError::BadMagic { found: magic });
        }
        if chunk.len() > MAX_CHUNK_LEN {
            return Err(CodecError::ChunkTooLarge {
                size: chunk.len(),
                limit: MAX_CHUNK_LEN,
            });
        }
        let version = u16::from_be_bytes([chunk[4], chunk[5]]);
        if version != FORMAT_VERSION {
            return Err(CodecError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if chunk[6] != CODEC_CBOR {
            return Err(CodecError::UnknownCodec { found: chunk[6] });
        }
        if chunk[7] != 0 {
            return Err(CodecError::ReservedHeaderByte { found: chunk[7] });
        }
        let mut reader = Reader::new(chunk, HEADER_LEN);
        let at = reader.pos();
        let total = reader.array("the chunk's event array")?;
        if total == 0 {
            return Err(CodecError::EmptyChunk);
        }
        let remaining = reader.remaining();
        if total.saturating_mul(MIN_ENVELOPE_LEN) > remaining {
            return Err(CodecError::LengthExceedsInput {
                offset: at,
                declared: total as u64,
                remaining,
            });
        }
        Ok(Self {
            reader,
            total,
            next_index: 0,
            done: false,
            cache: DecodeCache::default(),
        })
    }

    /// The number of events the chunk declares.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the chunk declares no events (never true for a valid chunk).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Iterator for ChunkDecoder<'_> {
    type Item = Result<Envelope>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.next_index == self.total {
            self.done = true;
            let count = self.reader.remaining();
            return (count != 0).then(|| {
                Err(CodecError::TrailingBytes {
                    offset: self.reader.pos(),
                    count,
                })
            });
        }
        let index = self.next_index;
        self.next_index += 1;
        let start = self.reader.pos();
        let result = Envelope::decode(&mut self.reader, index, &mut self.cache).and_then(|e| {
            let size = self.reader.pos() - start;
            if size > MAX_EVENT_LEN {
                return Err(CodecError::EventTooLarge {
                    index,
                    size,
                    limit: MAX_EVENT_LEN,
                });
            }
            Ok(e)
        });
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next_index;
        (0, Some(left + 1))
    }
}
