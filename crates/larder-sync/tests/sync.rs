//! Pull, merge and push through real remotes, with `git` as the oracle.

mod common;

use common::{Replica, bare_remote, flip_chunk};
use larder_codec::Timestamp;
use larder_git::{EntryKind, Expected, GitRepo, TreeEntry};
use larder_sync::{SyncError, SyncManager, Transport, merge_log};
use larder_wal::{MergeOutcome, WalManager};

fn ts(ms: u64) -> Timestamp {
    Timestamp::new(1_700_000_000_000 + ms, 0)
}

#[test]
fn two_replicas_converge_and_then_stay_quiet() {
    let remote = bare_remote();
    let a = Replica::new("alice", remote.path());
    let b = Replica::new("bob", remote.path());
    a.wal()
        .append(&[a.set("x", 1, ts(1)), a.set("y", 2, ts(2))])
        .unwrap();
    let pushed = a.sync.sync().unwrap();
    assert!(pushed.pushed);
    assert_eq!((pushed.commits_sent, pushed.events_sent), (1, 2));
    let pulled = b.sync.pull().unwrap();
    assert_eq!((pulled.commits_received, pulled.events_received), (1, 2));
    // The remote head landed in a staging ref; only the merge step touched
    // the live log ref (here: a fast-forward to the same commit).
    let staged = format!("{}alice", b.sync.staging_prefix());
    assert!(staged.starts_with("refs/remotes/"));
    assert_eq!(
        b.wal().repo().ref_target(&staged).unwrap(),
        a.wal().head().unwrap()
    );
    assert!(
        b.wal()
            .repo()
            .list_refs("refs/larder/kv/heads/")
            .unwrap()
            .is_empty(),
        "remote head refs are not mirrored as-is"
    );
    assert_eq!(
        pulled.merge,
        Some(MergeOutcome::FastForward(a.wal().head().unwrap().unwrap()))
    );
    // Both write concurrently, then exchange.
    a.wal().append(&[a.set("x", 10, ts(5))]).unwrap();
    b.wal()
        .append(&[b.set("x", 20, ts(4)), b.set("z", 3, ts(6))])
        .unwrap();
    for _ in 0..2 {
        a.sync.sync().unwrap();
        b.sync.sync().unwrap();
    }
    assert_eq!(a.ordered(), b.ordered());
    assert_eq!(a.ordered().len(), 5);
    assert_eq!(a.state_hash(), b.state_hash());
    assert_eq!(
        a.wal().head().unwrap(),
        b.wal().head().unwrap(),
        "deterministic merges: one head"
    );
    // Quiescent: another round changes nothing anywhere.
    let before = a.wal().head().unwrap();
    let again = a.sync.sync().unwrap();
    assert_eq!((again.commits_received, again.pushed), (0, false));
    assert_eq!(b.sync.sync().unwrap().merge, Some(MergeOutcome::UpToDate));
    assert_eq!(a.wal().head().unwrap(), before);
    // Plain git reads everything on the remote.
    let out = std::process::Command::new("git")
        .args([
            "-C",
            &remote.path().display().to_string(),
            "fsck",
            "--full",
            "--strict",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout)
    );
}

/// Staging refs live under `refs/remotes/`, which git logs in a non-bare
/// repository: a pull must not append a reflog line per staging ref per
/// pull (nothing would ever trim them).
#[test]
fn pulls_leave_no_reflog_for_staging_refs() {
    let remote = bare_remote();
    let a = Replica::new("alice", remote.path());
    let b = Replica::new("bob", remote.path());
    for n in 0..5 {
        a.wal().append(&[a.set("x", n, ts(n))]).unwrap();
        a.sync.sync().unwrap();
        let pulled = b.sync.pull().unwrap();
        assert_eq!(pulled.commits_received, 1);
    }
    let staged = format!("{}alice", b.sync.staging_prefix());
    assert_eq!(
        b.wal().repo().ref_target(&staged).unwrap(),
        a.wal().head().unwrap()
    );
    let log = b.dir.path().join(".git/logs").join(&staged);
    assert!(
        !log.exists(),
        "staging ref reflog: {:?}",
        std::fs::read_to_string(&log)
    );
    // git reads the staging ref as usual.
    let out = larder_testkit::git(b.dir.path(), &["rev-parse", &staged]);
    assert_eq!(out.trim(), a.wal().head().unwrap().unwrap().to_string());
}

