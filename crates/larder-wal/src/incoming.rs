//! Verifying what a pull brings in: the commits a fetched head adds to the
//! log, read and checked before anything is merged — all heads at once, or
//! each head on its own so one bad head blocks nobody.

use std::collections::HashMap;

use larder_codec::Envelope;
use larder_git::ObjectId;

use crate::meta::{Meta, WalFormat};
use crate::read::{load_commit, object_error};
use crate::trailers;
use crate::wal::WalManager;
use crate::walk::{paint, paint_many, paint_skipping};
use crate::{Result, WalError};

/// What verifying one incoming head found: the new commits and events it
/// brings, or the first problem in them.
pub type HeadVerdict = std::result::Result<(u64, u64), WalError>;

/// A caller's check of each incoming event, run after the WAL's own
/// checks passed (e.g. a signature policy): `Err(reason)` refuses the
/// event, and with it the head that brings it
/// ([`WalError::EventRefused`]).
pub type EventCheck<'a> = &'a dyn Fn(&Envelope) -> std::result::Result<(), String>;

impl WalManager {
    /// Reads and verifies every commit reachable from `head` (typically a
    /// fetched remote head) that this log does not hold yet, without
    /// changing anything. Returns (commits, events) that merging it would
    /// bring in, or the first problem found.
    pub fn incoming(&self, head: ObjectId) -> Result<(u64, u64)> {
        self.incoming_many(&[head])
    }

    /// How many commits and events are reachable from `head` but not from
    /// `base`, counted from the commits' records (format 1's `meta.json`,
    /// format 2's trailers) without decoding chunks (for reports; use
    /// [`WalManager::incoming`] to verify).
    pub fn count_between(&self, head: ObjectId, base: Option<ObjectId>) -> Result<(u64, u64)> {
        let painted = paint(self.repo(), head, base)?;
        let mut events: u64 = 0;
        for node in &painted.new {
            if node.format == WalFormat::V2 {
                let info = self
                    .repo()
                    .read_commit(node.id)
                    .map_err(|e| object_error(node.id, "<commit>", node.id, e))?;
                let meta = trailers::parse(node.id, &info.message, &node.parents)?;
                events = events.saturating_add(meta.events.unwrap_or(0));
                continue;
            }
            let root = self
                .repo()
                .read_tree(node.tree)
                .map_err(|e| object_error(node.id, "/", node.tree, e))?;
            if let Some(meta) = root.iter().find(|e| e.name == "meta.json") {
                let bytes = self
                    .repo()
                    .read_blob(meta.id)
                    .map_err(|e| object_error(node.id, "meta.json", meta.id, e))?;
                let meta = Meta::parse(node.id, &bytes)?;
                meta.check_parents(node.id, &node.parents)?;
                events = events.saturating_add(meta.events.unwrap_or(0));
            }
        }
        Ok((painted.new.len() as u64, events))
    }

    /// [`WalManager::incoming`] for several heads, verifying each new commit
    /// once however many heads share it.
    pub fn incoming_many(&self, heads: &[ObjectId]) -> Result<(u64, u64)> {
        if heads.is_empty() {
            return Ok((0, 0));
        }
        let painted = paint_many(self.repo(), heads, self.head()?)?;
        let mut events = 0;
        let commits = painted.new.len() as u64;
        for node in painted.new {
            events += load_commit(self.repo(), node.id, node.tree, &node.parents, node.format)?
                .events
                .len() as u64;
        }
        Ok((commits, events))
    }

    /// Verifies each of `heads` on its own against the local log: a head
    /// whose new commits all verify is accepted with the (commits, events)
    /// it brings; a head with a bad commit anywhere in what it adds gets
    /// that error, and does not affect any other head's verdict. A commit
    /// shared by several good heads is read and verified once.
    ///
    /// Verdicts come back in the order of `heads`. Only a failure to read
    /// the local log's own head is an `Err` for the whole call.
    pub fn incoming_each(&self, heads: &[ObjectId]) -> Result<Vec<HeadVerdict>> {
        self.incoming_each_with(heads, &|_| {})
    }

    /// [`WalManager::incoming_each`], calling `progress(n)` as each `n`
    /// more commits have been verified.
    pub fn incoming_each_with(
        &self,
        heads: &[ObjectId],
        progress: &dyn Fn(u64),
    ) -> Result<Vec<HeadVerdict>> {
        self.incoming_each_checked(heads, progress, &|_| Ok(()))
    }

    /// [`WalManager::incoming_each_with`], also running `check` on every
    /// event of every new commit: a head with an event the check refuses
    /// gets [`WalError::EventRefused`] naming the commit, the chunk's path
    /// and the event. Events the local log already holds are not checked
    /// again.
    pub fn incoming_each_checked(
        &self,
        heads: &[ObjectId],
        progress: &dyn Fn(u64),
        check: EventCheck<'_>,
    ) -> Result<Vec<HeadVerdict>> {
        let base = self.head()?;
        // One walk of every head against the log finds the heads that bring
        // nothing new (a hub's replicas, pulled again): they are answered
        // at once. Walking each of them on its own re-read the top of the
        // log once per head — O(heads²) for a remote of many actors. If the
        // combined walk fails (a head is unreadable), every head is walked
        // on its own, so the bad one is quarantined alone.
        let new: Option<std::collections::HashSet<ObjectId>> = paint_many(self.repo(), heads, base)
            .ok()
            .map(|p| p.new.iter().map(|n| n.id).collect());
        // Commits verified good by earlier heads, with their generations:
        // together with the local history they are closed under ancestry.
        let mut good: HashMap<ObjectId, u64> = HashMap::new();
        let mut verdicts = Vec::with_capacity(heads.len());
        for &head in heads {
            if new.as_ref().is_some_and(|n| !n.contains(&head)) {
                verdicts.push(Ok((0, 0)));
                continue;
            }
            verdicts.push(self.verify_one(head, base, &mut good, progress, check));
        }
        Ok(verdicts)
    }

    fn verify_one(
        &self,
        head: ObjectId,
        base: Option<ObjectId>,
        good: &mut HashMap<ObjectId, u64>,
        progress: &dyn Fn(u64),
        check: EventCheck<'_>,
    ) -> HeadVerdict {
        let painted = paint_skipping(self.repo(), &[head], base, good)?;
        let mut events = 0u64;
        for node in &painted.new {
            let commit = load_commit(self.repo(), node.id, node.tree, &node.parents, node.format)?;
            for (index, event) in commit.events.iter().enumerate() {
                if let Err(reason) = check(event) {
                    return Err(WalError::EventRefused {
                        commit: node.id,
                        path: chunk_path(&commit),
                        index,
                        event: Box::new(event.id()),
                        actor: event.actor().to_string(),
                        reason,
                    });
                }
            }
            events += commit.events.len() as u64;
            progress(1);
        }
        good.extend(painted.new.iter().map(|n| (n.id, n.generation)));
        Ok((painted.new.len() as u64, events))
    }
}

/// The chunk's path in a verified append commit (its layout was checked by
/// `load_commit`, so this names the real path): `<chunk id>.bin` in format
/// 2, `events/YYYY/MM/DD/<chunk id>.bin` in format 1.
fn chunk_path(commit: &crate::WalCommit) -> String {
    let (Some(first), Some(chunk)) = (commit.events.first(), &commit.meta.chunk) else {
        return "/".into();
    };
    if commit.meta.format != 1 {
        return format!("{chunk}.bin");
    }
    let (y, m, d) = crate::wal::date_of(first.timestamp().millis);
    format!("events/{y}/{m}/{d}/{chunk}.bin")
}
