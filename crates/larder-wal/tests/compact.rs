//! Packs: each append writes one small pack, consolidation keeps their
//! number logarithmic, compaction merges them into one; reads stay
//! identical throughout and git accepts every state.

mod common;

use std::path::Path;

use common::{batch, event, git, keys, wal_in};
use larder_git::{ConsolidationPolicy, GitRepo};
use larder_wal::{WalManager, WalOptions};

/// Bytes allocated on disk by every file under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            disk_usage(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}

fn wal_with(dir: &Path, consolidation: Option<ConsolidationPolicy>) -> WalManager {
    let options = WalOptions {
        consolidation,
        ..WalOptions::default()
    };
    WalManager::with_options(GitRepo::init_bare(dir).unwrap(), "test", options).unwrap()
}

#[test]
fn appends_write_packs_and_consolidation_bounds_their_number() {
    // Without consolidation every append is its own pack: the bound below
    // is consolidation's doing.
    let dir = tempfile::tempdir().unwrap();
    let unmerged = wal_with(dir.path(), None);
    for n in 0..100 {
        unmerged.append(&[event("a", n)]).unwrap();
    }
    assert_eq!(unmerged.repo().pack_count().unwrap(), 100);
    assert!(unmerged.repo().loose_object_ids().unwrap().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    for n in 0..1000 {
        wal.append(&[event("a", n)]).unwrap();
    }
    wal.finish_maintenance();
    let packs = wal.repo().pack_count().unwrap();
    // Fan-in 16: at most 15 per tier, and 1000 appends span three tiers.
    assert!(packs <= 45, "{packs} packs after 1000 appends");
    assert!(wal.repo().loose_object_ids().unwrap().is_empty());
    git(dir.path(), &["fsck", "--full", "--strict"]);
    let all = keys(&wal.read_all().unwrap());
    assert_eq!(
        all,
        (0..1000).map(|n| ("a".to_string(), n)).collect::<Vec<_>>()
    );
    let fresh = WalManager::new(GitRepo::open(dir.path()).unwrap(), "test").unwrap();
    assert!(fresh.verify().unwrap().is_ok());
    assert_eq!(
        git(dir.path(), &["rev-list", "--count", "refs/larder/test/wal"]).trim(),
        "1000"
    );
}

#[test]
fn compaction_merges_everything_into_one_pack_and_reads_stay_identical() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    let mut commits = Vec::new();
    for n in 0..1000 {
        commits.push(wal.append(&[event("a", n)]).unwrap());
    }
    let before = wal.read_all().unwrap();
    // Other layers (locks, snapshots) still write loose objects. This one
    // no ref reaches, and it is young: compaction keeps it, in a cruft
    // pack of its own (docs/wal.md, compaction).
    let loose = wal.repo().write_blob(b"loose").unwrap();
    let report = wal.compact().unwrap();
    assert_eq!(report.loose_objects, 1);
    assert!(report.packs_merged >= 2, "{report:?}");
    assert_eq!(
        (report.unreachable_kept, report.unreachable_dropped),
        (1, 0)
    );
    assert_eq!(report.packs_after, 2, "the log's pack and the cruft pack");
    assert_eq!(wal.repo().read_blob(loose).unwrap(), b"loose");
    assert!(wal.repo().loose_object_ids().unwrap().is_empty());
    let packed_bytes = disk_usage(&dir.path().join(".git/objects"));
    // 10k appends must fit in 20 MB after compaction: 2 MB per 1k here.
    assert!(
        packed_bytes < 2_000_000,
        "{packed_bytes} bytes after compaction"
    );
    // The same handle and a fresh one both read the same log.
    assert_eq!(wal.read_all().unwrap(), before);
    let fresh = WalManager::new(GitRepo::open(dir.path()).unwrap(), "test").unwrap();
    assert_eq!(fresh.read_all().unwrap(), before);
    assert_eq!(fresh.read_since(commits[989]).unwrap().len(), 10);
    assert!(fresh.verify().unwrap().is_ok());
    git(dir.path(), &["fsck", "--full", "--strict"]);
    let counts = git(dir.path(), &["count-objects", "-v"]);
    assert!(counts.contains("count: 0\n"), "{counts}");
    assert!(counts.contains("packs: 2\n"), "{counts}");

    // Appending continues; compacting again merges the new pack in.
    fresh.append(&batch("b", 0, 3)).unwrap();
    let again = fresh.compact().unwrap();
    assert_eq!((again.packs_merged, again.packs_after), (3, 2));
    assert_eq!(keys(&fresh.read_all().unwrap()).len(), 1003);
    git(dir.path(), &["fsck", "--full", "--strict"]);
    let idle = wal.compact().unwrap();
    assert_eq!((idle.loose_objects, idle.packs_merged), (0, 0));
}

#[test]
fn compaction_while_appending_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    wal.append(&batch("seed", 0, 1)).unwrap();
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            for n in 0..300 {
                wal.append(&[event("w", n)]).unwrap();
            }
        })
    };
    let mut compactions = 0;
    while !writer.is_finished() {
        wal.compact().unwrap();
        compactions += 1;
    }
    writer.join().unwrap();
    wal.compact().unwrap();
    assert!(compactions > 0);
    let all = keys(&wal.read_all().unwrap());
    assert_eq!(all.len(), 301);
    git(dir.path(), &["fsck", "--full", "--strict"]);
}

#[test]
fn readers_never_miss_an_object_while_packs_are_merged() {
    // Fan-in 2 merges on every other append, so packs are written and
    // deleted under the readers' feet all the time.
    let policy = ConsolidationPolicy {
        fan_in: 2,
        ..ConsolidationPolicy::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_with(dir.path(), Some(policy));
    wal.append(&[event("a", 0)]).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let path = dir.path().to_path_buf();
            let done = done.clone();
            std::thread::spawn(move || {
                // Each reader has its own long-lived handle.
                let reader = WalManager::new(GitRepo::open(&path).unwrap(), "test").unwrap();
                let mut seen = 0;
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                    let all = keys(&reader.read_all().unwrap());
                    assert!(all.len() >= seen, "the log shrank: {} < {seen}", all.len());
                    let expected: Vec<_> = (0..all.len() as u64)
                        .map(|n| ("a".to_string(), n))
                        .collect();
                    assert_eq!(all, expected);
                    seen = all.len();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for n in 1..400 {
        wal.append(&[event("a", n)]).unwrap();
    }
    wal.finish_maintenance();
    done.store(true, std::sync::atomic::Ordering::Release);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    assert_eq!(wal.read_all().unwrap().len(), 400);
    git(dir.path(), &["fsck", "--full", "--strict"]);
}

#[test]
fn dropping_the_last_handle_waits_for_the_background_merge() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    let clone = wal.clone();
    // The 16th commit (generation 16) starts a merge of the 16 packs.
    for n in 0..16 {
        wal.append(&[event("a", n)]).unwrap();
    }
    drop(wal);
    drop(clone);
    let repo = GitRepo::open(dir.path()).unwrap();
    assert_eq!(
        repo.pack_count().unwrap(),
        1,
        "the merge finished before drop returned"
    );
    let reader = WalManager::new(repo, "test").unwrap();
    assert_eq!(reader.read_all().unwrap().len(), 16);
}
