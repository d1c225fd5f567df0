//! Compaction keeps the log readable, shrinks it, and leaves git happy.

mod common;

use std::path::Path;

use common::{batch, event, git, keys, wal_in};
use larder_git::GitRepo;
use larder_wal::WalManager;

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

#[test]
fn compaction_packs_everything_and_reads_stay_identical() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    let mut commits = Vec::new();
    for n in 0..1000 {
        commits.push(wal.append(&[event("a", n)]).unwrap());
    }
    let before = wal.read_all().unwrap();
    let loose_bytes = disk_usage(&dir.path().join("objects"));
    let packed = wal.compact().unwrap();
    assert!(
        packed >= 8000,
        "each append wrote 8 objects, packed {packed}"
    );
    assert!(wal.repo().loose_object_ids().unwrap().is_empty());
    let packed_bytes = disk_usage(&dir.path().join("objects"));
    // 10k appends must fit in 20 MB after compaction: 2 MB per 1k here.
    assert!(
        packed_bytes < 2_000_000,
        "{packed_bytes} bytes after compaction"
    );
    assert!(
        packed_bytes * 10 < loose_bytes,
        "{loose_bytes} -> {packed_bytes}"
    );
    // The same handle and a fresh one both read the same log.
    assert_eq!(wal.read_all().unwrap(), before);
    let fresh = WalManager::new(GitRepo::open(dir.path()).unwrap(), "test").unwrap();
    assert_eq!(fresh.read_all().unwrap(), before);
    assert_eq!(fresh.read_since(commits[989]).unwrap().len(), 10);
    assert!(fresh.verify().unwrap().is_ok());
    git(dir.path(), &["fsck", "--full", "--strict"]);
    assert_eq!(
        git(dir.path(), &["count-objects", "-v"])
            .lines()
            .next()
            .unwrap(),
        "count: 0"
    );

    // Appending continues; a second compaction adds a second pack.
    fresh.append(&batch("b", 0, 3)).unwrap();
    assert_eq!(fresh.compact().unwrap(), 8);
    assert_eq!(keys(&fresh.read_all().unwrap()).len(), 1003);
    git(dir.path(), &["fsck", "--full", "--strict"]);
    assert_eq!(wal.compact().unwrap(), 0, "nothing loose: nothing to do");
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
