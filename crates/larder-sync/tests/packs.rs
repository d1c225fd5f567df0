//! Packs and ref locks on remotes: no count of packs makes a log unreadable
//! or a remote unusable, transfers never leave loose objects, receiving
//! repositories are consolidated, and a ref lock a killed pusher left on the
//! remote is named instead of retried forever. `git` is the oracle.

mod common;

use std::path::Path;

use common::{Replica, bare_remote};
use larder_codec::{ActorId, Envelope, Timestamp};
use larder_crdt::KvProjection;
use larder_git::{GitRepo, ObjectBatch};
use larder_sync::{SyncError, SyncManager, Transport};
use larder_testkit::fixtures::count_objects;
use larder_testkit::git;
use larder_wal::{WalManager, WalOptions};

fn ts(ms: u64) -> Timestamp {
    Timestamp::new(1_700_000_000_000 + ms, 0)
}

fn event(actor: &ActorId, n: u64) -> Envelope {
    Envelope::new(
        actor.clone(),
        ts(n),
        "kv.set",
        KvProjection::set_payload(&format!("k{n}"), &n).unwrap(),
    )
    .unwrap()
}

#[test]
fn small_pushes_leave_no_loose_objects_and_few_packs_on_the_remote() {
    let remote = bare_remote();
    let replicas: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|n| Replica::new(n, remote.path()))
        .collect();
    for round in 0..10u64 {
        for (i, r) in replicas.iter().enumerate() {
            r.wal()
                .append(&[r.set("k", round, ts(round * 10 + i as u64))])
                .unwrap();
            let report = r.sync.sync().unwrap();
            assert!(report.pushed);
            assert!(
                report
                    .upkeep
                    .iter()
                    .all(|u| u.error.is_none() && u.damaged.is_empty())
            );
        }
    }
    for r in &replicas {
        r.sync.sync().unwrap();
    }
    let (loose, packs) = count_objects(remote.path());
    assert_eq!(loose, 0, "transfers arrive as packs");
    // 30 pushes, each one pack; consolidation keeps them to a few tiers.
    assert!(packs < 16, "{packs} packs on the remote");
    for r in &replicas {
        let (loose, packs) = count_objects(&r.dir.path().join(".git"));
        assert_eq!(loose, 0);
        assert!(packs < 32, "{packs} packs in a replica");
        assert_eq!(r.ordered(), replicas[0].ordered());
    }
    git(remote.path(), &["fsck", "--strict", "--no-dangling"]);
}

/// Hard-links every pack of `from` into `to` (as if they had arrived one
/// by one).
fn link_packs(from: &Path, to: &Path) {
    let target = to.join("objects/pack");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(from.join("objects/pack")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if !target.join(name).exists() {
            std::fs::hard_link(&path, target.join(name)).unwrap();
        }
    }
}

