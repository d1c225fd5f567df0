//! Hostile inputs: every one must produce a typed error, never a panic.

use larder_codec::{
    ActorId, ChunkDecoder, CodecError, Envelope, MAX_DEPTH, Payload, Timestamp, Value, chunk_id,
    decode_chunk, decode_chunk_verified, encode_chunk,
};

fn event(n: u64) -> Envelope {
    Envelope::new(
        ActorId::new("actor-1").unwrap(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "test",
        Payload::from_serde(&("payload", n)).unwrap(),
    )
    .unwrap()
}

fn chunk(n: u64) -> Vec<u8> {
    encode_chunk(&(0..n).map(event).collect::<Vec<_>>()).unwrap()
}

/// The chunk header plus `body`.
fn with_body(body: &[u8]) -> Vec<u8> {
    let mut out = b"LRDR\x00\x01\x01\x00".to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn every_truncation_is_an_error() {
    let full = chunk(3);
    for len in 0..full.len() {
        let err = decode_chunk(&full[..len]).expect_err("a truncated chunk must not decode");
        assert!(
            matches!(
                err,
                CodecError::Truncated { .. }
                    | CodecError::LengthExceedsInput { .. }
                    | CodecError::BadMagic { .. }
            ),
            "prefix of {len} bytes gave {err:?}"
        );
    }
}

#[test]
fn wrong_magic_version_codec_and_reserved_byte() {
    let good = chunk(1);
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(decode_chunk(&bad), Err(CodecError::BadMagic { found }) if &found == b"XRDR"));
    let mut bad = good.clone();
    bad[5] = 2;
    assert_eq!(
        decode_chunk(&bad),
        Err(CodecError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    );
    let mut bad = good.clone();
    bad[6] = 9;
    assert_eq!(
        decode_chunk(&bad),
        Err(CodecError::UnknownCodec { found: 9 })
    );
    let mut bad = good;
    bad[7] = 1;
    assert_eq!(
        decode_chunk(&bad),
        Err(CodecError::ReservedHeaderByte { found: 1 })
    );
    assert!(matches!(
        decode_chunk(b"JUNK"),
        Err(CodecError::BadMagic { .. })
    ));
}

#[test]
fn trailing_bytes_are_reported_with_their_offset() {
    let mut bytes = chunk(2);
    let end = bytes.len();
    bytes.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        decode_chunk(&bytes),
        Err(CodecError::TrailingBytes {
            offset: end,
            count: 3
        })
    );
}

#[test]
fn huge_declared_lengths_are_bounded_by_the_input() {
    // An event array declaring 2^32 events in a 13-byte input.
    let bytes = with_body(&[0x9a, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(
        decode_chunk(&bytes),
        Err(CodecError::LengthExceedsInput {
            offset: 8,
            declared: 4_294_967_295,
            ..
        })
    ));
    // 2^64-1 events.
    let bytes = with_body(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(
        decode_chunk(&bytes),
        Err(CodecError::LengthExceedsInput { .. })
    ));
    // A byte string (the event id) declaring 2^63 bytes.
    let bytes = with_body(&[0x81, 0x86, 0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        decode_chunk(&bytes),
        Err(CodecError::LengthExceedsInput { .. })
    ));
}

#[test]
fn deep_nesting_is_refused() {
    let mut good = chunk(1);
    // Replace the payload of a one-event chunk by 10,000 nested arrays.
    let e = event(0);
    let payload = e.payload().as_bytes().to_vec();
    let pos = good
        .windows(payload.len())
        .position(|w| w == payload)
        .unwrap();
    let mut deep = vec![0x81; 10_000];
    deep.push(0x00);
    good.splice(pos..pos + payload.len(), deep);
    match decode_chunk(&good) {
        Err(CodecError::TooDeep { limit, .. }) => assert_eq!(limit, MAX_DEPTH),
        other => panic!("expected TooDeep, got {other:?}"),
    }
    // The same through the payload validator.
    let mut deep = [0xa1, 0x00].repeat(5_000);
    deep.push(0x00);
    assert!(matches!(
        Payload::from_canonical_bytes(deep),
        Err(CodecError::TooDeep { .. })
    ));
}

#[test]
fn non_canonical_encodings_are_rejected() {
    // 7 encoded in two bytes instead of one.
    assert!(matches!(
        Payload::from_canonical_bytes(vec![0x18, 0x07]),
        Err(CodecError::NonCanonical { offset: 0, .. })
    ));
    // Indefinite-length array.
    assert!(matches!(
        Payload::from_canonical_bytes(vec![0x9f, 0x01, 0xff]),
        Err(CodecError::NonCanonical { .. })
    ));
    // Map keys out of order: {"b": 1, "a": 2}.
    assert!(matches!(
        Payload::from_canonical_bytes(vec![0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02]),
        Err(CodecError::NonCanonical { offset: 4, .. })
    ));
    // Duplicate keys: {"a": 1, "a": 2}.
    assert!(matches!(
        Payload::from_canonical_bytes(vec![0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02]),
        Err(CodecError::NonCanonical { .. })
    ));
    // A float that fits in 16 bits written in 64.
    assert!(matches!(
        Payload::from_canonical_bytes(vec![0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]),
        Err(CodecError::NonCanonical { .. })
    ));
    // A lone break.
    assert!(matches!(
        Payload::from_canonical_bytes(vec![0xff]),
        Err(CodecError::Malformed { .. })
    ));
    // Invalid UTF-8 in text.
    assert!(matches!(
        Payload::from_canonical_bytes(vec![0x62, 0xff, 0xfe]),
        Err(CodecError::InvalidUtf8 { offset: 0 })
    ));
    // Duplicate keys built through the value API.
    assert!(matches!(
        Payload::from_value(Value::Map(vec![
            (Value::Integer(1.into()), Value::Null),
            (Value::Integer(1.into()), Value::Bool(true)),
        ])),
        Err(CodecError::PayloadEncode(_))
    ));
}

#[test]
fn a_changed_event_field_names_the_event_index() {
    let events: Vec<_> = (0..3).map(event).collect();
    let mut bytes = encode_chunk(&events).unwrap();
    // Change the kind of the third event: "test" -> "tesT".
    let last = bytes.iter().rposition(|&b| b == b't').unwrap();
    bytes[last] = b'T';
    match decode_chunk(&bytes) {
        Err(CodecError::EventIdMismatch {
            index,
            stored,
            computed,
            ..
        }) => {
            assert_eq!(index, 2);
            assert_eq!(stored, events[2].id());
            assert_ne!(computed, stored);
        }
        other => panic!("expected EventIdMismatch, got {other:?}"),
    }
}

#[test]
fn invalid_actor_or_kind_in_a_chunk_is_typed() {
    // Rewrite the actor "actor-1" into "actor/1" (same length).
    let mut bytes = chunk(1);
    let pos = bytes.windows(7).position(|w| w == b"actor-1").unwrap();
    bytes[pos + 5] = b'/';
    assert!(matches!(
        decode_chunk(&bytes),
        Err(CodecError::InvalidActor { .. })
    ));
    assert!(ActorId::new("").is_err());
    assert!(ActorId::new("a..b").is_err());
    assert!(ActorId::new("x.lock").is_err());
    assert!(ActorId::new("-x").is_err());
    assert!(ActorId::new("a".repeat(65)).is_err());
    assert!(ActorId::new("replica-7.eu_west").is_ok());
    let empty_kind = Envelope::new(
        ActorId::new("a").unwrap(),
        Timestamp::default(),
        "",
        Payload::from_serde(&1).unwrap(),
    );
    assert!(matches!(empty_kind, Err(CodecError::InvalidKind { .. })));
}

#[test]
fn wrong_chunk_id_is_detected() {
    let bytes = chunk(2);
    let id = chunk_id(&bytes);
    assert!(decode_chunk_verified(&bytes, &id).is_ok());
    let other = chunk_id(b"something else");
    assert!(matches!(
        decode_chunk_verified(&bytes, &other),
        Err(CodecError::ChunkIdMismatch { .. })
    ));
}

#[test]
fn empty_chunks_are_rejected_both_ways() {
    assert_eq!(encode_chunk(&[]), Err(CodecError::EmptyChunk));
    assert_eq!(
        decode_chunk(&with_body(&[0x80])),
        Err(CodecError::EmptyChunk)
    );
}

#[test]
fn streaming_decoder_stops_after_the_first_error() {
    let mut bytes = chunk(3);
    bytes.push(0x00);
    let results: Vec<_> = ChunkDecoder::new(&bytes).unwrap().collect();
    assert_eq!(results.len(), 4);
    assert!(results[..3].iter().all(Result::is_ok));
    assert!(matches!(
        results[3],
        Err(CodecError::TrailingBytes { count: 1, .. })
    ));
}

#[test]
fn hex_ids_parse_strictly() {
    let id = event(1).id();
    assert_eq!(id.to_hex().parse::<larder_codec::EventId>().unwrap(), id);
    assert!("ABC".parse::<larder_codec::EventId>().is_err());
    assert!(
        id.to_hex()
            .to_uppercase()
            .parse::<larder_codec::EventId>()
            .is_err()
    );
}
