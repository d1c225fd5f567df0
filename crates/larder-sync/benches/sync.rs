//! Sync throughput over a bare remote on the local file system: pulling and
//! pushing 10k events in 100-event chunks, one sync round of 16 actors, how
//! a pull with nothing new grows with the heads on the remote (10, 100,
//! 1,000 actors), and pushing or pulling 100 new single-event commits into
//! a repository that holds 200 packs (every object a transfer asks about is
//! new, so this is where the cost of deciding presence shows).

use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_git::GitRepo;
use larder_sync::SyncManager;
use larder_wal::{WalManager, WalOptions};

fn tmp() -> tempfile::TempDir {
    larder_testkit::fixtures::bench_tempdir(env!("CARGO_TARGET_TMPDIR"), "sync-bench")
}

fn replica(dir: &Path, actor: &str, remote: &Path) -> SyncManager {
    let wal = WalManager::new(GitRepo::init(dir).unwrap(), "bench").unwrap();
    SyncManager::new(
        wal,
        ActorId::new(actor).unwrap(),
        &remote.display().to_string(),
    )
    .unwrap()
}

fn batch(actor: &str, start: u64, len: u64) -> Vec<Envelope> {
    let a = ActorId::new(actor).unwrap();
    (start..start + len)
        .map(|n| {
            let body = format!("{n:08}-{}", "x".repeat(88));
            Envelope::new(
                a.clone(),
                Timestamp::new(1_700_000_000_000 + n, 0),
                "bench",
                Payload::from_serde(&body).unwrap(),
            )
            .unwrap()
        })
        .collect()
}

