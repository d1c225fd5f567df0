//! larder-kv: warm point reads, a 10k-key prefix scan, eventual single
//! writes and 1,000-key batches, opening an up-to-date store, and a
//! rebuild from snapshot + 10k-event tail (100k keys by default; set
//! `KV_BENCH_REBUILD_KEYS=1000000` for the 1M-key row, whose setup takes
//! about a minute); linearizable sets against a local bare authority, one
//! writer and eight writer threads of one process (group commit).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use larder_codec::ActorId;
use larder_crdt::{Clock, Hlc, SystemClock};
use larder_git::GitRepo;
use larder_kv::{Batch, Consistency, Kv, KvOptions};
use larder_wal::WalManager;

fn tmp() -> tempfile::TempDir {
    larder_testkit::fixtures::bench_tempdir(env!("CARGO_TARGET_TMPDIR"), "kv-bench")
}

fn open(dir: &Path) -> Kv {
    let wal = WalManager::new(GitRepo::open(dir).unwrap(), "kv").unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Kv::open(
        wal,
        ActorId::new("bench").unwrap(),
        Arc::new(Mutex::new(Hlc::new(clock))),
        KvOptions::default(),
    )
    .unwrap()
}

/// A repository whose store holds `keys` keys `key0000000…` (10k a batch).
fn store_with(keys: u64) -> (tempfile::TempDir, Kv) {
    let dir = tmp();
    GitRepo::init(dir.path()).unwrap();
    let kv = open(dir.path());
    fill(&kv, 0..keys);
    (dir, kv)
}

fn fill(kv: &Kv, keys: std::ops::Range<u64>) {
    let mut batch = Batch::new();
    for i in keys {
        batch
            .set(&format!("key{i:07}"), &format!("value of key {i}"))
            .unwrap();
        if batch.len() == 10_000 {
            kv.write(std::mem::take(&mut batch)).unwrap();
        }
    }
    if !batch.is_empty() {
        kv.write(batch).unwrap();
    }
}

fn reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    let (_dir, kv) = store_with(10_000);
    let mut i = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_warm_10k_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            kv.get::<String>(&format!("key{i:07}")).unwrap().unwrap()
        })
    });
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("scan_10k_keys", |b| {
        b.iter(|| {
            let all = kv.scan::<String>("key").unwrap();
            assert_eq!(all.len(), 10_000);
            all
        })
    });
    group.throughput(Throughput::Elements(1));
    let dir = _dir.path().to_owned();
    drop(kv);
    group.bench_function("open_up_to_date_10k_keys", |b| {
        b.iter_with_large_drop(|| open(&dir))
    });
    group.finish();
}

fn writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let (_dir, kv) = store_with(10_000);
    let mut n = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("set_single_eventual", |b| {
        b.iter(|| {
            n += 1;
            kv.set(&format!("key{:07}", n % 10_000), &n).unwrap()
        })
    });
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("set_batch_1000_eventual", |b| {
        b.iter_batched(
            || {
                let mut batch = Batch::new();
                for _ in 0..1_000 {
                    n += 1;
                    batch.set(&format!("key{:07}", n % 50_000), &n).unwrap();
                }
                batch
            },
            |batch| kv.write(batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn rebuild(c: &mut Criterion) {
    let keys: u64 = std::env::var("KV_BENCH_REBUILD_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut group = c.benchmark_group("kv");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let (_dir, kv) = store_with(keys);
    kv.snapshot().unwrap();
    fill(&kv, keys..keys + 10_000);
    let name = format!("rebuild_{}k_keys_from_snapshot_plus_10k_tail", keys / 1_000);
    group.bench_function(name.as_str(), |b| {
        b.iter(|| {
            let report = kv.rebuild().unwrap();
            assert_eq!(report.tail_events, 10_000);
            report
        })
    });
    group.finish();
}

/// A linearizable store in a fresh clone against the bare `authority`.
fn open_linear(dir: &Path, authority: &Path) -> Kv {
    GitRepo::init(dir).unwrap();
    let wal = WalManager::new(GitRepo::open(dir).unwrap(), "kv").unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Kv::open(
        wal,
        ActorId::new("bench").unwrap(),
        Arc::new(Mutex::new(Hlc::new(clock))),
        KvOptions {
            consistency: Consistency::Linearizable {
                authority: authority.display().to_string(),
            },
            ..KvOptions::default()
        },
    )
    .unwrap()
}

fn linearizable(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    let authority = tmp();
    GitRepo::init_bare(authority.path()).unwrap();
    let dir = tmp();
    let kv = open_linear(dir.path(), authority.path());
    let mut n = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("set_single_linearizable", |b| {
        b.iter(|| {
            n += 1;
            kv.set(&format!("key{:07}", n % 10_000), &n).unwrap()
        })
    });
    const WRITERS: u64 = 8;
    const PER_WRITER: u64 = 25;
    group.throughput(Throughput::Elements(WRITERS * PER_WRITER));
    group.bench_function("set_8_writers_linearizable", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for t in 0..WRITERS {
                    let kv = kv.clone();
                    s.spawn(move || {
                        for i in 0..PER_WRITER {
                            kv.set(&format!("w{t}/{i}"), &i).unwrap();
                        }
                    });
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, reads, writes, rebuild, linearizable);
criterion_main!(benches);
