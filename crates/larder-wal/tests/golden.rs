//! Golden vector of WAL format 2: the exact objects of one append, checked
//! against what `WalManager::append` writes and against `git hash-object`.
//!
//! Any change here is a format change: it must bump the format version and
//! update `docs/format.md` (the vector is quoted there).

mod common;

use common::{git, wal_in};
use larder_codec::{ActorId, Envelope, Payload, Timestamp, Value, chunk_id, encode_chunk};
use larder_git::{EntryKind, GitRepo, TreeEntry};

/// Event A of the chunk golden vectors (crates/larder-codec/tests/golden.rs).
fn event_a() -> Envelope {
    let payload = Payload::from_value(Value::Map(vec![
        (
            Value::Text("title".into()),
            Value::Text("fix the build".into()),
        ),
        (Value::Text("n".into()), Value::Integer(7.into())),
    ]))
    .unwrap();
    Envelope::new(
        ActorId::new("alice").unwrap(),
        Timestamp::new(1_700_000_000_000, 0),
        "issue.created",
        payload,
    )
    .unwrap()
}

const CHUNK_ID: &str = "47743107420ab0731518ed9cebc9c3b331b254ab613ad789f65bc6d77b5f446b";
const MESSAGE: &str = "larder: append 1 event by alice

Larder-Format: 2
Larder-Actor: alice
Larder-Events: 1
Larder-Generation: 1
";
const BLOB_ID: &str = "e6d78f76633aeb1a0b6d4757b8933234872157c0";
const TREE_ID: &str = "31646a880ea479dfe047fb8b86a23fb451a64f40";
const COMMIT_ID: &str = "d33c8c858e3c0ddbe1016c7d09fd0de894c8a8ff";

#[test]
fn golden_format_two_append() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let chunk = encode_chunk(&[event_a()]).unwrap();
    assert_eq!(chunk_id(&chunk).to_string(), CHUNK_ID);
    let blob = repo.write_blob(&chunk).unwrap();
    let tree = repo
        .write_tree(&[TreeEntry {
            name: format!("{CHUNK_ID}.bin"),
            kind: EntryKind::Blob,
            id: blob,
        }])
        .unwrap();
    let commit = repo
        .write_commit(tree, &[], MESSAGE, None, 1_763_830_000)
        .unwrap();
    let text = git(dir.path(), &["cat-file", "commit", &commit.to_string()]);

    assert_eq!(blob.to_string(), BLOB_ID);
    assert_eq!(tree.to_string(), TREE_ID);
    assert_eq!(commit.to_string(), COMMIT_ID);
    // git computes the same ids from the same bytes.
    let hashed = larder_testkit::git_with_stdin(
        dir.path(),
        &["hash-object", "-t", "commit", "--stdin"],
        Some(format!("{text}\n").as_bytes()),
    );
    assert_eq!(hashed, COMMIT_ID);

    // `append` writes exactly this tree and message (only the commit time,
    // and so the commit id, differ).
    let other = tempfile::tempdir().unwrap();
    let wal = wal_in(other.path(), true);
    let appended = wal.append(&[event_a()]).unwrap();
    let info = wal.repo().read_commit(appended).unwrap();
    assert_eq!(info.tree.to_string(), TREE_ID);
    assert_eq!(info.message, MESSAGE);
    // And a reader of the golden commit gets the event back.
    repo.update_ref(
        "refs/larder/test/wal",
        larder_git::Expected::MustNotExist,
        commit,
        "golden",
    )
    .unwrap();
    let reader = larder_wal::WalManager::new(repo, "test").unwrap();
    assert_eq!(reader.read_all().unwrap(), vec![event_a()]);
}
