//! Snapshots and the materialised view against real repositories.

use std::sync::Arc;

use larder_codec::{ActorId, Envelope, Timestamp};
use larder_crdt::{KvProjection, ManualClock, Projection, Projector, sort_events};
use larder_git::{EntryKind, Expected, GitRepo, TreeEntry};
use larder_snapshot::{SnapshotError, SnapshotManager, SnapshotPolicy, View};
use larder_wal::WalManager;
use proptest::prelude::*;

fn set(actor: &str, key: &str, value: u64, ms: u64) -> Envelope {
    Envelope::new(
        ActorId::new(actor).unwrap(),
        Timestamp::new(1_700_000_000_000 + ms, 0),
        "kv.set",
        KvProjection::set_payload(key, &value).unwrap(),
    )
    .unwrap()
}

fn setup() -> (tempfile::TempDir, WalManager) {
    let dir = tempfile::tempdir().unwrap();
    let wal = WalManager::new(GitRepo::init(dir.path()).unwrap(), "kv").unwrap();
    (dir, wal)
}

fn manager(wal: &WalManager, clock: &ManualClock) -> SnapshotManager {
    SnapshotManager::with_clock(wal.clone(), Arc::new(clock.clone()), SnapshotPolicy::OFF)
}

fn replay_hash(wal: &WalManager) -> larder_crdt::StateHash {
    let mut events = wal.read_all().unwrap();
    sort_events(&mut events);
    let mut p = Projector::<KvProjection>::default();
    p.apply_all(&events).unwrap();
    p.state().state_hash()
}

fn git_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn create_list_read_and_git_can_read_it() {
    let (dir, wal) = setup();
    let clock = ManualClock::new(1_000);
    let snaps = manager(&wal, &clock);
    assert!(matches!(
        snaps.create(),
        Err(SnapshotError::EmptyLog { .. })
    ));
    wal.append(&[set("b", "x", 1, 5), set("b", "y", 2, 1)])
        .unwrap();
    wal.append(&[set("a", "x", 3, 3)]).unwrap();
    let first = snaps.create_with::<KvProjection>().unwrap();
    assert_eq!(first.meta.event_count, 3);
    let mut expected = wal.read_all().unwrap();
    sort_events(&mut expected);
    assert_eq!(snaps.read_events(&first).unwrap(), expected);
    let state = snaps.read_state::<KvProjection>(&first).unwrap().unwrap();
    assert_eq!(state.state_hash(), replay_hash(&wal));
    clock.advance(10);
    wal.append(&[set("a", "z", 4, 9)]).unwrap();
    let second = snaps.create().unwrap();
    let listed: Vec<_> = snaps
        .list()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(listed, vec![second.clone(), first], "newest first");
    assert_eq!(snaps.latest().unwrap(), Some(second.clone()));
    git_ok(dir.path(), &["fsck", "--full", "--strict"]);
    let json = git_ok(
        dir.path(),
        &["show", &format!("{}:snapshot.json", second.reference)],
    );
    assert!(json.contains("\"event_count\": 4"));
    assert!(git_ok(dir.path(), &["status", "--porcelain"]).is_empty());
}

#[test]
fn names_never_collide_and_bad_names_are_reported() {
    let (_dir, wal) = setup();
    let clock = ManualClock::new(42); // frozen: every snapshot in one millisecond
    let snaps = manager(&wal, &clock);
    wal.append(&[set("a", "k", 1, 1)]).unwrap();
    let one = snaps.create().unwrap();
    let again = snaps.create().unwrap();
    assert_eq!(one, again, "the identical snapshot is not duplicated");
    wal.append(&[set("a", "k", 2, 2)]).unwrap();
    let two = snaps.create().unwrap();
    assert_ne!(one.name, two.name);
    assert!(
        one.name.starts_with("00000000000000000042-")
            && two.name.starts_with("00000000000000000042-")
    );
    // A ref larder did not write is an error entry, not a misread.
    let repo = wal.repo();
    repo.update_ref(
        &format!("{}garbage", snaps.prefix()),
        Expected::MustNotExist,
        one.commit,
        "t",
    )
    .unwrap();
    let listed = snaps.list().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed
            .iter()
            .filter(|e| matches!(e, Err(SnapshotError::BadName { .. })))
            .count(),
        1
    );
    assert_eq!(listed.iter().filter(|e| e.is_ok()).count(), 2);
}

