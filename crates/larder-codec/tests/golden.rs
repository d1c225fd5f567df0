//! Golden vectors: the exact bytes of fixed events and chunks.
//!
//! Any change here is a format change: it must bump the format version and
//! update `docs/format.md` (checked by `cargo xtask format`).

use larder_codec::{
    ActorId, Envelope, Payload, Timestamp, Value, chunk_id, decode_chunk, encode_chunk,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn event_a() -> Envelope {
    let payload = Payload::from_value(Value::Map(vec![
        (
            Value::Text("title".into()),
            Value::Text("fix the build".into()),
        ),
        (Value::Text("n".into()), Value::Integer(7.into())),
    ]))
    .unwrap();
    Envelope::new(
        ActorId::new("alice").unwrap(),
        Timestamp::new(1_700_000_000_000, 0),
        "issue.created",
        payload,
    )
    .unwrap()
}

fn event_b() -> Envelope {
    Envelope::new(
        ActorId::new("bob").unwrap(),
        Timestamp::new(1_700_000_000_001, 3),
        "comment",
        Payload::from_serde("lgtm").unwrap(),
    )
    .unwrap()
    .with_signature(vec![0xde, 0xad, 0xbe, 0xef])
}

fn describe(name: &str, events: &[Envelope]) -> String {
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        out += &format!("{name} event {i} preimage: {}\n", hex(&e.preimage()));
        out += &format!("{name} event {i} id: {}\n", e.id());
    }
    let chunk = encode_chunk(events).unwrap();
    assert_eq!(
        decode_chunk(&chunk).unwrap(),
        events,
        "golden chunk must round-trip"
    );
    out += &format!("{name} chunk: {}\n", hex(&chunk));
    out += &format!("{name} chunk id: {}\n", chunk_id(&chunk));
    out
}

#[test]
fn golden_single_event_chunk() {
    insta::assert_snapshot!("single", describe("single", &[event_a()]));
}

#[test]
fn golden_two_event_chunk_with_signature() {
    insta::assert_snapshot!("pair", describe("pair", &[event_a(), event_b()]));
}

#[test]
fn map_keys_are_sorted_whatever_the_insertion_order() {
    let forward = Payload::from_value(Value::Map(vec![
        (Value::Text("a".into()), Value::Integer(1.into())),
        (Value::Text("bb".into()), Value::Integer(2.into())),
    ]))
    .unwrap();
    let backward = Payload::from_value(Value::Map(vec![
        (Value::Text("bb".into()), Value::Integer(2.into())),
        (Value::Text("a".into()), Value::Integer(1.into())),
    ]))
    .unwrap();
    assert_eq!(forward, backward);
    // {"a": 1, "bb": 2}: shorter key first, as RFC 8949 §4.2.1 orders bytes.
    assert_eq!(hex(forward.as_bytes()), "a261610162626202");
}
