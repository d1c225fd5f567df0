//! The view is a cache of the WAL (DESIGN.md, semantics 9): a damaged
//! `view.redb`, a position pruned from the object store, or an envelope that
//! sits in two commits never gives a panic, a permanent error or a state a
//! full replay would not give.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_crdt::{
    CrdtError, KvProjection, ManualClock, Projection, Projector, StateHash, sort_events,
};
use larder_git::{GitRepo, ObjectId};
use larder_snapshot::{HealCause, SnapshotManager, SnapshotPolicy, View};
use larder_testkit::{Rng, git, seed_from_env};
use larder_wal::{WalManager, WalOptions, commits_between};

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

fn manager(wal: &WalManager) -> SnapshotManager {
    SnapshotManager::with_clock(
        wal.clone(),
        Arc::new(ManualClock::new(1_000)),
        SnapshotPolicy::OFF,
    )
}

/// The state of `P` folded over the history of `upto` (the whole log if
/// `None`), each event id once, in the total order.
fn replay<P: Projection + Default>(wal: &WalManager, upto: Option<ObjectId>) -> StateHash {
    let mut events = match upto {
        Some(commit) => commits_between(wal.repo(), commit, None, wal.ref_name())
            .unwrap()
            .flat_map(|c| c.unwrap().events)
            .collect(),
        None => wal.read_all().unwrap(),
    };
    sort_events(&mut events);
    let mut p = Projector::<P>::default();
    p.apply_all(&events).unwrap();
    p.state().state_hash()
}

/// How many of the view file's non-zero bytes after its first page are
/// flipped (a seeded sample).
const DATA_SAMPLE: usize = 6000;
/// How many of its zero bytes are flipped (a seeded sample).
const ZERO_SAMPLE: usize = 1000;

/// Flips one byte at a time of a real view file — every byte of its first
/// page, plus seeded samples of its other non-zero and zero bytes —
/// then opens the view and updates it. Nothing may panic, the opened state
/// must be exactly the fold of the log up to the position the view reports,
/// and the updated one the fold of the whole log.
#[test]
fn every_flipped_byte_of_the_view_heals_or_is_harmless() {
    let seed = seed_from_env("LARDER_VIEW_FUZZ_SEED", 0x01a4_de12);
    let mut rng = Rng::new(seed);

    // On tmpfs when there is one: each flip commits a redb transaction, and
    // what is tested is the bytes, not fsync's speed under load.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap_or_else(|_| tempfile::tempdir().unwrap())
    } else {
        tempfile::tempdir().unwrap()
    };
    let wal = WalManager::new(GitRepo::init(dir.path()).unwrap(), "kv").unwrap();
    // A few updates, so the file has freed pages and both commit slots used.
    let mut expected: HashMap<ObjectId, StateHash> = HashMap::new();
    let path = {
        let mut view = View::<KvProjection>::open(manager(&wal)).unwrap();
        for i in 0..4u64 {
            let batch: Vec<Envelope> = (0..3)
                .map(|j| set("a", &format!("k{}", (i * 3 + j) % 5), i * 10 + j, i * 3 + j))
                .collect();
            let head = wal.append(&batch).unwrap();
            view.update().unwrap();
            expected.insert(head, replay::<KvProjection>(&wal, Some(head)));
        }
        view.path().to_owned()
    };
    // One commit the view has not seen: every update below writes.
    let head = wal.append(&[set("b", "k0", 99, 100)]).unwrap();
    let full = replay::<KvProjection>(&wal, None);
    expected.insert(head, full);
    let empty = KvProjection::default().state_hash();

    let original = std::fs::read(&path).unwrap();
    // The first page (redb's header and commit slots) byte by byte, then
    // a seeded sample of the other non-zero bytes and of the zero bytes
    // (free space, padding). LARDER_VIEW_FUZZ_ALL=1 flips every byte
    // (about a minute and a half on two cores).
    let (mut offsets, rest): (Vec<usize>, Vec<usize>) =
        (0..original.len()).partition(|&i| i < 4096);
    let (data, zeros): (Vec<usize>, Vec<usize>) = rest.into_iter().partition(|&i| original[i] != 0);
    let data_bytes = data.len();
    if std::env::var_os("LARDER_VIEW_FUZZ_ALL").is_some() {
        offsets.extend(data);
        offsets.extend(zeros);
    } else {
        for (pool, n) in [(&data, DATA_SAMPLE), (&zeros, ZERO_SAMPLE)] {
            for _ in 0..n.min(pool.len()) {
                offsets.push(pool[(rng.next_u64() % pool.len() as u64) as usize]);
            }
        }
    }
    println!(
        "view file {} bytes; flipping {} bytes ({data_bytes} non-zero after the first page)",
        original.len(),
        offsets.len(),
    );
    let started = std::time::Instant::now();

    let (mut healed, mut panics, mut wrong) = (0, Vec::new(), Vec::new());
    for &offset in &offsets {
        let mut bytes = original.clone();
        let mask = (rng.next_u64() % 255 + 1) as u8;
        bytes[offset] ^= mask;
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut view = View::<KvProjection>::open(manager(&wal)).unwrap();
            let opened = view.state().state_hash();
            let at = view.position();
            let was_healed = view.healed().is_some();
            view.update().unwrap();
            (opened, at, was_healed, view.state().state_hash())
        }));
        match outcome {
            Err(_) => panics.push((offset, mask)),
            Ok((opened, at, was_healed, updated)) => {
                healed += usize::from(was_healed);
                let want = match at {
                    Some(p) => expected.get(&p).copied(),
                    None => Some(empty),
                };
                if want != Some(opened) || updated != full {
                    wrong.push((offset, mask));
                }
            }
        }
    }
    println!(
        "{} flips in {:?}: {healed} healed, {} panics, {} wrong states",
        offsets.len(),
        started.elapsed(),
        panics.len(),
        wrong.len()
    );
    panics.truncate(20);
    wrong.truncate(20);
    assert!(
        panics.is_empty() && wrong.is_empty(),
        "seed {seed}: panics at (offset, mask) {panics:?}…; wrong state at {wrong:?}…"
    );
}