#[test]
fn five_thousand_packs_read_append_push_and_pull() {
    let remote = bare_remote();
    let a_dir = tempfile::tempdir().unwrap();
    let alice = ActorId::new("alice").unwrap();
    // 1,000 appends with consolidation off (one pack each), plus 4,000
    // packs of other objects: 5,000 packs.
    {
        let options = WalOptions {
            consolidation: None,
            ..WalOptions::default()
        };
        let wal =
            WalManager::with_options(GitRepo::init(a_dir.path()).unwrap(), "kv", options).unwrap();
        for n in 0..1_000 {
            wal.append(&[event(&alice, n)]).unwrap();
        }
        for n in 0..4_000 {
            let mut batch = ObjectBatch::new();
            batch.blob(format!("other {n}").into_bytes()).unwrap();
            wal.repo().write_batch(&batch, false).unwrap();
        }
        // The remote gets every pack too, and alice's head ref.
        link_packs(&a_dir.path().join(".git"), remote.path());
        let head = wal.head().unwrap().unwrap();
        GitRepo::open(remote.path())
            .unwrap()
            .update_ref(
                "refs/larder/kv/heads/alice",
                larder_git::Expected::MustNotExist,
                head,
                "t",
            )
            .unwrap();
    }
    assert_eq!(count_objects(&a_dir.path().join(".git")).1, 5_000);
    assert_eq!(count_objects(remote.path()).1, 5_000);

    // A fresh replica pulls from the remote's 5,000 packs.
    let b = Replica::new("bob", remote.path());
    let pulled = b.sync.pull().unwrap();
    assert_eq!(pulled.events_received, 1_000);
    assert!(pulled.rejected.is_empty());
    assert_eq!(b.wal().read_all().unwrap().len(), 1_000);

    // Alice's own repository: read, append, push to the remote (still
    // 5,000 packs), pull.
    let wal = WalManager::new(GitRepo::open(a_dir.path()).unwrap(), "kv").unwrap();
    let a = SyncManager::new(wal, alice.clone(), &remote.path().display().to_string()).unwrap();
    assert_eq!(a.wal().read_all().unwrap().len(), 1_000);
    a.wal().append(&[event(&alice, 1_000)]).unwrap();
    let pushed = a.sync().unwrap();
    assert!(pushed.pushed);
    // The push's upkeep merged the remote's pile.
    assert!(count_objects(remote.path()).1 < 16);
    b.wal().append(&[b.set("x", 1, ts(5_000))]).unwrap();
    b.sync.sync().unwrap();
    let pulled = a.pull().unwrap();
    assert_eq!(pulled.events_received, 1);
    assert_eq!(a.wal().read_all().unwrap().len(), 1_002);
    // The pull's upkeep merged alice's pile too.
    assert!(count_objects(&a_dir.path().join(".git")).1 < 16);
    git(remote.path(), &["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn a_ref_lock_left_on_a_file_remote_is_named_after_bounded_waiting() {
    let remote = bare_remote();
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        max_lock_waits: 2,
        ..WalOptions::default()
    };
    let wal = WalManager::with_options(GitRepo::init(dir.path()).unwrap(), "kv", options).unwrap();
    let actor = ActorId::new("alice").unwrap();
    let sync = SyncManager::new(wal, actor.clone(), &remote.path().display().to_string()).unwrap();
    sync.wal().append(&[event(&actor, 1)]).unwrap();
    sync.push().unwrap();
    // A pusher killed between creating the lock and renaming it.
    let lock = remote.path().join("refs/larder/kv/heads/alice.lock");
    std::fs::write(&lock, b"").unwrap();
    sync.wal().append(&[event(&actor, 2)]).unwrap();
    match sync.push() {
        Err(e @ SyncError::RemoteLocked { .. }) => {
            let text = e.to_string();
            let SyncError::RemoteLocked {
                lock_path,
                head_ref,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(Path::new(&lock_path), lock);
            assert_eq!(head_ref, "refs/larder/kv/heads/alice");
            assert!(text.contains("delete it"), "{text}");
        }
        other => panic!("expected RemoteLocked, got {other:?}"),
    }
    // Pulls are not blocked by it; once the file is gone, the push goes through.
    sync.pull().unwrap();
    std::fs::remove_file(&lock).unwrap();
    assert!(sync.push().unwrap().pushed);
    assert_eq!(
        GitRepo::open(remote.path())
            .unwrap()
            .ref_target("refs/larder/kv/heads/alice")
            .unwrap(),
        sync.wal().head().unwrap()
    );
}

#[test]
fn a_ref_lock_left_on_a_network_remote_is_named() {
    let remote = bare_remote();
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        max_lock_waits: 1,
        ..WalOptions::default()
    };
    let wal = WalManager::with_options(GitRepo::init(dir.path()).unwrap(), "kv", options).unwrap();
    let actor = ActorId::new("alice").unwrap();
    let url = format!("file://{}", remote.path().display());
    let sync = SyncManager::with_transport(wal, actor.clone(), "origin", Transport::Network(url));
    sync.wal().append(&[event(&actor, 1)]).unwrap();
    assert!(sync.push().unwrap().pushed);
    let lock = remote.path().join("refs/larder/kv/heads/alice.lock");
    std::fs::write(&lock, b"").unwrap();
    sync.wal().append(&[event(&actor, 2)]).unwrap();
    match sync.push() {
        Err(SyncError::RemoteLocked { lock_path, .. }) => {
            assert_eq!(Path::new(&lock_path), lock);
        }
        other => panic!("expected RemoteLocked, got {other:?}"),
    }
    std::fs::remove_file(&lock).unwrap();
    assert!(sync.push().unwrap().pushed);
}

#[test]
fn a_remote_with_a_multi_pack_index_and_a_kept_pack_keeps_working() {
    let remote = bare_remote();
    let a = Replica::new("a", remote.path());
    let b = Replica::new("b", remote.path());
    // Only ever pulls: no appends of its own to trigger consolidation.
    let reader = Replica::new("reader", remote.path());
    let round = |n: u64| {
        a.wal().append(&[a.set("a", n, ts(n * 10))]).unwrap();
        a.sync.sync().unwrap();
        b.wal().append(&[b.set("b", n, ts(n * 10 + 1))]).unwrap();
        b.sync.sync().unwrap();
        let pulled = reader.sync.pull().unwrap();
        assert!(pulled.rejected.is_empty());
        assert!(pulled.upkeep.iter().all(|u| u.error.is_none()));
    };
    for n in 0..5 {
        round(n);
    }
    git(remote.path(), &["multi-pack-index", "write"]);
    let idx = std::fs::read_dir(remote.path().join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    std::fs::write(idx.with_extension("keep"), b"").unwrap();
    let (_, covered) = count_objects(remote.path());
    for n in 5..40 {
        round(n);
    }
    let (loose, packs) = count_objects(remote.path());
    assert_eq!(loose, 0);
    assert!(
        packs < covered + 16,
        "{packs} packs on the remote ({covered} under the multi-pack index)"
    );
    let (loose, packs) = count_objects(&reader.dir.path().join(".git"));
    assert_eq!(loose, 0);
    assert!(packs < 16, "{packs} packs in the pull-only replica");
    a.sync.sync().unwrap();
    reader.sync.pull().unwrap();
    assert_eq!(reader.ordered().len(), 80);
    assert!(reader.ordered() == a.ordered());
    // Compaction on the remote leaves what git manages alone.
    GitRepo::open(remote.path())
        .unwrap()
        .compact(u64::MAX)
        .unwrap();
    assert!(idx.exists());
    git(remote.path(), &["multi-pack-index", "verify"]);
    git(remote.path(), &["fsck", "--strict", "--no-dangling"]);
}

/// A replica of `name` on `remote` whose WAL never merges packs (no
/// upkeep either), so every transfer into it stays its own pack.
fn unconsolidated(name: &str, remote: &Path) -> (tempfile::TempDir, SyncManager) {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        consolidation: None,
        ..WalOptions::default()
    };
    let wal = WalManager::with_options(GitRepo::init(dir.path()).unwrap(), "kv", options).unwrap();
    let actor = ActorId::new(name).unwrap();
    let sync = SyncManager::new(wal, actor, &remote.display().to_string()).unwrap();
    (dir, sync)
}

/// Objects in the packs of the repository at `dir` (a copy in two packs
/// counts twice) and distinct objects its refs reach: equal when no
/// transfer wrote an object the repository already had.
fn packed_and_reachable(dir: &Path) -> (usize, usize) {
    let counts = git(dir, &["count-objects", "-v"]);
    let in_pack = counts
        .lines()
        .find_map(|l| l.strip_prefix("in-pack: "))
        .unwrap()
        .parse()
        .unwrap();
    let reachable = git(dir, &["rev-list", "--objects", "--all"])
        .lines()
        .count();
    (in_pack, reachable)
}

#[test]
fn transfers_into_200_packs_bring_exactly_the_missing_objects() {
    let remote = bare_remote();
    let (_a_dir, a) = unconsolidated("a", remote.path());
    let (_b_dir, b) = unconsolidated("b", remote.path());
    let (reader_dir, reader) = unconsolidated("reader", remote.path());
    let actor_a = ActorId::new("a").unwrap();
    let actor_b = ActorId::new("b").unwrap();
    // 200 one-event pushes, each pulled on its own: 200 packs on the
    // remote and on the reader.
    for n in 0..200 {
        a.wal().append(&[event(&actor_a, n)]).unwrap();
        // An append is 3 objects (format 2): chunk, tree, commit.
        assert_eq!(a.push().unwrap().objects_sent, 3);
        assert_eq!(reader.pull().unwrap().commits_received, 1);
    }
    assert_eq!(count_objects(remote.path()), (0, 200));
    assert_eq!(count_objects(&reader_dir.path().join(".git")), (0, 200));

    // b holds a's history and adds 3 commits: only those travel.
    assert_eq!(b.pull().unwrap().commits_received, 200);
    for n in 0..3 {
        b.wal().append(&[event(&actor_b, 1_000 + n)]).unwrap();
    }
    assert_eq!(b.push().unwrap().objects_sent, 3 * 3);
    // a goes on with 20 more.
    for n in 200..220 {
        a.wal().append(&[event(&actor_a, n)]).unwrap();
    }
    assert_eq!(a.push().unwrap().objects_sent, 20 * 3);

    // The reader holds a's first 200: it receives a's 20 and b's 3.
    let report = reader.pull().unwrap();
    assert_eq!(report.commits_received, 23);
    assert!(report.rejected.is_empty());
    assert_eq!(reader.wal().read_all().unwrap().len(), 223);
    for dir in [remote.path(), &reader_dir.path().join(".git")] {
        let (packed, reachable) = packed_and_reachable(dir);
        assert_eq!(packed, reachable, "{}: nothing sent twice", dir.display());
        assert_eq!(count_objects(dir).0, 0);
        git(dir, &["fsck", "--full", "--strict", "--no-dangling"]);
    }
}
