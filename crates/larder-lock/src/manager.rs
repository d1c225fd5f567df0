//! [`LockManager`]: acquire, renew, release, inspect and clean up leases.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use larder_codec::{ActorId, blake2b256, to_hex};
use larder_crdt::{Clock, SystemClock};
use larder_git::ObjectId;
use serde::{Deserialize, Serialize};

use crate::authority::{Authority, Cas};
use crate::{LockError, Result};

/// The lock record format this build writes and reads.
pub const LOCK_FORMAT_VERSION: u32 = 1;

/// The longest resource name accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 1024;

/// The record stored as `lock.json` in each lock-state commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRecord {
    /// Record format version.
    pub format: u32,
    /// The resource, checked against the ref's hash on every read.
    pub resource: String,
    /// The holder, or `None` when the lock is free (released).
    pub holder: Option<String>,
    /// The fencing token of the latest acquisition (kept when released).
    pub token: u64,
    /// When the holder acquired it, by the holder's clock (ms since epoch).
    pub acquired_ms: u64,
    /// When the lease ends, by the holder's clock.
    pub expires_ms: u64,
    /// A random value unique to this state.
    pub nonce: String,
}

/// A lease the caller holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The resource.
    pub resource: String,
    /// The holder (this manager's actor).
    pub holder: ActorId,
    /// The fencing token: strictly greater than every token issued before
    /// for this resource. Hand it to downstream systems with every write.
    pub token: u64,
    /// When the lease was acquired (holder's clock, ms since epoch).
    pub acquired_ms: u64,
    /// When it expires (holder's clock, ms since epoch).
    pub expires_ms: u64,
}

/// A lock as seen by [`LockManager::check`] and [`LockManager::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    /// The resource.
    pub resource: String,
    /// The holder, if the lock is held (possibly expired).
    pub holder: Option<String>,
    /// The latest fencing token.
    pub token: u64,
    /// When the holder acquired it.
    pub acquired_ms: u64,
    /// When the lease expires (holder's clock).
    pub expires_ms: u64,
    /// Whether the lease is live by the reader's clock.
    pub live: bool,
    /// The lock's ref.
    pub reference: String,
}

/// One entry of [`LockManager::list`]: a lock, or the error reading it.
pub type ListEntry = std::result::Result<LockInfo, LockError>;

/// How a [`LockManager`] behaves.
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// First component under `refs/`: locks live at
    /// `refs/<namespace>/locks/<blake2b-256 of the resource>`.
    pub namespace: String,
    /// The most two holders' clocks may disagree: nobody takes over a lease
    /// until `expires + max_skew_ms` by their own clock.
    pub max_skew_ms: u64,
    /// How many lost compare-and-swaps an operation absorbs before
    /// reporting [`LockError::Stale`].
    pub max_attempts: u32,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            namespace: "larder".into(),
            max_skew_ms: 2_000,
            max_attempts: 16,
        }
    }
}

/// Lease locks in git refs, decided by one authority (see [`Authority`]).
pub struct LockManager {
    authority: Authority,
    actor: ActorId,
    clock: Arc<dyn Clock>,
    options: LockOptions,
    nonce_counter: AtomicU64,
}

impl std::fmt::Debug for LockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockManager")
            .field("authority", &self.authority.describe())
            .field("actor", &self.actor)
            .finish()
    }
}

enum Current {
    Absent,
    Present(ObjectId, LockRecord),
}

impl LockManager {
    /// Locks decided by `authority`, held as `actor`, timed by the system clock.
    pub fn new(authority: Authority, actor: ActorId) -> Self {
        Self::with_clock(
            authority,
            actor,
            Arc::new(SystemClock),
            LockOptions::default(),
        )
    }

    /// Locks with an injected clock and options.
    pub fn with_clock(
        authority: Authority,
        actor: ActorId,
        clock: Arc<dyn Clock>,
        options: LockOptions,
    ) -> Self {
        Self {
            authority,
            actor,
            clock,
            options,
            nonce_counter: AtomicU64::new(0),
        }
    }

    /// The authority in use.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The actor this manager acquires as.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// The ref that holds `resource`'s lock: the full BLAKE2b-256 of the
    /// resource name in hex, so names of any shape map to valid refs.
    pub fn ref_for(&self, resource: &str) -> String {
        let hash = blake2b256(&[resource.as_bytes()]);
        let hex = to_hex(&hash);
        format!("{}{hex}", self.prefix())
    }

    fn prefix(&self) -> String {
        format!("refs/{}/locks/", self.options.namespace)
    }