/// A fresh file of garbage, a truncated file and an empty file all heal.
#[test]
fn garbage_truncated_and_empty_files_heal() {
    let (_dir, wal) = setup();
    wal.append(&[set("a", "x", 1, 1), set("a", "y", 2, 2)])
        .unwrap();
    let path = {
        let mut view = View::<KvProjection>::open(manager(&wal)).unwrap();
        view.update().unwrap();
        view.path().to_owned()
    };
    let good = std::fs::read(&path).unwrap();
    let mut rng = Rng::new(7);
    let garbage: Vec<u8> = (0..good.len()).map(|_| rng.next_u64() as u8).collect();
    for (what, bytes) in [
        ("garbage", garbage),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("header only", good[..512].to_vec()),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let mut view = View::<KvProjection>::open(manager(&wal)).unwrap();
        if what == "empty" {
            // redb makes a new database of an empty file: nothing stored,
            // nothing to heal; the first update fills it.
            assert_eq!(view.position(), None);
            view.update().unwrap();
        } else {
            assert!(view.healed().is_some(), "{what}: the caller is told");
        }
        assert_eq!(
            view.state().state_hash(),
            replay::<KvProjection>(&wal, None),
            "{what}"
        );
    }
}

/// A view left by an older build (no checksum) is not trusted: rebuilt.
#[test]
fn a_view_without_checksum_is_rebuilt() {
    let (_dir, wal) = setup();
    wal.append(&[set("a", "x", 1, 1)]).unwrap();
    let path = View::<KvProjection>::path_for(&manager(&wal));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        // What the previous format wrote, with a state that lies.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("view");
            let mut t = txn.open_table(def).unwrap();
            let head = wal.head().unwrap().unwrap().to_string();
            let lie = KvProjection::default().encode_state();
            t.insert("projection", b"larder.kv:1".as_slice()).unwrap();
            t.insert("position", head.as_bytes()).unwrap();
            t.insert("frontier", b"null".as_slice()).unwrap();
            t.insert("applied", 0u64.to_le_bytes().as_slice()).unwrap();
            t.insert("state", lie.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let view = View::<KvProjection>::open(manager(&wal)).unwrap();
    assert_eq!(
        view.state().state_hash(),
        replay::<KvProjection>(&wal, None)
    );
    assert!(matches!(
        view.healed().map(|h| &h.cause),
        Some(HealCause::ChecksumMismatch(_))
    ));
}

/// The view's position is pruned from the object store after the log was
/// rewritten: the next update rebuilds instead of failing forever.
#[test]
fn a_pruned_position_means_rebuild() {
    let (dir, wal) = setup();
    for i in 0..5 {
        wal.append(&[set("old", &format!("k{i}"), i, i)]).unwrap();
    }
    let old_position = {
        let mut view = View::<KvProjection>::open(manager(&wal)).unwrap();
        view.update().unwrap();
        view.position().unwrap()
    };
    // Rewrite: the log ref starts over with a fresh history, and the old
    // commits are pruned.
    git(dir.path(), &["update-ref", "-d", wal.ref_name()]);
    for i in 0..3 {
        wal.append(&[set("new", &format!("n{i}"), i, 50 + i)])
            .unwrap();
    }
    wal.finish_maintenance();
    git(dir.path(), &["reflog", "expire", "--expire=now", "--all"]);
    git(dir.path(), &["gc", "--prune=now", "--quiet"]);
    let probe = std::process::Command::new("git")
        .arg("-C")
        .arg(dir.path())
        .args(["cat-file", "-e", &old_position.to_string()])
        .output()
        .unwrap();
    assert!(!probe.status.success(), "the old position is pruned");

    let mut view = View::<KvProjection>::open(manager(&wal)).unwrap();
    view.update().unwrap();
    assert_eq!(
        view.state().state_hash(),
        replay::<KvProjection>(&wal, None)
    );
    assert_eq!(view.position(), wal.head().unwrap());
    assert_eq!(
        view.healed().map(|h| &h.cause),
        Some(&HealCause::PositionGone(old_position))
    );
    // And it stays healthy.
    wal.append(&[set("new", "n9", 9, 90)]).unwrap();
    assert_eq!(view.update().unwrap(), 1);
    assert_eq!(
        view.state().state_hash(),
        replay::<KvProjection>(&wal, None)
    );
}

/// A position still in the object store but no longer in the log's
/// history (rewritten, not yet pruned) also rebuilds.
#[test]
fn a_position_out_of_history_means_rebuild() {
    let (dir, wal) = setup();
    wal.append(&[set("old", "k", 1, 1)]).unwrap();
    let mut view = View::<KvProjection>::open(manager(&wal)).unwrap();
    view.update().unwrap();
    git(dir.path(), &["update-ref", "-d", wal.ref_name()]);
    // The log is gone: so is what the view folded.
    view.update().unwrap();
    assert_eq!(
        (view.position(), view.state()),
        (None, &KvProjection::default())
    );
    wal.append(&[set("new", "n", 2, 2)]).unwrap();
    view.update().unwrap();
    assert_eq!(
        view.state().state_hash(),
        replay::<KvProjection>(&wal, None)
    );
}

/// Counts the events it is fed: not idempotent. `COMMUTATIVE` picks
/// whether late events are folded in place or make the view rebuild.
#[derive(Default)]
struct Counter<const C: bool>(u64);

impl<const C: bool> Projection for Counter<C> {
    const NAME: &'static str = if C { "test.count.c" } else { "test.count.o" };
    const VERSION: u32 = 1;
    const COMMUTATIVE: bool = C;

    fn apply(&mut self, _: &Envelope) -> Result<(), CrdtError> {
        self.0 += 1;
        Ok(())
    }

    fn encode_state(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }

    fn decode_state(bytes: &[u8]) -> Result<Self, CrdtError> {
        let b: [u8; 8] = bytes.try_into().map_err(|_| CrdtError::StateDecode {
            projection: Self::NAME,
            reason: "not 8 bytes".into(),
        })?;
        Ok(Self(u64::from_le_bytes(b)))
    }
}

fn count(actor: &str, ms: u64) -> Envelope {
    Envelope::new(
        ActorId::new(actor).unwrap(),
        Timestamp::new(1_700_000_000_000 + ms, 0),
        "count",
        Payload::from_serde(&ms).unwrap(),
    )
    .unwrap()
}

fn dedupe_case<const C: bool>() {
    let (_dir, wal) = setup();
    let e1 = count("a", 10);
    wal.append(&[count("a", 1), e1.clone()]).unwrap();
    let mut view = View::<Counter<C>>::open(manager(&wal)).unwrap();
    view.update().unwrap();
    assert_eq!(view.state().0, 2);
    // The same envelope again, in a second commit (a retried append).
    wal.append(std::slice::from_ref(&e1)).unwrap();
    view.update().unwrap();
    assert_eq!(view.state().0, 2, "commutative {C}: counted once");
    // A late new event together with another duplicate.
    wal.append(&[count("b", 5)]).unwrap();
    wal.append(&[count("a", 1)]).unwrap();
    view.update().unwrap();
    assert_eq!(view.state().0, 3, "commutative {C}");
    assert_eq!(view.state().state_hash(), replay::<Counter<C>>(&wal, None));
    let updated = view.state().state_hash();
    view.rebuild().unwrap();
    assert_eq!(view.state().state_hash(), updated, "update == rebuild");
    // Survives a reopen (the id table is stored and checked).
    drop(view);
    let mut view = View::<Counter<C>>::open(manager(&wal)).unwrap();
    assert!(view.healed().is_none());
    wal.append(std::slice::from_ref(&e1)).unwrap();
    view.update().unwrap();
    assert_eq!(view.state().0, 3, "commutative {C}: after reopen");
}

#[test]
fn update_dedupes_an_envelope_in_two_commits() {
    dedupe_case::<true>();
    dedupe_case::<false>();
}

/// After a rebuild from a snapshot's stored state, the ids of the events
/// the snapshot covers are unknown: a duplicate of one of them must still
/// count once, in update and in rebuild alike.
#[test]
fn duplicates_of_snapshotted_events_count_once() {
    let (_dir, wal) = setup();
    let snaps = manager(&wal);
    let e = count("a", 3);
    wal.append(&[count("a", 1), e.clone(), count("a", 5)])
        .unwrap();
    snaps.create_with::<Counter<true>>().unwrap();
    wal.append(&[count("a", 7)]).unwrap();

    let mut view = View::<Counter<true>>::open(manager(&wal)).unwrap();
    let report = view.rebuild().unwrap();
    assert!(report.used_state);
    assert_eq!(view.state().0, 4);
    wal.append(std::slice::from_ref(&e)).unwrap();
    view.update().unwrap();
    assert_eq!(view.state().0, 4, "update: the duplicate counts once");
    // A rebuild whose tail holds the duplicate cannot use the stored state.
    let report = view.rebuild().unwrap();
    assert!(!report.used_state);
    assert_eq!(view.state().0, 4, "rebuild: the duplicate counts once");
    assert_eq!(
        view.state().state_hash(),
        replay::<Counter<true>>(&wal, None)
    );
}

/// Logs of one name in two ref namespaces keep separate view files, under
/// `<git dir>/larder/<namespace>/<log>/view.redb`.
#[test]
fn view_files_are_namespaced() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(dir.path()).unwrap();
    let default = WalManager::new(repo.clone(), "kv").unwrap();
    let other = WalManager::with_options(
        repo.clone(),
        "kv",
        WalOptions {
            namespace: "other".into(),
            ..WalOptions::default()
        },
    )
    .unwrap();
    default.append(&[set("a", "x", 1, 1)]).unwrap();
    other.append(&[set("a", "x", 2, 2)]).unwrap();
    let mut a = View::<KvProjection>::open(manager(&default)).unwrap();
    let mut b = View::<KvProjection>::open(manager(&other)).unwrap();
    a.update().unwrap();
    b.update().unwrap();
    let git_dir = repo.git_dir();
    assert_eq!(a.path(), git_dir.join("larder/larder/kv/view.redb"));
    assert_eq!(b.path(), git_dir.join("larder/other/kv/view.redb"));
    assert_eq!(
        a.state().state_hash(),
        replay::<KvProjection>(&default, None)
    );
    assert_eq!(b.state().state_hash(), replay::<KvProjection>(&other, None));
    assert_ne!(a.state().state_hash(), b.state().state_hash());
}

