//! Property tests: encode → decode is the identity, and a flipped byte is
//! always detected.

use larder_codec::{
    ActorId, CodecError, Envelope, Payload, Timestamp, Value, chunk_id, decode_chunk,
    decode_chunk_verified, encode_chunk,
};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| Value::Integer(n.into())),
        any::<u64>().prop_map(|n| Value::Integer(n.into())),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        "[a-z0-9 ]{0,24}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
        any::<f64>()
            .prop_filter("NaN has many encodings", |f| !f.is_nan())
            .prop_map(Value::Float),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..6).prop_map(|m| {
                Value::Map(m.into_iter().map(|(k, v)| (Value::Text(k), v)).collect())
            }),
        ]
    })
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        "[a-zA-Z0-9][a-zA-Z0-9_-]{0,20}",
        any::<u64>(),
        any::<u32>(),
        "[a-z.]{1,16}",
        value(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..70)),
    )
        .prop_map(|(actor, millis, counter, kind, payload, sig)| {
            let e = Envelope::new(
                ActorId::new(actor).unwrap(),
                Timestamp::new(millis, counter),
                kind,
                Payload::from_value(payload).unwrap(),
            )
            .unwrap();
            match sig {
                Some(s) => e.with_signature(s),
                None => e,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_is_identity(events in proptest::collection::vec(envelope(), 1..12)) {
        let bytes = encode_chunk(&events).unwrap();
        let decoded = decode_chunk(&bytes).unwrap();
        prop_assert_eq!(&decoded, &events);
        // Re-encoding gives the same bytes, hence the same chunk id.
        prop_assert_eq!(encode_chunk(&decoded).unwrap(), bytes);
    }

    #[test]
    fn payload_bytes_round_trip(v in value()) {
        let p = Payload::from_value(v).unwrap();
        let again = Payload::from_canonical_bytes(p.as_bytes().to_vec()).unwrap();
        prop_assert_eq!(Payload::from_value(again.to_value().unwrap()).unwrap(), p);
    }

    #[test]
    fn any_flipped_byte_is_detected(
        events in proptest::collection::vec(envelope(), 1..6),
        pos in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let bytes = encode_chunk(&events).unwrap();
        let id = chunk_id(&bytes);
        let at = pos.index(bytes.len());
        let mut bad = bytes.clone();
        bad[at] ^= mask;
        // With the chunk id every change is caught.
        prop_assert!(decode_chunk_verified(&bad, &id).is_err());
        // Without it, decoding alone catches every change except one that
        // turns a signature into another well-formed signature (signatures
        // are outside the event id by design).
        match decode_chunk(&bad) {
            Err(_) => {}
            Ok(decoded) => {
                prop_assert_eq!(decoded.len(), events.len());
                for (d, e) in decoded.iter().zip(&events) {
                    prop_assert_eq!(d.id(), e.id());
                    prop_assert_eq!(d.payload(), e.payload());
                }
                prop_assert!(decoded.iter().zip(&events).any(|(d, e)| d.signature() != e.signature()));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_chunk(&bytes);
        // And with a valid header in front.
        let mut framed = b"LRDR\x00\x01\x01\x00".to_vec();
        framed.append(&mut bytes);
        let r = decode_chunk(&framed);
        let bad_magic = matches!(r, Err(CodecError::BadMagic { .. }));
        prop_assert!(!bad_magic);
    }
}
