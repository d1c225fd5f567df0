//! Pulling: fetching every replica's head (file or network transport),
//! staging refs that mirror the remote, per-head verification and
//! quarantine, then one merge.

use larder_git::{Expected, GitError, GitRepo, ObjectId};

use crate::Result;
use crate::sync::{
    Fetched, RejectedHead, STAGING_LOCK_WAITS, StaleRef, SyncManager, SyncReport, Transport,
};

impl SyncManager {
    /// Fetches every replica's head, verifies each head's new commits on its
    /// own, and merges the heads that verify into the local log (one
    /// fast-forward or one deterministic merge). A head whose new commits
    /// fail verification — or whose objects cannot be fetched — is
    /// quarantined: skipped, and named in [`SyncReport::rejected`]; it never
    /// blocks other actors' events. Nothing of a rejected head reaches the
    /// log, and once its owner deletes or fixes it, the next pull heals.
    ///
    /// Staging refs mirror the remote's heads: each fetched head is staged,
    /// and a staging ref whose head is gone from the remote is deleted.
    pub fn pull(&self) -> Result<SyncReport> {
        self.pull_with(&|_| {})
    }

    /// [`SyncManager::pull`], calling `progress(n)` as each `n` more
    /// incoming commits have been verified (for a progress display).
    pub fn pull_with(&self, progress: &dyn Fn(u64)) -> Result<SyncReport> {
        let mut rejected = Vec::new();
        let (advertised, fetched) = match &self.transport {
            Transport::File(remote) => self.fetch_file(remote, &mut rejected)?,
            Transport::Network(url) => {
                let fetched = self.fetch_network(url, &mut rejected)?;
                // gix does not flush what it fetched; the file transport
                // flushes every pack it writes.
                if self.wal.options().durability == larder_wal::Durability::Fsync {
                    self.local().sync_packs()?;
                }
                fetched
            }
        };
        let stale_refs = self.mirror_staging(&advertised, &fetched)?;
        let ids: Vec<ObjectId> = fetched.iter().map(|(_, id)| *id).collect();
        let verdicts = match &self.event_check {
            Some(check) => self
                .wal
                .incoming_each_checked(&ids, progress, &|e| check(e))?,
            None => self.wal.incoming_each_with(&ids, progress)?,
        };
        let mut good = Vec::with_capacity(ids.len());
        let (mut commits, mut events) = (0, 0);
        for ((name, id), verdict) in fetched.iter().zip(verdicts) {
            match verdict {
                Ok((c, e)) => {
                    good.push(*id);
                    commits += c;
                    events += e;
                }
                Err(e) => rejected.push(self.reject(name, *id, e.commit(), e.path(), &e)),
            }
        }
        let merge = self.wal.merge_heads(&good)?;
        let upkeep = self.upkeep(self.local()).into_iter().collect();
        Ok(SyncReport {
            heads_seen: advertised.len(),
            commits_received: commits,
            events_received: events,
            merge: Some(merge),
            new_head: self.wal.head()?,
            rejected,
            stale_refs,
            upkeep,
            ..SyncReport::default()
        })
    }

    /// A quarantine record for remote head `name` at `head`.
    fn reject(
        &self,
        name: &str,
        head: ObjectId,
        commit: Option<ObjectId>,
        path: Option<&str>,
        reason: &dyn std::fmt::Display,
    ) -> RejectedHead {
        RejectedHead {
            head_ref: name.into(),
            actor: name
                .strip_prefix(&self.heads_prefix())
                .unwrap_or(name)
                .into(),
            head,
            commit,
            path: path.map(str::to_owned),
            reason: reason.to_string(),
        }
    }

    /// File transport: copies each head's objects on its own, so a head
    /// with a corrupt or missing object is quarantined alone. What the
    /// local repository holds is learned once for all heads (one snapshot
    /// of its object store, see [`larder_git::Haves`]), and what one head
    /// brought counts as held for the next. Returns the heads the remote
    /// has and those whose objects arrived.
    fn fetch_file(&self, remote: &GitRepo, rejected: &mut Vec<RejectedHead>) -> Result<Fetched> {
        let refs = remote.list_refs(&self.heads_prefix())?;
        let mut fetched = Vec::with_capacity(refs.len());
        let mut haves = self.local().haves();
        for (name, id) in &refs {
            match haves.copy_from(remote, &[*id]) {
                Ok(_) => fetched.push((name.clone(), *id)),
                Err(
                    e @ (GitError::CorruptObject { .. }
                    | GitError::ObjectMissing { .. }
                    | GitError::WrongObjectKind { .. }
                    | GitError::DamagedPack(_)),
                ) => rejected.push(self.reject(name, *id, None, None, &e)),
                Err(other) => return Err(other.into()),
            }
        }
        let advertised = refs.into_iter().map(|(name, _)| name).collect();
        Ok((advertised, fetched))
    }

