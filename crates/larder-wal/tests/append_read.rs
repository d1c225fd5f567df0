//! Appending and reading back, with `git` as the oracle.

mod common;

use common::{batch, event, git, keys, wal_in, wal_in_format};
use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_wal::{MergeOutcome, WalError, WalFormat, WalManager};

#[test]
fn order_is_preserved_within_and_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    let mut expected = Vec::new();
    let mut n = 0;
    for len in [1, 5, 2, 10, 1] {
        let b = batch("alice", n, len);
        wal.append(&b).unwrap();
        expected.extend(b);
        n += len;
    }
    assert_eq!(wal.read_all().unwrap(), expected);
}

#[test]
fn a_thousand_appends_pass_git_fsck_and_show_in_git_log() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    for n in 0..1000 {
        wal.append(&[event("alice", n)]).unwrap();
    }
    assert_eq!(wal.read_all().unwrap().len(), 1000);
    // A pack merge may still be running in the background; git reading
    // packs it is replacing would see them vanish.
    wal.finish_maintenance();
    git(dir.path(), &["fsck", "--full", "--strict", "--no-dangling"]);
    let log = git(dir.path(), &["log", "--format=%s", "refs/larder/test/wal"]);
    assert_eq!(log.lines().count(), 1000);
    assert!(log.lines().all(|l| l == "larder: append 1 event by alice"));
    // Format 2: the tree holds only this commit's chunk, named by its id.
    let tree = git(
        dir.path(),
        &["ls-tree", "-r", "--name-only", "refs/larder/test/wal"],
    );
    let files: Vec<_> = tree.lines().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let hex = files[0].strip_suffix(".bin").unwrap();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{files:?}"
    );
    // HEAD, the index and the work tree are untouched.
    assert!(git(dir.path(), &["status", "--porcelain"]).is_empty());
    // The record is in trailers git itself parses.
    let actors = git(
        dir.path(),
        &[
            "log",
            "--format=%(trailers:key=Larder-Actor,valueonly)%(trailers:key=Larder-Format,valueonly)",
            "-3",
            "refs/larder/test/wal",
        ],
    );
    assert_eq!(
        actors.split_whitespace().collect::<Vec<_>>(),
        ["alice", "2"].repeat(3)
    );
    let generation = git(
        dir.path(),
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Larder-Generation,valueonly)",
            "refs/larder/test/wal",
        ],
    );
    assert_eq!(generation.trim(), "1000");
}

#[test]
fn format_1_is_written_on_request_and_both_formats_read_in_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let old = wal_in_format(dir.path(), false, WalFormat::V1);
    old.append(&batch("alice", 0, 2)).unwrap();
    // Format 1's layout: the chunk under its date, the record in meta.json.
    let tree = git(
        dir.path(),
        &["ls-tree", "-r", "--name-only", "refs/larder/test/wal"],
    );
    let files: Vec<_> = tree.lines().collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with("events/2023/11/14/") && files[0].ends_with(".bin"));
    assert_eq!(files[1], "meta.json");
    let show = git(dir.path(), &["show", "refs/larder/test/wal:meta.json"]);
    assert!(show.contains("\"actor\": \"alice\""), "{show}");
    assert!(show.contains("\"format\": 1"), "{show}");

    // A format-2 writer continues the same log; a format-1 one after it.
    let new = WalManager::new(larder_git::GitRepo::open(dir.path()).unwrap(), "test").unwrap();
    new.append(&batch("bob", 0, 3)).unwrap();
    old.append(&batch("alice", 2, 1)).unwrap();
    let mut formats = Vec::new();
    let mut events = Vec::new();
    for c in new.commits_since(None).unwrap() {
        let c = c.unwrap();
        formats.push(c.meta.format);
        events.extend(c.events);
    }
    assert_eq!(formats, [1, 2, 1]);
    assert_eq!(
        keys(&events),
        [
            ("alice", 0),
            ("alice", 1),
            ("bob", 0),
            ("bob", 1),
            ("bob", 2),
            ("alice", 2)
        ]
        .map(|(a, n)| (a.to_string(), n))
    );
    assert!(new.verify().unwrap().is_ok());
    assert!(old.verify().unwrap().is_ok());
    git(dir.path(), &["fsck", "--full", "--strict", "--no-dangling"]);
}

