//! Encode and decode throughput of chunks of 1, 100 and 10,000 events with
//! ~100-byte payloads, in bytes of chunk per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use larder_codec::{ActorId, Envelope, Payload, Timestamp, decode_chunk, encode_chunk_into};

fn events(n: usize) -> Vec<Envelope> {
    let actor = ActorId::new("bench-actor-01").unwrap();
    (0..n)
        .map(|i| {
            // ~100 bytes of payload: a short map with a text body.
            let body = format!("{i:08}-{}", "x".repeat(70));
            let payload = Payload::from_serde(&serde_payload::Item {
                key: format!("k{i}"),
                body,
                n: i as u64,
            })
            .unwrap();
            Envelope::new(
                actor.clone(),
                Timestamp::new(1_700_000_000_000 + i as u64, 0),
                "kv.set",
                payload,
            )
            .unwrap()
        })
        .collect()
}

mod serde_payload {
    #[derive(serde::Serialize)]
    pub struct Item {
        pub key: String,
        pub body: String,
        pub n: u64,
    }
}

fn bench(c: &mut Criterion) {
    for n in [1usize, 100, 10_000] {
        let evs = events(n);
        let mut buf = Vec::new();
        encode_chunk_into(&evs, &mut buf).unwrap();
        let bytes = buf.len() as u64;

        let mut group = c.benchmark_group("codec");
        group.throughput(Throughput::Bytes(bytes));
        group.bench_with_input(BenchmarkId::new("encode", n), &evs, |b, evs| {
            let mut out = Vec::with_capacity(bytes as usize);
            b.iter(|| {
                encode_chunk_into(evs, &mut out).unwrap();
                larder_codec::chunk_id(&out)
            })
        });
        // decode_chunk: header, canonical form and every event id checked.
        group.bench_with_input(BenchmarkId::new("decode", n), &buf, |b, chunk| {
            b.iter(|| decode_chunk(chunk).unwrap())
        });
        // ... plus the chunk id, as the WAL reads a chunk stored by its hash.
        let id = larder_codec::chunk_id(&buf);
        group.bench_with_input(BenchmarkId::new("decode_verified", n), &buf, |b, chunk| {
            b.iter(|| larder_codec::decode_chunk_verified(chunk, &id).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
