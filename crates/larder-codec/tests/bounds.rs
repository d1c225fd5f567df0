//! One set of bounds for writer and reader: what the encoder accepts, the
//! validator and the chunk decoder accept, byte for byte; what they refuse,
//! the encoder refuses first, with a typed error naming the bound.

use larder_codec::{
    ActorId, CodecError, Envelope, Limits, MAX_CHUNK_LEN, MAX_DEPTH, MAX_EVENT_LEN, Payload,
    Timestamp, Value, decode_chunk, encode_chunk, encode_chunk_with,
};

fn nested(depth: usize) -> Value {
    let mut v = Value::Integer(7.into());
    for i in 0..depth {
        v = if i % 3 == 2 {
            Value::Map(vec![(Value::Text("k".into()), v)])
        } else {
            Value::Array(vec![v])
        };
    }
    v
}

fn envelope(payload: Payload) -> Envelope {
    Envelope::new(
        ActorId::new("actor-1").unwrap(),
        Timestamp::new(1_700_000_000_000, 0),
        "test",
        payload,
    )
    .unwrap()
}

#[test]
fn every_depth_the_encoder_accepts_decodes_and_no_other() {
    for depth in 0..=MAX_DEPTH + 8 {
        match Payload::from_value(nested(depth)) {
            Ok(payload) => {
                assert!(depth <= MAX_DEPTH, "depth {depth} accepted by the encoder");
                let bytes = payload.as_bytes().to_vec();
                Payload::from_canonical_bytes(bytes.clone())
                    .unwrap_or_else(|e| panic!("depth {depth}: validator refused: {e}"));
                let event = envelope(payload);
                let chunk = encode_chunk(std::slice::from_ref(&event)).unwrap();
                let back = decode_chunk(&chunk)
                    .unwrap_or_else(|e| panic!("depth {depth}: decoder refused: {e}"));
                assert_eq!(back[0].payload().as_bytes(), bytes.as_slice());
            }
            Err(CodecError::PayloadTooDeep { depth: d, limit }) => {
                assert!(depth > MAX_DEPTH, "depth {depth} refused by the encoder");
                assert_eq!((d, limit), (depth, MAX_DEPTH));
            }
            Err(other) => panic!("depth {depth}: unexpected {other:?}"),
        }
    }
}

#[test]
fn bytes_one_level_too_deep_are_refused_by_validator_and_decoder() {
    // MAX_DEPTH + 1 nested one-element arrays around 0.
    let mut deep = vec![0x81; MAX_DEPTH + 1];
    deep.push(0x00);
    assert!(matches!(
        Payload::from_canonical_bytes(deep.clone()),
        Err(CodecError::TooDeep {
            limit: MAX_DEPTH,
            ..
        })
    ));
    // Exactly MAX_DEPTH is fine for both.
    let ok = Payload::from_canonical_bytes(deep[1..].to_vec()).unwrap();
    let chunk = encode_chunk(&[envelope(ok)]).unwrap();
    decode_chunk(&chunk).unwrap();
    // Splice the too-deep payload into a chunk: the decoder refuses it too.
    let small = Payload::from_serde(&0u8).unwrap();
    let chunk = encode_chunk(&[envelope(small.clone())]).unwrap();
    let pos = chunk
        .windows(small.as_bytes().len())
        .rposition(|w| w == small.as_bytes())
        .unwrap();
    let mut spliced = chunk.clone();
    spliced.splice(pos..pos + small.as_bytes().len(), deep);
    assert!(matches!(
        decode_chunk(&spliced),
        Err(CodecError::TooDeep {
            limit: MAX_DEPTH,
            ..
        })
    ));
}

#[test]
fn serde_values_are_bounded_like_cbor_values() {
    let mut json = serde_json::json!(1);
    for _ in 0..MAX_DEPTH + 1 {
        json = serde_json::json!([json]);
    }
    assert!(matches!(
        Payload::from_serde(&json),
        Err(CodecError::PayloadTooDeep { depth, limit: MAX_DEPTH }) if depth == MAX_DEPTH + 1
    ));
}

#[test]
fn writer_limits_are_typed_errors_naming_the_event() {
    let limits = Limits::new(200, 1_000).unwrap();
    let small = envelope(Payload::from_serde(&"x").unwrap());
    let big = envelope(Payload::from_serde(&"y".repeat(300)).unwrap());
    match encode_chunk_with(&[small.clone(), big], &limits) {
        Err(CodecError::EventTooLarge { index, size, limit }) => {
            assert_eq!(index, 1);
            assert!(size > 300);
            assert_eq!(limit, 200);
        }
        other => panic!("expected EventTooLarge, got {other:?}"),
    }
    let many = vec![small; 20];
    assert!(matches!(
        encode_chunk_with(&many, &limits),
        Err(CodecError::ChunkTooLarge { limit: 1_000, .. })
    ));
    assert!(encode_chunk_with(&many[..5], &limits).is_ok());
}

#[test]
fn writer_limits_cannot_exceed_what_readers_accept() {
    assert!(matches!(
        Limits::new(MAX_EVENT_LEN + 1, MAX_CHUNK_LEN),
        Err(CodecError::LimitAboveCeiling { what: "event", .. })
    ));
    assert!(matches!(
        Limits::new(MAX_EVENT_LEN, MAX_CHUNK_LEN + 1),
        Err(CodecError::LimitAboveCeiling { what: "chunk", .. })
    ));
    assert_eq!(
        Limits::new(MAX_EVENT_LEN, MAX_CHUNK_LEN).unwrap(),
        Limits::ceilings()
    );
}

#[test]
fn readers_refuse_events_over_the_format_ceiling() {
    // A payload just over the ceiling, written with the ceiling bypassed by
    // hand: the encoder refuses it, and a decoder given such bytes too.
    let payload = Payload::from_serde(&serde_bytes_like(MAX_EVENT_LEN)).unwrap();
    let event = envelope(payload);
    assert!(matches!(
        encode_chunk(std::slice::from_ref(&event)),
        Err(CodecError::EventTooLarge {
            index: 0,
            limit: MAX_EVENT_LEN,
            ..
        })
    ));
    // Build the chunk bytes by hand (header, array of 1, the envelope).
    let mut chunk = b"LRDR\x00\x01\x01\x00\x81".to_vec();
    event.encode_into(&mut chunk);
    assert!(matches!(
        decode_chunk(&chunk),
        Err(CodecError::EventTooLarge {
            index: 0,
            limit: MAX_EVENT_LEN,
            ..
        })
    ));
}

fn serde_bytes_like(len: usize) -> Value {
    Value::Bytes(vec![0xab; len])
}
