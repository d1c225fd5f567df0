//! Bad data in format-1 commits (`meta.json`, date-sharded trees; still read
//! and optionally written): each is a typed error naming commit and path,
//! reads never modify the log, and `verify` lists every problem.

mod common;

use common::{batch, wal_in_format};
use larder_git::{EntryKind, GitRepo, ObjectId, TreeEntry};
use larder_wal::{Meta, WalError, WalFormat, WalManager};

/// Rebuilds the log's history commit by commit (oldest first), letting
/// `tamper` rewrite the root tree entries of chosen commits; `meta.json`'s
/// `previous` is kept consistent so only the tampering is wrong.
fn rewrite(
    wal: &WalManager,
    tamper: impl Fn(usize, &GitRepo, &mut Vec<TreeEntry>),
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
        let meta = Meta {
            previous: parent.map(|p| p.to_string()),
            ..c.meta.clone()
        };
        let meta_blob = repo.write_blob(&meta.to_bytes()).unwrap();
        root.iter_mut().find(|e| e.name == "meta.json").unwrap().id = meta_blob;
        tamper(i, repo, &mut root);
        let tree = repo.write_tree(&root).unwrap();
        let parents: Vec<_> = parent.into_iter().collect();
        let id = repo
            .write_commit(tree, &parents, &info.message, None, info.time)
            .unwrap();
        ids.push(id);
        parent = Some(id);
    }
    let head = wal.head().unwrap().unwrap();
    repo.update_ref(
        wal.ref_name(),
        larder_git::Expected::MustBe(head),
        parent.unwrap(),
        "tamper",
    )
    .unwrap();
    ids
}

fn set_blob(repo: &GitRepo, root: &mut [TreeEntry], name: &str, bytes: &[u8]) {
    let id = repo.write_blob(bytes).unwrap();
    root.iter_mut().find(|e| e.name == name).unwrap().id = id;
}

/// Applies `f` to the chunk at events/Y/M/D/<id>.bin, keeping its name.
fn tamper_chunk(repo: &GitRepo, root: &mut [TreeEntry], f: impl Fn(&mut Vec<u8>)) -> ObjectId {
    fn descend(
        repo: &GitRepo,
        tree: ObjectId,
        depth: usize,
        f: &dyn Fn(&mut Vec<u8>),
        out: &mut ObjectId,
    ) -> ObjectId {
        let mut entries = repo.read_tree(tree).unwrap();
        let e = &mut entries[0];
        if depth == 3 {
            let mut bytes = repo.read_blob(e.id).unwrap();
            f(&mut bytes);
            e.id = repo.write_blob(&bytes).unwrap();
            *out = e.id;
        } else {
            e.id = descend(repo, e.id, depth + 1, f, out);
        }
        repo.write_tree(&entries).unwrap()
    }
    let events = root.iter_mut().find(|e| e.name == "events").unwrap();
    let mut blob = events.id;
    events.id = descend(repo, events.id, 0, &f, &mut blob);
    blob
}

