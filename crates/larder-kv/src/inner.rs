//! [`Inner`]: what a handle's mutex guards — its log, snapshots and view —
//! and how commits reach the view: catching up with what other processes
//! and syncs appended, appending this handle's own writes, folding them.

use larder_codec::{Envelope, Payload};
use larder_crdt::EventKey;
use larder_git::ObjectId;
use larder_snapshot::SnapshotManager;
use larder_wal::WalManager;

use crate::kv::{Core, lock};
use crate::store::{Fault, Store, Tail};
use crate::types::Version;
use crate::{KvError, Result};

pub(crate) struct Inner {
    pub(crate) wal: WalManager,
    pub(crate) snapshots: SnapshotManager,
    pub(crate) store: Store,
}

impl Inner {
    /// Runs a read on the view; a fault heals the view and retries once.
    pub(crate) fn read<T>(
        &mut self,
        f: impl Fn(&Store) -> std::result::Result<T, Fault>,
    ) -> Result<T> {
        match f(&self.store) {
            Ok(v) => Ok(v),
            Err(fault) => {
                self.store.heal(&self.wal, &self.snapshots, fault)?;
                f(&self.store).map_err(|fault| KvError::View {
                    path: self.store.path().display().to_string(),
                    reason: fault,
                })
            }
        }
    }

    /// Folds what the log gained since the view's position (this handle's
    /// writes, other processes' appends, merged syncs), moving the clock
    /// past every new event and telling watchers what took effect.
    pub(crate) fn catch_up(&mut self, core: &Core) -> Result<usize> {
        if self.wal.head()? == self.store.position {
            return Ok(0);
        }
        // Something to fold: the view must be writable (reopening it may
        // move its position, so the tail is read again).
        self.store.ensure_writable(&self.wal, &self.snapshots)?;
        if self.store.position.is_none() && !self.snapshots.list()?.is_empty() {
            // A fresh view of a log that has snapshots (a new clone): start
            // from the newest one rather than folding the whole log.
            self.store.rebuild(&self.wal, &self.snapshots, None)?;
            self.observe_frontier(core);
            return Ok(0);
        }
        match self.store.tail(&self.wal)? {
            Tail::UpToDate => Ok(0),
            Tail::Gone => {
                let cause = format!(
                    "its position {} is no longer in the log",
                    self.store
                        .position
                        .map(|p| p.to_string())
                        .unwrap_or_default()
                );
                self.store.heal(&self.wal, &self.snapshots, cause)?;
                self.observe_frontier(core);
                Ok(0)
            }
            Tail::New(head, events) => {
                {
                    let mut clock = lock(&core.clock);
                    for e in &events {
                        // Beyond the drift bound: not adopted, never blocking.
                        let _ = clock.observe(e.timestamp(), e.actor().as_str());
                    }
                }
                match self.store.apply(&events, Some(head)) {
                    Ok(changes) => {
                        let n = changes.len();
                        core.broadcast(changes);
                        Ok(n)
                    }
                    Err(fault) => {
                        self.store.heal(&self.wal, &self.snapshots, fault)?;
                        Ok(0)
                    }
                }
            }
        }
    }

    /// Moves the clock past the greatest version the view holds (after a
    /// rebuild, whose events were not observed one by one).
    fn observe_frontier(&self, core: &Core) {
        if let Some(f) = &self.store.frontier {
            let _ = lock(&core.clock).observe(f.timestamp, f.actor.as_str());
        }
    }

    /// Stamps and appends `ops` as one commit, then folds it into the view.
    /// Once the commit is on the ref the write has happened: a failure to
    /// fold it is a warning (the next operation catches up), never an error.
    pub(crate) fn append(
        &mut self,
        core: &Core,
        ops: &[(&'static str, String, Payload)],
    ) -> Result<Vec<Version>> {
        if ops.is_empty() {
            return Err(KvError::EmptyBatch);
        }
        self.catch_up(core)?;
        let mut envelopes = Vec::with_capacity(ops.len());
        {
            let mut clock = lock(&core.clock);
            for (kind, _, payload) in ops {
                envelopes.push(Envelope::new(
                    core.actor.clone(),
                    clock.now()?,
                    *kind,
                    payload.clone(),
                )?);
            }
        }
        let before = self.store.position;
        let done = self.wal.append_committed(&envelopes)?;
        if let Some(e) = &done.after_commit {
            tracing::warn!(log = %self.wal.ref_name(), commit = %done.commit, error = %e,
                "key-value write committed, then failed");
        }
        if let Err(e) = self.fold_own(core, done.commit, done.parent, before, &envelopes) {
            tracing::warn!(log = %self.wal.ref_name(), error = %e,
                "key-value write committed; folding it into the view failed (retried on next use)");
        }
        Ok(envelopes.iter().map(EventKey::of).collect())
    }
}

impl Inner {
    /// Folds this handle's own commit from the envelopes in hand when it
    /// sits directly on the view's position (nobody appended in between:
    /// its parent, as the append reports it, is the position), saving the
    /// read back and re-verification of its chunk — and the rescan of the
    /// pack directory that reading a just-written pack costs; otherwise
    /// catches up from the log. Commits appended after it are left to the
    /// next catch-up, as the view's position is then an ancestor of the
    /// head.
    pub(crate) fn fold_own(
        &mut self,
        core: &Core,
        commit: ObjectId,
        parent: Option<ObjectId>,
        before: Option<ObjectId>,
        envelopes: &[Envelope],
    ) -> Result<()> {
        if parent != before {
            return self.catch_up(core).map(|_| ());
        }
        self.store.ensure_writable(&self.wal, &self.snapshots)?;
        if self.store.position != before {
            // Reopening for writing found the view elsewhere.
            return self.catch_up(core).map(|_| ());
        }
        match self.store.apply(envelopes, Some(commit)) {
            Ok(changes) => {
                core.broadcast(changes);
                Ok(())
            }
            Err(fault) => self.store.heal(&self.wal, &self.snapshots, fault),
        }
    }
}
