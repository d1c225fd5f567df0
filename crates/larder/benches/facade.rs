//! Facade appends (`Log::append`: actor, HLC, clock cache, WAL append) on a
//! log that already holds 1k and 100k events: with the clock cache, the
//! per-event cost must not grow with the log.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use larder::Larder;
use larder::codec::Payload;

fn tmp() -> tempfile::TempDir {
    larder_testkit::fixtures::bench_tempdir(env!("CARGO_TARGET_TMPDIR"), "facade-bench")
}

/// A repository whose log `bench` holds `events` events (1,000 a batch).
fn log_with(events: u64) -> (tempfile::TempDir, larder::Log) {
    let dir = tmp();
    // Its own repository: the directory is under target/, inside the
    // project's work tree, where Larder::init would use the project's.
    larder::git::GitRepo::init(dir.path()).unwrap();
    let larder = Larder::open(dir.path()).unwrap();
    let log = larder.log("bench").unwrap();
    let payload = Payload::from_serde(&("x", 0u64)).unwrap();
    let batch: Vec<(&str, Payload)> = (0..1_000).map(|_| ("fill", payload.clone())).collect();
    for _ in 0..events / 1_000 {
        log.append_batch(&batch).unwrap();
    }
    log.wal().finish_maintenance();
    (dir, log)
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("facade_append");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    for (name, events) in [
        ("single_event_log_1k", 1_000),
        ("single_event_log_100k", 100_000),
    ] {
        let (_dir, log) = log_with(events);
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                log.append("event", &n).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