    /// Acquires `resource` for `ttl_ms` milliseconds. Re-acquiring a live
    /// lease of our own extends it and keeps its token; any other
    /// acquisition (first, after release, or taking over an expired lease)
    /// issues `token + 1` in a single compare-and-swap.
    pub fn acquire(&self, resource: &str, ttl_ms: u64) -> Result<Lease> {
        check_resource(resource)?;
        let name = self.ref_for(resource);
        for _ in 0..self.options.max_attempts {
            let now = self.clock.now_millis();
            let current = self.read(&name, resource)?;
            let (parent, token, acquired_ms) = match &current {
                Current::Absent => (None, 1, now),
                Current::Present(id, rec) => match rec.holder.as_deref() {
                    Some(h) if h == self.actor.as_str() && now < rec.expires_ms => {
                        (Some(*id), rec.token, rec.acquired_ms)
                    }
                    Some(h) if now < rec.expires_ms.saturating_add(self.options.max_skew_ms) => {
                        return Err(LockError::Held {
                            resource: resource.into(),
                            holder: h.into(),
                            expires_in_ms: rec.expires_ms.saturating_add(self.options.max_skew_ms)
                                - now,
                            token: rec.token,
                        });
                    }
                    _ => (Some(*id), rec.token.saturating_add(1), now),
                },
            };
            let record = LockRecord {
                format: LOCK_FORMAT_VERSION,
                resource: resource.into(),
                holder: Some(self.actor.to_string()),
                token,
                acquired_ms,
                expires_ms: now.saturating_add(ttl_ms),
                nonce: self.nonce(),
            };
            if let Cas::Done = self.swap(&name, parent, &record, "acquire")? {
                return Ok(self.lease(record));
            }
        }
        Err(LockError::Stale {
            resource: resource.into(),
        })
    }

    /// Extends a live lease by `ttl_ms` from now; the token stays.
    pub fn renew(&self, lease: &Lease, ttl_ms: u64) -> Result<Lease> {
        let name = self.ref_for(&lease.resource);
        for _ in 0..self.options.max_attempts {
            let now = self.clock.now_millis();
            let (id, rec) = self.held_by_me(&name, &lease.resource, lease.token)?;
            if now >= rec.expires_ms {
                return Err(LockError::Expired {
                    resource: lease.resource.clone(),
                    token: lease.token,
                    ago_ms: now - rec.expires_ms,
                });
            }
            let record = LockRecord {
                expires_ms: now.saturating_add(ttl_ms),
                nonce: self.nonce(),
                ..rec
            };
            if let Cas::Done = self.swap(&name, Some(id), &record, "renew")? {
                return Ok(self.lease(record));
            }
        }
        Err(LockError::Stale {
            resource: lease.resource.clone(),
        })
    }

    /// Releases a lease.
    pub fn release(&self, lease: &Lease) -> Result<()> {
        self.release_token(&lease.resource, lease.token)
    }

    /// Releases the lease on `resource` with `token` held by this actor —
    /// how a process releases a lease an earlier process acquired. The lock
    /// becomes free but keeps its token, so the next one is still greater.
    pub fn release_token(&self, resource: &str, token: u64) -> Result<()> {
        let name = self.ref_for(resource);
        for _ in 0..self.options.max_attempts {
            let now = self.clock.now_millis();
            let (id, rec) = self.held_by_me(&name, resource, token)?;
            let record = LockRecord {
                holder: None,
                expires_ms: now.min(rec.expires_ms),
                nonce: self.nonce(),
                ..rec
            };
            if let Cas::Done = self.swap(&name, Some(id), &record, "release")? {
                return Ok(());
            }
        }
        Err(LockError::Stale {
            resource: resource.into(),
        })
    }

    /// The current state of `resource`'s lock, if it was ever acquired.
    pub fn check(&self, resource: &str) -> Result<Option<LockInfo>> {
        check_resource(resource)?;
        let name = self.ref_for(resource);
        Ok(match self.read(&name, resource)? {
            Current::Absent => None,
            Current::Present(_, rec) => Some(self.info(name, rec)),
        })
    }

    /// Every lock under this namespace; a malformed one is reported as an
    /// error entry for its ref alone.
    pub fn list(&self) -> Result<Vec<ListEntry>> {
        let refs = self.authority.list(&self.prefix())?;
        Ok(refs
            .into_iter()
            .map(|(name, id)| self.parse(&name, id).map(|rec| self.info(name, rec)))
            .collect())
    }

    /// Trims the history of every free or long-expired lock to a single
    /// parentless commit that keeps the token (so tokens stay monotonic),
    /// in one compare-and-swap each. Returns how many were trimmed.
    pub fn gc(&self) -> Result<usize> {
        let now = self.clock.now_millis();
        let mut trimmed = 0;
        for (name, id) in self.authority.list(&self.prefix())? {
            let Ok(rec) = self.parse(&name, id) else {
                continue;
            };
            let expired = now >= rec.expires_ms.saturating_add(self.options.max_skew_ms);
            let has_history = self
                .authority
                .object_repo()
                .read_commit(id)
                .map(|c| !c.parents.is_empty())
                .unwrap_or(false);
            if (rec.holder.is_none() || expired) && has_history {
                let record = LockRecord {
                    holder: None,
                    nonce: self.nonce(),
                    ..rec
                };
                let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
                let fresh = self.authority.write_state(
                    &bytes,
                    None,
                    "larder: lock gc\n",
                    unix_seconds(now),
                )?;
                if let Cas::Done = self.authority.cas(&name, Some(id), fresh)? {
                    trimmed += 1;
                }
            }
        }
        Ok(trimmed)
    }

