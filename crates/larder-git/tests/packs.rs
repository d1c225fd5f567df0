//! Packs larder writes and merges, checked with the `git` binary: batches
//! pass `git verify-pack` and `fsck`, merging keeps every object of git's
//! own delta-compressed packs, and a damaged pack is named and left alone
//! while the others merge.

use std::path::Path;
use std::process::{Command, Stdio};

use larder_git::{ConsolidationPolicy, EntryKind, GitError, GitRepo, ObjectBatch, TreeEntry};

fn git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the git binary runs");
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pack_files(dir: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn a_batch_is_one_pack_that_git_reads() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let mut batch = ObjectBatch::new();
    let big: Vec<u8> = (0..200_000u32).flat_map(|n| n.to_le_bytes()).collect();
    let blob = batch.blob(big.clone()).unwrap();
    let small = batch.blob(b"hello".to_vec()).unwrap();
    let tree = batch
        .tree(&[
            TreeEntry {
                name: "small".into(),
                kind: EntryKind::Blob,
                id: small,
            },
            TreeEntry {
                name: "big".into(),
                kind: EntryKind::Blob,
                id: blob,
            },
        ])
        .unwrap();
    let commit = batch.commit(tree, &[], "batch\n", None, 1).unwrap();
    assert_eq!(batch.len(), 4);
    let pack = repo.write_batch(&batch, false).unwrap().unwrap();
    assert_eq!(repo.pack_count().unwrap(), 1);
    // Ids match what git computes, and git verifies the pack and index.
    assert_eq!(
        git(dir.path(), &["hash-object", "--stdin"], Some(b"hello")).trim(),
        small.to_string()
    );
    git(
        dir.path(),
        &["verify-pack", pack.with_extension("idx").to_str().unwrap()],
        None,
    );
    git(
        dir.path(),
        &["fsck", "--full", "--strict", &commit.to_string()],
        None,
    );
    assert_eq!(repo.read_blob(blob).unwrap(), big);
    assert_eq!(repo.read_commit(commit).unwrap().tree, tree);
    assert_eq!(repo.write_batch(&ObjectBatch::new(), false).unwrap(), None);
}

#[test]
fn merging_keeps_every_object_of_git_delta_packs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    // Three packs made by git itself, of similar blobs, so they hold
    // offset deltas (OFS_DELTA), which merging turns into REF_DELTA.
    let mut ids = Vec::new();
    for round in 0..3 {
        let mut listed = String::new();
        for n in 0..20 {
            let text = format!("{}\nround {round} line {n}\n", "shared text ".repeat(200));
            let id = git(
                dir.path(),
                &["hash-object", "-w", "--stdin"],
                Some(text.as_bytes()),
            );
            listed.push_str(&id);
            ids.push((id.trim().to_string(), text));
        }
        let base = dir.path().join("objects/pack/pack");
        git(
            dir.path(),
            &["pack-objects", "-q", base.to_str().unwrap()],
            Some(listed.as_bytes()),
        );
        git(dir.path(), &["prune-packed"], None);
    }
    assert_eq!(pack_files(dir.path(), "pack").len(), 3);
    let deltas = |path: &Path| {
        git(
            dir.path(),
            &["verify-pack", "-v", path.to_str().unwrap()],
            None,
        )
        .lines()
        .filter(|l| l.split_whitespace().count() == 7)
        .count()
    };
    assert!(
        pack_files(dir.path(), "idx")
            .iter()
            .map(|p| deltas(p))
            .sum::<usize>()
            > 0
    );

    let merged = repo.merge_packs(u64::MAX).unwrap();
    assert_eq!((merged.packs_merged, merged.objects), (3, 60));
    let idx = pack_files(dir.path(), "idx");
    assert_eq!(idx.len(), 1);
    assert!(deltas(&idx[0]) > 0, "deltas are kept, not expanded");
    git(dir.path(), &["fsck", "--full", "--strict"], None);
    let fresh = GitRepo::open(dir.path()).unwrap();
    for (id, text) in &ids {
        let id = larder_git::ObjectId::from_hex(id.as_bytes()).unwrap();
        assert_eq!(fresh.read_blob(id).unwrap(), text.as_bytes());
    }
}

