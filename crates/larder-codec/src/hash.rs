//! BLAKE2b-256 content hashes and their hex form.

use std::fmt;
use std::str::FromStr;

use blake2::{Blake2b256, Digest};

use crate::{CodecError, Result};

/// BLAKE2b-256 of `parts` taken as one contiguous input: larder's content
/// hash, shared by event ids, chunk ids and projection state hashes.
pub fn blake2b256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Blake2b256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// `bytes` as lowercase hex: how larder writes every hash in names, refs
/// and JSON.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn write_hex(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn parse_hex(text: &str) -> Result<[u8; 32]> {
    let invalid = || CodecError::InvalidHexId {
        text: text.chars().take(80).collect(),
    };
    let raw = text.as_bytes();
    if raw.len() != 64 {
        return Err(invalid());
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in raw.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(invalid());
        };
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 hash bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The id as 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                self.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "("))?;
                write_hex(&self.0, f)?;
                write!(f, ")")
            }
        }

        impl FromStr for $name {
            type Err = CodecError;

            fn from_str(text: &str) -> Result<Self> {
                parse_hex(text).map(Self)
            }
        }
    };
}

hash_id!(
    /// The id of one event: BLAKE2b-256 of its canonical preimage (see
    /// `docs/format.md`). Equal events have equal ids on every machine.
    EventId
);

hash_id!(
    /// The id of one chunk: BLAKE2b-256 of the chunk's complete bytes.
    ChunkId
);
