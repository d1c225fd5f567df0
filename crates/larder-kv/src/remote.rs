//! Replication through git remotes: eventual [`Kv::sync`], [`Kv::pull`],
//! [`Kv::push`], and [`Kv::follow`] of a linearizable store's chain.

use larder_sync::{SyncManager, SyncReport};

use crate::authority::open_authority;
use crate::kv::{Kv, lock};
use crate::{KvError, Result};

impl Kv {
    /// Pulls from and pushes to `remote` (git-config name, path or URL),
    /// then folds what arrived. Replicas converge by last writer wins.
    /// Eventual mode only: a linearizable store learns new writes from its
    /// authority ([`Kv::refresh`]); merging other heads would put writes on
    /// its log that the authority never ordered ([`KvError::Mode`]).
    pub fn sync(&self, remote: &str) -> Result<SyncReport> {
        self.eventual_only("sync")?;
        self.transfer(remote, SyncManager::sync)
    }

    /// Pulls from `remote`, then folds what arrived (eventual mode only,
    /// as [`Kv::sync`]).
    pub fn pull(&self, remote: &str) -> Result<SyncReport> {
        self.eventual_only("pull")?;
        self.transfer(remote, SyncManager::pull)
    }

    /// Pushes this replica's log to `remote` (its head ref there; in
    /// linearizable mode, a copy of the chain for eventual replicas).
    pub fn push(&self, remote: &str) -> Result<SyncReport> {
        self.transfer(remote, SyncManager::push)
    }

    /// Follows the chain of a linearizable store on `authority`, read-only:
    /// fetches it, verifies what is new, merges it into this replica's log
    /// (a fast-forward when this replica wrote nothing of its own) and
    /// folds it. Returns how many writes took effect. For an eventual
    /// replica reading what linearizable writers ordered; a linearizable
    /// store does this on every read ([`Kv::refresh`]).
    pub fn follow(&self, authority: &str) -> Result<usize> {
        if self.core.linear.is_some() {
            return self.refresh();
        }
        let mut inner = lock(&self.core.inner);
        let source = open_authority(inner.wal.repo(), authority, false)?;
        let chain = Self::chain_ref_for(&inner.wal);
        let Some(head) = source.fetch(inner.wal.repo(), &chain)? else {
            return Ok(0);
        };
        inner
            .wal
            .incoming(head)
            .map_err(|e| KvError::ForeignCommit {
                chain: format!("{chain} on {}", source.name()),
                commit: e.commit().unwrap_or(head).to_string(),
                reason: e.to_string(),
            })?;
        inner.wal.merge(head)?;
        inner.catch_up(&self.core)
    }

    fn eventual_only(&self, what: &str) -> Result<()> {
        match &self.core.linear {
            Some(linear) => Err(KvError::Mode(format!(
                "{what} is for eventual stores; this one is linearizable through {} (its reads fetch the chain themselves)",
                linear.name
            ))),
            None => Ok(()),
        }
    }

    fn transfer(
        &self,
        remote: &str,
        op: impl FnOnce(&SyncManager) -> larder_sync::Result<SyncReport>,
    ) -> Result<SyncReport> {
        let mut inner = lock(&self.core.inner);
        let manager = SyncManager::new(inner.wal.clone(), self.core.actor.clone(), remote)?;
        let report = op(&manager)?;
        inner.catch_up(&self.core)?;
        Ok(report)
    }
}
