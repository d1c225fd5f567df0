//! `Log::watch` / `watch_from`: catch-up then live, appends from another
//! handle and from a sync, resuming at least once without skipping, and a
//! position that left the history.

use std::collections::HashSet;
use std::time::Duration;

use larder::codec::{ActorId, EventId};
use larder::{Larder, LarderError, Watched};

/// Generous: only reached if an event never comes (a failure).
const WAIT: Duration = Duration::from_secs(20);

fn next(w: &mut larder::LogWatch) -> Watched {
    w.next_timeout(WAIT)
        .unwrap()
        .expect("an event within the wait")
}

fn open(path: &std::path::Path, actor: &str) -> Larder {
    Larder::init(path)
        .unwrap()
        .with_actor(ActorId::new(actor).unwrap())
}

#[test]
fn catches_up_then_follows_other_handles_and_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    Larder::init_bare(&remote).unwrap();
    let remote = remote.to_str().unwrap();
    let a = open(&tmp.path().join("a"), "alice");
    let log = a.log("feed").unwrap();
    for i in 0..3 {
        log.append("n", &i).unwrap();
    }
    let mut w = log.watch_from(None).unwrap();
    let first: Vec<Watched> = (0..3).map(|_| next(&mut w)).collect();
    assert_eq!(
        first
            .iter()
            .map(|w| w.event.payload().deserialize::<i32>().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(first[2].position, log.wal().head().unwrap());
    // Another handle of the repository (as another process would) appends.
    let other = Larder::open(tmp.path().join("a"))
        .unwrap()
        .with_actor(ActorId::new("alice").unwrap());
    let writer = std::thread::spawn(move || {
        let log = other.log("feed").unwrap();
        log.append("n", &3).unwrap();
        log.append("n", &4).unwrap();
    });
    let live: Vec<i32> = (0..2)
        .map(|_| next(&mut w).event.payload().deserialize().unwrap())
        .collect();
    writer.join().unwrap();
    assert_eq!(live, [3, 4]);
    // Another replica's event arrives by a sync.
    let b = open(&tmp.path().join("b"), "bob");
    b.log("feed").unwrap().append("from-bob", &"hi").unwrap();
    b.sync("feed", remote).unwrap().sync().unwrap();
    a.sync("feed", remote).unwrap().sync().unwrap();
    let synced = next(&mut w);
    assert_eq!(synced.event.kind(), "from-bob");
    assert!(w.next_timeout(Duration::from_millis(50)).unwrap().is_none());
}

#[test]
fn resuming_from_any_handled_event_skips_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path(), "alice");
    let log = a.log("feed").unwrap();
    // Two rounds: a batch of 4 events, then 3 single appends.
    log.append_batch(
        &(0..4)
            .map(|i| ("n", larder::codec::Payload::from_serde(&i).unwrap()))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut w = log.watch_from(None).unwrap();
    let mut delivered: Vec<Watched> = (0..4).map(|_| next(&mut w)).collect();
    for i in 4..7 {
        log.append("n", &i).unwrap();
    }
    delivered.extend((0..3).map(|_| next(&mut w)));
    let ids: Vec<EventId> = delivered.iter().map(|w| w.event.id()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 7);
    // Crash after handling event k: resuming from its position delivers
    // every event after it (perhaps some again), never skipping one.
    for k in 0..7 {
        let mut resumed = log.watch_from(delivered[k].position).unwrap();
        let mut seen = HashSet::new();
        while let Some(w) = resumed.next_timeout(Duration::from_millis(100)).unwrap() {
            seen.insert(w.event.id());
        }
        for id in &ids[k + 1..] {
            assert!(seen.contains(id), "resuming after event {k} skipped {id}");
        }
    }
}

#[test]
fn a_position_outside_the_history_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path(), "alice");
    let log = a.log("feed").unwrap();
    log.append("n", &1).unwrap();
    let foreign = a.log("other").unwrap().append("n", &2).unwrap();
    match log.watch_from(Some(foreign)) {
        Err(e @ LarderError::WatchPositionGone { .. }) => {
            assert!(e.to_string().contains(&foreign.to_string()))
        }
        r => panic!("expected WatchPositionGone, got {r:?}"),
    }
}
