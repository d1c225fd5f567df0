//! Bad data in format-2 commits (the record in message trailers, the chunk
//! at `<chunk-id>.bin`, merges on the empty tree): each is a typed error
//! naming the commit (and the path when there is one), reads never modify
//! the log, and `verify` lists every problem.

mod common;

use common::{batch, wal_in};
use larder_git::{EntryKind, Expected, GitRepo, ObjectId, TreeEntry};
use larder_wal::{MergeOutcome, WalError, WalManager};

/// Rebuilds the log's linear history commit by commit (oldest first),
/// letting `tamper` rewrite the message and root tree entries of chosen
/// commits; parents (and so generations) stay consistent, so only the
/// tampering is wrong.
fn rewrite(
    wal: &WalManager,
    tamper: impl Fn(usize, &GitRepo, &mut String, &mut Vec<TreeEntry>),
) -> Vec<ObjectId> {
    let repo = wal.repo();
    let commits: Vec<_> = wal
        .commits_since(None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut parent: Option<ObjectId> = None;
    let mut ids = Vec::new();
    for (i, c) in commits.iter().enumerate() {
        let info = repo.read_commit(c.id).unwrap();
        let mut root = repo.read_tree(info.tree).unwrap();
        let mut message = info.message.clone();
        tamper(i, repo, &mut message, &mut root);
        let tree = repo.write_tree(&root).unwrap();
        let parents: Vec<_> = parent.into_iter().collect();
        let id = repo
            .write_commit(tree, &parents, &message, None, info.time)
            .unwrap();
        ids.push(id);
        parent = Some(id);
    }
    let head = wal.head().unwrap().unwrap();
    repo.update_ref(
        wal.ref_name(),
        Expected::MustBe(head),
        parent.unwrap(),
        "tamper",
    )
    .unwrap();
    ids
}

fn setup(commits: u64) -> (tempfile::TempDir, WalManager) {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), false);
    for n in 0..commits {
        wal.append(&batch("a", n * 2, 2)).unwrap();
    }
    (dir, wal)
}

/// Replaces one trailer line of a message (which must be there).
fn replace(message: &mut String, from: &str, to: &str) {
    assert!(message.contains(from), "{message:?} lacks {from:?}");
    *message = message.replacen(from, to, 1);
}

/// Reads the whole log and returns the error, checking the head stayed put.
fn read_error(wal: &WalManager) -> WalError {
    let head = wal.head().unwrap();
    let error = wal.read_all().expect_err("a bad commit must be refused");
    assert_eq!(wal.head().unwrap(), head, "a read never modifies the log");
    error
}

#[test]
fn a_flipped_chunk_byte_names_commit_and_path() {
    let (_dir, wal) = setup(3);
    let ids = rewrite(&wal, |i, repo, _, root| {
        if i == 1 {
            let mut bytes = repo.read_blob(root[0].id).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            root[0].id = repo.write_blob(&bytes).unwrap();
        }
    });
    let name = wal
        .repo()
        .read_tree(wal.repo().read_commit(ids[1]).unwrap().tree)
        .unwrap()[0]
        .name
        .clone();
    match read_error(&wal) {
        WalError::Chunk {
            commit,
            path,
            source,
        } => {
            assert_eq!(commit, ids[1]);
            assert_eq!(path, name);
            assert!(matches!(
                *source,
                larder_codec::CodecError::ChunkIdMismatch { .. }
            ));
        }
        other => panic!("expected a chunk error, got {other:?}"),
    }
    // Events before the bad commit still stream out before the error.
    let mut stream = wal.events_since(None).unwrap();
    assert!(stream.next().unwrap().is_ok());
    assert!(stream.next().unwrap().is_ok());
    assert!(stream.next().unwrap().is_err());
    assert!(stream.next().is_none());
}

#[test]
fn a_future_format_is_named_as_such() {
    let (_dir, wal) = setup(2);
    let ids = rewrite(&wal, |i, _, message, _| {
        if i == 1 {
            replace(message, "Larder-Format: 2\n", "Larder-Format: 3\n");
        }
    });
    assert!(matches!(
        read_error(&wal),
        WalError::UnsupportedFormat { commit, found: 3, supported: 2 } if commit == ids[1]
    ));
}

