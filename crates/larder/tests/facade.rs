//! The facade: identity, typed appends, the registered view, sync.

use larder::Larder;
use larder::crdt::{KvProjection, Projection};
use larder::snapshot::SnapshotPolicy;

#[test]
fn actor_identity_is_created_once_and_kept_in_the_git_dir() {
    let dir = tempfile::tempdir().unwrap();
    let first = Larder::init(dir.path()).unwrap();
    let again = Larder::open(dir.path()).unwrap();
    assert_eq!(first.actor().unwrap(), again.actor().unwrap());
    assert!(first.actor().unwrap().as_str().starts_with("actor-"));
    assert!(first.repo().git_dir().join("larder/actor").exists());
    let other = Larder::init(tempfile::tempdir().unwrap().path()).unwrap();
    assert_ne!(first.actor().unwrap(), other.actor().unwrap());
}

#[test]
fn typed_events_round_trip_in_the_total_order() {
    let dir = tempfile::tempdir().unwrap();
    let larder = Larder::init_bare(dir.path()).unwrap();
    let log = larder.log("things").unwrap();
    log.append("thing.added", &("apple", 3)).unwrap();
    log.append("thing.added", &("pear", 5)).unwrap();
    let events = log.events().unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events[0].timestamp() < events[1].timestamp(),
        "the clock is strictly increasing"
    );
    assert_eq!(
        events[1].payload().deserialize::<(String, u32)>().unwrap(),
        ("pear".into(), 5)
    );
    assert_eq!(events[0].actor(), larder.actor().unwrap());
}

#[test]
fn the_registered_view_follows_appends_and_syncs_and_snapshots_by_policy() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("r.git");
    Larder::init_bare(&remote).unwrap();
    let remote = remote.display().to_string();
    let a = Larder::init(top.path().join("a")).unwrap();
    let b = Larder::init(top.path().join("b")).unwrap();
    let policy = SnapshotPolicy {
        every_events: Some(2),
        max_age_ms: None,
    };
    let mut va = a.log_with_view::<KvProjection>("kv", policy).unwrap();
    let done = va
        .append_batch(&[("kv.set", KvProjection::set_payload("k", &1).unwrap())])
        .unwrap();
    assert!(done.after_commit.is_none());
    assert_eq!(
        va.state().get("k").unwrap().deserialize::<u32>().unwrap(),
        1
    );
    assert!(
        a.snapshots("kv").unwrap().latest().unwrap().is_none(),
        "1 event < 2"
    );
    let done = va
        .append_batch(&[("kv.set", KvProjection::set_payload("k", &2).unwrap())])
        .unwrap();
    assert!(done.after_commit.is_none());
    assert_eq!(
        a.snapshots("kv")
            .unwrap()
            .latest()
            .unwrap()
            .unwrap()
            .meta
            .event_count,
        2
    );
    assert!(va.sync(&a, &remote).unwrap().after_commit.is_none());

    let mut vb = b
        .log_with_view::<KvProjection>("kv", SnapshotPolicy::OFF)
        .unwrap();
    assert!(vb.state().get("k").is_none());
    assert!(vb.sync(&b, &remote).unwrap().after_commit.is_none());
    assert_eq!(vb.state().state_hash(), va.state().state_hash());
    // The view persisted in redb: a fresh handle starts where it left off
    // (one open view per log per process: redb locks the file).
    let expected = vb.state().state_hash();
    drop(vb);
    let reopened = b
        .log_with_view::<KvProjection>("kv", SnapshotPolicy::OFF)
        .unwrap();
    assert_eq!(reopened.state().state_hash(), expected);
}

#[test]
fn events_written_after_observing_others_sort_after_them() {
    use larder::codec::{Envelope, Timestamp};
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("r.git");
    Larder::init_bare(&remote).unwrap();
    let remote = remote.display().to_string();
    let fast = Larder::init(top.path().join("fast")).unwrap();
    let slow = Larder::init(top.path().join("slow")).unwrap();
    // A replica whose clock runs ten minutes ahead (within the drift bound).
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 600_000;
    let early = Envelope::new(
        fast.actor().unwrap().clone(),
        Timestamp::new(ahead, 0),
        "note",
        larder::codec::Payload::from_serde(&"first").unwrap(),
    )
    .unwrap();
    fast.log("n")
        .unwrap()
        .wal()
        .append(std::slice::from_ref(&early))
        .unwrap();
    fast.sync("n", &remote).unwrap().sync().unwrap();
    slow.sync("n", &remote).unwrap().sync().unwrap();
    // The slow replica has seen `early`; what it writes now must sort after it.
    let log = slow.log("n").unwrap();
    log.append("note", &"reply").unwrap();
    let events = log.events().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id(), early.id(), "observed event first");
    assert!(events[1].timestamp() > early.timestamp());
    // A fresh process (new handle, clock cache on disk) keeps it too.
    let again = Larder::open(top.path().join("slow")).unwrap();
    again.log("n").unwrap().append("note", &"later").unwrap();
    let events = again.log("n").unwrap().events().unwrap();
    assert_eq!(
        events
            .last()
            .unwrap()
            .payload()
            .deserialize::<String>()
            .unwrap(),
        "later"
    );
}
