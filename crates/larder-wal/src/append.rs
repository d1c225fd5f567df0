//! Appending: one chunk and one commit per append; concurrent appends of
//! one process are grouped (`group.rs`) into one pack and one
//! compare-and-swap of the log's ref, retried on a lost race; nothing
//! after the swap can turn an append into an error.

use std::sync::atomic::Ordering;
use std::time::Duration;

use larder_codec::{Envelope, chunk_id, encode_chunk_with};
use larder_git::{EntryKind, GitError, ObjectBatch, ObjectId, TreeEntry};

use crate::group::Prepared;
use crate::meta::{CommitKind, Meta, WalFormat};
use crate::trailers;
use crate::wal::{Committed, Durability, WalManager, date_of, entry};
use crate::walk::{GENERATION_TRAILER, load_node};
use crate::{Result, WalError};

impl WalManager {
    /// Appends `events` as one chunk in one commit and returns the commit.
    ///
    /// The ref moves by compare-and-swap; when another appender wins, the
    /// commit is rebuilt on the new head and retried with backoff. All
    /// events must share one actor. A reader sees all of the batch or none.
    ///
    /// Once the commit is on the ref this returns it: a failure after that
    /// point (the ref's fsync under [`Durability::Fsync`]) is logged as a
    /// warning, never returned as an error a caller would retry — see
    /// [`WalManager::append_committed`] to receive it.
    pub fn append(&self, events: &[Envelope]) -> Result<ObjectId> {
        let done = self.append_committed(events)?;
        if let Some(e) = &done.after_commit {
            tracing::warn!(log = %self.ref_name, commit = %done.commit, error = %e,
                "appended, then failed");
        }
        Ok(done.commit)
    }

    /// [`WalManager::append`], reporting a failure after the commit
    /// separately ([`Committed::after_commit`]) instead of logging it.
    ///
    /// **Group commit.** Appends made at the same time through clones of
    /// one `WalManager` (threads of one process) are written together:
    /// one pack and one compare-and-swap of the ref for all of them, each
    /// append still its own commit — a linear chain in arrival order — so
    /// the returned commit is this call's own, holding exactly its events,
    /// and actors are never mixed in a chunk. The ref moves once, so a
    /// reader sees the whole group or none of it; a failure before the ref
    /// moved makes each member retry alone (each caller gets its own
    /// error). Appenders in other processes still meet through the ref's
    /// compare-and-swap.
    pub fn append_committed(&self, events: &[Envelope]) -> Result<Committed> {
        let prepared = self.append_objects(events)?;
        self.commit_grouped(prepared)
    }

    /// Writes `events` as an append commit whose parent is `parent` (one
    /// pack: chunk, trees, record, commit) and returns the commit,
    /// without moving any ref.
    ///
    /// For protocols that place the commit elsewhere — larder-kv's
    /// linearizable mode moves a chain ref on an authoritative remote by
    /// compare-and-swap, then fast-forwards the local log to it. The commit
    /// is exactly what [`WalManager::append`] would have written on
    /// `parent`, so every reader and verifier treats it alike.
    pub fn write_append(&self, events: &[Envelope], parent: Option<ObjectId>) -> Result<ObjectId> {
        let prepared = self.append_objects(events)?;
        let generation = match parent {
            Some(p) => next_generation(p, self.generation_of(p)?)?,
            None => 1,
        };
        let mut commit_objects = ObjectBatch::new();
        let commit = self.append_commit(&mut commit_objects, &prepared, parent, generation)?;
        self.repo.write_batches(
            &[&prepared.objects, &commit_objects],
            self.options.durability == Durability::Fsync,
        )?;
        // Its pack counts like an append's towards consolidation.
        self.consolidate_after(generation, generation);
        Ok(commit)
    }

