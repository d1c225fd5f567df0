//! Acquire + release round trips: local mode, and through a bare remote on
//! the local file system.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use larder_codec::ActorId;
use larder_git::GitRepo;
use larder_lock::{Authority, LockManager};

fn tmp() -> tempfile::TempDir {
    larder_testkit::fixtures::bench_tempdir(env!("CARGO_TARGET_TMPDIR"), "lock-bench")
}

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));

    let dir = tmp();
    let local = LockManager::new(
        Authority::Local(GitRepo::init(dir.path()).unwrap()),
        ActorId::new("bench").unwrap(),
    );
    group.bench_function("acquire_release_local", |b| {
        b.iter(|| {
            let lease = local.acquire("resource", 30_000).unwrap();
            local.release(&lease).unwrap();
        })
    });

    let remote = tmp();
    GitRepo::init_bare(remote.path()).unwrap();
    let clone = tmp();
    let repo = GitRepo::init(clone.path()).unwrap();
    let authority = Authority::remote(&repo, &remote.path().display().to_string()).unwrap();
    let shared = LockManager::new(authority, ActorId::new("bench").unwrap());
    group.bench_function("acquire_release_file_remote", |b| {
        b.iter(|| {
            let lease = shared.acquire("resource", 30_000).unwrap();
            shared.release(&lease).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