/// Turns every pack of `repo` into loose objects (with the `git` binary),
/// so a test can delete single objects.
fn unpack_all(repo: &GitRepo) {
    let pack_dir = repo.objects_dir().join("pack");
    for entry in std::fs::read_dir(&pack_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "pack") {
            let bytes = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            std::fs::remove_file(path.with_extension("idx")).unwrap();
            let mut child = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(repo.git_dir())
                .args(["unpack-objects", "-q"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            assert!(child.wait().unwrap().success());
        }
    }
}

fn loose_path(repo: &GitRepo, id: ObjectId) -> std::path::PathBuf {
    let hex = id.to_string();
    repo.objects_dir().join(&hex[..2]).join(&hex[2..])
}

fn setup(commits: u64) -> (tempfile::TempDir, WalManager) {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in_format(dir.path(), false, WalFormat::V1);
    for n in 0..commits {
        wal.append(&batch("a", n * 2, 2)).unwrap();
    }
    (dir, wal)
}

#[test]
fn a_flipped_chunk_byte_names_commit_and_path() {
    let (_dir, wal) = setup(3);
    let ids = rewrite(&wal, |i, repo, root| {
        if i == 1 {
            tamper_chunk(repo, root, |b| {
                let last = b.len() - 1;
                b[last] ^= 0x01;
            });
        }
    });
    let head = wal.head().unwrap();
    match wal.read_all() {
        Err(WalError::Chunk {
            commit,
            path,
            source,
        }) => {
            assert_eq!(commit, ids[1]);
            assert!(
                path.starts_with("events/2023/11/14/") && path.ends_with(".bin"),
                "{path}"
            );
            assert!(matches!(
                *source,
                larder_codec::CodecError::ChunkIdMismatch { .. }
            ));
        }
        other => panic!("expected a chunk error, got {other:?}"),
    }
    assert_eq!(wal.head().unwrap(), head, "a read never modifies the log");
    // Events before the bad commit still stream out before the error.
    let mut stream = wal.events_since(None).unwrap();
    assert!(stream.next().unwrap().is_ok());
    assert!(stream.next().unwrap().is_ok());
    assert!(stream.next().unwrap().is_err());
    assert!(stream.next().is_none());
}

#[test]
fn malformed_and_future_meta_json_are_typed() {
    let (_dir, wal) = setup(2);
    let ids = rewrite(&wal, |i, repo, root| {
        if i == 1 {
            set_blob(repo, root, "meta.json", b"{not json");
        }
    });
    assert!(matches!(wal.read_all(), Err(WalError::BadMeta { commit, .. }) if commit == ids[1]));

    let (_dir, wal) = setup(1);
    let ids = rewrite(&wal, |_, repo, root| {
        set_blob(
            repo,
            root,
            "meta.json",
            br#"{"format": 3, "whatever": true}"#,
        );
    });
    assert!(matches!(
        wal.read_all(),
        Err(WalError::UnsupportedFormat { commit, found: 3, supported: 2 }) if commit == ids[0]
    ));

    // Format 2 has no meta.json: one claiming it is bad, not "future".
    let (_dir, wal) = setup(1);
    let ids = rewrite(&wal, |_, repo, root| {
        set_blob(repo, root, "meta.json", br#"{"format": 2}"#);
    });
    assert!(matches!(wal.read_all(), Err(WalError::BadMeta { commit, .. }) if commit == ids[0]));
}

#[test]
fn unexpected_tree_entries_are_refused() {
    let (_dir, wal) = setup(1);
    rewrite(&wal, |_, repo, root| {
        let id = repo.write_blob(b"surprise").unwrap();
        root.push(TreeEntry {
            name: "extra.txt".into(),
            kind: EntryKind::Blob,
            id,
        });
    });
    assert!(matches!(wal.read_all(), Err(WalError::BadTree { path, .. }) if path == "/"));
}

#[test]
fn an_append_without_its_events_tree_is_refused_not_read_as_empty() {
    let (_dir, wal) = setup(2);
    let ids = rewrite(&wal, |i, _, root| {
        if i == 1 {
            root.retain(|e| e.name != "events");
        }
    });
    match wal.read_all() {
        Err(WalError::BadTree { commit, path, .. }) => {
            assert_eq!((commit, path.as_str()), (ids[1], "/"))
        }
        other => panic!("expected BadTree, got {other:?}"),
    }
    let report = wal.verify().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, WalError::BadTree { commit, .. } if *commit == ids[1]))
    );
}

#[test]
fn an_oversized_meta_json_is_refused_from_its_header() {
    let (_dir, wal) = setup(1);
    let ids = rewrite(&wal, |_, repo, root| {
        let huge = vec![b' '; (larder_wal::MAX_META_LEN + 1) as usize];
        set_blob(repo, root, "meta.json", &huge);
    });
    match wal.read_all() {
        Err(WalError::BadMeta { commit, reason }) => {
            assert_eq!(commit, ids[0]);
            assert!(reason.contains("bytes"), "{reason}");
        }
        other => panic!("expected BadMeta, got {other:?}"),
    }
}

