//! WAL throughput: appends (single and batched, with a plain-gix baseline
//! and with fsync), reads of chunked and of single-event logs, read_since on
//! a long log, and the disk footprint before and after compaction.
//!
//! Repositories live under cargo's target tmp dir, not /tmp.

use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_git::GitRepo;
use larder_wal::{Durability, WalManager, WalOptions};

fn tmp() -> tempfile::TempDir {
    larder_testkit::fixtures::bench_tempdir(env!("CARGO_TARGET_TMPDIR"), "wal-bench")
}

/// An event with a ~100-byte payload.
fn event(actor: &ActorId, n: u64) -> Envelope {
    let body = format!("{n:08}-{}", "x".repeat(88));
    Envelope::new(
        actor.clone(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "bench",
        Payload::from_serde(&body).unwrap(),
    )
    .unwrap()
}

fn wal(dir: &Path, durability: Durability) -> WalManager {
    wal_with(dir, durability, WalOptions::default())
}

/// Consolidation off: what the background merges cost the appender.
fn wal_unconsolidated(dir: &Path) -> WalManager {
    let options = WalOptions {
        consolidation: None,
        ..WalOptions::default()
    };
    wal_with(dir, Durability::Buffered, options)
}

fn wal_with(dir: &Path, durability: Durability, options: WalOptions) -> WalManager {
    let options = WalOptions {
        durability,
        ..options
    };
    WalManager::with_options(GitRepo::init_bare(dir).unwrap(), "bench", options).unwrap()
}

fn disk(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (b, f) = disk(&entry.path());
            bytes += b;
            files += f;
        } else {
            bytes += meta.blocks() * 512;
            files += 1;
        }
    }
    (bytes, files)
}

/// The same 3 objects (WAL format 2: chunk blob, a tree of one entry
/// `<chunk-id>.bin`, the commit) and CAS ref update as a WAL append, with
/// plain gix, each object written loose.
fn gix_baseline_append(repo: &gix::Repository, n: u64, head: &mut Option<gix::ObjectId>) {
    use gix::objs::tree::{Entry, EntryKind};
    use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit};
    let blob = repo
        .write_blob(format!("chunk {n} {}", "x".repeat(100)))
        .unwrap()
        .detach();
    let root = gix::objs::Tree {
        entries: vec![Entry {
            mode: EntryKind::Blob.into(),
            filename: format!("{n:064}.bin").into(),
            oid: blob,
        }],
    };
    let root = repo.write_object(&root).unwrap().detach();
    let sig = gix::actor::Signature {
        name: "b".into(),
        email: "b@b".into(),
        time: gix::date::Time {
            seconds: 1,
            offset: 0,
        },
    };
    let commit = gix::objs::Commit {
        tree: root,
        parents: head.iter().copied().collect(),
        author: sig.clone(),
        committer: sig,
        encoding: None,
        message: format!(
            "larder: append 1 event by bench\n\nLarder-Format: 2\nLarder-Actor: bench\nLarder-Events: 1\nLarder-Generation: {n}\n"
        )
        .into(),
        extra_headers: vec![],
    };
    let commit = repo.write_object(&commit).unwrap().detach();
    let expected = match head {
        Some(h) => PreviousValue::MustExistAndMatch(gix::refs::Target::Object(*h)),
        None => PreviousValue::MustNotExist,
    };
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange::default(),
            expected,
            new: gix::refs::Target::Object(commit),
        },
        name: "refs/bench/wal".try_into().unwrap(),
        deref: false,
    })
    .unwrap();
    *head = Some(commit);
}