#[test]
fn tiers_merge_only_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let policy = ConsolidationPolicy {
        fan_in: 4,
        ..ConsolidationPolicy::default()
    };
    let mut blobs = Vec::new();
    for n in 0..3 {
        let mut batch = ObjectBatch::new();
        blobs.push(batch.blob(format!("blob {n}").into_bytes()).unwrap());
        repo.write_batch(&batch, false).unwrap();
    }
    assert_eq!(repo.consolidate_packs(&policy).unwrap().packs_merged, 0);
    assert_eq!(repo.pack_count().unwrap(), 3);
    let mut batch = ObjectBatch::new();
    blobs.push(batch.blob(b"blob 3".to_vec()).unwrap());
    repo.write_batch(&batch, false).unwrap();
    let done = repo.consolidate_packs(&policy).unwrap();
    assert_eq!(
        (done.packs_merged, done.packs_written, done.objects),
        (4, 1, 4)
    );
    assert_eq!(repo.pack_count().unwrap(), 1);
    for (n, id) in blobs.iter().enumerate() {
        assert_eq!(repo.read_blob(*id).unwrap(), format!("blob {n}").as_bytes());
    }
    git(dir.path(), &["fsck", "--full", "--strict"], None);
}

#[test]
fn a_damaged_pack_is_named_and_skipped_while_the_others_merge() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let mut first = ObjectBatch::new();
    let blob = first
        .blob(b"some bytes that will be damaged".to_vec())
        .unwrap();
    repo.write_batch(&first, false).unwrap();
    let mut intact = Vec::new();
    for n in 0..3 {
        let mut batch = ObjectBatch::new();
        intact.push(batch.blob(format!("intact {n}").into_bytes()).unwrap());
        repo.write_batch(&batch, false).unwrap();
    }
    // Flip a byte inside the first pack's only entry (after the 12-byte
    // header and the entry's own header).
    let mut damaged = None;
    for pack in pack_files(dir.path(), "pack") {
        let mut bytes = std::fs::read(&pack).unwrap();
        let idx = std::fs::read(pack.with_extension("idx")).unwrap();
        if idx.windows(20).any(|w| w == blob.as_bytes()) {
            bytes[16] ^= 0x40;
            std::fs::write(&pack, bytes).unwrap();
            damaged = Some(pack.clone());
        }
    }
    let damaged = damaged.unwrap();

    // check_packs names the pack and the entry; it does not stop there.
    let check = repo.check_packs().unwrap();
    assert_eq!(check.packs, 4);
    assert_eq!(check.objects, 3, "the intact packs' entries are checked");
    assert_eq!(check.damaged.len(), 1);
    assert_eq!(check.damaged[0].pack, damaged);
    assert_eq!(check.damaged[0].object, Some(blob));
    assert!(check.damaged[0].reason.contains("CRC-32"));
    let error = GitError::DamagedPack(check.damaged[0].clone()).to_string();
    assert!(error.contains(damaged.to_str().unwrap()), "{error}");

    // Tier consolidation goes on with the others, every time.
    let policy = ConsolidationPolicy {
        fan_in: 2,
        ..ConsolidationPolicy::default()
    };
    let done = repo.consolidate_packs(&policy).unwrap();
    assert_eq!(done.damaged, check.damaged);
    assert_eq!(done.packs_merged, 3);
    assert!(damaged.exists(), "the damaged pack is left where it is");
    assert_eq!(repo.pack_count().unwrap(), 2);
    for (n, id) in intact.iter().enumerate() {
        assert_eq!(
            repo.read_blob(*id).unwrap(),
            format!("intact {n}").as_bytes()
        );
    }
    // So does a full merge, and a compaction.
    let mut batch = ObjectBatch::new();
    let late = batch.blob(b"late".to_vec()).unwrap();
    repo.write_batch(&batch, false).unwrap();
    let merged = repo.merge_packs(u64::MAX).unwrap();
    assert_eq!((merged.packs_merged, merged.damaged.len()), (2, 1));
    let compacted = repo.compact(u64::MAX).unwrap();
    assert_eq!(compacted.damaged.len(), 1);
    assert_eq!(repo.read_blob(late).unwrap(), b"late");
    assert!(matches!(
        repo.read_blob(blob),
        Err(GitError::CorruptObject { id, .. }) if id == blob
    ));
}

