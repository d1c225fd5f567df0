//! `Log::import`: a 5,000-event history imported on two replicas keeps
//! its original times and authors, converges to one copy of each event in
//! the original time order after a sync, and a re-run adds nothing.

use larder::codec::Payload;
use larder::{Imported, Larder, LarderError};
use larder_testkit::Rng;

const T0: u64 = 1_500_000_000_000;

/// A seeded history: distinct times, five authors, keys on half of them.
fn history(seed: u64, n: usize) -> Vec<Imported> {
    let mut rng = Rng::new(seed);
    let mut t = T0;
    (0..n)
        .map(|i| {
            t += 1 + rng.below(5_000);
            Imported {
                time_ms: t,
                author: format!("author-{}", rng.below(5)),
                kind: if i % 3 == 0 {
                    "issue.opened"
                } else {
                    "comment"
                }
                .into(),
                payload: Payload::from_serde(&serde_json::json!({ "n": i, "text": "x" })).unwrap(),
                key: (i % 2 == 0).then(|| format!("src-{i}")),
            }
        })
        .collect()
}

#[test]
fn two_replicas_import_one_history_and_converge_in_time_order() {
    let seed = larder_testkit::seed_from_env("LARDER_IMPORT_SEED", 0x1a7e);
    println!("seed {seed}");
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    Larder::init_bare(&remote).unwrap();
    let remote = remote.to_str().unwrap();
    let input = history(seed, 5_000);
    let mut replicas = Vec::new();
    for name in ["alice", "bob"] {
        let larder = Larder::init(tmp.path().join(name))
            .unwrap()
            .with_actor(larder::codec::ActorId::new(name).unwrap());
        let log = larder.log("tracker").unwrap();
        // bob also writes something of his own, after the history.
        let report = log.import(input.clone()).unwrap();
        assert_eq!((report.imported, report.skipped), (5_000, 0));
        // A re-run adds nothing.
        let again = log.import(input.clone()).unwrap();
        assert_eq!(
            (again.imported, again.skipped, again.commits),
            (0, 5_000, 0)
        );
        if name == "bob" {
            log.append("note", &"after the import").unwrap();
        }
        replicas.push(larder);
    }
    for larder in [&replicas[0], &replicas[1], &replicas[0]] {
        larder.sync("tracker", remote).unwrap().sync().unwrap();
    }
    let a = replicas[0].log("tracker").unwrap().events().unwrap();
    let b = replicas[1].log("tracker").unwrap().events().unwrap();
    assert_eq!(a, b, "identical order on both replicas");
    assert_eq!(a.len(), 5_001, "one copy of each imported event");
    // The imported events are in the original time order, with their
    // original times and authors; the new note sorts after them.
    for (e, original) in a.iter().zip(&input) {
        assert_eq!(e.timestamp().millis, original.time_ms);
        assert_eq!(e.actor().as_str(), original.author);
        assert_eq!(e.kind(), original.kind);
    }
    assert_eq!(a[5_000].kind(), "note");
}

#[test]
fn a_bad_event_is_a_typed_error_naming_it_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let larder = Larder::init(tmp.path()).unwrap();
    let log = larder.log("tracker").unwrap();
    let mut input = history(7, 10);
    input[6].author = "Ada Lovelace <ada@example.com>".into();
    match log.import(input.clone()) {
        Err(LarderError::Import { index, reason }) => {
            assert_eq!(index, 6);
            assert!(reason.contains("Ada Lovelace"), "{reason}");
        }
        r => panic!("expected Import, got {r:?}"),
    }
    assert!(log.wal().head().unwrap().is_none(), "nothing written");
    input[6].author = "ada".into();
    input[3].time_ms = u64::MAX / 2;
    assert!(matches!(
        log.import(input),
        Err(LarderError::Import { index: 3, .. })
    ));
    assert!(log.wal().head().unwrap().is_none());
}
