//! Ordering and projection throughput: a k-way merge and a full sort of 1M
//! events from 16 actors, and an LWW-map projection of 1M operations over
//! 100k keys.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_crdt::{KvProjection, Projector, merge_sorted, sort_events};

const EVENTS: u64 = 1_000_000;
const ACTORS: u64 = 16;

/// 16 streams, each sorted, with interleaving timestamps.
fn streams() -> Vec<Vec<Envelope>> {
    let actors: Vec<ActorId> = (0..ACTORS)
        .map(|a| ActorId::new(format!("actor-{a:02}")).unwrap())
        .collect();
    let payload = Payload::from_serde(&"v").unwrap();
    (0..ACTORS)
        .map(|a| {
            (0..EVENTS / ACTORS)
                .map(|i| {
                    let ts = Timestamp::new(1_700_000_000_000 + i * 3 + a % 3, (a % 2) as u32);
                    Envelope::new(actors[a as usize].clone(), ts, "e", payload.clone()).unwrap()
                })
                .collect()
        })
        .collect()
}

fn ordering(c: &mut Criterion) {
    let input = streams();
    let mut group = c.benchmark_group("crdt_order");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("merge_sorted_16_streams_1M", |b| {
        b.iter_batched(
            || input.clone(),
            |streams| merge_sorted(streams.into_iter().map(Vec::into_iter)).count(),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("sort_events_1M_from_16_actors", |b| {
        b.iter_batched(
            || input.iter().flatten().cloned().collect::<Vec<_>>(),
            |mut all| {
                sort_events(&mut all);
                all.len()
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn projection(c: &mut Criterion) {
    let actor = ActorId::new("writer").unwrap();
    let events: Vec<Envelope> = (0..EVENTS)
        .map(|i| {
            let key = format!("key-{:06}", (i * 7919) % 100_000);
            Envelope::new(
                actor.clone(),
                Timestamp::new(1_700_000_000_000 + i, 0),
                "kv.set",
                KvProjection::set_payload(&key, &i).unwrap(),
            )
            .unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("crdt_projection");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("kv_apply_1M_ops_100k_keys", |b| {
        b.iter(|| {
            let mut p = Projector::<KvProjection>::default();
            p.apply_all(&events).unwrap();
            p.applied()
        })
    });
    group.finish();
}

criterion_group!(benches, ordering, projection);
criterion_main!(benches);