#[test]
fn an_unreadable_index_is_named_not_reported_as_a_missing_object() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let mut ids = Vec::new();
    let mut paths = Vec::new();
    for n in 0..3 {
        let mut batch = ObjectBatch::new();
        ids.push(batch.blob(format!("blob {n}").into_bytes()).unwrap());
        paths.push(repo.write_batch(&batch, false).unwrap().unwrap());
    }
    let idx = paths[1].with_extension("idx");
    let bytes = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, &bytes[..100]).unwrap();
    let fresh = GitRepo::open(dir.path()).unwrap();
    assert_eq!(fresh.read_blob(ids[0]).unwrap(), b"blob 0");
    assert_eq!(fresh.read_blob(ids[2]).unwrap(), b"blob 2");
    match fresh.read_blob(ids[1]) {
        Err(GitError::DamagedPack(d)) => {
            assert_eq!(d.pack, paths[1]);
            assert!(d.reason.contains("index"), "{}", d.reason);
        }
        other => panic!("expected DamagedPack, got {other:?}"),
    }
    let check = fresh.check_packs().unwrap();
    assert_eq!(check.damaged.len(), 1);
    assert_eq!(check.damaged[0].pack, paths[1]);
    let done = fresh.merge_packs(u64::MAX).unwrap();
    assert_eq!((done.packs_merged, done.damaged.len()), (2, 1));
    assert_eq!(fresh.read_blob(ids[2]).unwrap(), b"blob 2");
}

#[test]
fn a_consolidation_already_running_elsewhere_is_left_to_finish() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let policy = ConsolidationPolicy {
        fan_in: 2,
        ..ConsolidationPolicy::default()
    };
    for n in 0..4 {
        let mut batch = ObjectBatch::new();
        batch.blob(format!("blob {n}").into_bytes()).unwrap();
        repo.write_batch(&batch, false).unwrap();
    }
    // Another process holds the consolidation lock (an flock, as larder
    // takes it): this call must not touch the packs.
    std::fs::create_dir_all(dir.path().join("larder")).unwrap();
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join("larder/packs.lock"))
        .unwrap();
    held.lock().unwrap();
    let busy = repo.consolidate_packs(&policy).unwrap();
    assert!(busy.busy);
    assert_eq!(busy.packs_merged, 0);
    assert_eq!(repo.pack_count().unwrap(), 4);
    held.unlock().unwrap();
    let done = repo.consolidate_packs(&policy).unwrap();
    assert!(!done.busy);
    assert_eq!(repo.pack_count().unwrap(), 1);
}