#[test]
fn malformed_trailers_are_bad_records() {
    let cases: &[(&str, &str)] = &[
        // Format 1 never names itself.
        ("Larder-Format: 2\n", "Larder-Format: 1\n"),
        ("Larder-Format: 2\n", "Larder-Format: two\n"),
        ("Larder-Actor: a\n", "Larder-Actor: a\nLarder-Actor: a\n"),
        ("Larder-Actor: a\n", "Larder-Colour: red\n"),
        ("Larder-Actor: a\n", "Larder-Actor a\n"),
        ("Larder-Actor: a\n", ""),
        ("Larder-Events: 2\n", ""),
        ("Larder-Events: 2\n", "Larder-Events: many\n"),
        // Counts and actors must match the chunk.
        ("Larder-Events: 2\n", "Larder-Events: 5\n"),
        ("Larder-Actor: a\n", "Larder-Actor: mallory\n"),
        ("Larder-Actor: a\n", "Larder-Actor: not an actor!\n"),
        // One spelling per record: numbers as larder writes them, trailers
        // in larder's order.
        ("Larder-Events: 2\n", "Larder-Events: +2\n"),
        ("Larder-Events: 2\n", "Larder-Events: 02\n"),
        ("Larder-Format: 2\n", "Larder-Format: 02\n"),
        ("Larder-Generation: 2\n", "Larder-Generation: 02\n"),
        (
            "Larder-Format: 2\nLarder-Actor: a\n",
            "Larder-Actor: a\nLarder-Format: 2\n",
        ),
        // The generation belongs to the trailers: moved into the subject
        // paragraph, it is missing there.
        ("Larder-Generation: 2\n", ""),
    ];
    for (from, to) in cases {
        let (_dir, wal) = setup(2);
        let ids = rewrite(&wal, |i, _, message, _| {
            if i == 1 {
                replace(message, from, to);
                if from.starts_with("Larder-Generation") && to.is_empty() {
                    replace(message, "\n\n", "\nLarder-Generation: 2\n\n");
                }
            }
        });
        match read_error(&wal) {
            WalError::BadMeta { commit, .. } => assert_eq!(commit, ids[1], "{from:?} → {to:?}"),
            other => panic!("{from:?} → {to:?}: expected a bad record, got {other:?}"),
        }
    }
}

#[test]
fn unexpected_trees_are_refused() {
    // (what to do to the root tree, the path the error names)
    type Tamper = fn(&GitRepo, &mut Vec<TreeEntry>);
    let cases: &[(Tamper, &str)] = &[
        (
            |repo, root| {
                let id = repo.write_blob(b"surprise").unwrap();
                root.push(TreeEntry {
                    name: "extra.txt".into(),
                    kind: EntryKind::Blob,
                    id,
                });
            },
            "/",
        ),
        (|_, root| root.clear(), "/"),
        (|_, root| root[0].name = "chunk.bin".into(), "chunk.bin"),
        (
            |_, root| root[0].name = root[0].name.to_uppercase().replace(".BIN", ".bin"),
            "",
        ),
        (
            |repo, root| {
                let inner = repo.write_tree(root).unwrap();
                root[0].kind = EntryKind::Tree;
                root[0].id = inner;
            },
            "",
        ),
    ];
    for (n, (tamper, path)) in cases.iter().enumerate() {
        let (_dir, wal) = setup(1);
        let ids = rewrite(&wal, |_, repo, _, root| tamper(repo, root));
        match read_error(&wal) {
            WalError::BadTree {
                commit, path: at, ..
            } => {
                assert_eq!(commit, ids[0], "case {n}");
                if !path.is_empty() {
                    assert_eq!(at, *path, "case {n}");
                }
            }
            other => panic!("case {n}: expected a bad tree, got {other:?}"),
        }
    }
}

#[test]
fn a_chunk_under_another_chunks_name_fails_its_id_check() {
    let (_dir, wal) = setup(2);
    let ids = rewrite(&wal, |i, repo, _, root| {
        if i == 1 {
            // The first commit's chunk, under the second's name: each is a
            // valid chunk, but not the one the name promises.
            let first = wal.commits_since(None).unwrap().next().unwrap().unwrap();
            let tree = repo
                .read_tree(repo.read_commit(first.id).unwrap().tree)
                .unwrap();
            root[0].id = tree[0].id;
        }
    });
    assert!(matches!(
        read_error(&wal),
        WalError::Chunk { commit, .. } if commit == ids[1]
    ));
}