#[test]
fn a_remote_with_a_corrupt_chunk_is_rejected_and_the_local_log_untouched() {
    let remote = bare_remote();
    let a = Replica::new("alice", remote.path());
    let b = Replica::new("bob", remote.path());
    a.wal().append(&[a.set("k", 1, ts(1))]).unwrap();
    a.sync.push().unwrap();
    b.wal().append(&[b.set("mine", 1, ts(1))]).unwrap();
    b.sync.pull().unwrap();
    let b_head = b.wal().head().unwrap();
    // A hostile actor publishes a head whose chunk has a flipped byte.
    let evil = GitRepo::open(remote.path()).unwrap();
    let good = evil
        .ref_target("refs/larder/kv/heads/alice")
        .unwrap()
        .unwrap();
    let info = evil.read_commit(good).unwrap();
    let forged = flip_chunk(&evil, info.tree);
    let commit = evil
        .write_commit(
            forged,
            &[good],
            "larder: append 1 event by alice\n\nLarder-Generation: 2\n",
            None,
            0,
        )
        .unwrap();
    evil.update_ref(
        "refs/larder/kv/heads/alice",
        Expected::MustBe(good),
        commit,
        "evil",
    )
    .unwrap();
    // The bad head is quarantined by name; the pull itself succeeds.
    let report = b.sync.pull().unwrap();
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    let bad = &report.rejected[0];
    assert_eq!(bad.head_ref, "refs/larder/kv/heads/alice");
    assert_eq!(bad.actor, "alice");
    assert_eq!((bad.head, bad.commit), (commit, Some(commit)));
    assert_eq!(b.wal().head().unwrap(), b_head, "nothing merged");
    assert!(b.wal().verify().unwrap().is_ok());
}

#[test]
fn a_corrupt_object_on_the_remote_is_rejected() {
    // Small transfers are copied loose, large ones as a pack: test both.
    for commits in [1u64, 12] {
        corrupt_object_case(commits);
    }
}

fn corrupt_object_case(commits: u64) {
    let remote = bare_remote();
    let a = Replica::new("alice", remote.path());
    let b = Replica::new("bob", remote.path());
    let mut head = None;
    for n in 0..commits {
        head = Some(a.wal().append(&[a.set("k", n, ts(n))]).unwrap());
    }
    let head = head.unwrap();
    a.sync.push().unwrap();
    let hex = head.to_string();
    let path = remote
        .path()
        .join("objects")
        .join(&hex[..2])
        .join(&hex[2..]);
    if path.exists() {
        // Replace the loose commit by another valid object's bytes.
        let blob = GitRepo::open(remote.path())
            .unwrap()
            .write_blob(b"not a commit")
            .unwrap();
        let blob_hex = blob.to_string();
        let blob_path = remote
            .path()
            .join("objects")
            .join(&blob_hex[..2])
            .join(&blob_hex[2..]);
        std::fs::remove_file(&path).unwrap();
        std::fs::copy(&blob_path, &path).unwrap();
    } else {
        // The push wrote a pack: flip a byte in the middle of its data.
        let pack_dir = remote.path().join("objects/pack");
        let pack = std::fs::read_dir(&pack_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "pack"))
            .unwrap();
        let mut bytes = std::fs::read(&pack).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&pack, bytes).unwrap();
    }
    let report = b.sync.pull().unwrap();
    assert_eq!(report.rejected.len(), 1, "{commits} commits: {report:?}");
    assert_eq!(report.rejected[0].head, head);
    assert_eq!(b.wal().head().unwrap(), None);
    assert!(
        b.wal()
            .repo()
            .ref_target("refs/larder/kv/wal")
            .unwrap()
            .is_none()
    );
}

#[test]
fn pushes_are_never_forced() {
    let remote = bare_remote();
    let a = Replica::new("alice", remote.path());
    a.wal().append(&[a.set("k", 1, ts(1))]).unwrap();
    a.sync.push().unwrap();
    // Someone rewrites alice's head ref on the remote to unrelated history.
    let other = WalManager::new(GitRepo::open(remote.path()).unwrap(), "scratch").unwrap();
    let unrelated = other.append(&[a.set("zzz", 9, ts(9))]).unwrap();
    let r = GitRepo::open(remote.path()).unwrap();
    let cur = r.ref_target("refs/larder/kv/heads/alice").unwrap().unwrap();
    r.update_ref(
        "refs/larder/kv/heads/alice",
        Expected::MustBe(cur),
        unrelated,
        "rewrite",
    )
    .unwrap();
    a.wal().append(&[a.set("k", 2, ts(2))]).unwrap();
    assert!(matches!(a.sync.push(), Err(SyncError::Diverged { .. })));
    assert_eq!(
        r.ref_target("refs/larder/kv/heads/alice").unwrap(),
        Some(unrelated),
        "not overwritten"
    );
}