/// A second handle on the same file is an error, not a heal: healing would
/// delete a file that is in use.
#[test]
fn a_view_in_use_is_an_error_not_a_heal() {
    let (_dir, wal) = setup();
    wal.append(&[set("a", "x", 1, 1)]).unwrap();
    let mut first = View::<KvProjection>::open(manager(&wal)).unwrap();
    first.update().unwrap();
    assert!(matches!(
        View::<KvProjection>::open(manager(&wal)),
        Err(larder_snapshot::SnapshotError::View { .. })
    ));
    assert_eq!(first.update().unwrap(), 0);
    drop(first);
    let again = View::<KvProjection>::open(manager(&wal)).unwrap();
    assert!(again.healed().is_none());
    assert_eq!(
        again.state().state_hash(),
        replay::<KvProjection>(&wal, None)
    );
}

/// Counts events and refuses kind `poison`.
#[derive(Default)]
struct Picky(u64);

impl Projection for Picky {
    const NAME: &'static str = "test.picky";
    const VERSION: u32 = 1;
    const COMMUTATIVE: bool = true;

    fn apply(&mut self, event: &Envelope) -> Result<(), CrdtError> {
        if event.kind() == "poison" {
            return Err(CrdtError::BadEvent {
                event: event.id().to_hex(),
                kind: event.kind().into(),
                reason: "refused".into(),
            });
        }
        self.0 += 1;
        Ok(())
    }

    fn encode_state(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }

    fn decode_state(bytes: &[u8]) -> Result<Self, CrdtError> {
        Counter::<true>::decode_state(bytes).map(|c| Self(c.0))
    }
}

/// A projection that fails half-way through a batch leaves the view at its
/// stored state: retrying never folds the first half twice.
#[test]
fn a_failed_fold_leaves_the_stored_state() {
    let (_dir, wal) = setup();
    wal.append(&[count("a", 1)]).unwrap();
    let mut view = View::<Picky>::open(manager(&wal)).unwrap();
    view.update().unwrap();
    let before = (view.position(), view.state().0);
    let poison = Envelope::new(
        ActorId::new("a").unwrap(),
        Timestamp::new(1_700_000_000_000 + 9, 0),
        "poison",
        Payload::from_serde(&0u8).unwrap(),
    )
    .unwrap();
    wal.append(&[count("a", 2), count("a", 3), poison]).unwrap();
    for attempt in 0..3 {
        assert!(view.update().is_err(), "attempt {attempt}");
        assert_eq!(
            (view.position(), view.state().0),
            before,
            "attempt {attempt}"
        );
    }
}
