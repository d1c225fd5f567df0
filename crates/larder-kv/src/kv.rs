//! [`Kv`]: the key-value store over one named log.

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use larder_codec::{ActorId, Envelope, Payload};
use larder_crdt::{EventKey, KV_SET, KvProjection, Projection, StateHash};
use larder_git::ObjectId;
use larder_snapshot::{SnapshotInfo, SnapshotManager};
use larder_sync::{SyncManager, SyncReport};
use larder_wal::{WalManager, commits_between};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::authority::{Authority, open_authority};
use crate::error::shown;
use crate::linear::{LEASE_KEY, LeaseRecord, Linear, Outcome, RawExpect, Request};
use crate::record::{RawChange, Record, parse_event};
use crate::state::KvState;
use crate::store::{Fault, Rebuilt, Store, Tail, state_of};
use crate::types::*;
use crate::watch::Watch;
use crate::{KvError, Result};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A replicated key-value store over one named log; see the crate docs.
///
/// Cheap to clone; clones share one view and one write lock, and may be
/// used from any thread.
#[derive(Clone)]
pub struct Kv {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("log", &self.core.log)
            .field("actor", &self.core.actor)
            .finish()
    }
}

pub(crate) struct Core {
    pub(crate) inner: Mutex<Inner>,
    pub(crate) actor: ActorId,
    pub(crate) clock: SharedClock,
    /// The linearizable mode's authority and group-commit queue; `None`
    /// in eventual mode.
    linear: Option<Linear>,
    /// This handle's id as a read-lease holder (actor and a random part).
    pub(crate) lease_holder: String,
    /// The read lease this handle holds, as last recorded on the chain.
    pub(crate) lease: Mutex<Option<LeaseRecord>>,
    pub(crate) options: KvOptions,
    log: String,
    watchers: Mutex<Vec<Watcher>>,
}

struct Watcher {
    prefix: String,
    tx: Sender<RawChange>,
}

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
    fn append(
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
        if let Err(e) = self.fold_own(core, done.commit, before, &envelopes) {
            tracing::warn!(log = %self.wal.ref_name(), error = %e,
                "key-value write committed; folding it into the view failed (retried on next use)");
        }
        Ok(envelopes.iter().map(EventKey::of).collect())
    }
}

