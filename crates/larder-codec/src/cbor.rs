//! Bounded, canonical CBOR reading and writing over byte slices.
//!
//! Item headers are parsed and produced by `ciborium-ll`; this module adds
//! what larder's format needs on top: zero-copy access to byte ranges (so
//! event ids are hashed straight from the input), a bound on every declared
//! length by the input that remains, a nesting limit, and the canonical-form
//! rules of RFC 8949 §4.2.1 (shortest arguments, definite lengths, sorted and
//! unique map keys).

use ciborium_ll::{Decoder, Encoder, Header};

use crate::{CodecError, Result};

/// The deepest nesting of arrays, maps and tags accepted inside a payload:
/// a scalar has depth 0, `[]` depth 1, `[[1]]` depth 2, a tag adds one.
///
/// One bound for everyone: [`Payload::from_serde`](crate::Payload::from_serde)
/// and [`Payload::from_value`](crate::Payload::from_value) refuse deeper
/// values (`PayloadTooDeep`), and the validator behind
/// [`Payload::from_canonical_bytes`](crate::Payload::from_canonical_bytes)
/// and the chunk decoder refuse deeper bytes (`TooDeep`), each measuring
/// from the payload's own root — so whatever a writer accepts, every
/// reader accepts.
pub const MAX_DEPTH: usize = 64;