fn appends(c: &mut Criterion) {
    let actor = ActorId::new("bench").unwrap();
    let mut group = c.benchmark_group("wal_append");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));

    let dir = tmp();
    let w = wal(dir.path(), Durability::Buffered);
    let mut n = 0;
    group.bench_function("single_event", |b| {
        b.iter(|| {
            n += 1;
            w.append(&[event(&actor, n)]).unwrap()
        })
    });

    let dir = tmp();
    let w = wal_unconsolidated(dir.path());
    let mut n = 0;
    group.bench_function("single_event_unconsolidated", |b| {
        b.iter(|| {
            n += 1;
            w.append(&[event(&actor, n)]).unwrap()
        })
    });

    // Group commit: 8 threads appending single events through clones of
    // one handle; each iteration is 8 × 25 appends (thread start included,
    // ~1% of it).
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 25;
    let dir = tmp();
    let w = wal(dir.path(), Durability::Buffered);
    let mut n = 0u64;
    group.throughput(Throughput::Elements(THREADS * PER_THREAD));
    group.bench_function("eight_threads_single_event", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                std::thread::scope(|s| {
                    for t in 0..THREADS {
                        let w = w.clone();
                        let actor = ActorId::new(format!("bench-{t}")).unwrap();
                        let base = n;
                        s.spawn(move || {
                            for i in 0..PER_THREAD {
                                w.append(&[event(&actor, base + i)]).unwrap();
                            }
                        });
                    }
                });
                n += PER_THREAD;
            }
            start.elapsed()
        })
    });
    group.throughput(Throughput::Elements(1));

    let dir = tmp();
    let repo = gix::init_bare(dir.path()).unwrap();
    let mut head = None;
    let mut n = 0;
    group.bench_function("gix_baseline_single", |b| {
        b.iter(|| {
            n += 1;
            gix_baseline_append(&repo, n, &mut head)
        })
    });

    let dir = tmp();
    let w = wal(dir.path(), Durability::Fsync);
    let mut n = 0;
    group.bench_function("single_event_fsync", |b| {
        b.iter(|| {
            n += 1;
            w.append(&[event(&actor, n)]).unwrap()
        })
    });

    let dir = tmp();
    let w = wal(dir.path(), Durability::Buffered);
    let batch: Vec<Envelope> = (0..1000).map(|i| event(&actor, i)).collect();
    group.throughput(Throughput::Elements(1000));
    group.bench_function("batch_1000_events", |b| {
        b.iter(|| w.append(&batch).unwrap())
    });
    let dir = tmp();
    let w = wal_unconsolidated(dir.path());
    group.bench_function("batch_1000_events_unconsolidated", |b| {
        b.iter(|| w.append(&batch).unwrap())
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    let actor = ActorId::new("bench").unwrap();
    let mut group = c.benchmark_group("wal_read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));

    // 100k events in 1,000-event chunks.
    let chunked_dir = tmp();
    let chunked = wal(chunked_dir.path(), Durability::Buffered);
    for c in 0..100u64 {
        let batch: Vec<Envelope> = (0..1000).map(|i| event(&actor, c * 1000 + i)).collect();
        chunked.append(&batch).unwrap();
    }
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("read_all_100k_in_1000_event_chunks", |b| {
        b.iter(|| assert_eq!(chunked.read_all().unwrap().len(), 100_000))
    });

    // 10k single-event commits, measured as appended (one pack per append,
    // merged by size tier) and after compaction.
    let single_dir = tmp();
    let single = wal(single_dir.path(), Durability::Buffered);
    let mut commits = Vec::with_capacity(10_000);
    for n in 0..10_000u64 {
        commits.push(single.append(&[event(&actor, n)]).unwrap());
    }
    let objects = single_dir.path().join("objects");
    let (appended_bytes, appended_files) = disk(&objects);
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("read_all_10k_single_event_commits_as_appended", |b| {
        b.iter(|| assert_eq!(single.read_all().unwrap().len(), 10_000))
    });
    group.throughput(Throughput::Elements(10));
    group.bench_function("read_since_last_10_of_10k_uncompacted", |b| {
        b.iter(|| assert_eq!(single.read_since(commits[9_989]).unwrap().len(), 10))
    });
    single.compact().unwrap();
    let (packed_bytes, packed_files) = disk(&objects);
    eprintln!(
        "footprint of 10k single-event appends: as appended {:.1} MB in {appended_files} files -> compacted {:.1} MB in {packed_files} files",
        appended_bytes as f64 / 1e6,
        packed_bytes as f64 / 1e6
    );
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("read_all_10k_single_event_commits_compacted", |b| {
        b.iter(|| assert_eq!(single.read_all().unwrap().len(), 10_000))
    });
    group.throughput(Throughput::Elements(10));
    group.bench_function("read_since_last_10_of_10k_compacted", |b| {
        b.iter(|| assert_eq!(single.read_since(commits[9_989]).unwrap().len(), 10))
    });
    // The same query on a 1k-commit log: read_since must not depend on length.
    let short_dir = tmp();
    let short = wal(short_dir.path(), Durability::Buffered);
    let mut short_commits = Vec::new();
    for n in 0..1_000u64 {
        short_commits.push(short.append(&[event(&actor, n)]).unwrap());
    }
    short.compact().unwrap();
    group.bench_function("read_since_last_10_of_1k_compacted", |b| {
        b.iter(|| assert_eq!(short.read_since(short_commits[989]).unwrap().len(), 10))
    });
    group.finish();
}

fn compaction(c: &mut Criterion) {
    let actor = ActorId::new("bench").unwrap();
    let mut group = c.benchmark_group("wal_compact");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1000));
    group.bench_function("compact_1000_appends", |b| {
        b.iter_batched(
            || {
                let dir = tmp();
                let w = wal(dir.path(), Durability::Buffered);
                for n in 0..1000 {
                    w.append(&[event(&actor, n)]).unwrap();
                }
                (dir, w)
            },
            |(_dir, w)| w.compact().unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, appends, reads, compaction);
criterion_main!(benches);
