//! The lock record, and how one lock state is stored as a git commit.
//!
//! Format 3 (written by this build) keeps the whole state in **one
//! object**: a commit whose tree is git's empty tree and whose message is a
//! subject line, a blank line and the record as one line of JSON. A lock
//! change therefore creates one object file instead of three (blob, tree,
//! commit), and a read inflates one object instead of three — on the file
//! systems measured, creating files is most of a lock change's cost.
//!
//! Formats 1 and 2 (older builds) kept the record as the blob `lock.json`,
//! the only entry of the commit's tree. They are still read; a commit whose
//! tree is the empty tree is read as format 3, any other as format 1 or 2.

use larder_git::{GitRepo, ObjectId};
use serde::{Deserialize, Serialize};

/// The lock record format this build writes. Version 2 added
/// [`LockRecord::holder_id`]; version 3 moved the record from a
/// `lock.json` blob into the commit message (empty tree). Records of
/// versions 1 and 2 are still read, a version-1 holder counted as having
/// no holder id.
pub const LOCK_FORMAT_VERSION: u32 = 3;

/// The oldest record format this build reads.
const OLDEST_READABLE_FORMAT: u32 = 1;

/// The newest format stored as a `lock.json` blob (formats from 3 on live
/// in the commit message).
const LAST_BLOB_FORMAT: u32 = 2;

/// The one state of a lock: stored in the message of each lock-state
/// commit (format 3), or as `lock.json` in its tree (formats 1 and 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRecord {
    /// Record format version.
    pub format: u32,
    /// The resource, checked against the ref's hash on every read.
    pub resource: String,
    /// The holder's actor, or `None` when the lock is free (released).
    pub holder: Option<String>,
    /// The acquisition holding the lease: a random id minted by each
    /// `acquire`, so two processes of one actor are two holders. `None`
    /// when free, and in records written by format-1 builds.
    #[serde(default)]
    pub holder_id: Option<String>,
    /// The fencing token of the latest acquisition (kept when released).
    pub token: u64,
    /// When the holder acquired it, by the holder's clock (ms since epoch).
    pub acquired_ms: u64,
    /// When the lease ends, by the holder's clock.
    pub expires_ms: u64,
    /// A random value unique to this state.
    pub nonce: String,
}

/// The message of a format-3 lock-state commit: `larder: lock <what>
/// (token <n>)`, a blank line, the record as compact JSON and a newline.
/// The subject holds no caller text, so it is always one line and the
/// record always starts after the first blank line.
pub(crate) fn commit_message(what: &str, record: &LockRecord) -> serde_json::Result<String> {
    let json = serde_json::to_string(record)?;
    Ok(format!(
        "larder: lock {what} (token {})\n\n{json}\n",
        record.token
    ))
}

/// A lock state read back from its commit.
pub(crate) struct Stored {
    /// The record.
    pub(crate) record: LockRecord,
    /// Whether the commit has a parent (the lock has history to trim).
    pub(crate) has_parent: bool,
}

/// Reads the lock state in commit `id`, in any readable format. The error
/// says what is wrong; the caller names the ref.
pub(crate) fn read_state(repo: &GitRepo, id: ObjectId) -> Result<Stored, String> {
    let commit = repo.read_commit(id).map_err(|e| e.to_string())?;
    let record = if commit.tree.is_empty_tree() {
        from_message(&commit.message)?
    } else {
        from_tree(repo, commit.tree)?
    };
    Ok(Stored {
        record,
        has_parent: !commit.parents.is_empty(),
    })
}

/// A format-3 record: the JSON after the message's first blank line.
fn from_message(message: &str) -> Result<LockRecord, String> {
    let Some((_subject, body)) = message.split_once("\n\n") else {
        return Err("an empty-tree commit whose message holds no record".into());
    };
    let json = body.strip_suffix('\n').unwrap_or(body);
    let rec: LockRecord = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if rec.format <= LAST_BLOB_FORMAT {
        return Err(format!(
            "a format-{} record in a commit message (formats up to {LAST_BLOB_FORMAT} are stored as lock.json)",
            rec.format
        ));
    }
    if rec.format > LOCK_FORMAT_VERSION {
        return Err(format!("unsupported format {}", rec.format));
    }
    Ok(rec)
}