impl Inner {
    /// Folds this handle's own commit from the envelopes in hand when it
    /// sits directly on the view's position at the head (nobody appended
    /// in between), saving the read back and re-verification of its
    /// chunk; otherwise catches up from the log.
    pub(crate) fn fold_own(
        &mut self,
        core: &Core,
        commit: ObjectId,
        before: Option<ObjectId>,
        envelopes: &[Envelope],
    ) -> Result<()> {
        let direct = self.wal.head()? == Some(commit)
            && self
                .wal
                .repo()
                .read_commit(commit)
                .is_ok_and(|c| c.parents == before.into_iter().collect::<Vec<_>>());
        if !direct {
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

impl Core {
    fn broadcast(&self, changes: Vec<RawChange>) {
        if changes.is_empty() {
            return;
        }
        let mut watchers = lock(&self.watchers);
        watchers.retain(|w| {
            changes
                .iter()
                .filter(|c| c.key.starts_with(&w.prefix) && !is_reserved(&c.key))
                .all(|c| w.tx.send(c.clone()).is_ok())
        });
    }
}

impl Kv {
    /// Opens the store over `wal`, writing as `actor` with `clock`.
    ///
    /// The view (`<git dir>/larder/<namespace>/<log>/kv.redb`) is opened
    /// and caught up with the log: from its stored position when that
    /// checks out, else rebuilt (newest snapshot + WAL tail) with a
    /// warning. When another process holds the file, this handle keeps an
    /// in-memory view instead (rebuilt on open). The clock moves past
    /// every event the view holds, so a write sorts after all of them.
    pub fn open(
        wal: WalManager,
        actor: ActorId,
        clock: SharedClock,
        options: KvOptions,
    ) -> Result<Self> {
        let authority = match &options.consistency {
            Consistency::Eventual => None,
            Consistency::Linearizable { authority } => {
                if authority.is_empty() {
                    return Err(KvError::Mode(
                        "linearizable mode needs an authority (a remote name, path or URL)".into(),
                    ));
                }
                let fsync = wal.options().durability == larder_wal::Durability::Fsync;
                Some(open_authority(wal.repo(), authority, fsync)?)
            }
        };
        Self::open_inner(wal, actor, clock, options, authority)
    }

    /// Opens the store in linearizable mode against `authority` — any
    /// [`Authority`] implementation (tests put delays, losses and crashes
    /// between the protocol and a real repository this way). The
    /// options' consistency is ignored.
    pub fn open_with_authority(
        wal: WalManager,
        actor: ActorId,
        clock: SharedClock,
        options: KvOptions,
        authority: Box<dyn Authority>,
    ) -> Result<Self> {
        Self::open_inner(wal, actor, clock, options, Some(authority))
    }

    fn open_inner(
        wal: WalManager,
        actor: ActorId,
        clock: SharedClock,
        options: KvOptions,
        authority: Option<Box<dyn Authority>>,
    ) -> Result<Self> {
        let snapshots = SnapshotManager::new(wal.clone());
        let path = Self::path_for(&wal);
        let store = Store::open(path, &wal, &snapshots)?;
        if let Some(f) = &store.frontier {
            let _ = lock(&clock).observe(f.timestamp, f.actor.as_str());
        }
        let linear =
            authority.map(|a| Linear::new(a, Self::chain_ref_for(&wal), options.max_attempts));
        let core = Core {
            log: wal.log().to_owned(),
            inner: Mutex::new(Inner {
                wal,
                snapshots,
                store,
            }),
            clock,
            lease_holder: format!("{actor}/{}", holder_nonce()),
            lease: Mutex::new(None),
            actor,
            options,
            linear,
            watchers: Mutex::new(Vec::new()),
        };
        let kv = Self {
            core: Arc::new(core),
        };
        // Eventual: fold what other processes appended. Linearizable: the
        // authority is first asked on the first operation, so a store opens
        // (and serves nothing stale) while the authority is unreachable.
        if kv.core.linear.is_none() {
            kv.refresh()?;
        } else {
            lock(&kv.core.inner).catch_up(&kv.core)?;
        }
        Ok(kv)
    }

    /// The chain ref of `wal`'s log on an authority:
    /// `refs/<namespace>/<log>/chain`.
    pub fn chain_ref_for(wal: &WalManager) -> String {
        format!("refs/{}/{}/chain", wal.options().namespace, wal.log())
    }

    /// Whether this store is in linearizable mode.
    pub fn is_linearizable(&self) -> bool {
        self.core.linear.is_some()
    }

    /// Group commits this handle's linearizable writers made, and the
    /// operations they carried (how well concurrent writers are batched).
    pub fn group_commits(&self) -> (u64, u64) {
        self.core
            .linear
            .as_ref()
            .map_or((0, 0), |l| *lock(&l.stats))
    }

    /// Takes the view for a read: in linearizable mode after the ReadIndex
    /// step (the authority's chain head learned and applied), so the read
    /// reflects every write acknowledged before it began.
    ///
    /// While this handle holds the read lease ([`Kv::acquire_lease`]) the
    /// authority is not asked: no other writer can move the chain.
    fn reading(&self) -> Result<MutexGuard<'_, Inner>> {
        let mut inner = lock(&self.core.inner);
        if let Some(linear) = &self.core.linear
            && !linear.lease_read_ok(&self.core, &inner)
        {
            linear.read_index(&self.core, &mut inner)?;
        }
        Ok(inner)
    }

    /// Linearizable mode: takes (or renews) the **read lease** for `ttl`.
    ///
    /// The lease is a record on the chain itself, written by one
    /// compare-and-swap like any write: while it is live, every other
    /// handle's writes are refused with [`KvError::LeaseHeld`] (they check
    /// it against the state they swap on, so the check and the write are
    /// one atomic step), and this handle answers reads from its view
    /// without a round trip to the authority. Clock assumption: wall
    /// clocks of all writers differ by less than [`KvOptions::max_skew`];
    /// the holder stops serving local reads `max_skew` before the lease
    /// expires by its clock, others write again only `max_skew` after it
    /// by theirs. Each new holder gets a greater fencing token.
    pub fn acquire_lease(&self, ttl: Duration) -> Result<ReadLease> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.lease_request(ttl_ms)
    }

    /// Gives the read lease up (records it as expired), so other handles
    /// write again at once. Reads go back to asking the authority.
    pub fn release_lease(&self) -> Result<()> {
        self.lease_request(0).map(|_| ())
    }

    fn lease_request(&self, ttl_ms: u64) -> Result<ReadLease> {
        let Some(linear) = &self.core.linear else {
            return Err(KvError::Mode(
                "read leases are for linearizable stores".into(),
            ));
        };
        let request = Request::Lease {
            holder: self.core.lease_holder.clone(),
            ttl_ms,
        };
        match linear.submit(&self.core, request)? {
            Outcome::Lease(record) => {
                *lock(&self.core.lease) = (ttl_ms > 0).then(|| record.clone());
                Ok(ReadLease {
                    holder: record.holder,
                    token: record.token,
                    expires_ms: record.expires_ms,
                })
            }
            Outcome::LeaseHeld(held) => {
                *lock(&self.core.lease) = None;
                Err(lease_held(held))
            }
            _ => Err(KvError::Mode("a lease request answered as a write".into())),
        }
    }

    /// The view file of `wal`'s log.
    pub fn path_for(wal: &WalManager) -> PathBuf {
        wal.repo()
            .git_dir()
            .join("larder")
            .join(&wal.options().namespace)
            .join(wal.log())
            .join("kv.redb")
    }

    /// The view file (even when this handle keeps its view in memory).
    pub fn path(&self) -> PathBuf {
        lock(&self.core.inner).store.path().to_path_buf()
    }

    /// The log's name.
    pub fn log(&self) -> &str {
        &self.core.log
    }

    /// The actor this store writes as.
    pub fn actor(&self) -> &ActorId {
        &self.core.actor
    }

    /// Whether this handle's view lives in memory because another process
    /// holds the file.
    pub fn in_memory(&self) -> bool {
        lock(&self.core.inner).store.in_memory()
    }

    /// The last time the view was rebuilt instead of caught up, and why
    /// (`cause` is `None` for a fresh file or [`Kv::rebuild`]).
    pub fn rebuilt(&self) -> Option<Rebuilt> {
        lock(&self.core.inner).store.rebuilt.clone()
    }

    /// The WAL commit the view reflects.
    pub fn position(&self) -> Option<ObjectId> {
        lock(&self.core.inner).store.position
    }

    /// Folds what the log gained since the view last looked (other
    /// processes' appends; syncs by other handles) and returns how many
    /// writes took effect. Writes, syncs and watches do this themselves;
    /// reads do not (a read is one point lookup), so call it before
    /// reading when another process may have written.
    ///
    /// In linearizable mode this is the ReadIndex step: the authority's
    /// chain is fetched and applied.
    pub fn refresh(&self) -> Result<usize> {
        let mut inner = lock(&self.core.inner);
        match &self.core.linear {
            Some(linear) => linear.read_index(&self.core, &mut inner).map(|(_, n)| n),
            None => inner.catch_up(&self.core),
        }
    }

    /// Sets `key` to `value`; returns the write's version.
    pub fn set<V: Serialize + ?Sized>(&self, key: &str, value: &V) -> Result<Version> {
        let mut batch = Batch::new();
        batch.set(key, value)?;
        self.single(batch)
    }

    /// Deletes `key` (a tombstone with a version, so an older write merged
    /// later does not bring the key back); returns the write's version.
    pub fn delete(&self, key: &str) -> Result<Version> {
        let mut batch = Batch::new();
        batch.delete(key)?;
        self.single(batch)
    }

    fn single(&self, batch: Batch) -> Result<Version> {
        self.write(batch)?.pop().ok_or(KvError::EmptyBatch)
    }

    /// Commits every write of `batch` atomically (one chunk, one commit);
    /// returns their versions in batch order. Later writes of one key in
    /// the batch win.
    ///
    /// In linearizable mode the batch is acknowledged once its commit is
    /// the authority's chain head (it may share that commit with
    /// concurrent writers of this process: group commit).
    pub fn write(&self, batch: Batch) -> Result<Vec<Version>> {
        match &self.core.linear {
            Some(linear) => {
                if batch.ops.is_empty() {
                    return Err(KvError::EmptyBatch);
                }
                match linear.submit(&self.core, Request::Write(batch.ops))? {
                    Outcome::Written(versions) => Ok(versions),
                    Outcome::LeaseHeld(held) => Err(lease_held(held)),
                    _ => Err(KvError::Mode(
                        "a write answered as a compare-and-set".into(),
                    )),
                }
            }
            None => lock(&self.core.inner).append(&self.core, &batch.ops),
        }
    }

    /// The value and version of `key`, `None` if absent: one point read of
    /// the view (see [`Kv::refresh`]).
    pub fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<Entry<V>>> {
        check_key(key)?;
        let record = self.reading()?.read(|s| s.get(key))?;
        match record {
            Some(r) => entry_of(key.to_owned(), r),
            None => Ok(None),
        }
    }

    /// Live entries whose key starts with `prefix`, in key order.
    pub fn scan<V: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<Entry<V>>> {
        let records = self.reading()?.read(|s| {
            s.range(
                (Bound::Included(prefix), Bound::Unbounded),
                &|k| k.starts_with(prefix),
                false,
            )
        })?;
        records
            .into_iter()
            .filter(|(k, _)| !is_reserved(k))
            .filter_map(|(k, r)| entry_of(k, r).transpose())
            .collect()
    }

    /// Live entries with keys in `range` (e.g. `"a".."m"`), in key order.
    pub fn range<'a, V: DeserializeOwned>(
        &self,
        range: impl RangeBounds<&'a str>,
    ) -> Result<Vec<Entry<V>>> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        let records = self
            .reading()?
            .read(|s| s.range(bounds, &|_| true, false))?;
        records
            .into_iter()
            .filter_map(|(k, r)| entry_of(k, r).transpose())
            .collect()
    }

    /// Writes `new` if `key` matches `expect`, atomically with respect to
    /// every handle of this process (one lock around check and append; the
    /// view is caught up with the log first, so other processes' earlier
    /// appends count). Across replicas — and processes racing between the
    /// check and the append — eventual mode cannot exclude a concurrent
    /// write: both may succeed, and last writer wins after sync
    /// (`docs/kv.md`).
    pub fn compare_and_set<V: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        expect: Expect<V>,
        new: &V,
    ) -> Result<Cas<V>> {
        let payload = set_payload(key, new)?;
        let expect = match expect {
            Expect::Absent => RawExpect::Absent,
            Expect::Value(v) => RawExpect::Value(
                Payload::from_serde(&v)
                    .map_err(|e| KvError::Encode {
                        key: shown(key),
                        reason: e.to_string(),
                    })?
                    .as_bytes()
                    .to_vec(),
            ),
            Expect::Version(v) => RawExpect::Version(v),
        };
        if let Some(linear) = &self.core.linear {
            let request = Request::Cas {
                key: key.to_owned(),
                expect,
                payload,
            };
            return match linear.submit(&self.core, request)? {
                Outcome::Cas { swapped, current } => Ok(Cas {
                    swapped,
                    current: match current {
                        Some(r) => entry_of(key.to_owned(), r)?,
                        None => None,
                    },
                }),
                Outcome::LeaseHeld(held) => Err(lease_held(held)),
                _ => Err(KvError::Mode(
                    "a compare-and-set answered as a write".into(),
                )),
            };
        }
        let mut inner = lock(&self.core.inner);
        inner.catch_up(&self.core)?;
        let current = inner.read(|s| s.get(key))?;
        let matches = expect.matches(current.as_ref());
        if matches {
            inner.append(&self.core, &[(KV_SET, key.to_owned(), payload)])?;
        }
        let now = inner.read(|s| s.get(key))?;
        Ok(Cas {
            swapped: matches,
            current: match now {
                Some(r) => entry_of(key.to_owned(), r)?,
                None => None,
            },
        })
    }

    /// Every write of `key` the log holds, oldest first (in the total
    /// order). Reads the whole log: O(log), meant for inspection.
    pub fn history<V: DeserializeOwned>(&self, key: &str) -> Result<Vec<Change<V>>> {
        check_key(key)?;
        let inner = self.reading()?;
        let mut records: Vec<Record> = Vec::new();
        for e in inner.wal.events_since(None)? {
            if let Some((k, r)) = parse_event(&e?)
                && k == key
            {
                records.push(r);
            }
        }
        drop(inner);
        records.sort_by(|a, b| a.version.cmp(&b.version));
        records.dedup_by(|a, b| a.version == b.version);
        records
            .into_iter()
            .map(|r| change_of(key.to_owned(), r))
            .collect()
    }

    /// The entry of `key` as of a WAL commit or an HLC time, replayed from
    /// the log — from the newest snapshot that precedes it when there is
    /// one (its stored state, then only the commits after it).
    pub fn get_at<V: DeserializeOwned>(&self, key: &str, at: At) -> Result<Option<Entry<V>>> {
        check_key(key)?;
        let inner = self.reading()?;
        let wal = &inner.wal;
        let Some(head) = wal.head()? else {
            return match at {
                At::Commit(c) => Err(KvError::NotInLog {
                    at: c.to_string(),
                    log: wal.ref_name().into(),
                }),
                At::Time(_) => Ok(None),
            };
        };
        let (tip, cutoff) = match at {
            At::Commit(c) => {
                if wal.repo().read_commit(c).is_err() || !wal.is_ancestor(c, head)? {
                    return Err(KvError::NotInLog {
                        at: c.to_string(),
                        log: wal.ref_name().into(),
                    });
                }
                (c, None)
            }
            At::Time(t) => (head, Some(t)),
        };
        let mut best: Option<Record> = None;
        let mut consider = |r: Record| {
            if best.as_ref().is_none_or(|b| r.version > b.version) {
                best = Some(r);
            }
        };
        let mut base = None;
        for snapshot in inner.snapshots.list()?.into_iter().flatten() {
            let Ok(snap_head) = snapshot.wal_head() else {
                continue;
            };
            let covered = snapshot
                .meta
                .frontier
                .as_ref()
                .is_none_or(|f| cutoff.is_none_or(|t| f.timestamp <= t));
            if !covered || !wal.is_ancestor(snap_head, tip).unwrap_or(false) {
                continue;
            }
            let Ok(Some(state)) = inner.snapshots.read_state::<KvState>(&snapshot) else {
                continue;
            };
            if let Some((version, value)) = state.get(key) {
                consider(Record {
                    version,
                    value: value.map(|p| p.as_bytes().to_vec()),
                });
            }
            base = Some(snap_head);
            break;
        }
        for c in commits_between(wal.repo(), tip, base, wal.ref_name())? {
            for e in c?.events {
                if cutoff.is_some_and(|t| e.timestamp() > t) {
                    continue;
                }
                if let Some((k, r)) = parse_event(&e)
                    && k == key
                {
                    consider(r);
                }
            }
        }
        drop(inner);
        match best {
            Some(r) => entry_of(key.to_owned(), r),
            None => Ok(None),
        }
    }

    /// A stream of the writes that take effect on keys starting with
    /// `prefix` from now on: this handle's writes, other processes'
    /// appends and merged syncs (found by polling the log's ref every
    /// [`KvOptions::poll_interval`]). Writes that lose to a newer version
    /// already held are not reported.
    pub fn watch<V: DeserializeOwned>(&self, prefix: &str) -> Result<Watch<V>> {
        self.refresh()?;
        let (tx, rx) = mpsc::channel();
        lock(&self.core.watchers).push(Watcher {
            prefix: prefix.to_owned(),
            tx,
        });
        Ok(Watch {
            kv: self.clone(),
            rx,
            _value: PhantomData,
        })
    }

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

    /// Writes a snapshot of the log with the key-value state (the same
    /// state `KvProjection` stores), so a rebuild is snapshot + tail.
    pub fn snapshot(&self) -> Result<SnapshotInfo> {
        let inner = lock(&self.core.inner);
        Ok(inner.snapshots.create_with::<KvProjection>()?)
    }

    /// Rebuilds the view from the newest snapshot plus the WAL tail.
    pub fn rebuild(&self) -> Result<Rebuilt> {
        let mut inner = lock(&self.core.inner);
        let Inner {
            wal,
            snapshots,
            store,
        } = &mut *inner;
        store.ensure_writable(wal, snapshots)?;
        store.rebuild(wal, snapshots, None)?;
        Ok(store.rebuilt.clone().unwrap_or_default())
    }

    /// The hash of the view's contents (tombstones included): equal to
    /// `KvProjection` folded over the same log, and equal on two replicas
    /// exactly when they hold the same state.
    pub fn state_hash(&self) -> Result<StateHash> {
        let records = self.reading()?.read(Store::all)?;
        let state = state_of(records).map_err(|reason| KvError::View {
            path: self.path().display().to_string(),
            reason,
        })?;
        Ok(state.state_hash())
    }

    /// The number of live keys (a full scan of the view).
    pub fn len(&self) -> Result<usize> {
        let records = self
            .reading()?
            .read(|s| s.range((Bound::Unbounded, Bound::Unbounded), &|_| true, false))?;
        Ok(records.iter().filter(|(k, _)| !is_reserved(k)).count())
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The error for a write refused by another holder's read lease.
fn lease_held(held: LeaseRecord) -> KvError {
    KvError::LeaseHeld {
        holder: held.holder,
        token: held.token,
        expires_ms: held.expires_ms,
    }
}

/// A random part for this handle's lease-holder id: no two handles (in
/// any process) share one.
fn holder_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{}/{}/{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    larder_codec::to_hex(&larder_codec::blake2b256(&[seed.as_bytes()])[..8])
}

/// Whether `key` is one of the store's own (the read lease), left out of
/// reads, scans and watches.
pub(crate) fn is_reserved(key: &str) -> bool {
    key == LEASE_KEY
}