#[test]
fn gc_keeps_exactly_the_newest() {
    let (_dir, wal) = setup();
    let clock = ManualClock::new(1);
    let snaps = manager(&wal, &clock);
    let mut made = Vec::new();
    for i in 0..5 {
        wal.append(&[set("a", "k", i, i)]).unwrap();
        clock.advance(1);
        made.push(snaps.create().unwrap().name);
    }
    assert_eq!(snaps.gc(2).unwrap(), 3);
    let left: Vec<String> = snaps
        .list()
        .unwrap()
        .into_iter()
        .map(|s| s.unwrap().name)
        .collect();
    assert_eq!(left, vec![made[4].clone(), made[3].clone()]);
    assert_eq!(snaps.gc(2).unwrap(), 0);
}

/// Rewrites a snapshot's tree with `tamper` and moves its ref.
fn tamper(
    snaps: &SnapshotManager,
    info: &larder_snapshot::SnapshotInfo,
    f: impl Fn(&GitRepo, &mut Vec<TreeEntry>),
) {
    let repo = snaps.wal().repo();
    let c = repo.read_commit(info.commit).unwrap();
    let mut root = repo.read_tree(c.tree).unwrap();
    f(repo, &mut root);
    let tree = repo.write_tree(&root).unwrap();
    let commit = repo
        .write_commit(tree, &c.parents, &c.message, None, c.time)
        .unwrap();
    repo.update_ref(
        &info.reference,
        Expected::MustBe(info.commit),
        commit,
        "tamper",
    )
    .unwrap();
}

#[test]
fn corrupt_snapshots_are_typed_and_rebuild_falls_back() {
    let (_dir, wal) = setup();
    let clock = ManualClock::new(100);
    let snaps = manager(&wal, &clock);
    for i in 0..30 {
        wal.append(&[set("a", &format!("k{}", i % 7), i, i)])
            .unwrap();
    }
    let older = snaps.create_with::<KvProjection>().unwrap();
    for i in 30..40 {
        wal.append(&[set("b", &format!("k{}", i % 7), i, i)])
            .unwrap();
    }
    clock.advance(5);
    let newer = snaps.create_with::<KvProjection>().unwrap();
    wal.append(&[set("c", "tail", 1, 100)]).unwrap();

    // Wrong state id: the newer snapshot's state bytes are altered.
    tamper(&snaps, &newer, |repo, root| {
        let state = root.iter_mut().find(|e| e.name == "state").unwrap();
        let mut files = repo.read_tree(state.id).unwrap();
        let mut bytes = repo.read_blob(files[0].id).unwrap();
        bytes.push(0);
        files[0].id = repo.write_blob(&bytes).unwrap();
        state.id = repo.write_tree(&files).unwrap();
    });
    let newer = snaps.latest().unwrap().unwrap();
    assert!(matches!(
        snaps.read_state::<KvProjection>(&newer),
        Err(SnapshotError::StateMismatch { .. })
    ));

    // A corrupt chunk in the older one.
    tamper(&snaps, &older, |repo, root| {
        let events = root.iter_mut().find(|e| e.name == "events").unwrap();
        let mut files = repo.read_tree(events.id).unwrap();
        let mut bytes = repo.read_blob(files[0].id).unwrap();
        let n = bytes.len() - 1;
        bytes[n] ^= 1;
        files[0].id = repo.write_blob(&bytes).unwrap();
        events.id = repo.write_tree(&files).unwrap();
        let _ = TreeEntry {
            name: String::new(),
            kind: EntryKind::Blob,
            id: events.id,
        };
    });
    let older = snaps
        .list()
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .nth(1)
        .unwrap();
    assert!(matches!(
        snaps.read_events(&older),
        Err(SnapshotError::Chunk { .. })
    ));

    // The rebuild rejects the newer snapshot (wrong state id) and falls
    // back to the older one, whose state verifies (its chunks are not
    // needed then); the 11 events after it are replayed, none dropped.
    let mut view = View::<KvProjection>::open(manager(&wal, &clock)).unwrap();
    let report = view.rebuild().unwrap();
    assert_eq!(report.rejected, vec![newer.name.clone()]);
    assert_eq!(report.snapshot.as_deref(), Some(older.name.as_str()));
    assert!(report.used_state);
    assert_eq!(report.tail_events, 11);
    assert_eq!(view.state().state_hash(), replay_hash(&wal));
}