/// A format-1 or format-2 record: `lock.json`, the tree's only entry.
fn from_tree(repo: &GitRepo, tree: ObjectId) -> Result<LockRecord, String> {
    let entries = repo.read_tree(tree).map_err(|e| e.to_string())?;
    let [entry] = entries.as_slice() else {
        return Err(format!(
            "expected only lock.json, found {} entries",
            entries.len()
        ));
    };
    if entry.name != "lock.json" {
        return Err(format!("unexpected entry {:?}", entry.name));
    }
    let bytes = repo.read_blob(entry.id).map_err(|e| e.to_string())?;
    let rec: LockRecord = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if !(OLDEST_READABLE_FORMAT..=LAST_BLOB_FORMAT).contains(&rec.format) {
        return Err(format!("unsupported format {} in lock.json", rec.format));
    }
    if rec.format < 2 && rec.holder_id.is_some() {
        return Err("a format-1 record with a holder id".into());
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record of the golden vector in `docs/format.md`.
    fn golden_record() -> LockRecord {
        LockRecord {
            format: LOCK_FORMAT_VERSION,
            resource: "deploy/prod".into(),
            holder: Some("agent-7".into()),
            holder_id: Some("5be1a0c2d3e4f5061728394a5b6c7d8e".into()),
            token: 42,
            acquired_ms: 1_763_830_000_000,
            expires_ms: 1_763_830_030_000,
            nonce: "9f2c0d1e2f3a4b5c6d7e8f9012345678".into(),
        }
    }

    const GOLDEN_MESSAGE: &str = "larder: lock acquire (token 42)\n\n{\"format\":3,\"resource\":\"deploy/prod\",\"holder\":\"agent-7\",\"holder_id\":\"5be1a0c2d3e4f5061728394a5b6c7d8e\",\"token\":42,\"acquired_ms\":1763830000000,\"expires_ms\":1763830030000,\"nonce\":\"9f2c0d1e2f3a4b5c6d7e8f9012345678\"}\n";

    /// Golden vector: the exact message and commit id of one format-3
    /// state. Any change here is a format change (new version, docs).
    #[test]
    fn golden_format_three_state() {
        let message = commit_message("acquire", &golden_record()).unwrap();
        assert_eq!(message, GOLDEN_MESSAGE);
        let dir = tempfile::tempdir().unwrap();
        let repo = GitRepo::init_bare(dir.path()).unwrap();
        let tree = repo.write_tree(&[]).unwrap();
        assert!(tree.is_empty_tree());
        let id = repo
            .write_commit(tree, &[], &message, None, 1_763_830_000)
            .unwrap();
        assert_eq!(id.to_string(), "e162fb335b8ce69fe25a6400970699db0c8e8fe5");
        let stored = read_state(&repo, id).unwrap();
        assert_eq!(stored.record, golden_record());
        assert!(!stored.has_parent);
    }

    #[test]
    fn message_records_must_be_format_three_or_later_and_known() {
        for (json, why) in [
            (
                r#"{"format":2,"resource":"r","holder":null,"token":1,"acquired_ms":1,"expires_ms":2,"nonce":"x"}"#,
                "format-2",
            ),
            (
                r#"{"format":4,"resource":"r","holder":null,"token":1,"acquired_ms":1,"expires_ms":2,"nonce":"x"}"#,
                "unsupported format 4",
            ),
            ("{ nope", "key must be a string"),
        ] {
            let err = from_message(&format!("larder: lock acquire (token 1)\n\n{json}\n"))
                .err()
                .unwrap();
            assert!(err.contains(why), "{err}");
        }
        assert!(from_message("larder: lock acquire (token 1)\n").is_err());
    }
}
