//! [`Kv`]: the key-value store over one named log.

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use larder_codec::{ActorId, Payload};
use larder_crdt::{KV_SET, KvProjection, Projection, StateHash};
use larder_git::ObjectId;
use larder_snapshot::{SnapshotInfo, SnapshotManager};
use larder_wal::WalManager;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::authority::{Authority, open_authority};
use crate::error::shown;
use crate::inner::Inner;
use crate::lease::{holder_nonce, lease_held};
use crate::linear::{LEASE_KEY, LeaseRecord, Linear, Outcome, RawExpect, Request};
use crate::record::RawChange;
use crate::store::{Rebuilt, Store, state_of};
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
    pub(crate) linear: Option<Linear>,
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

impl Core {
    pub(crate) fn broadcast(&self, changes: Vec<RawChange>) {
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
    pub(crate) fn reading(&self) -> Result<MutexGuard<'_, Inner>> {
        let mut inner = lock(&self.core.inner);
        if let Some(linear) = &self.core.linear
            && !linear.lease_read_ok(&self.core, &inner)
        {
            linear.read_index(&self.core, &mut inner)?;
        }
        Ok(inner)
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

/// Whether `key` is one of the store's own (the read lease), left out of
/// reads, scans and watches.
pub(crate) fn is_reserved(key: &str) -> bool {
    key == LEASE_KEY
}