#[test]
fn bare_repositories_work_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    assert!(wal.repo().is_bare());
    let first = wal.append(&batch("bob", 0, 3)).unwrap();
    wal.append(&batch("bob", 3, 2)).unwrap();
    assert_eq!(keys(&wal.read_all().unwrap()).len(), 5);
    assert_eq!(
        keys(&wal.read_since(first).unwrap()),
        vec![("bob".into(), 3), ("bob".into(), 4)]
    );
    git(dir.path(), &["fsck", "--full", "--strict"]);
}

#[test]
fn read_since_returns_exactly_the_newer_events() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    let mut commits = Vec::new();
    for n in 0..20 {
        commits.push(wal.append(&batch("carol", n * 2, 2)).unwrap());
    }
    for (i, c) in commits.iter().enumerate() {
        let since = wal.read_since(*c).unwrap();
        assert_eq!(since.len(), (19 - i) * 2);
        if let Some(first) = since.first() {
            assert_eq!(first, &event("carol", (i as u64 + 1) * 2));
        }
    }
    assert!(wal.read_since(*commits.last().unwrap()).unwrap().is_empty());
}

#[test]
fn read_since_a_foreign_commit_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    wal.append(&batch("a", 0, 1)).unwrap();
    let other = WalManager::new(wal.repo().clone(), "other").unwrap();
    let foreign = other.append(&batch("a", 5, 1)).unwrap();
    match wal.read_since(foreign) {
        Err(WalError::NotInLog { commit, .. }) => assert_eq!(commit, foreign),
        other => panic!("expected NotInLog, got {other:?}"),
    }
    // And on an empty log.
    let empty = WalManager::new(wal.repo().clone(), "empty").unwrap();
    assert!(matches!(
        empty.read_since(foreign),
        Err(WalError::NotInLog { .. })
    ));
    assert!(empty.read_all().unwrap().is_empty());
}

#[test]
fn empty_and_mixed_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    assert!(matches!(wal.append(&[]), Err(WalError::EmptyBatch)));
    let mixed = vec![event("a", 1), event("b", 2)];
    assert!(matches!(
        wal.append(&mixed),
        Err(WalError::MixedActors { index: 1, .. })
    ));
    assert_eq!(
        wal.head().unwrap(),
        None,
        "a refused batch writes nothing to the log"
    );
}