#[test]
fn a_snapshot_whose_events_are_corrupt_is_skipped() {
    let (_dir, wal) = setup();
    let clock = ManualClock::new(100);
    let snaps = manager(&wal, &clock);
    for i in 0..10 {
        wal.append(&[set("a", &format!("k{}", i % 3), i, i)])
            .unwrap();
    }
    let only = snaps.create().unwrap(); // events only: a rebuild must read them
    wal.append(&[set("b", "k0", 99, 50)]).unwrap();
    tamper(&snaps, &only, |repo, root| {
        let events = root.iter_mut().find(|e| e.name == "events").unwrap();
        let mut files = repo.read_tree(events.id).unwrap();
        let mut bytes = repo.read_blob(files[0].id).unwrap();
        bytes[20] ^= 0xff;
        files[0].id = repo.write_blob(&bytes).unwrap();
        events.id = repo.write_tree(&files).unwrap();
    });
    let mut view = View::<KvProjection>::open(manager(&wal, &clock)).unwrap();
    let report = view.rebuild().unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.snapshot, None, "no usable snapshot: full replay");
    assert_eq!(report.tail_events, 11);
    assert_eq!(view.state().state_hash(), replay_hash(&wal));
}

#[test]
fn the_view_updates_incrementally_lives_in_the_git_dir_and_persists() {
    let (dir, wal) = setup();
    let clock = ManualClock::new(1);
    let mut view = View::<KvProjection>::open(manager(&wal, &clock)).unwrap();
    assert!(view.path().starts_with(wal.repo().git_dir()));
    wal.append(&[set("a", "x", 1, 1), set("a", "y", 2, 2)])
        .unwrap();
    assert_eq!(view.update().unwrap(), 2);
    assert_eq!(view.update().unwrap(), 0, "nothing new: nothing applied");
    wal.append(&[set("a", "x", 3, 3)]).unwrap();
    assert_eq!(view.update().unwrap(), 1);
    let hash = view.state().state_hash();
    assert_eq!(hash, replay_hash(&wal));
    let position = view.position();
    drop(view);
    let reopened = View::<KvProjection>::open(manager(&wal, &clock)).unwrap();
    assert_eq!(
        (reopened.position(), reopened.state().state_hash()),
        (position, hash)
    );
    assert!(
        git_ok(dir.path(), &["status", "--porcelain"]).is_empty(),
        "nothing in the work tree"
    );
}

