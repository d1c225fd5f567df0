//! Rebuilding a KV projection from a snapshot covering 100k events plus a
//! 1k-event tail, versus replaying the whole log; and creating a snapshot
//! of 100k events.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use larder_codec::{ActorId, Envelope, Timestamp};
use larder_crdt::{KvProjection, Projector, sort_events};
use larder_git::GitRepo;
use larder_snapshot::{SnapshotManager, View};
use larder_wal::WalManager;

fn batch(actor: &ActorId, start: u64, len: u64) -> Vec<Envelope> {
    (start..start + len)
        .map(|n| {
            Envelope::new(
                actor.clone(),
                Timestamp::new(1_700_000_000_000 + n, 0),
                "kv.set",
                KvProjection::set_payload(&format!("key-{:05}", n % 10_000), &n).unwrap(),
            )
            .unwrap()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let dir =
        larder_testkit::fixtures::bench_tempdir(env!("CARGO_TARGET_TMPDIR"), "snapshot-bench");
    let wal = WalManager::new(GitRepo::init_bare(dir.path()).unwrap(), "kv").unwrap();
    let actor = ActorId::new("writer").unwrap();
    for c in 0..100 {
        wal.append(&batch(&actor, c * 1000, 1000)).unwrap();
    }
    let snaps = SnapshotManager::new(wal.clone());

    let mut group = c.benchmark_group("snapshot");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("create_100k_events_with_kv_state", |b| {
        b.iter(|| snaps.create_with::<KvProjection>().unwrap())
    });
    snaps.gc(1).unwrap();
    for c in 0..10 {
        wal.append(&batch(&actor, 100_000 + c * 100, 100)).unwrap();
    }
    let mut view = View::<KvProjection>::open(SnapshotManager::new(wal.clone())).unwrap();
    group.bench_function("rebuild_from_snapshot_100k_plus_1k_tail", |b| {
        b.iter(|| {
            let r = view.rebuild().unwrap();
            assert!(r.used_state && r.tail_events == 1000);
        })
    });
    group.bench_function("full_replay_101k_events", |b| {
        b.iter(|| {
            let mut events = wal.read_all().unwrap();
            sort_events(&mut events);
            let mut p = Projector::<KvProjection>::default();
            p.apply_all(&events).unwrap();
            p.applied()
        })
    });
    group.finish();
}

criterion_group!(snapshot_benches, benches);
criterion_main!(snapshot_benches);
