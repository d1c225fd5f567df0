//! `Log::at`: a log as of a commit or a time — events and projections,
//! from a snapshot before the point when there is one; bad points are
//! typed errors naming them.

use std::sync::Arc;

use larder::codec::{Payload, Timestamp};
use larder::crdt::{KV_SET, KvProjection, ManualClock, Projection};
use larder::{At, Larder, LarderError};

const T0: u64 = 1_800_000_000_000;

fn set(log: &larder::Log, key: &str, v: u32) -> larder::git::ObjectId {
    let payload: Payload = KvProjection::set_payload(key, &v).unwrap();
    log.append_batch(&[(KV_SET, payload)]).unwrap()
}

fn value(p: &KvProjection, key: &str) -> Option<u32> {
    p.get(key).map(|v| v.deserialize().unwrap())
}

#[test]
fn events_and_projections_as_of_a_commit_or_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let larder = Larder::init(dir.path())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let log = larder.log("cfg").unwrap();
    let mut commits = Vec::new();
    for i in 0..10u32 {
        clock.advance(1_000);
        commits.push(set(&log, "k", i));
        if i == 3 {
            larder
                .snapshots("cfg")
                .unwrap()
                .create_with::<KvProjection>()
                .unwrap();
        }
    }
    // As of the 6th commit: 6 events, k = 5; started from the snapshot.
    let at = log.at(At::Commit(commits[5])).unwrap();
    assert!(
        at.snapshot().is_some(),
        "a snapshot before the point is used"
    );
    assert_eq!(at.events().unwrap().len(), 6);
    assert_eq!(value(&at.project::<KvProjection>().unwrap(), "k"), Some(5));
    // Before the snapshot: replayed from the log.
    let early = log.at(At::Commit(commits[1])).unwrap();
    assert!(early.snapshot().is_none());
    assert_eq!(
        value(&early.project::<KvProjection>().unwrap(), "k"),
        Some(1)
    );
    // As of a time: every event at or before it.
    let t = Timestamp::new(T0 + 7_500, u32::MAX);
    let at_time = log.at(At::Time(t)).unwrap();
    assert_eq!(at_time.events().unwrap().len(), 7);
    assert_eq!(
        value(&at_time.project::<KvProjection>().unwrap(), "k"),
        Some(6)
    );
    // The whole log and the head agree with plain replay.
    let now = log.at(At::Commit(commits[9])).unwrap();
    assert_eq!(now.events().unwrap(), log.events().unwrap());
    assert_eq!(
        now.project::<KvProjection>().unwrap().state_hash(),
        log.project::<KvProjection>().unwrap().state_hash()
    );
}

#[test]
fn a_point_outside_the_log_is_a_typed_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let larder = Larder::init(dir.path())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let log = larder.log("cfg").unwrap();
    let empty = larder.log("empty").unwrap();
    assert!(matches!(
        empty.at(At::Time(Timestamp::new(T0, 0))),
        Err(LarderError::BeforeLog { first: None, .. })
    ));
    set(&log, "k", 1);
    let other = larder.log("other").unwrap();
    let foreign = set(&other, "k", 2);
    match log.at(At::Commit(foreign)) {
        Err(e @ LarderError::NotInLog { .. }) => {
            assert!(e.to_string().contains(&foreign.to_string()), "{e}")
        }
        r => panic!("expected NotInLog, got {r:?}"),
    }
    let before = Timestamp::new(T0 - 1, 0);
    match log.at(At::Time(before)) {
        Err(e @ LarderError::BeforeLog { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&before.to_string()), "{text}");
            assert!(text.contains("first event"), "{text}");
        }
        r => panic!("expected BeforeLog, got {r:?}"),
    }
}