#[test]
fn a_missing_chunk_blob_names_the_object() {
    let (_dir, wal) = setup(2);
    let blob = std::cell::Cell::new(None);
    let ids = rewrite(&wal, |i, repo, root| {
        if i == 0 {
            // A unique chunk (so deleting it cannot affect another commit).
            blob.set(Some(tamper_chunk(repo, root, |b| {
                b.extend_from_slice(b"x")
            })));
        }
    });
    let blob = blob.get().unwrap();
    std::fs::remove_file(loose_path(wal.repo(), blob)).unwrap();
    let wal = WalManager::new(GitRepo::open(wal.repo().git_dir()).unwrap(), "test").unwrap();
    match wal.read_all() {
        Err(WalError::MissingObject { commit, path, id }) => {
            assert_eq!((commit, id), (ids[0], blob));
            assert!(path.ends_with(".bin"));
        }
        other => panic!("expected MissingObject, got {other:?}"),
    }
}

#[test]
fn verify_lists_every_bad_object() {
    let (_dir, wal) = setup(6);
    let ids = rewrite(&wal, |i, repo, root| match i {
        1 => {
            tamper_chunk(repo, root, |b| b[20] ^= 0xff);
        }
        2 => set_blob(repo, root, "meta.json", b"[]"),
        4 => {
            let id = repo.write_blob(b"?").unwrap();
            root.push(TreeEntry {
                name: "zz".into(),
                kind: EntryKind::Blob,
                id,
            });
        }
        _ => {}
    });
    let report = wal.verify().unwrap();
    assert_eq!(report.commits, 6);
    let mut bad: Vec<ObjectId> = report
        .problems
        .iter()
        .map(|p| match p {
            WalError::Chunk { commit, .. }
            | WalError::BadMeta { commit, .. }
            | WalError::BadTree { commit, .. } => *commit,
            other => panic!("unexpected problem {other:?}"),
        })
        .collect();
    bad.sort();
    let mut expected = vec![ids[1], ids[2], ids[4]];
    expected.sort();
    assert_eq!(bad, expected);
    assert_eq!(
        report.events, 6,
        "the three good commits' events still verify"
    );
}

#[test]
fn verify_reports_a_missing_commit_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let wal = wal_in_format(dir.path(), false, WalFormat::V1);
    let first = wal.append(&batch("a", 0, 1)).unwrap();
    wal.append(&batch("a", 1, 1)).unwrap();
    unpack_all(wal.repo());
    std::fs::remove_file(loose_path(wal.repo(), first)).unwrap();
    let wal = WalManager::new(GitRepo::open(dir.path()).unwrap(), "test").unwrap();
    let report = wal.verify().unwrap();
    assert_eq!(report.events, 1);
    assert!(
        matches!(report.problems.as_slice(), [WalError::MissingObject { commit, .. }] if *commit == first)
    );
    assert!(wal.read_all().is_err());
}

/// Long logs are read on two threads (blocks of 16 commits alternate
/// between the caller and a helper): a bad commit in either thread's block
/// is reported the same way, after every event before it, and a stream
/// dropped halfway stops cleanly.
#[test]
fn a_bad_commit_read_ahead_by_the_helper_thread_is_reported_in_order() {
    for bad in [5usize, 20, 37] {
        let (_dir, wal) = setup(100);
        let ids = rewrite(&wal, |i, repo, root| {
            if i == bad {
                tamper_chunk(repo, root, |b| {
                    let last = b.len() - 1;
                    b[last] ^= 0x01;
                });
            }
        });
        match wal.read_all() {
            Err(WalError::Chunk { commit, .. }) => assert_eq!(commit, ids[bad]),
            other => panic!("expected a chunk error, got {other:?}"),
        }
        let stream: Vec<_> = wal.events_since(None).unwrap().collect();
        assert_eq!(stream.len(), bad * 2 + 1, "bad commit {bad}");
        assert!(stream[..bad * 2].iter().all(Result::is_ok));
        assert!(stream[bad * 2].is_err());
        // The commits stream goes on past the bad one, in order.
        let commits: Vec<_> = wal.commits_since(None).unwrap().collect();
        assert_eq!(commits.len(), 100);
        for (i, c) in commits.iter().enumerate() {
            assert_eq!(c.is_err(), i == bad);
            if let Ok(c) = c {
                assert_eq!(c.id, ids[i]);
            }
        }
        let mut half = wal.commits_since(None).unwrap();
        assert_eq!(half.remaining(), 100);
        half.next();
        drop(half);
    }
}