#[test]
fn what_a_crash_leaves_behind_reads_and_merges_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let mut blobs = Vec::new();
    for n in 0..4 {
        let mut batch = ObjectBatch::new();
        blobs.push(batch.blob(format!("blob {n}").into_bytes()).unwrap());
        repo.write_batch(&batch, false).unwrap();
    }
    // Each source pack's data and index, to put some back afterwards.
    let sources: Vec<[(std::path::PathBuf, Vec<u8>); 2]> = pack_files(dir.path(), "pack")
        .into_iter()
        .map(|pack| {
            ["pack", "idx"].map(|ext| {
                let path = pack.with_extension(ext);
                let bytes = std::fs::read(&path).unwrap();
                (path, bytes)
            })
        })
        .collect();
    assert_eq!(repo.merge_packs(u64::MAX).unwrap().packs_merged, 4);

    // Killed while deleting merged packs: two of the sources survive next
    // to the merged pack (their objects now twice on disk).
    for (path, bytes) in sources.iter().take(2).flatten() {
        std::fs::write(path, bytes).unwrap();
    }
    assert_eq!(pack_files(dir.path(), "idx").len(), 3);
    // Killed inside write_batch: a temporary file, and a pack renamed into
    // place whose index never was.
    let pack_dir = dir.path().join("objects/pack");
    std::fs::write(pack_dir.join("tmp_pack_crashed"), b"half a pack").unwrap();
    let mut orphan = ObjectBatch::new();
    let unreachable = orphan.blob(b"never indexed".to_vec()).unwrap();
    let orphan_pack = repo.write_batch(&orphan, false).unwrap().unwrap();
    std::fs::remove_file(orphan_pack.with_extension("idx")).unwrap();

    let fresh = GitRepo::open(dir.path()).unwrap();
    for (n, id) in blobs.iter().enumerate() {
        assert_eq!(
            fresh.read_blob(*id).unwrap(),
            format!("blob {n}").as_bytes()
        );
    }
    assert!(matches!(
        fresh.read_blob(unreachable),
        Err(GitError::ObjectMissing { .. })
    ));
    git(dir.path(), &["fsck", "--full", "--strict"], None);
    // The next merge folds the survivors in (each object once) and leaves
    // the crash debris alone.
    let merged = fresh.merge_packs(u64::MAX).unwrap();
    assert_eq!(merged.objects, 4);
    assert_eq!(pack_files(dir.path(), "idx").len(), 1);
    assert!(pack_dir.join("tmp_pack_crashed").exists());
    for (n, id) in blobs.iter().enumerate() {
        assert_eq!(
            fresh.read_blob(*id).unwrap(),
            format!("blob {n}").as_bytes()
        );
    }
    git(dir.path(), &["fsck", "--full", "--strict"], None);
}

#[test]
fn packs_git_marked_to_stay_are_never_merged() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let mut paths = Vec::new();
    for n in 0..3 {
        let mut batch = ObjectBatch::new();
        batch.blob(format!("blob {n}").into_bytes()).unwrap();
        paths.push(repo.write_batch(&batch, false).unwrap().unwrap());
    }
    std::fs::write(paths[0].with_extension("keep"), b"").unwrap();
    let merged = repo.merge_packs(u64::MAX).unwrap();
    assert_eq!(merged.packs_merged, 2);
    assert!(paths[0].exists(), "the kept pack stays");
    assert_eq!(repo.pack_count().unwrap(), 2);
    // With a multi-pack index, which names packs itself, nothing is touched.
    git(dir.path(), &["multi-pack-index", "write"], None);
    let mut batch = ObjectBatch::new();
    batch.blob(b"one more".to_vec()).unwrap();
    repo.write_batch(&batch, false).unwrap();
    assert_eq!(repo.merge_packs(u64::MAX).unwrap().packs_merged, 0);
    assert_eq!(repo.pack_count().unwrap(), 3);
    git(dir.path(), &["fsck", "--full", "--strict"], None);
}

#[test]
fn compaction_deletes_temp_packs_killed_writers_left_but_not_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let pack_dir = repo.objects_dir().join("pack");
    std::fs::create_dir_all(&pack_dir).unwrap();
    let old = pack_dir.join("tmp_pack_killed");
    let fresh = pack_dir.join("tmp_pack_live");
    std::fs::write(&old, b"half a pack").unwrap();
    std::fs::write(&fresh, b"being written").unwrap();
    let status = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(status.success());
    let done = repo.compact(64 << 20).unwrap();
    assert_eq!(done.temp_files_removed, 1);
    assert!(!old.exists());
    assert!(fresh.exists());
}
