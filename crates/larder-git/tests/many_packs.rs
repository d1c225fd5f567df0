//! No count of packs, and no pack git manages itself, makes a repository
//! unreadable: 5,000 packs read through fresh and long-lived handles; a
//! `multi-pack-index` and `.keep` packs next to larder's own; transfers
//! arrive as packs; a remote's stale ref lock is named. The `git` binary is
//! the oracle.

use std::path::Path;

use larder_git::{
    ConsolidationPolicy, EntryKind, GitError, GitRepo, ObjectBatch, ObjectId, TreeEntry, parse_push,
};
use larder_testkit::fixtures::count_objects;
use larder_testkit::git;

/// One commit (blob, tree, commit) on `parent`, written as its own pack.
fn commit_pack(repo: &GitRepo, parent: Option<ObjectId>, n: usize) -> (ObjectId, ObjectId) {
    let mut batch = ObjectBatch::new();
    let blob = batch.blob(format!("event {n}\n").into_bytes()).unwrap();
    let tree = batch
        .tree(&[TreeEntry {
            name: "e".into(),
            kind: EntryKind::Blob,
            id: blob,
        }])
        .unwrap();
    let parents: Vec<ObjectId> = parent.into_iter().collect();
    let commit = batch
        .commit(tree, &parents, &format!("c{n}\n"), None, n as i64)
        .unwrap();
    repo.write_batch(&batch, false).unwrap();
    (commit, blob)
}

#[test]
fn five_thousand_packs_stay_readable_through_fresh_and_long_lived_handles() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    // Opened while the repository is empty: its store is sized for that.
    let early = GitRepo::open(dir.path()).unwrap();
    let mut head = None;
    let mut blobs = Vec::new();
    for n in 0..5_000 {
        let (commit, blob) = commit_pack(&repo, head, n);
        head = Some(commit);
        blobs.push(blob);
    }
    let head = head.unwrap();
    repo.update_ref("refs/t/log", larder_git::Expected::MustNotExist, head, "t")
        .unwrap();
    assert_eq!(count_objects(dir.path()), (0, 5_000));

    let fresh = GitRepo::open(dir.path()).unwrap();
    assert_eq!(fresh.walk(&[head], &[]).unwrap().len(), 5_000);
    for (n, blob) in blobs.iter().enumerate() {
        assert_eq!(
            fresh.read_blob(*blob).unwrap(),
            format!("event {n}\n").as_bytes()
        );
    }
    // The handle opened before the packs piled up has too few slots for
    // them: it must neither fail nor call anything corrupt or missing.
    assert!(early.has_object(blobs[4_999]));
    assert_eq!(early.read_blob(blobs[4_999]).unwrap(), b"event 4999\n");
    assert_eq!(early.read_commit(head).unwrap().message, "c4999\n");
    assert!(
        early
            .is_ancestor(blobs_commit(&fresh, head, 10), head)
            .unwrap()
    );
    assert_eq!(early.check_packs().unwrap().damaged, vec![]);

    // Writing into it and copying out of it work too.
    let (next, _) = commit_pack(&fresh, Some(head), 5_000);
    let other_dir = tempfile::tempdir().unwrap();
    let other = GitRepo::init_bare(other_dir.path()).unwrap();
    assert_eq!(
        other.copy_reachable_from(&fresh, &[next]).unwrap(),
        3 * 5_001
    );
    assert_eq!(count_objects(other_dir.path()), (0, 1));
    // A transfer into the handle with too few slots: it must still see
    // that it holds everything below the new commit (5,001 packs).
    let (newer, _) = commit_pack(&other, Some(next), 5_001);
    assert_eq!(early.copy_reachable_from(&other, &[newer]).unwrap(), 3);

    // One merge brings it back to a single pack, which git verifies.
    let done = fresh
        .consolidate_packs(&ConsolidationPolicy::default())
        .unwrap();
    assert_eq!(done.packs_merged, 5_002);
    assert_eq!(count_objects(dir.path()), (0, 1));
    git(dir.path(), &["fsck", "--strict", "--no-dangling"]);
    assert_eq!(early.read_blob(blobs[0]).unwrap(), b"event 0\n");
}

