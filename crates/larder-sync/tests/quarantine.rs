//! One bad head blocks nobody: a pull verifies each remote head on its own,
//! merges the good ones, names the bad ones, and heals once they are gone —
//! over the file transport and the network transport.

mod common;

use std::path::Path;

use common::{Replica, bare_remote, flip_chunk};
use larder_codec::{ActorId, Timestamp};
use larder_git::{Expected, GitRepo, ObjectId};
use larder_sync::{SyncManager, SyncReport, Transport};
use larder_testkit::git;
use larder_wal::WalManager;

fn ts(ms: u64) -> Timestamp {
    Timestamp::new(1_700_000_000_000 + ms, 0)
}

/// Replaces `actor`'s head on the remote by a copy of it whose chunk is
/// corrupt (same parents, same message); returns the forged commit.
fn corrupt_head(remote: &Path, actor: &str) -> ObjectId {
    let repo = GitRepo::open(remote).unwrap();
    let name = format!("refs/larder/kv/heads/{actor}");
    let good = repo.ref_target(&name).unwrap().unwrap();
    let info = repo.read_commit(good).unwrap();
    let tree = flip_chunk(&repo, info.tree);
    let forged = repo
        .write_commit(tree, &info.parents, &info.message, None, info.time)
        .unwrap();
    repo.update_ref(&name, Expected::MustBe(good), forged, "evil")
        .unwrap();
    forged
}

/// An observer replica using the network transport (gix fetch over
/// `file://`, git push), or the file transport.
fn observer(remote: &Path, network: bool) -> (SyncManager, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let wal = WalManager::new(GitRepo::init(dir.path()).unwrap(), "kv").unwrap();
    let actor = ActorId::new("dave").unwrap();
    let sync = if network {
        let url = format!("file://{}", remote.display());
        SyncManager::with_transport(wal, actor, "net", Transport::Network(url))
    } else {
        SyncManager::new(wal, actor, &remote.display().to_string()).unwrap()
    };
    (sync, dir)
}

fn rejected_actors(report: &SyncReport) -> Vec<&str> {
    report.rejected.iter().map(|r| r.actor.as_str()).collect()
}

fn one_bad_head_blocks_nobody(network: bool) {
    let remote = bare_remote();
    let good: Vec<Replica> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| Replica::new(n, remote.path()))
        .collect();
    let mallory = Replica::new("mallory", remote.path());
    mallory
        .wal()
        .append(&[mallory.set("evil", 1, ts(0))])
        .unwrap();
    mallory.sync.push().unwrap();
    let forged = corrupt_head(remote.path(), "mallory");
    let (dave, _dave_dir) = observer(remote.path(), network);

    // Three good actors keep appending and syncing; every pull names the bad
    // head and merges everything else.
    for round in 0..3u64 {
        for (i, r) in good.iter().enumerate() {
            r.wal()
                .append(&[r.set(&format!("k{i}"), round, ts(round * 10 + i as u64))])
                .unwrap();
            let report = r.sync.sync().unwrap();
            assert_eq!(rejected_actors(&report), ["mallory"], "{report:?}");
        }
        let report = dave.pull().unwrap();
        assert_eq!(rejected_actors(&report), ["mallory"]);
        let bad = &report.rejected[0];
        assert_eq!(bad.head_ref, "refs/larder/kv/heads/mallory");
        assert_eq!((bad.head, bad.commit), (forged, Some(forged)));
        let path = bad.path.as_deref().unwrap();
        // Format 2 names the chunk `<chunk id>.bin` at the tree's root.
        assert!(path.len() == 68 && path.ends_with(".bin"), "{path}");
        assert!(bad.reason.contains("chunk"), "{}", bad.reason);
    }
    for r in &good {
        r.sync.sync().unwrap();
    }
    dave.pull().unwrap();
    // Every good event is everywhere; mallory's is nowhere.
    let expected = good[0].ordered();
    assert_eq!(expected.len(), 9);
    for r in &good {
        assert_eq!(r.ordered(), expected);
        assert!(r.wal().verify().unwrap().is_ok());
    }
    let mut seen = dave.wal().read_all().unwrap();
    larder_crdt::sort_events(&mut seen);
    assert_eq!(seen, expected);

    // The remote's owner deletes the bad head: the next pull heals, and the
    // staging ref that mirrored it is gone.
    git(
        remote.path(),
        &["update-ref", "-d", "refs/larder/kv/heads/mallory"],
    );
    let healed = dave.pull().unwrap();
    assert!(healed.rejected.is_empty(), "{healed:?}");
    let staged = format!("{}mallory", dave.staging_prefix());
    assert_eq!(dave.wal().repo().ref_target(&staged).unwrap(), None);
    // Mallory republishes a good head: it is merged like any other.
    mallory.sync.push().unwrap();
    let verified = std::cell::Cell::new(0);
    let report = dave
        .pull_with(&|n| verified.set(verified.get() + n))
        .unwrap();
    assert!(report.rejected.is_empty());
    assert_eq!(report.events_received, 1);
    assert_eq!(
        verified.get(),
        report.commits_received,
        "progress per commit"
    );
    assert_eq!(dave.wal().read_all().unwrap().len(), 10);
}

#[test]
fn one_bad_head_blocks_nobody_file_transport() {
    one_bad_head_blocks_nobody(false);
}

#[test]
fn one_bad_head_blocks_nobody_network_transport() {
    one_bad_head_blocks_nobody(true);
}

