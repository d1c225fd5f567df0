//! Merging: joining fetched heads into the log by fast-forward or one
//! deterministic merge commit that every replica writes identically.

use larder_git::{EntryKind, Expected, ObjectBatch, ObjectId};

use crate::append::{next_generation, with_generation};
use crate::meta::{CommitKind, Meta, WalFormat};
use crate::read::object_error;
use crate::trailers;
use crate::wal::{Durability, MERGE_ACTOR, MergeOutcome, WalManager, entry};
use crate::walk::{independent, load_node};
use crate::{Result, WalError};

impl WalManager {
    /// Joins `other` into this log; see [`WalManager::merge_heads`].
    pub fn merge(&self, other: ObjectId) -> Result<MergeOutcome> {
        self.merge_heads(&[other])
    }

    /// Joins `others` (commits whose histories hold verified larder events,
    /// typically fetched remote heads) into this log.
    ///
    /// Of the local head and `others`, heads that are ancestors of another
    /// are dropped. One left: fast-forward to it (or nothing to do). More:
    /// a single merge commit whose parents are the remaining heads sorted by
    /// id, with larder's fixed identity, the newest parent's time and a
    /// fixed message — so every replica merging the same heads writes the
    /// *same* commit, and replicas that have exchanged everything end on one
    /// identical head instead of merging each other's merges forever. The
    /// merge adds no events: the union of the parents' histories is the log.
    pub fn merge_heads(&self, others: &[ObjectId]) -> Result<MergeOutcome> {
        let mut attempts = 0;
        let mut lock_waits = 0;
        loop {
            attempts += 1;
            let head = self.head()?;
            let mut candidates: Vec<ObjectId> = head.iter().chain(others).copied().collect();
            candidates.sort();
            candidates.dedup();
            let maximal = independent(&self.repo, &candidates)?;
            let (target, outcome) = match maximal.as_slice() {
                [] => return Ok(MergeOutcome::UpToDate),
                [only] if Some(*only) == head => return Ok(MergeOutcome::UpToDate),
                [only] => (*only, MergeOutcome::FastForward(*only)),
                parents => {
                    let commit = self.write_merge(parents)?;
                    (commit, MergeOutcome::Merged(commit))
                }
            };
            let expected = head.map_or(Expected::MustNotExist, Expected::MustBe);
            match self
                .repo
                .update_ref(&self.ref_name, expected, target, "larder: merge")
            {
                Ok(()) => {
                    // Moved: a failed fsync must not make the merge look
                    // undone (the caller would merge again).
                    if let Err(e) = self.sync_ref_if_durable() {
                        tracing::warn!(log = %self.ref_name, error = %e, "merged, then failed");
                    }
                    return Ok(outcome);
                }
                Err(e) => self.retry_or_fail(e, attempts, &mut lock_waits)?,
            }
        }
    }

    /// Writes the deterministic merge commit of `parents` (sorted, ≥ 2).
    pub(crate) fn write_merge(&self, parents: &[ObjectId]) -> Result<ObjectId> {
        let mut generation = 0;
        let mut newest = parents[0];
        let mut time = 0;
        for &p in parents {
            let g = load_node(&self.repo, p)?.generation;
            if g > generation {
                (generation, newest) = (g, p);
            }
            time = time.max(
                self.repo
                    .read_commit(p)
                    .map_err(|e| object_error(p, "<commit>", p, e))?
                    .time,
            );
        }
        let generation = next_generation(newest, generation)?;
        let mut objects = ObjectBatch::new();
        let (root, message) = match self.options.format {
            WalFormat::V1 => {
                let meta = Meta {
                    format: 1,
                    kind: CommitKind::Merge,
                    actor: MERGE_ACTOR.into(),
                    chunk: None,
                    events: None,
                    previous: Some(parents[0].to_string()),
                    merged: parents[1..].iter().map(ToString::to_string).collect(),
                };
                let meta_bytes = meta.to_bytes();
                if meta_bytes.len() as u64 > crate::meta::MAX_META_LEN {
                    return Err(WalError::BadMeta {
                        commit: parents[0],
                        reason: format!(
                            "a merge of {} heads needs a meta.json of {} bytes, over the {} every reader accepts; merge fewer heads at a time",
                            parents.len(),
                            meta_bytes.len(),
                            crate::meta::MAX_META_LEN
                        ),
                    });
                }
                let meta_blob = objects.blob(meta_bytes)?;
                let root = objects.tree(&[entry("meta.json", EntryKind::Blob, meta_blob)])?;
                let message = with_generation(
                    &format!("larder: merge {} heads\n", parents.len()),
                    generation,
                );
                (root, message)
            }
            // The parents are the commit's own; its tree is the empty tree.
            WalFormat::V2 => (
                objects.tree(&[])?,
                trailers::with_generation(&trailers::merge_message(parents.len()), generation),
            ),
        };
        let commit = objects.commit(root, parents, &message, None, time)?;
        self.repo
            .write_batch(&objects, self.options.durability == Durability::Fsync)?;
        Ok(commit)
    }
}
