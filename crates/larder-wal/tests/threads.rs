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