    /// Network transport: one fetch of every head into the staging refs; if
    /// that fails (one bad object fails a whole fetch), the heads are
    /// listed and fetched one by one, and those that still fail are
    /// quarantined. A remote that cannot be reached at all is an error.
    fn fetch_network(&self, url: &str, rejected: &mut Vec<RejectedHead>) -> Result<Fetched> {
        let prefix = self.heads_prefix();
        let staging = self.staging_prefix();
        let spec = format!("+{prefix}*:{staging}*");
        let together = match self.local().fetch_with_gix(url, &[&spec]) {
            Ok(mapped) => {
                let advertised = mapped.iter().map(|(n, _)| n.clone()).collect();
                return Ok((advertised, mapped));
            }
            Err(e) => e,
        };
        let listed = match self.local().ls_remote_with_git(url, &format!("{prefix}*")) {
            Ok(listed) if !listed.is_empty() => listed,
            _ => return Err(together.into()),
        };
        let mut fetched = Vec::with_capacity(listed.len());
        for (name, id) in &listed {
            let Some(actor) = name.strip_prefix(&prefix) else {
                continue;
            };
            let one = format!("+{name}:{staging}{actor}");
            match self.local().fetch_with_gix(url, &[&one]) {
                // What the fetch brought, not what the listing said: the
                // head may have moved in between.
                Ok(mapped) => fetched.push(
                    mapped
                        .into_iter()
                        .find(|(n, _)| n == name)
                        .unwrap_or((name.clone(), *id)),
                ),
                Err(e) => rejected.push(self.reject(name, *id, None, None, &e)),
            }
        }
        let advertised = listed.into_iter().map(|(name, _)| name).collect();
        Ok((advertised, fetched))
    }

    /// Stages every fetched head and deletes staging refs whose remote
    /// head is gone, so a deleted bad head stops being considered.
    fn mirror_staging(
        &self,
        advertised: &[String],
        fetched: &[(String, ObjectId)],
    ) -> Result<Vec<StaleRef>> {
        let prefix = self.heads_prefix();
        let staging = self.staging_prefix();
        let mut stale = Vec::new();
        for (name, id) in fetched {
            let actor = name.strip_prefix(&prefix).unwrap_or(name);
            stale.extend(self.set_staging(&format!("{staging}{actor}"), *id)?);
        }
        let present: std::collections::HashSet<&str> = advertised
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix))
            .collect();
        for (name, id) in self.local().list_refs(&staging)? {
            let actor = name.strip_prefix(&staging).unwrap_or(&name);
            if !present.contains(actor) {
                match self.local().delete_ref(&name, id) {
                    Ok(()) => {}
                    // Someone else pruned or moved it: theirs to keep.
                    Err(e) if e.is_conflict() => {}
                    Err(e) if e.is_retryable() => stale.push(self.stale(&name)),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(stale)
    }

    /// Points a staging ref at `id` (staging refs mirror the remote; they
    /// are ours to overwrite), without a reflog entry.
    ///
    /// A staging ref whose `.lock` stays held through a few waits (a pull
    /// killed while updating it leaves the file behind) is left as it was
    /// and returned as a [`StaleRef`] naming the lock file: merges use the
    /// fetched ids, not the staging refs, so the pull goes on — but the
    /// caller is told, instead of every later pull stalling silently.
    fn set_staging(&self, name: &str, id: ObjectId) -> Result<Option<StaleRef>> {
        let mut lock_waits = 0;
        for _ in 0..self.max_attempts {
            let current = self.local().ref_target(name)?;
            if current == Some(id) {
                return Ok(None);
            }
            let expected = current.map_or(Expected::MustNotExist, Expected::MustBe);
            // Unlogged: git would log every move of a ref under
            // refs/remotes/ in a non-bare repository, a line per pull that
            // nothing trims.
            match self.local().update_ref_unlogged(name, expected, id) {
                Ok(()) => return Ok(None),
                Err(e) if e.is_retryable() => {
                    lock_waits += 1;
                    if lock_waits >= STAGING_LOCK_WAITS {
                        return Ok(Some(self.stale(name)));
                    }
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(self.stale(name)))
    }

    /// A staging ref held by a leftover lock file.
    fn stale(&self, name: &str) -> StaleRef {
        StaleRef {
            reference: name.into(),
            lock_path: self
                .local()
                .git_dir()
                .join(format!("{name}.lock"))
                .display()
                .to_string(),
        }
    }
}
