//! Decoding hostile input never allocates more than the input could justify.
//!
//! A counting global allocator records the largest single allocation made
//! while decoding small crafted inputs that declare enormous lengths.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use larder_codec::{Payload, decode_chunk};

struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

#[test]
fn ten_byte_inputs_never_allocate_much() {
    let inputs: Vec<Vec<u8>> = vec![
        // Event array of 2^64-1 items.
        b"LRDR\x00\x01\x01\x00\x9b\xff".to_vec(),
        b"LRDR\x00\x01\x01\x00\x9a\xff\xff\xff\xff".to_vec(),
        // One event whose id declares 2^32-1 bytes.
        b"LRDR\x00\x01\x01\x00\x81\x86\x5a\xff\xff\xff\xff".to_vec(),
    ];
    let payloads: Vec<Vec<u8>> = vec![
        vec![0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00],
        vec![0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00],
        vec![0x7a, 0xff, 0xff, 0xff, 0xff, 0x00],
    ];
    LARGEST.store(0, Ordering::Relaxed);
    for input in &inputs {
        assert!(decode_chunk(input).is_err());
    }
    for payload in payloads {
        assert!(Payload::from_canonical_bytes(payload).is_err());
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= 1024,
        "a hostile 10-byte input caused a {largest}-byte allocation"
    );
}
