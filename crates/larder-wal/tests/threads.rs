//! Concurrent appenders in one process never lose an event.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use common::{event, keys, wal_in};

#[test]
fn eight_threads_two_hundred_appends_each_lose_nothing() {
    const THREADS: usize = 8;
    const APPENDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = wal.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let actor = format!("thread-{t}");
                barrier.wait();
                for n in 0..APPENDS {
                    wal.append(&[event(&actor, n)]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Pack merging keeps up with 8 appending threads (some hundreds of
    // packs were written, one per group).
    wal.finish_maintenance();
    let packs = wal.repo().pack_count().unwrap();
    assert!(packs < 64, "{packs} packs after 1,600 appends");
    let all = keys(&wal.read_all().unwrap());
    assert_eq!(all.len(), THREADS * APPENDS as usize);
    let mut per_actor: HashMap<String, Vec<u64>> = HashMap::new();
    for (actor, n) in all {
        per_actor.entry(actor).or_default().push(n);
    }
    assert_eq!(per_actor.len(), THREADS);
    for (actor, ns) in per_actor {
        assert_eq!(
            ns,
            (0..APPENDS).collect::<Vec<_>>(),
            "{actor}: every event once, in order"
        );
    }
    assert!(wal.verify().unwrap().is_ok());
}

/// Group commit: 8 threads appending through clones of one handle. Every
/// append lands exactly once, each thread's events in its order, the log
/// is one linear chain, and the commit each call returned is its own and
/// holds exactly its event.
#[test]
fn grouped_appends_each_return_their_own_commit() {
    const THREADS: usize = 8;
    const APPENDS: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = wal.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let actor = format!("thread-{t}");
                barrier.wait();
                (0..APPENDS)
                    .map(|n| (wal.append(&[event(&actor, n)]).unwrap(), (actor.clone(), n)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut returned = HashMap::new();
    for h in handles {
        for (commit, key) in h.join().unwrap() {
            assert!(
                returned.insert(commit, key).is_none(),
                "a commit id returned twice"
            );
        }
    }
    assert_eq!(returned.len(), THREADS * APPENDS as usize);

    let commits: Vec<_> = wal
        .commits_since(None)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(commits.len(), THREADS * APPENDS as usize);
    let mut previous = None;
    let mut per_actor: HashMap<String, Vec<u64>> = HashMap::new();
    for c in &commits {
        assert_eq!(
            c.parents,
            previous.into_iter().collect::<Vec<_>>(),
            "linear"
        );
        previous = Some(c.id);
        let got = keys(&c.events);
        assert_eq!(got.len(), 1);
        assert_eq!(
            returned.get(&c.id),
            Some(&got[0]),
            "commit {} holds its caller's event",
            c.id
        );
        per_actor
            .entry(got[0].0.clone())
            .or_default()
            .push(got[0].1);
    }
    assert_eq!(wal.head().unwrap(), previous);
    assert_eq!(per_actor.len(), THREADS);
    for (actor, ns) in per_actor {
        assert_eq!(ns, (0..APPENDS).collect::<Vec<_>>(), "{actor}: in order");
    }
    assert!(wal.verify().unwrap().is_ok());
    wal.finish_maintenance();
    common::git(dir.path(), &["fsck", "--full", "--strict"]);
}