#[test]
fn remotes_by_config_name_and_through_the_network_transport() {
    let remote = bare_remote();
    let a = Replica::new("alice", remote.path());
    a.wal().append(&[a.set("k", 1, ts(1))]).unwrap();
    a.sync.push().unwrap();

    // A replica that knows the remote as "origin" in its git config.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("git")
        .args(["init", "-q", &dir.path().display().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new("git")
        .args([
            "-C",
            &dir.path().display().to_string(),
            "remote",
            "add",
            "origin",
            &remote.path().display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let wal = WalManager::new(GitRepo::open(dir.path()).unwrap(), "kv").unwrap();
    let named =
        SyncManager::new(wal, larder_codec::ActorId::new("carol").unwrap(), "origin").unwrap();
    assert_eq!(
        named.staging_prefix(),
        "refs/remotes/origin/larder/kv/heads/"
    );
    assert_eq!(named.pull().unwrap().events_received, 1);

    // The same remote through the network transport: gix fetch, git push.
    let dir = tempfile::tempdir().unwrap();
    let wal = WalManager::new(GitRepo::init(dir.path()).unwrap(), "kv").unwrap();
    let url = format!("file://{}", remote.path().display());
    let net = SyncManager::with_transport(
        wal,
        larder_codec::ActorId::new("dave").unwrap(),
        "net",
        Transport::Network(url),
    );
    assert_eq!(net.pull().unwrap().events_received, 1);
    net.wal().append(&[a.set("d", 4, ts(4))]).unwrap();
    assert!(net.push().unwrap().pushed);
    assert!(!net.push().unwrap().pushed, "second push: up to date");
    let b = Replica::new("bob", remote.path());
    assert_eq!(b.sync.pull().unwrap().events_received, 2);
}

#[test]
fn deleted_refs_do_not_come_back_on_pull() {
    let remote = bare_remote();
    let a = Replica::new("alice", remote.path());
    let b = Replica::new("bob", remote.path());
    a.wal().append(&[a.set("k", 1, ts(1))]).unwrap();
    a.sync.push().unwrap();
    // Refs outside the heads namespace on the remote (say a snapshot some
    // replica published) are never mirrored by pull.
    let r = GitRepo::open(remote.path()).unwrap();
    let head = r.ref_target("refs/larder/kv/heads/alice").unwrap().unwrap();
    r.update_ref(
        "refs/larder/kv/snapshots/old",
        Expected::MustNotExist,
        head,
        "t",
    )
    .unwrap();
    b.sync.pull().unwrap();
    assert_eq!(
        b.wal()
            .repo()
            .ref_target("refs/larder/kv/snapshots/old")
            .unwrap(),
        None
    );
    // A local ref deliberately deleted stays deleted after the next pull.
    let local = b.wal().repo();
    local
        .update_ref(
            "refs/larder/kv/snapshots/mine",
            Expected::MustNotExist,
            head,
            "t",
        )
        .unwrap();
    local
        .delete_ref("refs/larder/kv/snapshots/mine", head)
        .unwrap();
    b.sync.pull().unwrap();
    assert_eq!(
        local.ref_target("refs/larder/kv/snapshots/mine").unwrap(),
        None
    );
}

#[test]
fn per_branch_logs_merge_like_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(dir.path()).unwrap();
    let main = WalManager::new(repo.clone(), "issues@main").unwrap();
    let feature = WalManager::new(repo, "issues@feature").unwrap();
    let r = Replica::new("alice", bare_remote().path());
    main.append(&[r.set("a", 1, ts(1))]).unwrap();
    merge_log(&main, &feature).unwrap();
    feature.append(&[r.set("b", 2, ts(2))]).unwrap();
    main.append(&[r.set("c", 3, ts(3))]).unwrap();
    assert!(matches!(
        merge_log(&feature, &main).unwrap(),
        MergeOutcome::Merged(_)
    ));
    assert_eq!(main.read_all().unwrap().len(), 3);
    assert_eq!(merge_log(&feature, &main).unwrap(), MergeOutcome::UpToDate);
    let _ = TreeEntry {
        name: String::new(),
        kind: EntryKind::Blob,
        id: main.head().unwrap().unwrap(),
    };
}