/// The commit `back` generations below `head` (first parents).
fn blobs_commit(repo: &GitRepo, head: ObjectId, back: usize) -> ObjectId {
    let mut at = head;
    for _ in 0..back {
        at = repo.read_commit(at).unwrap().parents[0];
    }
    at
}

#[test]
fn a_multi_pack_index_and_keep_packs_never_make_larder_fail() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let mut head = None;
    let mut blobs = Vec::new();
    let mut packs = Vec::new();
    for n in 0..6 {
        let (commit, blob) = commit_pack(&repo, head, n);
        head = Some(commit);
        blobs.push(blob);
        packs.push(
            std::fs::read_dir(dir.path().join("objects/pack"))
                .unwrap()
                .count(),
        );
    }
    git(dir.path(), &["multi-pack-index", "write"]);
    // A kept pack after the multi-pack index, and more of larder's own.
    let (kept_commit, kept_blob) = commit_pack(&repo, head, 6);
    blobs.push(kept_blob);
    let kept = std::fs::read_dir(dir.path().join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "idx")
                && std::fs::read(p)
                    .unwrap()
                    .windows(20)
                    .any(|w| w == kept_blob.as_bytes())
        })
        .unwrap()
        .with_extension("keep");
    std::fs::write(&kept, b"").unwrap();
    head = Some(kept_commit);
    for n in 7..40 {
        let (commit, blob) = commit_pack(&repo, head, n);
        head = Some(commit);
        blobs.push(blob);
    }
    let head = head.unwrap();
    // A log's ref names the history, as in any repository larder writes
    // (compaction keeps what no ref reaches in a cruft pack, and transfers
    // copy such objects again).
    repo.update_ref(
        "refs/larder/t/wal",
        larder_git::Expected::MustNotExist,
        head,
        "t",
    )
    .unwrap();
    let read_all = |r: &GitRepo| {
        for (n, blob) in blobs.iter().enumerate() {
            assert_eq!(
                r.read_blob(*blob).unwrap(),
                format!("event {n}\n").as_bytes()
            );
        }
        assert_eq!(r.walk(&[head], &[]).unwrap().len(), 40);
    };
    let fresh = GitRepo::open(dir.path()).unwrap();
    read_all(&fresh);
    assert_eq!(fresh.check_packs().unwrap().damaged, vec![]);

    // Consolidation merges the packs the multi-pack index does not name
    // (and not the kept one), so packs cannot pile up behind it.
    let policy = ConsolidationPolicy {
        fan_in: 4,
        ..ConsolidationPolicy::default()
    };
    let done = fresh.consolidate_packs(&policy).unwrap();
    assert!(done.packs_merged >= 32, "{done:?}");
    let done = fresh.compact(u64::MAX).unwrap();
    assert!(done.damaged.is_empty());
    // 6 named by the multi-pack index, the kept one, and one merged.
    assert_eq!(fresh.pack_count().unwrap(), 8);
    assert!(kept.exists());
    read_all(&fresh);
    read_all(&GitRepo::open(dir.path()).unwrap());
    git(dir.path(), &["multi-pack-index", "verify"]);
    git(dir.path(), &["fsck", "--strict", "--no-dangling"]);

    // A transfer out of it and into it.
    let other_dir = tempfile::tempdir().unwrap();
    let other = GitRepo::init_bare(other_dir.path()).unwrap();
    assert_eq!(other.copy_reachable_from(&fresh, &[head]).unwrap(), 120);
    let (newer, _) = commit_pack(&other, Some(head), 40);
    assert_eq!(fresh.copy_reachable_from(&other, &[newer]).unwrap(), 3);
    assert_eq!(fresh.walk(&[newer], &[]).unwrap().len(), 41);
    git(dir.path(), &["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn small_transfers_arrive_as_one_pack_not_loose_objects() {
    let src_dir = tempfile::tempdir().unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let src = GitRepo::init_bare(src_dir.path()).unwrap();
    let dst = GitRepo::init_bare(dst_dir.path()).unwrap();
    let mut head = None;
    for n in 0..10 {
        let (commit, _) = commit_pack(&src, head, n);
        head = Some(commit);
        assert_eq!(dst.copy_reachable_from(&src, &[commit]).unwrap(), 3);
    }
    assert_eq!(count_objects(dst_dir.path()), (0, 10));
    let policy = ConsolidationPolicy {
        fan_in: 4,
        ..ConsolidationPolicy::default()
    };
    let done = dst.maintain(&policy).unwrap();
    assert!(!done.busy);
    assert!(count_objects(dst_dir.path()).1 <= 4);
    // Loose objects written by others are packed once many pile up.
    for n in 0..3_000 {
        dst.write_blob(format!("loose {n}").as_bytes()).unwrap();
    }
    assert!(count_objects(dst_dir.path()).0 == 3_000);
    let done = dst.maintain(&policy).unwrap();
    assert_eq!(done.loose_objects, 3_000);
    assert_eq!(count_objects(dst_dir.path()).0, 0);
    git(dst_dir.path(), &["fsck", "--strict"]);
}

#[test]
fn a_remote_ref_lock_in_git_push_output_is_named() {
    let r = "refs/larder/kv/heads/a";
    let stdout =
        format!("To file:///r\n!\tHEAD:{r}\t[remote rejected] (failed to update ref)\nDone\n");
    let stderr = format!(
        "remote: error: cannot lock ref '{r}': Unable to create '/r/./{r}.lock': File exists.        \nremote: \nerror: failed to push some refs to 'file:///r'\n"
    );
    match parse_push("file:///r", r, &stdout, &stderr) {
        Err(e @ GitError::RemoteRefLocked { .. }) => {
            assert!(e.is_retryable());
            let GitError::RemoteRefLocked {
                lock_path,
                reference,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(lock_path, format!("/r/{r}.lock"));
            assert_eq!(reference, r);
        }
        other => panic!("expected RemoteRefLocked, got {other:?}"),
    }
    // A concurrent push moved the ref: the same "cannot lock ref", but a
    // lost compare-and-swap to retry, not a lock file to delete.
    let moved = format!(
        "remote: error: cannot lock ref '{r}': is at 1111111111111111111111111111111111111111 but expected 2222222222222222222222222222222222222222\nerror: failed to push some refs to 'file:///r'\n"
    );
    assert!(matches!(
        parse_push("file:///r", r, &stdout, &moved),
        Ok(larder_git::PushOutcome::Lost(_))
    ));
    // Another ref's lock is not ours.
    let other = stderr.replace("heads/a", "heads/b");
    assert!(matches!(
        parse_push("file:///r", r, &stdout, &other),
        Err(GitError::Remote { .. })
    ));
}

#[test]
fn a_stale_ref_lock_left_on_a_remote_is_reported_by_git_push() {
    let remote = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    GitRepo::init_bare(remote.path()).unwrap();
    let repo = GitRepo::init_bare(local.path()).unwrap();
    let (a, _) = commit_pack(&repo, None, 0);
    let url = format!("file://{}", remote.path().display());
    let r = "refs/larder/kv/heads/a";
    repo.push_with_git(&url, a, r, None).unwrap();
    let (b, _) = commit_pack(&repo, Some(a), 1);
    let lock = remote.path().join(format!("{r}.lock"));
    std::fs::write(&lock, b"").unwrap();
    match repo.push_with_git(&url, b, r, None) {
        Err(GitError::RemoteRefLocked { lock_path, .. }) => {
            assert_eq!(Path::new(&lock_path), lock);
        }
        other => panic!("expected RemoteRefLocked, got {other:?}"),
    }
    std::fs::remove_file(&lock).unwrap();
    repo.push_with_git(&url, b, r, None).unwrap();
}