fn transfer(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(10_000));

    // A remote holding 10k events in 100 commits of 100.
    let remote = tmp();
    GitRepo::init_bare(remote.path()).unwrap();
    let writer_dir = tmp();
    let writer = replica(writer_dir.path(), "writer", remote.path());
    for c in 0..100 {
        writer.wal().append(&batch("writer", c * 100, 100)).unwrap();
    }
    writer.push().unwrap();

    group.bench_function("pull_10k_events_in_100_event_chunks", |b| {
        b.iter_batched(
            || {
                let dir = tmp();
                let r = replica(dir.path(), "reader", remote.path());
                (dir, r)
            },
            |(_dir, r)| assert_eq!(r.pull().unwrap().events_received, 10_000),
            BatchSize::PerIteration,
        )
    });

    group.bench_function("push_10k_events_in_100_event_chunks", |b| {
        b.iter_batched(
            || {
                let fresh = tmp();
                GitRepo::init_bare(fresh.path()).unwrap();
                let s = SyncManager::new(
                    WalManager::new(GitRepo::open(writer_dir.path()).unwrap(), "bench").unwrap(),
                    ActorId::new("writer").unwrap(),
                    &fresh.path().display().to_string(),
                )
                .unwrap();
                (fresh, s)
            },
            |(_fresh, s)| assert!(s.push().unwrap().pushed),
            BatchSize::PerIteration,
        )
    });

    // 16 actors; each round, every actor appends 10 events, then all sync.
    let remote16 = tmp();
    GitRepo::init_bare(remote16.path()).unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..16).map(|_| tmp()).collect();
    let actors: Vec<SyncManager> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| replica(d.path(), &format!("actor-{i:02}"), remote16.path()))
        .collect();
    let mut round = 0u64;
    group.throughput(Throughput::Elements(16));
    group.bench_function("sync_round_16_actors", |b| {
        b.iter_batched(
            || {
                round += 1;
                for (i, a) in actors.iter().enumerate() {
                    a.wal()
                        .append(&batch(&format!("actor-{i:02}"), round * 1000, 10))
                        .unwrap();
                }
            },
            |()| {
                for a in &actors {
                    a.sync().unwrap();
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// A bare remote where `n` actors each published a head (one one-event
/// commit each), and a replica that has already pulled all of them.
fn many_heads(n: usize) -> (tempfile::TempDir, tempfile::TempDir, SyncManager) {
    let remote = tmp();
    let remote_repo = GitRepo::init_bare(remote.path()).unwrap();
    let scratch = tmp();
    let scratch_wal = WalManager::new(GitRepo::init(scratch.path()).unwrap(), "bench").unwrap();
    let mut heads = Vec::with_capacity(n);
    for i in 0..n {
        let actor = format!("actor-{i:04}");
        let commit = scratch_wal
            .write_append(&batch(&actor, i as u64, 1), None)
            .unwrap();
        heads.push((actor, commit));
    }
    let tips: Vec<_> = heads.iter().map(|(_, c)| *c).collect();
    remote_repo
        .copy_reachable_from(scratch_wal.repo(), &tips)
        .unwrap();
    for (actor, commit) in &heads {
        remote_repo
            .update_ref(
                &format!("refs/larder/bench/heads/{actor}"),
                larder_git::Expected::MustNotExist,
                *commit,
                "bench",
            )
            .unwrap();
    }
    let dir = tmp();
    let reader = replica(dir.path(), "reader", remote.path());
    assert_eq!(reader.pull().unwrap().events_received, n as u64);
    (remote, dir, reader)
}

/// How a pull that finds nothing new grows with the number of heads.
fn scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for n in [10usize, 100, 1_000] {
        let (_remote, _dir, reader) = many_heads(n);
        group.bench_function(format!("pull_nothing_new_{n}_heads"), |b| {
            b.iter(|| assert_eq!(reader.pull().unwrap().events_received, 0))
        });
    }
    group.finish();
}

/// A replica of `actor` on `remote` whose WAL never merges packs, so that
/// neither its own appends nor a transfer's upkeep change how many packs
/// the repositories hold.
fn unconsolidated(dir: &Path, actor: &str, remote: &Path) -> SyncManager {
    let options = WalOptions {
        consolidation: None,
        ..WalOptions::default()
    };
    let repo = GitRepo::init(dir).unwrap();
    SyncManager::new(
        WalManager::with_options(repo, "bench", options).unwrap(),
        ActorId::new(actor).unwrap(),
        &remote.display().to_string(),
    )
    .unwrap()
}

/// Copies the directory tree `from` to `to` (a repository template).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The number of pack files in the repository at `git_dir`.
fn packs(git_dir: &Path) -> usize {
    std::fs::read_dir(git_dir.join("objects/pack"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("pack".as_ref()))
        .count()
}

/// Pushing and pulling 100 new single-event commits into a repository that
/// holds 200 small packs (one per earlier transfer, none merged).
fn many_packs(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(100));

    // 200 single-event commits, each pushed on its own and pulled on its
    // own: the remote and the reader hold 200 packs each.
    let remote = tmp();
    GitRepo::init_bare(remote.path()).unwrap();
    let writer_dir = tmp();
    let writer = unconsolidated(writer_dir.path(), "writer", remote.path());
    let reader_dir = tmp();
    let reader = unconsolidated(reader_dir.path(), "reader", remote.path());
    for n in 0..200 {
        writer.wal().append(&batch("writer", n, 1)).unwrap();
        writer.push().unwrap();
        assert_eq!(reader.pull().unwrap().events_received, 1);
    }
    assert_eq!(packs(remote.path()), 200);
    assert_eq!(packs(&reader_dir.path().join(".git")), 200);
    // 100 more on the writer, not pushed yet.
    for n in 200..300 {
        writer.wal().append(&batch("writer", n, 1)).unwrap();
    }

    group.bench_function("push_100_single_event_commits_to_200_packs", |b| {
        b.iter_batched(
            || {
                let copy = tmp();
                copy_dir(remote.path(), copy.path());
                let s = unconsolidated(writer_dir.path(), "writer", copy.path());
                (copy, s)
            },
            |(_copy, s)| assert_eq!(s.push().unwrap().commits_sent, 100),
            BatchSize::PerIteration,
        )
    });

    // The remote with the 100 new commits; each iteration pulls them into
    // a copy of the reader.
    writer.push().unwrap();
    group.bench_function("pull_100_single_event_commits_into_200_packs", |b| {
        b.iter_batched(
            || {
                let copy = tmp();
                copy_dir(reader_dir.path(), copy.path());
                let r = unconsolidated(copy.path(), "reader", remote.path());
                (copy, r)
            },
            |(_copy, r)| assert_eq!(r.pull().unwrap().commits_received, 100),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, transfer, scale, many_packs);
criterion_main!(benches);