#[test]
fn invalid_log_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = larder_git::GitRepo::init(dir.path()).unwrap();
    for bad in ["", "a/b", "..", "x.lock", "-x", "a b"] {
        assert!(
            matches!(
                WalManager::new(repo.clone(), bad),
                Err(WalError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(WalManager::new(repo, "issues@main").is_ok());
}

#[test]
fn diverged_heads_merge_into_a_dag_read_parents_first() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    let base = wal.append(&batch("a", 0, 2)).unwrap();
    // Another log in the same repository branches from `base`.
    let side = WalManager::new(wal.repo().clone(), "side").unwrap();
    assert_eq!(side.merge(base).unwrap(), MergeOutcome::FastForward(base));
    let side_head = side.append(&batch("b", 100, 3)).unwrap();
    wal.append(&batch("a", 2, 1)).unwrap();
    let outcome = wal.merge(side_head).unwrap();
    let MergeOutcome::Merged(merge) = outcome else {
        panic!("expected a merge commit, got {outcome:?}")
    };
    let all = keys(&wal.read_all().unwrap());
    assert_eq!(all.len(), 6);
    assert_eq!(
        &all[..2],
        &[("a".into(), 0), ("a".into(), 1)],
        "the common base comes first"
    );
    // Merging again is a no-op; reading since the merge is empty.
    assert_eq!(wal.merge(side_head).unwrap(), MergeOutcome::UpToDate);
    assert!(wal.read_since(merge).unwrap().is_empty());
    // Reading since `base` gives the four events after it, from both sides.
    assert_eq!(wal.read_since(base).unwrap().len(), 4);
    let parents = git(
        dir.path(),
        &["log", "-1", "--format=%P", "refs/larder/test/wal"],
    );
    assert_eq!(parents.split_whitespace().count(), 2);
    git(dir.path(), &["fsck", "--full", "--strict"]);
}

#[test]
fn streaming_reads_yield_the_same_as_read_all() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    for n in 0..10 {
        wal.append(&batch("s", n * 3, 3)).unwrap();
    }
    let streamed: Vec<Envelope> = wal
        .events_since(None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(streamed, wal.read_all().unwrap());
    let commits: Vec<_> = wal
        .commits_since(None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(commits.len(), 10);
    assert!(commits.windows(2).all(|w| w[1].parents == vec![w[0].id]));
}

#[test]
fn timestamps_far_from_now_still_append() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    for millis in [0, u64::MAX] {
        let e = Envelope::new(
            ActorId::new("t").unwrap(),
            Timestamp::new(millis, 0),
            "k",
            Payload::from_serde(&1).unwrap(),
        )
        .unwrap();
        wal.append(&[e]).unwrap();
    }
    assert_eq!(wal.read_all().unwrap().len(), 2);
    assert!(wal.verify().unwrap().is_ok());
}

#[test]
fn read_since_never_touches_history_before_since() {
    // Proof by deletion: with the oldest commits' objects gone, reading the
    // recent tail still works, so it never visited them.
    // Every append writes one pack; consolidation is off so that each
    // commit's objects stay in their own pack, which is then deleted.
    let dir = tempfile::tempdir().unwrap();
    let options = larder_wal::WalOptions {
        consolidation: None,
        ..larder_wal::WalOptions::default()
    };
    let wal = WalManager::with_options(
        larder_git::GitRepo::init_bare(dir.path()).unwrap(),
        "test",
        options,
    )
    .unwrap();
    let pack_dir = dir.path().join("objects/pack");
    let packs = || -> std::collections::BTreeSet<std::path::PathBuf> {
        std::fs::read_dir(&pack_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let mut commits = Vec::new();
    let mut written = Vec::new();
    for n in 0..50 {
        let before = packs();
        commits.push(wal.append(&batch("a", n, 1)).unwrap());
        written.push(packs().difference(&before).cloned().collect::<Vec<_>>());
    }
    for files in &written[..40] {
        assert_eq!(files.len(), 2, "one pack and its index per append");
        for file in files {
            std::fs::remove_file(file).unwrap();
        }
    }
    let wal = WalManager::new(larder_git::GitRepo::open(dir.path()).unwrap(), "test").unwrap();
    assert_eq!(
        keys(&wal.read_since(commits[45]).unwrap()),
        (46..50).map(|n| ("a".to_string(), n)).collect::<Vec<_>>()
    );
    assert!(
        wal.read_all().is_err(),
        "the full read does need the deleted history"
    );
}

#[test]
fn read_since_in_a_dag_excludes_what_since_already_covers() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    let base = wal.append(&batch("a", 0, 1)).unwrap();
    let side = WalManager::new(wal.repo().clone(), "side").unwrap();
    side.merge(base).unwrap();
    let side_head = side.append(&batch("b", 10, 2)).unwrap();
    let mine = wal.append(&batch("a", 1, 1)).unwrap();
    wal.merge(side_head).unwrap();
    let after = wal.append(&batch("a", 2, 1)).unwrap();
    // Since `mine`: the side branch's two events and the last append; `base`
    // is reachable through the side branch too, but `mine` covers it.
    assert_eq!(
        keys(&wal.read_since(mine).unwrap()),
        vec![("b".into(), 10), ("b".into(), 11), ("a".into(), 2)]
    );
    assert!(wal.read_since(after).unwrap().is_empty());
    // The side head is in the history too.
    assert_eq!(
        keys(&wal.read_since(side_head).unwrap()),
        vec![("a".into(), 1), ("a".into(), 2)]
    );
}

#[test]
fn a_forged_generation_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    let first = wal.append(&batch("a", 0, 1)).unwrap();
    let repo = wal.repo();
    let info = repo.read_commit(first).unwrap();
    // A child whose trailer claims generation 7 instead of 2.
    let forged = repo
        .write_commit(
            info.tree,
            &[first],
            "larder: forged\n\nLarder-Generation: 7\n",
            None,
            0,
        )
        .unwrap();
    repo.update_ref(
        wal.ref_name(),
        larder_git::Expected::MustBe(first),
        forged,
        "forge",
    )
    .unwrap();
    assert!(matches!(wal.read_all(), Err(WalError::BadMeta { commit, .. }) if commit == forged));
    assert!(!wal.verify().unwrap().is_ok());
    let log = git(
        dir.path(),
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Larder-Generation,valueonly)",
            &first.to_string(),
        ],
    );
    assert_eq!(log.trim(), "1", "git reads the trailer too");
}