    // ---- internals -------------------------------------------------------

    fn read(&self, name: &str, resource: &str) -> Result<Current> {
        let Some(id) = self.authority.read(name)? else {
            return Ok(Current::Absent);
        };
        let rec = self.parse(name, id)?;
        if rec.resource != resource {
            return Err(LockError::ResourceMismatch {
                reference: name.into(),
                expected: resource.into(),
                found: rec.resource,
            });
        }
        Ok(Current::Present(id, rec))
    }

    fn parse(&self, name: &str, id: ObjectId) -> Result<LockRecord> {
        let malformed = |reason: String| LockError::Malformed {
            reference: name.into(),
            reason,
        };
        let repo = self.authority.object_repo();
        let commit = repo.read_commit(id).map_err(|e| malformed(e.to_string()))?;
        let tree = repo
            .read_tree(commit.tree)
            .map_err(|e| malformed(e.to_string()))?;
        let [entry] = tree.as_slice() else {
            return Err(malformed(format!(
                "expected only lock.json, found {} entries",
                tree.len()
            )));
        };
        if entry.name != "lock.json" {
            return Err(malformed(format!("unexpected entry {:?}", entry.name)));
        }
        let bytes = repo
            .read_blob(entry.id)
            .map_err(|e| malformed(e.to_string()))?;
        let rec: LockRecord =
            serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        if rec.format != LOCK_FORMAT_VERSION {
            return Err(malformed(format!("unsupported format {}", rec.format)));
        }
        if self.ref_for(&rec.resource) != name {
            return Err(malformed(format!(
                "record for {:?} stored under the wrong ref",
                rec.resource
            )));
        }
        Ok(rec)
    }

    fn held_by_me(&self, name: &str, resource: &str, token: u64) -> Result<(ObjectId, LockRecord)> {
        let not_holder = |current: String| LockError::NotHolder {
            resource: resource.into(),
            token,
            current,
        };
        match self.read(name, resource)? {
            Current::Absent => Err(not_holder("never acquired".into())),
            Current::Present(id, rec) => {
                if rec.token == token && rec.holder.as_deref() == Some(self.actor.as_str()) {
                    Ok((id, rec))
                } else {
                    Err(not_holder(match &rec.holder {
                        Some(h) => format!("held by {h} with token {}", rec.token),
                        None => format!("free, last token {}", rec.token),
                    }))
                }
            }
        }
    }

    fn swap(
        &self,
        name: &str,
        parent: Option<ObjectId>,
        record: &LockRecord,
        what: &str,
    ) -> Result<Cas> {
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        let message = format!(
            "larder: lock {what} {} (token {})\n",
            record.resource, record.token
        );
        let commit = self.authority.write_state(
            &bytes,
            parent,
            &message,
            unix_seconds(self.clock.now_millis()),
        )?;
        self.authority.cas(name, parent, commit)
    }

    fn lease(&self, rec: LockRecord) -> Lease {
        Lease {
            resource: rec.resource,
            holder: self.actor.clone(),
            token: rec.token,
            acquired_ms: rec.acquired_ms,
            expires_ms: rec.expires_ms,
        }
    }

    fn info(&self, reference: String, rec: LockRecord) -> LockInfo {
        let live = rec.holder.is_some() && self.clock.now_millis() < rec.expires_ms;
        LockInfo {
            resource: rec.resource,
            holder: rec.holder,
            token: rec.token,
            acquired_ms: rec.acquired_ms,
            expires_ms: rec.expires_ms,
            live,
            reference,
        }
    }

    fn nonce(&self) -> String {
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!("{}:{}:{n}:{nanos}", self.actor, std::process::id());
        to_hex(&blake2b256(&[seed.as_bytes()])[..16])
    }
}

fn check_resource(resource: &str) -> Result<()> {
    if resource.is_empty() {
        return Err(LockError::InvalidResource {
            reason: "must not be empty",
        });
    }
    if resource.len() > MAX_RESOURCE_LEN {
        return Err(LockError::InvalidResource {
            reason: "longer than 1024 bytes",
        });
    }
    Ok(())
}

fn unix_seconds(millis: u64) -> i64 {
    i64::try_from(millis / 1000).unwrap_or(i64::MAX)
}