#[test]
fn heads_at_blobs_trees_and_tags_are_quarantined_by_name() {
    for network in [false, true] {
        let remote = bare_remote();
        let alice = Replica::new("alice", remote.path());
        let head = alice.wal().append(&[alice.set("a", 1, ts(1))]).unwrap();
        alice.sync.push().unwrap();
        let r = remote.path();
        let chunk = git(r, &["ls-tree", "-r", "--name-only", &head.to_string()]);
        let blob = git(r, &["rev-parse", &format!("{head}:{}", chunk.trim())]);
        let tree = git(r, &["rev-parse", &format!("{head}^{{tree}}")]);
        git(r, &["tag", "-a", "-m", "a tag", "t1", &head.to_string()]);
        let tag = git(r, &["rev-parse", "refs/tags/t1"]);
        for (name, id) in [("at-blob", &blob), ("at-tree", &tree), ("at-tag", &tag)] {
            git(
                r,
                &["update-ref", &format!("refs/larder/kv/heads/{name}"), id],
            );
        }
        let (dave, _d) = observer(r, network);
        let report = dave.pull().unwrap();
        let mut bad = rejected_actors(&report);
        bad.sort();
        assert_eq!(bad, ["at-blob", "at-tag", "at-tree"], "{report:?}");
        for rejected in &report.rejected {
            assert!(!rejected.reason.is_empty());
            assert!(rejected.to_string().contains(&rejected.head_ref));
        }
        assert_eq!(report.events_received, 1, "network={network}");
        assert_eq!(dave.wal().head().unwrap(), Some(head));
        assert!(dave.wal().verify().unwrap().is_ok());
    }
}

#[test]
fn ten_thousand_heads_on_the_remote() {
    let remote = bare_remote();
    let alice = Replica::new("alice", remote.path());
    let head = alice.wal().append(&[alice.set("a", 1, ts(1))]).unwrap();
    alice.sync.push().unwrap();
    // 10,000 replicas' heads, all at alice's commit, in one transaction.
    let mut stdin = String::new();
    for i in 0..10_000 {
        stdin.push_str(&format!(
            "create refs/larder/kv/heads/actor-{i:05} {head}\n"
        ));
    }
    larder_testkit::git_with_stdin(
        remote.path(),
        &["update-ref", "--stdin"],
        Some(stdin.as_bytes()),
    );
    let bob = Replica::new("bob", remote.path());
    let report = bob.sync.sync().unwrap();
    assert_eq!(report.heads_seen, 10_001);
    assert!(report.rejected.is_empty());
    assert_eq!((report.commits_received, report.events_received), (1, 1));
    assert!(report.pushed);
    // A second pull has nothing new.
    let again = bob.sync.pull().unwrap();
    assert_eq!(again.commits_received, 0);
}

#[test]
fn a_leftover_staging_lock_is_named_not_a_silent_stall() {
    let remote = bare_remote();
    let alice = Replica::new("alice", remote.path());
    let bob = Replica::new("bob", remote.path());
    alice.wal().append(&[alice.set("a", 1, ts(1))]).unwrap();
    alice.sync.push().unwrap();
    bob.sync.pull().unwrap();
    // A pull killed while moving alice's staging ref left its lock behind.
    let staged = format!("{}alice", bob.sync.staging_prefix());
    let lock = bob.wal().repo().git_dir().join(format!("{staged}.lock"));
    std::fs::write(&lock, b"").unwrap();
    alice.wal().append(&[alice.set("a", 2, ts(2))]).unwrap();
    alice.sync.push().unwrap();
    let report = bob.sync.pull().unwrap();
    // The events arrive (merges use the fetched ids) and the lock is named.
    assert_eq!(report.events_received, 1);
    assert_eq!(report.stale_refs.len(), 1, "{report:?}");
    assert_eq!(report.stale_refs[0].reference, staged);
    assert_eq!(report.stale_refs[0].lock_path, lock.display().to_string());
    // Deleting it heals: the staging ref follows the remote again.
    std::fs::remove_file(&lock).unwrap();
    let report = bob.sync.pull().unwrap();
    assert!(report.stale_refs.is_empty());
    assert_eq!(
        bob.wal().repo().ref_target(&staged).unwrap(),
        alice.wal().head().unwrap()
    );
}

#[test]
fn a_push_failing_after_the_pull_merged_reports_the_pull() {
    let remote = bare_remote();
    let alice = Replica::new("alice", remote.path());
    alice.wal().append(&[alice.set("a", 1, ts(1))]).unwrap();
    alice.sync.push().unwrap();
    // Bob's own head ref on the remote is locked by a crashed pusher.
    let bob_dir = tempfile::tempdir().unwrap();
    let options = larder_wal::WalOptions {
        max_lock_waits: 2,
        ..larder_wal::WalOptions::default()
    };
    let wal =
        WalManager::with_options(GitRepo::init(bob_dir.path()).unwrap(), "kv", options).unwrap();
    let bob = SyncManager::new(
        wal,
        ActorId::new("bob").unwrap(),
        &remote.path().display().to_string(),
    )
    .unwrap();
    let ev = larder_codec::Envelope::new(
        ActorId::new("bob").unwrap(),
        ts(2),
        "kv.set",
        larder_crdt::KvProjection::set_payload("b", &1u64).unwrap(),
    )
    .unwrap();
    bob.wal().append(&[ev]).unwrap();
    let lock = remote.path().join("refs/larder/kv/heads/bob.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, b"").unwrap();
    match bob.sync() {
        Err(larder_sync::SyncError::PushAfterPull { pulled, source }) => {
            assert_eq!(pulled.events_received, 1);
            assert!(source.to_string().contains("bob.lock"), "{source}");
        }
        other => panic!("expected PushAfterPull, got {other:?}"),
    }
    // The pull's merge is on the log: alice's event is here.
    assert_eq!(bob.wal().read_all().unwrap().len(), 2);
}
