//! Packs larder did not write, or cannot read, never stop it: next to a
//! damaged pack, a `multi-pack-index` or a `.keep` pack, appends still
//! consolidate (the pack count stays bounded), reads and compaction work,
//! and `git` accepts the result.

use std::path::Path;
use std::process::Command;

use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_git::{GitRepo, ObjectBatch};
use larder_wal::WalManager;

fn event(n: u64) -> Envelope {
    Envelope::new(
        ActorId::new("a").unwrap(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "test.event",
        Payload::from_serde(&n).unwrap(),
    )
    .unwrap()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn append(wal: &WalManager, from: u64, to: u64) {
    for n in from..to {
        wal.append(&[event(n)]).unwrap();
    }
    wal.finish_maintenance();
}

/// Appends 200 events after `hazard` has been applied to the repository
/// (after 20 appends), and checks reads, the pack bound and compaction.
fn appends_stay_consolidated(hazard: impl Fn(&Path, &GitRepo)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let wal = WalManager::new(repo.clone(), "test").unwrap();
    append(&wal, 0, 20);
    hazard(dir.path(), &repo);
    let wal = WalManager::new(GitRepo::open(dir.path()).unwrap(), "test").unwrap();
    append(&wal, 20, 220);
    // Without consolidation this would be 200+ packs.
    let packs = wal.repo().pack_count().unwrap();
    assert!(packs < 45, "{packs} packs");
    assert_eq!(wal.read_all().unwrap().len(), 220);
    wal.compact().unwrap();
    assert!(wal.repo().pack_count().unwrap() < 12);
    let fresh = WalManager::new(GitRepo::open(dir.path()).unwrap(), "test").unwrap();
    assert_eq!(fresh.read_all().unwrap().len(), 220);
    assert!(fresh.verify().unwrap().is_ok());
    dir
}

#[test]
fn a_damaged_pack_does_not_stop_consolidation() {
    let dir = appends_stay_consolidated(|_, repo| {
        let mut batch = ObjectBatch::new();
        batch.blob(b"not part of the log".to_vec()).unwrap();
        let pack = repo.write_batch(&batch, false).unwrap().unwrap();
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[16] ^= 0x40;
        std::fs::write(&pack, bytes).unwrap();
    });
    let repo = GitRepo::open(dir.path()).unwrap();
    let check = repo.check_packs().unwrap();
    assert_eq!(check.damaged.len(), 1, "{check:?}");
    assert!(check.damaged[0].pack.exists());
}

#[test]
fn a_multi_pack_index_does_not_stop_consolidation() {
    let dir = appends_stay_consolidated(|dir, _| {
        git(dir, &["multi-pack-index", "write"]);
    });
    git(dir.path(), &["multi-pack-index", "verify"]);
    git(dir.path(), &["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn a_kept_pack_does_not_stop_consolidation() {
    let dir = appends_stay_consolidated(|dir, _| {
        let idx = std::fs::read_dir(dir.join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .unwrap();
        std::fs::write(idx.with_extension("keep"), b"").unwrap();
    });
    git(dir.path(), &["fsck", "--strict", "--no-dangling"]);
}