/// A cursor over CBOR input that never reads past its end.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8], pos: usize) -> Self {
        Self { input, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        &self.input[start..end]
    }

    /// Reads one item header, checking that it is in canonical form.
    ///
    /// Majors 0–6 (integers, strings, arrays, maps, tags) are read straight
    /// from the slice: measured, `ciborium-ll`'s reader-based `pull` cost
    /// ~20 ns a header here, most of the decode time. Major 7 (floats and
    /// simple values, with their own shortest-form rules) goes through
    /// `ciborium-ll`, and is re-encoded to prove it canonical.
    pub(crate) fn header(&mut self, what: &'static str) -> Result<Header> {
        let start = self.pos;
        let rest = &self.input[start..];
        let Some(&initial) = rest.first() else {
            return Err(CodecError::Truncated {
                offset: start,
                what,
            });
        };
        let major = initial >> 5;
        let info = initial & 0x1f;
        if major == 7 {
            return self.simple_or_float(what);
        }
        let width = match info {
            0..=23 => 0,
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => {
                return Err(CodecError::NonCanonical {
                    offset: start,
                    reason: "indefinite-length item",
                });
            }
            _ => {
                return Err(CodecError::Malformed {
                    offset: start,
                    reason: "reserved additional-information value",
                });
            }
        };
        let Some(raw) = rest.get(1..1 + width) else {
            return Err(CodecError::Truncated {
                offset: start,
                what,
            });
        };
        let argument = if width == 0 {
            u64::from(info)
        } else {
            raw.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b))
        };
        if width != 0 && 1 + width != shortest_len(argument) {
            return Err(CodecError::NonCanonical {
                offset: start,
                reason: "argument not in its shortest form",
            });
        }
        let length = || {
            usize::try_from(argument).map_err(|_| CodecError::LengthExceedsInput {
                offset: start,
                declared: argument,
                remaining: rest.len(),
            })
        };
        let header = match major {
            0 => Header::Positive(argument),
            1 => Header::Negative(argument),
            2 => Header::Bytes(Some(length()?)),
            3 => Header::Text(Some(length()?)),
            4 => Header::Array(Some(length()?)),
            5 => Header::Map(Some(length()?)),
            _ => Header::Tag(argument),
        };
        self.pos += 1 + width;
        Ok(header)
    }

    fn simple_or_float(&mut self, what: &'static str) -> Result<Header> {
        let start = self.pos;
        let rest = &self.input[start..];
        let mut decoder = Decoder::from(rest);
        let header = decoder.pull().map_err(|e| match e {
            ciborium_ll::Error::Io(_) => CodecError::Truncated {
                offset: start,
                what,
            },
            ciborium_ll::Error::Syntax(_) => CodecError::Malformed {
                offset: start,
                reason: "reserved additional-information value",
            },
        })?;
        let len = decoder.offset();
        if header == Header::Break {
            return Err(CodecError::Malformed {
                offset: start,
                reason: "unexpected break",
            });
        }
        let mut canonical = [0u8; 9];
        let mut slot: &mut [u8] = &mut canonical[..];
        let encoded = Encoder::from(&mut slot).push(header).is_ok();
        let written = 9 - slot.len();
        if !encoded || canonical[..written] != rest[..len] {
            return Err(CodecError::NonCanonical {
                offset: start,
                reason: "float or simple value not in its shortest form",
            });
        }
        self.pos += len;
        Ok(header)
    }

    /// Checks that `declared` units of at least `unit` bytes each fit in
    /// what remains, so no caller ever allocates beyond the input's size.
    fn bound(&self, at: usize, declared: usize, unit: usize) -> Result<()> {
        let remaining = self.remaining();
        if declared.saturating_mul(unit) > remaining {
            return Err(CodecError::LengthExceedsInput {
                offset: at,
                declared: declared as u64,
                remaining,
            });
        }
        Ok(())
    }

    fn take(&mut self, at: usize, len: usize) -> Result<&'a [u8]> {
        self.bound(at, len, 1)?;
        let bytes = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    /// Reads an array header and returns its (input-bounded) length.
    pub(crate) fn array(&mut self, what: &'static str) -> Result<usize> {
        let at = self.pos;
        match self.header(what)? {
            Header::Array(Some(n)) => {
                self.bound(at, n, 1)?;
                Ok(n)
            }
            _ => Err(CodecError::UnexpectedType {
                offset: at,
                expected: what,
            }),
        }
    }

    /// Reads an array header that must announce exactly `n` items.
    pub(crate) fn array_of(&mut self, n: usize, what: &'static str) -> Result<()> {
        let at = self.pos;
        if self.array(what)? != n {
            return Err(CodecError::UnexpectedType {
                offset: at,
                expected: what,
            });
        }
        Ok(())
    }

    pub(crate) fn uint(&mut self, what: &'static str) -> Result<u64> {
        let at = self.pos;
        match self.header(what)? {
            Header::Positive(n) => Ok(n),
            _ => Err(CodecError::UnexpectedType {
                offset: at,
                expected: what,
            }),
        }
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let at = self.pos;
        match self.header(what)? {
            Header::Bytes(Some(n)) => self.take(at, n),
            _ => Err(CodecError::UnexpectedType {
                offset: at,
                expected: what,
            }),
        }
    }

    /// Reads `null` as `None` or a byte string as `Some`.
    pub(crate) fn optional_bytes(&mut self, what: &'static str) -> Result<Option<&'a [u8]>> {
        let at = self.pos;
        match self.header(what)? {
            Header::Simple(ciborium_ll::simple::NULL) => Ok(None),
            Header::Bytes(Some(n)) => self.take(at, n).map(Some),
            _ => Err(CodecError::UnexpectedType {
                offset: at,
                expected: what,
            }),
        }
    }

    pub(crate) fn text(&mut self, what: &'static str) -> Result<&'a str> {
        let at = self.pos;
        match self.header(what)? {
            Header::Text(Some(n)) => {
                let raw = self.take(at, n)?;
                std::str::from_utf8(raw).map_err(|_| CodecError::InvalidUtf8 { offset: at })
            }
            _ => Err(CodecError::UnexpectedType {
                offset: at,
                expected: what,
            }),
        }
    }

    /// Skips one complete data item of any type, validating it on the way,
    /// and returns the byte range it occupied. `depth` is the number of
    /// containers around the item within its payload; a container that
    /// would make the payload deeper than [`MAX_DEPTH`] is refused.
    pub(crate) fn item(&mut self, depth: usize) -> Result<(usize, usize)> {
        let start = self.pos;
        let header = self.header("a data item")?;
        if matches!(header, Header::Array(_) | Header::Map(_) | Header::Tag(_))
            && depth >= MAX_DEPTH
        {
            return Err(CodecError::TooDeep {
                offset: start,
                limit: MAX_DEPTH,
            });
        }
        match header {
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) => {}
            Header::Simple(_) => {}
            Header::Bytes(Some(n)) => {
                self.take(start, n)?;
            }
            Header::Text(Some(n)) => {
                let raw = self.take(start, n)?;
                if std::str::from_utf8(raw).is_err() {
                    return Err(CodecError::InvalidUtf8 { offset: start });
                }
            }
            Header::Array(Some(n)) => {
                self.bound(start, n, 1)?;
                for _ in 0..n {
                    self.item(depth + 1)?;
                }
            }
            Header::Map(Some(n)) => {
                self.bound(start, n, 2)?;
                let mut previous: Option<&[u8]> = None;
                for _ in 0..n {
                    let (ks, ke) = self.item(depth + 1)?;
                    let key = &self.input[ks..ke];
                    if let Some(prev) = previous
                        && prev >= key
                    {
                        return Err(CodecError::NonCanonical {
                            offset: ks,
                            reason: "map keys not in strictly ascending bytewise order",
                        });
                    }
                    previous = Some(key);
                    self.item(depth + 1)?;
                }
            }
            Header::Tag(_) => {
                self.item(depth + 1)?;
            }
            // `header` already rejected breaks and indefinite lengths.
            Header::Break
            | Header::Bytes(None)
            | Header::Text(None)
            | Header::Array(None)
            | Header::Map(None) => {
                return Err(CodecError::Malformed {
                    offset: start,
                    reason: "indefinite item",
                });
            }
        }
        Ok((start, self.pos))
    }
}

/// The length of the shortest header carrying `argument`.
fn shortest_len(argument: u64) -> usize {
    match argument {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends the canonical encoding of one header to `out`.
pub(crate) fn push_header(out: &mut Vec<u8>, header: Header) {
    // Writing into a Vec cannot fail.
    let _ = Encoder::from(out).push(header);
}

pub(crate) fn push_text(out: &mut Vec<u8>, text: &str) {
    push_header(out, Header::Text(Some(text.len())));
    out.extend_from_slice(text.as_bytes());
}

pub(crate) fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_header(out, Header::Bytes(Some(bytes.len())));
    out.extend_from_slice(bytes);
}

/// Validates that `bytes` hold exactly one canonical CBOR data item.
pub(crate) fn validate_item(bytes: &[u8]) -> Result<()> {
    let mut reader = Reader::new(bytes, 0);
    reader.item(0)?;
    if reader.remaining() != 0 {
        return Err(CodecError::TrailingBytes {
            offset: reader.pos(),
            count: reader.remaining(),
        });
    }
    Ok(())
}
