//! Promises the facade keeps on one machine: no error after a commit (so a
//! retrying caller writes nothing twice), a clock cache that is written and
//! heals, an identity created once and atomically, only on a write, and an
//! injectable clock.

use std::sync::Arc;

use larder::codec::Envelope;
use larder::crdt::{CrdtError, ManualClock, Projection};
use larder::snapshot::SnapshotPolicy;
use larder::{Larder, LarderError};

/// Counts events, and refuses to fold any event of kind `poison`: a view
/// refresh that fails after the event is already on the log.
#[derive(Default)]
struct Picky(u64);

impl Projection for Picky {
    const NAME: &'static str = "picky";
    const VERSION: u32 = 1;
    const COMMUTATIVE: bool = true;

    fn apply(&mut self, event: &Envelope) -> Result<(), CrdtError> {
        if event.kind() == "poison" {
            return Err(CrdtError::BadEvent {
                event: event.id().to_hex(),
                kind: event.kind().into(),
                reason: "picky refuses poison".into(),
            });
        }
        self.0 += 1;
        Ok(())
    }

    fn encode_state(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }

    fn decode_state(bytes: &[u8]) -> Result<Self, CrdtError> {
        let raw: [u8; 8] = bytes.try_into().map_err(|_| CrdtError::StateDecode {
            projection: "picky",
            reason: "bad state".into(),
        })?;
        Ok(Self(u64::from_be_bytes(raw)))
    }
}

#[test]
fn a_failure_after_the_commit_is_reported_as_committed_and_a_retry_writes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let larder = Larder::init(dir.path()).unwrap();
    let mut log = larder
        .log_with_view::<Picky>("audit", SnapshotPolicy::OFF)
        .unwrap();
    // A caller that retries on error, as callers do.
    let mut outcome = None;
    for _ in 0..3 {
        match log.append("poison", &1) {
            Ok(done) => {
                outcome = Some(done);
                break;
            }
            Err(_) => continue,
        }
    }
    let done = outcome.expect("the append reached the log, so the call must report success");
    assert!(
        matches!(done.after_commit, Some(LarderError::Snapshot(_))),
        "{:?}",
        done.after_commit
    );
    let events = log.log().events().unwrap();
    assert_eq!(events.len(), 1, "written exactly once");
    assert_eq!(log.log().wal().head().unwrap(), Some(done.value));
}

#[test]
fn the_clock_cache_is_written_and_a_lost_position_means_reread() {
    let dir = tempfile::tempdir().unwrap();
    let larder = Larder::init(dir.path()).unwrap();
    let log = larder.log("notes").unwrap();
    log.append("n", &1).unwrap();
    let second = log.append("n", &2).unwrap();
    let cache = log.clock_file();
    assert!(
        cache.starts_with(dir.path().join(".git/larder/larder/notes")),
        "namespaced: {}",
        cache.display()
    );
    let text = std::fs::read_to_string(&cache).expect("the clock cache is written");
    assert!(text.split_whitespace().count() == 4, "{text}");
    // A position pruned from the object store (git gc after a rewrite),
    // and one that is a real commit outside the log's history: both are
    // a reread, never an error, and causality still holds.
    let other = larder.log("other").unwrap();
    let foreign = other.append("x", &0).unwrap();
    for position in [
        "0123456789abcdef0123456789abcdef01234567".to_string(),
        foreign.to_string(),
    ] {
        std::fs::write(&cache, cache_line(&format!("{position} 1 0"))).unwrap();
        // A new handle (as in a new process) starts from the file; a
        // handle keeps its own copy of the cache once it has appended.
        let log = larder.log("notes").unwrap();
        let next = log.append("n", &3).unwrap();
        let events = log.events().unwrap();
        assert_eq!(events.last().unwrap().kind(), "n");
        assert_eq!(
            log.wal().read_since(second).unwrap().len() as u64,
            events.len() as u64 - 2
        );
        let ts: Vec<_> = events.iter().map(|e| e.timestamp()).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
        assert_eq!(log.wal().head().unwrap(), Some(next));
        // The cache healed: it names a commit of this log again.
        let healed = std::fs::read_to_string(&cache).unwrap();
        assert!(!healed.starts_with(&position), "{healed}");
    }
    // A torn or garbage cache is a reread too.
    std::fs::write(&cache, "garbage").unwrap();
    let log = larder.log("notes").unwrap();
    log.append("n", &4).unwrap();
    // The handle's later appends read nothing back and write the file
    // again within 16 appends.
    for n in 5..21 {
        log.append("n", &n).unwrap();
    }
    let text = std::fs::read_to_string(&cache).unwrap();
    let head = log.wal().head().unwrap().unwrap();
    assert!(text.starts_with(&head.to_string()), "{text}");
}