    /// The parts of an append that do not depend on the head, in the
    /// format this handle writes: the chunk and its trees (in a batch), the
    /// commit message without its generation trailer, the record without
    /// `previous`, and the tree the commit builds on.
    pub(crate) fn append_objects(&self, events: &[Envelope]) -> Result<Prepared> {
        let first = events.first().ok_or(WalError::EmptyBatch)?;
        if let Some((index, other)) = events
            .iter()
            .enumerate()
            .find(|(_, e)| e.actor() != first.actor())
        {
            return Err(WalError::MixedActors {
                expected: first.actor().to_string(),
                found: other.actor().to_string(),
                index,
            });
        }
        let chunk = encode_chunk_with(events, &self.options.limits)?;
        let cid = chunk_id(&chunk);
        let mut objects = ObjectBatch::new();
        let blob = objects.blob(chunk)?;
        let format = self.options.format;
        let meta = Meta {
            format: format.version(),
            kind: CommitKind::Append,
            actor: first.actor().to_string(),
            chunk: Some(cid.to_hex()),
            events: Some(events.len() as u64),
            previous: None,
            merged: Vec::new(),
        };
        let chunk_entry = entry(format!("{cid}.bin"), EntryKind::Blob, blob);
        let (tree, message) = match format {
            WalFormat::V1 => {
                let (y, m, d) = date_of(first.timestamp().millis);
                let mut subtree = objects.tree(&[chunk_entry])?;
                for name in [d, m, y] {
                    subtree = objects.tree(&[entry(name, EntryKind::Tree, subtree)])?;
                }
                let message = format!(
                    "larder: append {} event{} by {}\n\nchunk {cid}\n",
                    events.len(),
                    if events.len() == 1 { "" } else { "s" },
                    first.actor()
                );
                (subtree, message)
            }
            WalFormat::V2 => (
                objects.tree(&[chunk_entry])?,
                trailers::append_message(events.len(), first.actor().as_str()),
            ),
        };
        Ok(Prepared {
            objects,
            message,
            meta,
            tree,
            format,
        })
    }

    /// Adds to `objects` the commit of the prepared append `p` on `parent`
    /// (with `generation`) and returns its id: in format 1 with its
    /// `meta.json` and root tree, in format 2 on the prepared root tree.
    pub(crate) fn append_commit(
        &self,
        objects: &mut ObjectBatch,
        p: &Prepared,
        parent: Option<ObjectId>,
        generation: u64,
    ) -> Result<ObjectId> {
        let parents: Vec<ObjectId> = parent.into_iter().collect();
        match p.format {
            WalFormat::V1 => {
                let meta = Meta {
                    previous: parent.map(|h| h.to_string()),
                    ..p.meta.clone()
                };
                self.add_commit(
                    objects,
                    &meta,
                    vec![entry("events", EntryKind::Tree, p.tree)],
                    &parents,
                    &with_generation(&p.message, generation),
                )
            }
            WalFormat::V2 => Ok(objects.commit(
                p.tree,
                &parents,
                &trailers::with_generation(&p.message, generation),
                self.options.identity.as_ref(),
                unix_now(),
            )?),
        }
    }

    /// The generation number of `head`, from the cache when this handle
    /// wrote or read it last.
    pub(crate) fn generation_of(&self, head: ObjectId) -> Result<u64> {
        if let Some(generation) = self.group.known_generation(head) {
            return Ok(generation);
        }
        let generation = load_node(&self.repo, head)?.generation;
        self.group.set_known_head(head, generation);
        Ok(generation)
    }

    /// Starts merging small packs after one pack holding the commits of
    /// generations `first..=last` (one append, or a group's chain) was
    /// written, about once per `fan_in` packs:
    ///
    /// - when a lone append's generation reaches a multiple of the
    ///   policy's fan-in — whichever process wrote the packs before it,
    ///   so processes appending one commit per pack share the work;
    /// - when this handle and its clones wrote `fan_in` packs since they
    ///   last started a merge — a group's pack holds several commits, so
    ///   counting generations would merge after every few packs, mostly
    ///   finding too few to merge.
    ///
    /// The merge runs on a background thread (one per handle at a time), so
    /// appends never wait for it; [`WalManager::finish_maintenance`] waits.
    /// The append has already succeeded, so a failure is reported through
    /// `tracing` and left for the next check (or [`WalManager::compact`]),
    /// never returned.
    pub(crate) fn consolidate_after(&self, first: u64, last: u64) {
        let Some(policy) = self.options.consolidation else {
            return;
        };
        let fan_in = policy.fan_in.max(2) as u64;
        let packs = self.maintenance.packs_since.fetch_add(1, Ordering::Relaxed) + 1;
        let lone_at_multiple = first == last && last.is_multiple_of(fan_in);
        if !lone_at_multiple && packs < fan_in {
            return;
        }
        let mut slot = self.maintenance.slot();
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(done) = slot.take() {
            let _ = done.join();
        }
        self.maintenance.packs_since.store(0, Ordering::Relaxed);
        // Its own store: merging packs rescans the pack directory, which
        // must not race this handle's lookups on a shared store.
        let repo = self.repo.clone();
        let log = self.ref_name.clone();
        *slot = Some(std::thread::spawn(move || {
            let merged = repo.reopen().and_then(|own| own.consolidate_packs(&policy));
            if let Err(e) = merged {
                tracing::warn!(%log, error = %e, "pack consolidation failed");
            }
        }));
    }