#[test]
fn a_stale_ref_lock_is_a_typed_error_naming_the_file() {
    // What a writer killed between taking and releasing the ref lock leaves.
    let dir = tempfile::tempdir().unwrap();
    let repo = larder_git::GitRepo::init(dir.path()).unwrap();
    let options = larder_wal::WalOptions {
        max_lock_waits: 2,
        ..Default::default()
    };
    let wal = WalManager::with_options(repo, "test", options).unwrap();
    wal.append(&batch("a", 0, 1)).unwrap();
    let lock = dir.path().join(".git/refs/larder/test/wal.lock");
    std::fs::write(&lock, b"").unwrap();
    let head = wal.head().unwrap();
    match wal.append(&batch("a", 1, 1)) {
        Err(WalError::Locked { lock_path, .. }) => {
            assert_eq!(std::path::Path::new(&lock_path), lock)
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert_eq!(wal.head().unwrap(), head, "nothing appended");
    std::fs::remove_file(&lock).unwrap();
    wal.append(&batch("a", 1, 1)).unwrap();
    assert_eq!(wal.read_all().unwrap().len(), 2);
}

#[test]
fn fsync_durability_appends_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let repo = larder_git::GitRepo::init_bare(dir.path()).unwrap();
    let options = larder_wal::WalOptions {
        durability: larder_wal::Durability::Fsync,
        ..Default::default()
    };
    let wal = WalManager::with_options(repo, "test", options).unwrap();
    let first = wal.append(&batch("a", 0, 3)).unwrap();
    wal.append(&batch("a", 3, 2)).unwrap();
    assert_eq!(keys(&wal.read_all().unwrap()).len(), 5);
    assert_eq!(wal.read_since(first).unwrap().len(), 2);
    git(dir.path(), &["fsck", "--full", "--strict"]);
}

#[test]
fn write_append_builds_the_commit_append_would_without_moving_the_ref() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    let first = wal.append(&[event("alice", 0)]).unwrap();
    let second = wal
        .write_append(&batch("alice", 1, 3), Some(first))
        .unwrap();
    // Not on the ref until someone moves it there.
    assert_eq!(wal.head().unwrap(), Some(first));
    assert_eq!(wal.read_all().unwrap().len(), 1);
    wal.repo()
        .update_ref(
            wal.ref_name(),
            larder_git::Expected::MustBe(first),
            second,
            "test",
        )
        .unwrap();
    assert_eq!(wal.read_all().unwrap().len(), 4);
    assert!(wal.verify().unwrap().is_ok());
    // And the next append builds on it as on any other commit.
    wal.append(&[event("alice", 4)]).unwrap();
    assert_eq!(wal.read_all().unwrap().len(), 5);
    git(dir.path(), &["fsck", "--full", "--strict", "--no-dangling"]);
    // A root commit works too.
    let root = wal.write_append(&[event("bob", 0)], None).unwrap();
    assert!(wal.repo().read_commit(root).unwrap().parents.is_empty());
}