/// A clock cache line as larder writes it: the fields, then a checksum.
fn cache_line(line: &str) -> String {
    let sum = larder::codec::blake2b256(&[b"larder clock cache\0", line.as_bytes()]);
    format!("{line} {}\n", larder::codec::to_hex(&sum[..8]))
}

#[test]
fn a_corrupted_clock_cache_cannot_lower_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let ahead = ManualClock::new(1_000_000_100_000);
    let writer = Larder::init(dir.path())
        .unwrap()
        .with_clock(Arc::new(ahead));
    let log = writer.log("c").unwrap();
    log.append("a", &1).unwrap();
    log.append("a", &2).unwrap();
    // Flip the cached reading down to 1 ms, keeping the old checksum: the
    // head still matches, so without a check nothing would be reread.
    let cache = log.clock_file();
    let text = std::fs::read_to_string(&cache).unwrap();
    let mut parts: Vec<&str> = text.split_whitespace().collect();
    parts[1] = "1";
    std::fs::write(&cache, parts.join(" ") + "\n").unwrap();
    // A process whose wall clock is 100 s behind appends: causality says
    // its event still sorts after everything the log holds.
    let behind = Larder::open(dir.path())
        .unwrap()
        .with_clock(Arc::new(ManualClock::new(1_000_000_000_000)));
    behind.log("c").unwrap().append("b", &3).unwrap();
    let events = behind.log("c").unwrap().events().unwrap();
    assert_eq!(events.last().unwrap().kind(), "b", "{events:?}");
}

/// A handle keeps its own copy of the clock cache between appends (it
/// covers its own last commit); another writer's commits after that must
/// still be read and observed before the next stamp, whatever the clocks.
#[test]
fn a_handles_own_clock_cache_still_observes_other_writers() {
    let dir = tempfile::tempdir().unwrap();
    Larder::init(dir.path()).unwrap();
    let behind = Larder::open(dir.path())
        .unwrap()
        .with_clock(Arc::new(ManualClock::new(1_000_000_000_000)));
    let ahead = Larder::open(dir.path())
        .unwrap()
        .with_clock(Arc::new(ManualClock::new(1_000_000_100_000)));
    let slow = behind.log("c").unwrap();
    let fast = ahead.log("c").unwrap();
    slow.append("slow", &1).unwrap();
    slow.append("slow", &2).unwrap();
    fast.append("fast", &3).unwrap();
    // `slow` cached its own commit; the head is now `fast`'s.
    slow.append("slow", &4).unwrap();
    let events = slow.events().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, ["slow", "slow", "fast", "slow"], "{events:?}");
    let ts: Vec<_> = events.iter().map(|e| e.timestamp()).collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
}

#[test]
fn concurrent_first_uses_agree_on_one_actor() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        Larder::init(dir.path()).unwrap();
        let path = dir.path().to_path_buf();
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let larder = Larder::open(&path).unwrap();
                    barrier.wait();
                    larder.actor().map(|a| a.to_string())
                })
            })
            .collect();
        let ids: Vec<String> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: {e}"))
            })
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "round {round}: {ids:?}"
        );
    }
}

#[test]
fn opening_to_read_writes_nothing() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    Larder::init_bare(&remote).unwrap();
    let writer = Larder::init(top.path().join("w")).unwrap();
    writer.log("notes").unwrap().append("n", &1).unwrap();
    writer
        .sync("notes", &remote.display().to_string())
        .unwrap()
        .sync()
        .unwrap();
    let before = larder_testkit::fixtures::files(&remote);
    let reader = Larder::open(&remote).unwrap();
    assert_eq!(reader.existing_actor().unwrap(), None);
    let _ = reader.logs().unwrap();
    let _ = reader.log("notes").unwrap().events().unwrap();
    drop(reader);
    assert_eq!(
        larder_testkit::fixtures::files(&remote),
        before,
        "a read left files behind"
    );
    assert!(!remote.join("larder/actor").exists());
    // The first write creates the identity.
    let writer2 = Larder::open(&remote).unwrap();
    writer2.log("local").unwrap().append("n", &1).unwrap();
    assert!(remote.join("larder/actor").exists());
}

#[test]
fn the_clock_is_injectable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_800_000_000_000);
    let larder = Larder::init(dir.path())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let log = larder.log("sim").unwrap();
    log.append("a", &1).unwrap();
    clock.advance(5);
    log.append("b", &2).unwrap();
    let ts: Vec<_> = log
        .events()
        .unwrap()
        .iter()
        .map(|e| e.timestamp())
        .collect();
    assert_eq!(ts[0].millis, 1_800_000_000_000);
    assert_eq!(ts[1].millis, 1_800_000_000_005);
    // Locks read the same clock: a lease expires by simulated time.
    let locks = larder.locks().unwrap();
    let lease = locks.acquire("r", 1_000).unwrap();
    assert_eq!(lease.expires_ms, 1_800_000_000_005 + 1_000);
}
