//! Feeds arbitrary bytes to the chunk decoder: it must return, never panic,
//! and whatever it accepts must re-encode to the very same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = larder_codec::decode_chunk(data) {
        let again = larder_codec::encode_chunk(&events).expect("decoded events re-encode");
        assert_eq!(again, data, "accepted a chunk that is not canonical");
    }
    // The payload validator sees the raw bytes too.
    let _ = larder_codec::Payload::from_canonical_bytes(data.to_vec());
});