    /// Decides after a failed ref update: back off and retry (lost CAS, or
    /// lock held by a live writer), or fail with a typed error.
    pub(crate) fn retry_or_fail(
        &self,
        e: GitError,
        attempts: u32,
        lock_waits: &mut u32,
    ) -> Result<()> {
        if e.is_retryable() {
            *lock_waits += 1;
            if *lock_waits > self.options.max_lock_waits {
                return Err(WalError::Locked {
                    log: self.ref_name.clone(),
                    lock_path: self
                        .repo
                        .git_dir()
                        .join(format!("{}.lock", self.ref_name))
                        .display()
                        .to_string(),
                });
            }
        } else if !e.is_conflict() {
            return Err(e.into());
        }
        if attempts >= self.options.max_attempts {
            return Err(WalError::Contention {
                log: self.ref_name.clone(),
                attempts,
            });
        }
        backoff(attempts);
        Ok(())
    }

    pub(crate) fn add_commit(
        &self,
        objects: &mut ObjectBatch,
        meta: &Meta,
        mut entries: Vec<TreeEntry>,
        parents: &[ObjectId],
        message: &str,
    ) -> Result<ObjectId> {
        let meta_blob = objects.blob(meta.to_bytes())?;
        entries.push(entry("meta.json", EntryKind::Blob, meta_blob));
        let root = objects.tree(&entries)?;
        Ok(objects.commit(
            root,
            parents,
            message,
            self.options.identity.as_ref(),
            unix_now(),
        )?)
    }

    pub(crate) fn sync_ref_if_durable(&self) -> Result<()> {
        if self.options.durability == Durability::Fsync {
            self.repo.sync_ref(&self.ref_name)?;
        }
        Ok(())
    }
}

/// The generation of a child of `parent` (whose generation is `generation`),
/// or a typed error when a hostile history claims the largest one.
pub(crate) fn next_generation(parent: ObjectId, generation: u64) -> Result<u64> {
    generation.checked_add(1).ok_or_else(|| WalError::BadMeta {
        commit: parent,
        reason: format!("generation {generation} leaves no room for a successor"),
    })
}

/// Appends the generation trailer to a format-1 commit message (as its own
/// paragraph).
pub(crate) fn with_generation(message: &str, generation: u64) -> String {
    format!("{message}\n{GENERATION_TRAILER}: {generation}\n")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Sleeps a little after a lost compare-and-swap: exponential up to 5 ms,
/// with jitter so that contenders spread out.
fn backoff(attempt: u32) {
    let base_us = 20u64 << attempt.min(8);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = u64::from(nanos % 1000) * base_us / 1000;
    std::thread::sleep(Duration::from_micros((base_us + jitter).min(5_000)));
}

#[cfg(test)]
mod tests {
    use larder_git::{GitRepo, ObjectBatch};

    use super::*;

    /// Packs of a group's chain hold several commits each, so no lone
    /// append's generation ever lands on a multiple of the fan-in: the
    /// count of packs written must start the merge.
    #[test]
    fn packs_of_groups_are_merged_after_fan_in_packs() {
        let dir = tempfile::tempdir().unwrap();
        let wal = WalManager::new(GitRepo::init_bare(dir.path()).unwrap(), "t").unwrap();
        let fan_in = wal.options.consolidation.unwrap().fan_in as u64;
        for n in 0..fan_in {
            let mut batch = ObjectBatch::new();
            batch.blob(format!("pack {n}").into_bytes()).unwrap();
            wal.repo.write_batches(&[&batch], false).unwrap();
            // A chain of 3 commits per pack: generations 3n+1 ..= 3n+3.
            wal.consolidate_after(3 * n + 1, 3 * n + 3);
        }
        wal.finish_maintenance();
        assert_eq!(wal.repo.pack_count().unwrap(), 1);
    }
}