#[test]
fn the_policy_snapshots_when_due_and_not_before() {
    let (_dir, wal) = setup();
    let clock = ManualClock::new(0);
    let policy = SnapshotPolicy {
        every_events: Some(5),
        max_age_ms: Some(1_000),
    };
    let snaps = SnapshotManager::with_clock(wal.clone(), Arc::new(clock.clone()), policy);
    wal.append(&[set("a", "k", 1, 1)]).unwrap();
    assert!(
        snaps.maybe_create::<KvProjection>().unwrap().is_some(),
        "no snapshot yet: due by age"
    );
    for i in 0..4 {
        wal.append(&[set("a", "k", i, 10 + i)]).unwrap();
    }
    assert!(
        snaps.maybe_create::<KvProjection>().unwrap().is_none(),
        "4 new events < 5"
    );
    wal.append(&[set("a", "k", 9, 20)]).unwrap();
    assert!(
        snaps.maybe_create::<KvProjection>().unwrap().is_some(),
        "5 new events"
    );
    wal.append(&[set("a", "k", 10, 30)]).unwrap();
    clock.advance(1_000);
    assert!(
        snaps.maybe_create::<KvProjection>().unwrap().is_some(),
        "old enough"
    );
    let off =
        SnapshotManager::with_clock(wal.clone(), Arc::new(clock.clone()), SnapshotPolicy::OFF);
    wal.append(&[set("a", "k", 11, 40)]).unwrap();
    assert!(off.maybe_create::<KvProjection>().unwrap().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn rebuild_from_snapshot_and_tail_equals_full_replay(
        batches in proptest::collection::vec(
            proptest::collection::vec((0..3u8, 0..6u8, 0..100u64, 0..50u64), 1..4), 2..10),
        cut in any::<prop::sample::Index>(),
        with_state in any::<bool>(),
    ) {
        let (_dir, wal) = setup();
        let clock = ManualClock::new(1);
        let snaps = manager(&wal, &clock);
        let cut = cut.index(batches.len());
        for (i, batch) in batches.iter().enumerate() {
            // One actor per batch (a batch is one actor's chunk).
            let actor = format!("r{}", batch[0].0);
            let events: Vec<Envelope> = batch.iter().map(|&(_, k, v, ms)| set(&actor, &format!("k{k}"), v, ms)).collect();
            wal.append(&events).unwrap();
            if i == cut {
                if with_state { snaps.create_with::<KvProjection>().unwrap(); } else { snaps.create().unwrap(); }
            }
        }
        let mut view = View::<KvProjection>::open(manager(&wal, &clock)).unwrap();
        let report = view.rebuild().unwrap();
        prop_assert!(report.snapshot.is_some());
        prop_assert_eq!(view.state().state_hash(), replay_hash(&wal));
    }
}

/// Rewrites a snapshot's `snapshot.json` with `edit` (and moves its ref).
fn edit_meta(
    snaps: &SnapshotManager,
    info: &larder_snapshot::SnapshotInfo,
    edit: impl Fn(&mut serde_json::Value),
) {
    tamper(snaps, info, |repo, root| {
        let entry = root.iter_mut().find(|e| e.name == "snapshot.json").unwrap();
        let mut meta: serde_json::Value =
            serde_json::from_slice(&repo.read_blob(entry.id).unwrap()).unwrap();
        edit(&mut meta);
        entry.id = repo
            .write_blob(&serde_json::to_vec_pretty(&meta).unwrap())
            .unwrap();
    });
}

#[test]
fn a_lying_event_count_is_a_typed_error_not_an_abort() {
    let (_dir, wal) = setup();
    let clock = ManualClock::new(1);
    let snaps = manager(&wal, &clock);
    for i in 0..4 {
        wal.append(&[set("a", &format!("k{i}"), i, i)]).unwrap();
    }
    snaps.create().unwrap();
    // 2^40 envelopes would be hundreds of terabytes: reserving them aborts.
    for (event_count, chunk_events) in [(1u64 << 40, None), (1 << 40, Some(1u64 << 40))] {
        let current = snaps.latest().unwrap().unwrap();
        edit_meta(&snaps, &current, |m| {
            m["event_count"] = event_count.into();
            if let Some(n) = chunk_events {
                m["chunks"][0]["events"] = n.into();
            }
        });
        let lying = snaps.latest().unwrap().unwrap();
        assert_eq!(lying.meta.event_count, event_count);
        assert!(
            matches!(
                snaps.read_events(&lying),
                Err(SnapshotError::BadSnapshot { .. })
            ),
            "event_count {event_count}, chunk events {chunk_events:?}"
        );
        // The view skips it and replays the WAL.
        let mut view = View::<KvProjection>::open(manager(&wal, &clock)).unwrap();
        let report = view.rebuild().unwrap();
        assert_eq!(report.rejected, vec![lying.name.clone()]);
        assert_eq!(view.state().state_hash(), replay_hash(&wal));
    }
}

#[test]
fn a_malformed_wal_head_is_reported_by_list() {
    let (_dir, wal) = setup();
    let clock = ManualClock::new(1);
    let snaps = manager(&wal, &clock);
    wal.append(&[set("a", "k", 1, 1)]).unwrap();
    let good = snaps.create().unwrap();
    clock.advance(1);
    wal.append(&[set("a", "k", 2, 2)]).unwrap();
    let bad = snaps.create().unwrap();
    for wal_head in ["abc", "", "zz", &"g".repeat(40)] {
        // Start each edit from the original snapshot commit.
        let repo = wal.repo();
        let now = repo.ref_target(&bad.reference).unwrap().unwrap();
        repo.update_ref(&bad.reference, Expected::MustBe(now), bad.commit, "t")
            .unwrap();
        edit_meta(&snaps, &bad, |m| m["wal_head"] = wal_head.into());
        let listed = snaps.list().unwrap();
        assert!(
            matches!(&listed[0], Err(SnapshotError::BadSnapshot { reason, .. }) if reason.contains("wal_head")),
            "wal_head {wal_head:?}: {:?}",
            listed[0]
        );
        assert_eq!(snaps.latest().unwrap(), Some(good.clone()), "skipped");
    }
}