#[test]
fn a_missing_chunk_blob_names_the_object() {
    let (_dir, wal) = setup(1);
    let absent = ObjectId::from_hex(b"0123456789abcdef0123456789abcdef01234567").unwrap();
    let ids = rewrite(&wal, |_, _, _, root| root[0].id = absent);
    match read_error(&wal) {
        WalError::MissingObject { commit, path, id } => {
            assert_eq!((commit, id), (ids[0], absent));
            assert!(path.ends_with(".bin"), "{path}");
        }
        other => panic!("expected a missing object, got {other:?}"),
    }
}

#[test]
fn a_merge_with_a_tree_or_one_parent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in(dir.path(), true);
    wal.append(&batch("a", 0, 1)).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = wal_in(other_dir.path(), true);
    other.append(&batch("b", 0, 1)).unwrap();
    let b = other.head().unwrap().unwrap();
    wal.repo().copy_reachable_from(other.repo(), &[b]).unwrap();
    let MergeOutcome::Merged(merge) = wal.merge(b).unwrap() else {
        panic!("expected a merge");
    };
    let repo = wal.repo();
    let info = repo.read_commit(merge).unwrap();
    assert!(
        repo.read_tree(info.tree).unwrap().is_empty(),
        "a merge's tree is empty"
    );
    assert!(wal.verify().unwrap().is_ok());

    // The same merge carrying a chunk from one side.
    let side = repo.read_tree(repo.read_commit(b).unwrap().tree).unwrap();
    let with_chunk = repo.write_tree(&side).unwrap();
    let forged = repo
        .write_commit(with_chunk, &info.parents, &info.message, None, info.time)
        .unwrap();
    repo.update_ref(wal.ref_name(), Expected::MustBe(merge), forged, "forge")
        .unwrap();
    assert!(matches!(
        read_error(&wal),
        WalError::BadTree { commit, .. } if commit == forged
    ));

    // A "merge" of one parent.
    let lone = repo
        .write_commit(
            info.tree,
            &info.parents[..1],
            &info.message,
            None,
            info.time,
        )
        .unwrap();
    repo.update_ref(wal.ref_name(), Expected::MustBe(forged), lone, "forge")
        .unwrap();
    assert!(matches!(
        read_error(&wal),
        WalError::BadMeta { commit, .. } if commit == lone
    ));
}

#[test]
fn verify_lists_every_bad_commit() {
    let (_dir, wal) = setup(4);
    let ids = rewrite(&wal, |i, repo, message, root| match i {
        1 => replace(message, "Larder-Events: 2\n", "Larder-Events: 3\n"),
        3 => {
            let id = repo.write_blob(b"junk").unwrap();
            root[0].id = id;
        }
        _ => {}
    });
    let report = wal.verify().unwrap();
    assert_eq!(report.commits, 4);
    let mut bad: Vec<ObjectId> = report
        .problems
        .iter()
        .filter_map(WalError::commit)
        .collect();
    bad.sort();
    let mut expected = vec![ids[1], ids[3]];
    expected.sort();
    assert_eq!(bad, expected, "{:?}", report.problems);
}

/// The chunk as an executable file (mode 100755, which larder never
/// writes) is not the record's chunk: `BadTree` naming the commit.
#[test]
fn an_executable_chunk_entry_is_refused() {
    let (dir, wal) = setup(2);
    let repo = wal.repo();
    let head = wal.head().unwrap().unwrap();
    let info = repo.read_commit(head).unwrap();
    let root = repo.read_tree(info.tree).unwrap();
    let [chunk] = root.as_slice() else {
        panic!("{root:?}")
    };
    let tree: ObjectId = larder_testkit::git_with_stdin(
        dir.path(),
        &["mktree"],
        Some(format!("100755 blob {}\t{}\n", chunk.id, chunk.name).as_bytes()),
    )
    .parse()
    .unwrap();
    let forged = repo
        .write_commit(tree, &info.parents, &info.message, None, info.time)
        .unwrap();
    repo.update_ref(wal.ref_name(), Expected::MustBe(head), forged, "forge")
        .unwrap();
    assert!(matches!(
        read_error(&wal),
        WalError::BadTree { commit, .. } if commit == forged
    ));
}
