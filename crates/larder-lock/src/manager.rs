//! [`LockManager`]: acquire, renew, release, inspect and clean up leases.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use larder_codec::{ActorId, blake2b256, to_hex};
use larder_crdt::{Clock, SystemClock};
use larder_git::ObjectId;

use crate::authority::{Authority, Cas};
use crate::record::{self, LOCK_FORMAT_VERSION, LockRecord};
use crate::{LockError, Result};

/// The longest resource name accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 1024;

/// How many lock states a manager remembers (see `LockManager::known`)
/// before it forgets them all and starts over.
const MAX_KNOWN: usize = 4096;

/// A lease the caller holds: one acquisition. Only this lease (or its
/// token, through [`LockManager::renew_token`] and
/// [`LockManager::release_token`]) renews or releases it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The resource.
    pub resource: String,
    /// The holder's actor (this manager's).
    pub holder: ActorId,
    /// This acquisition's holder id, as stored in the lock record (`None`
    /// only for a lease a format-1 build acquired, renewed by token).
    pub holder_id: Option<String>,
    /// The fencing token: strictly greater than every token issued before
    /// for this resource, so it also names this acquisition. Hand it to
    /// downstream systems with every write.
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
    /// The holder's actor, if the lock is held (possibly expired).
    pub holder: Option<String>,
    /// The holding acquisition's id (`None` when free, or for a lease
    /// written by a format-1 build).
    pub holder_id: Option<String>,
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
    /// How many times an operation waits for the lock ref's `<ref>.lock`
    /// file to go away (git waits about 100 ms, with backoff, each time)
    /// before reporting [`LockError::RefLocked`] with the file's path.
    pub max_lock_waits: u32,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            namespace: "larder".into(),
            max_skew_ms: 2_000,
            max_attempts: 16,
            max_lock_waits: 20,
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
    /// The last state this manager wrote or read, per lock ref: the first
    /// attempt of a change compare-and-swaps from it without reading the
    /// ref and its commit again. A successful swap proves the ref still
    /// held that very commit — the same proof a fresh read followed by the
    /// swap gives — and a lost one falls back to a fresh read.
    known: Mutex<HashMap<String, (ObjectId, LockRecord)>>,
    /// Git's empty tree, once written to the object repository: every
    /// format-3 lock-state commit has it as its tree.
    empty_tree: OnceLock<ObjectId>,
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
            known: Mutex::new(HashMap::new()),
            empty_tree: OnceLock::new(),
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

    /// Acquires `resource` for `ttl_ms` milliseconds as a new holder:
    /// the first acquisition, one after a release, or a takeover of a
    /// lease expired past the skew margin, each issuing `token + 1` in a
    /// single compare-and-swap. A live lease is [`LockError::Held`] even
    /// when this actor holds it (another process or thread of this clone
    /// is another holder); this actor's own expired lease still inside the
    /// margin is [`LockError::OwnLeaseInSkewMargin`]. A last token of
    /// `u64::MAX` is [`LockError::TokensExhausted`].
    pub fn acquire(&self, resource: &str, ttl_ms: u64) -> Result<Lease> {
        check_resource(resource)?;
        let name = self.ref_for(resource);
        let holder_id = self.nonce();
        let record = self.update(resource, &name, "acquire", |now, current| {
            let (parent, token) = match current {
                Current::Absent => (None, 1),
                Current::Present(id, rec) => {
                    if let Some(h) = &rec.holder {
                        let free_at = rec.expires_ms.saturating_add(self.options.max_skew_ms);
                        if now < free_at {
                            return Err(self.refusal(resource, h, &rec, now, free_at));
                        }
                    }
                    let next =
                        rec.token
                            .checked_add(1)
                            .ok_or_else(|| LockError::TokensExhausted {
                                resource: resource.into(),
                                reference: name.clone(),
                            })?;
                    (Some(id), next)
                }
            };
            let record = LockRecord {
                format: LOCK_FORMAT_VERSION,
                resource: resource.into(),
                holder: Some(self.actor.to_string()),
                holder_id: Some(holder_id.clone()),
                token,
                acquired_ms: now,
                expires_ms: now.saturating_add(ttl_ms),
                nonce: self.nonce(),
            };
            Ok((parent, record))
        })?;
        Ok(self.lease(record))
    }

    /// Why a lease that is live, or expired but inside the skew margin,
    /// refuses an acquisition.
    fn refusal(
        &self,
        resource: &str,
        holder: &str,
        rec: &LockRecord,
        now: u64,
        free_at: u64,
    ) -> LockError {
        if holder == self.actor.as_str() && now >= rec.expires_ms {
            LockError::OwnLeaseInSkewMargin {
                resource: resource.into(),
                holder: holder.into(),
                token: rec.token,
                expired_ago_ms: now - rec.expires_ms,
                retry_in_ms: free_at - now,
            }
        } else {
            LockError::Held {
                resource: resource.into(),
                holder: holder.into(),
                holder_id: rec.holder_id.clone(),
                expires_in_ms: free_at - now,
                token: rec.token,
            }
        }
    }

    /// Extends a live lease by `ttl_ms` from now; the token stays. Only
    /// the acquisition that `lease` came from can renew it.
    pub fn renew(&self, lease: &Lease, ttl_ms: u64) -> Result<Lease> {
        self.renew_matching(&lease.resource, lease.token, Some(&lease.holder_id), ttl_ms)
    }

    /// Extends the live lease on `resource` with `token` held by this
    /// actor — how a later process renews a lease an earlier one acquired.
    /// The token names the acquisition: tokens strictly increase, so no
    /// other acquisition of this resource ever had it.
    pub fn renew_token(&self, resource: &str, token: u64, ttl_ms: u64) -> Result<Lease> {
        self.renew_matching(resource, token, None, ttl_ms)
    }

    fn renew_matching(
        &self,
        resource: &str,
        token: u64,
        holder_id: Option<&Option<String>>,
        ttl_ms: u64,
    ) -> Result<Lease> {
        check_resource(resource)?;
        let name = self.ref_for(resource);
        let record = self.update(resource, &name, "renew", |now, current| {
            let (id, rec) = self.held_by_me(resource, current, token, holder_id)?;
            if now >= rec.expires_ms {
                return Err(LockError::Expired {
                    resource: resource.into(),
                    token,
                    ago_ms: now - rec.expires_ms,
                });
            }
            let record = LockRecord {
                format: LOCK_FORMAT_VERSION,
                expires_ms: now.saturating_add(ttl_ms),
                nonce: self.nonce(),
                ..rec
            };
            Ok((Some(id), record))
        })?;
        Ok(self.lease(record))
    }

    /// Releases a lease. Only the acquisition that `lease` came from can
    /// release it. The lock becomes free but keeps its token, so the next
    /// acquisition's is still greater.
    pub fn release(&self, lease: &Lease) -> Result<()> {
        self.release_matching(&lease.resource, lease.token, Some(&lease.holder_id))
    }

    /// Releases the lease on `resource` with `token` held by this actor —
    /// how a later process releases a lease an earlier one acquired (the
    /// token names the acquisition, as for [`LockManager::renew_token`]).
    pub fn release_token(&self, resource: &str, token: u64) -> Result<()> {
        self.release_matching(resource, token, None)
    }

    fn release_matching(
        &self,
        resource: &str,
        token: u64,
        holder_id: Option<&Option<String>>,
    ) -> Result<()> {
        check_resource(resource)?;
        let name = self.ref_for(resource);
        self.update(resource, &name, "release", |now, current| {
            let (id, rec) = self.held_by_me(resource, current, token, holder_id)?;
            let record = LockRecord {
                format: LOCK_FORMAT_VERSION,
                holder: None,
                holder_id: None,
                expires_ms: now.min(rec.expires_ms),
                nonce: self.nonce(),
                ..rec
            };
            Ok((Some(id), record))
        })?;
        Ok(())
    }

    /// Whether `token` is the current lease on `resource`: the latest
    /// token issued, held (not released), and not expired by this
    /// manager's clock. A downstream system that can ask the authority
    /// checks this before acting on a write carrying `token`; one that
    /// cannot keeps a [`FencedStore`](crate::FencedStore). Like any check
    /// followed by an action, the answer can go stale right after it is
    /// given; a fenced store's highest-token rule has no such gap.
    pub fn is_current(&self, resource: &str, token: u64) -> Result<bool> {
        check_resource(resource)?;
        let name = self.ref_for(resource);
        Ok(match self.read(&name, resource)? {
            Current::Absent => false,
            Current::Present(_, rec) => {
                rec.token == token
                    && rec.holder.is_some()
                    && self.clock.now_millis() < rec.expires_ms
            }
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
            .map(|(name, id)| {
                self.parse(&name, id)
                    .map(|stored| self.info(name, stored.record))
            })
            .collect())
    }

    /// Trims the history of every free or long-expired lock to a single
    /// parentless commit that keeps the token (so tokens stay monotonic),
    /// in one compare-and-swap each. Returns how many were trimmed.
    pub fn gc(&self) -> Result<usize> {
        let now = self.clock.now_millis();
        let mut trimmed = 0;
        for (name, id) in self.authority.list(&self.prefix())? {
            let Ok(stored) = self.parse(&name, id) else {
                continue;
            };
            let rec = stored.record;
            let expired = now >= rec.expires_ms.saturating_add(self.options.max_skew_ms);
            if (rec.holder.is_none() || expired) && stored.has_parent {
                let record = LockRecord {
                    format: LOCK_FORMAT_VERSION,
                    holder: None,
                    holder_id: None,
                    nonce: self.nonce(),
                    ..rec
                };
                // A lost race or a locked ref just leaves this lock untrimmed.
                if let (Cas::Done, fresh) = self.swap(&name, None, Some(id), &record, "gc")? {
                    self.remember(&name, fresh, &record);
                    trimmed += 1;
                }
            }
        }
        Ok(trimmed)
    }

    // ---- internals -------------------------------------------------------

    /// One read-decide-swap loop: `next` turns the state just read into the
    /// state to write (or an error), which replaces it by one
    /// compare-and-swap. A lost swap is retried from a fresh read, up to
    /// `max_attempts` ([`LockError::Stale`]); a ref held by a `.lock` file
    /// is waited for up to `max_lock_waits` times ([`LockError::RefLocked`]).
    ///
    /// The first attempt starts from the state this manager last wrote or
    /// read for the ref, if any, instead of reading it: the swap succeeds
    /// only if the ref still holds exactly that commit, so a decision made
    /// from it is as sound as one made from a fresh read. Only a write is
    /// decided from a remembered state: a refusal, or a lost swap, is
    /// decided again from a fresh read (and such a lost swap is not counted
    /// against `max_attempts`).
    fn update(
        &self,
        resource: &str,
        name: &str,
        what: &str,
        mut next: impl FnMut(u64, Current) -> Result<(Option<ObjectId>, LockRecord)>,
    ) -> Result<LockRecord> {
        let (mut lost, mut waits) = (0u32, 0u32);
        let mut remembered = self.remembered(name, resource);
        loop {
            let now = self.clock.now_millis();
            let (current, guessed) = match remembered.take() {
                Some((id, rec)) => (Current::Present(id, rec), true),
                None => (self.read(name, resource)?, false),
            };
            let (parent, record) = match next(now, current) {
                Ok(decided) => decided,
                Err(_) if guessed => continue,
                Err(e) => return Err(e),
            };
            match self.swap(name, parent, parent, &record, what)? {
                (Cas::Done, commit) => {
                    self.remember(name, commit, &record);
                    return Ok(record);
                }
                (Cas::Lost, _) => {
                    self.forget(name);
                    if guessed {
                        continue;
                    }
                    lost += 1;
                    if lost >= self.options.max_attempts {
                        return Err(LockError::Stale {
                            resource: resource.into(),
                        });
                    }
                }
                (Cas::Locked(lock_path), _) => {
                    waits += 1;
                    if waits > self.options.max_lock_waits {
                        return Err(LockError::RefLocked {
                            resource: resource.into(),
                            lock_path,
                        });
                    }
                }
            }
        }
    }

    /// The lock's current state, read from the authority (and remembered).
    fn read(&self, name: &str, resource: &str) -> Result<Current> {
        let Some(id) = self.authority.read(name)? else {
            self.forget(name);
            return Ok(Current::Absent);
        };
        let rec = self.parse(name, id)?.record;
        if rec.resource != resource {
            return Err(LockError::ResourceMismatch {
                reference: name.into(),
                expected: resource.into(),
                found: rec.resource,
            });
        }
        self.remember(name, id, &rec);
        Ok(Current::Present(id, rec))
    }

    /// The state in commit `id` of ref `name`, in any readable format,
    /// checked to belong under that ref.
    fn parse(&self, name: &str, id: ObjectId) -> Result<record::Stored> {
        let malformed = |reason: String| LockError::Malformed {
            reference: name.into(),
            reason,
        };
        let stored = record::read_state(self.authority.object_repo(), id).map_err(malformed)?;
        if self.ref_for(&stored.record.resource) != name {
            return Err(malformed(format!(
                "record for {:?} stored under the wrong ref",
                stored.record.resource
            )));
        }
        Ok(stored)
    }

    fn known(&self) -> MutexGuard<'_, HashMap<String, (ObjectId, LockRecord)>> {
        // Entries are replaced whole, so a panic elsewhere cannot leave one
        // half-written; a poisoned map is used as is.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state last written or read for `name`, if it is `resource`'s.
    fn remembered(&self, name: &str, resource: &str) -> Option<(ObjectId, LockRecord)> {
        self.known()
            .get(name)
            .filter(|(_, rec)| rec.resource == resource)
            .cloned()
    }

    fn remember(&self, name: &str, id: ObjectId, record: &LockRecord) {
        let mut known = self.known();
        if known.len() >= MAX_KNOWN && !known.contains_key(name) {
            known.clear();
        }
        known.insert(name.to_owned(), (id, record.clone()));
    }

    fn forget(&self, name: &str) {
        self.known().remove(name);
    }

    /// The state read, if it is the lease with `token` held by this actor
    /// — and, when `holder_id` is given, by that acquisition.
    fn held_by_me(
        &self,
        resource: &str,
        current: Current,
        token: u64,
        holder_id: Option<&Option<String>>,
    ) -> Result<(ObjectId, LockRecord)> {
        let not_holder = |current: String| LockError::NotHolder {
            resource: resource.into(),
            token,
            current,
        };
        match current {
            Current::Absent => Err(not_holder("never acquired".into())),
            Current::Present(id, rec) => {
                if rec.token == token
                    && rec.holder.as_deref() == Some(self.actor.as_str())
                    && holder_id.is_none_or(|h| *h == rec.holder_id)
                {
                    Ok((id, rec))
                } else {
                    Err(not_holder(match (&rec.holder, &rec.holder_id) {
                        (Some(h), Some(hid)) => {
                            format!("held by {h} as holder {hid} with token {}", rec.token)
                        }
                        (Some(h), None) => format!("held by {h} with token {}", rec.token),
                        (None, _) => format!("free, last token {}", rec.token),
                    }))
                }
            }
        }
    }

    /// Writes `record` as a new lock-state commit on top of `parent` and
    /// compare-and-swaps `name` from `expected` to it; returns the outcome
    /// and the commit. The commit is one object (format 3: the record in
    /// its message, the empty tree as its tree).
    fn swap(
        &self,
        name: &str,
        parent: Option<ObjectId>,
        expected: Option<ObjectId>,
        record: &LockRecord,
        what: &str,
    ) -> Result<(Cas, ObjectId)> {
        let message = record::commit_message(what, record).map_err(|e| LockError::Malformed {
            reference: name.into(),
            reason: format!("cannot encode the record: {e}"),
        })?;
        let commit = self.authority.write_state(
            self.empty_tree()?,
            parent,
            &message,
            unix_seconds(self.clock.now_millis()),
        )?;
        Ok((self.authority.cas(name, expected, commit)?, commit))
    }

    /// Git's empty tree, written to the object repository the first time
    /// it is needed (a no-op if it is there already): plain git reads it
    /// without having it stored, but `git fsck` and tools walking the
    /// objects want every tree they meet to exist.
    fn empty_tree(&self) -> Result<ObjectId> {
        if let Some(id) = self.empty_tree.get() {
            return Ok(*id);
        }
        let id = self.authority.write_empty_tree()?;
        Ok(*self.empty_tree.get_or_init(|| id))
    }

    fn lease(&self, rec: LockRecord) -> Lease {
        Lease {
            resource: rec.resource,
            holder: self.actor.clone(),
            holder_id: rec.holder_id,
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
            holder_id: rec.holder_id,
            token: rec.token,
            acquired_ms: rec.acquired_ms,
            expires_ms: rec.expires_ms,
            live,
            reference,
        }
    }

    /// 128 bits unique to this call: state nonces and holder ids. The
    /// actor, process id, a per-manager counter, the time and the
    /// standard library's per-process random hash keys all go in, so two
    /// processes or managers of one actor never mint the same value.
    fn nonce(&self) -> String {
        use std::hash::BuildHasher;
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let random = std::collections::hash_map::RandomState::new().hash_one(n);
        let me: *const Self = self;
        let seed = format!(
            "{}:{}:{me:p}:{n}:{nanos}:{random}",
            self.actor,
            std::process::id()
        );
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
