//! The per-key redb view: table `kv_entries` maps each key to its latest
//! write (version + value, or a tombstone), table `kv_meta` holds the WAL
//! position the entries reflect, the greatest version folded, and a
//! checksum over both.
//!
//! A `get` is one point read; folding a batch touches only the keys it
//! writes (one read-compare-write per event, last writer wins by
//! [`EventKey`]), so applying events in any order — replicas merged
//! late — gives the same table without a rebuild. Every entry carries its
//! own checksum: a damaged entry, a damaged meta table, a redb error or a
//! redb panic makes the view throw its file away and rebuild from the
//! newest snapshot plus the WAL, with a warning (DESIGN.md, semantics 9).

use std::ops::Bound;
use std::path::{Path, PathBuf};

use larder_codec::{Envelope, Payload, blake2b256};
use larder_crdt::{EventKey, LwwRegister};
use larder_git::ObjectId;
use larder_snapshot::SnapshotManager;
use larder_wal::{WalError, WalManager, commits_between};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::record::{RawChange, Record, decode_record, encode_record, parse_event};
use crate::state::KvState;
use crate::{KvError, Result};
use larder_snapshot::contain::contain;

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("kv_entries");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("kv_meta");
const M_FORMAT: &str = "format";
const M_POSITION: &str = "position";
const M_FRONTIER: &str = "frontier";
const M_CHECKSUM: &str = "checksum";
const FORMAT: &[u8] = b"larder-kv view v2";
/// Non-durable commits between two durable ones: redb reuses the pages an
/// update frees only after a durable commit, so without these the file
/// and the final flush grow with every update since the last one; each
/// durable commit costs one fsync, shared by this many updates.
const DURABLE_EVERY: u32 = 16;

fn encode_key(k: &Option<EventKey>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(k) = k {
        // Serialising a plain tuple into a Vec cannot fail.
        let _ = ciborium::into_writer(k, &mut out);
    }
    out
}

fn meta_sum(position: &[u8], frontier: &[u8]) -> [u8; 32] {
    blake2b256(&[
        FORMAT,
        &(position.len() as u64).to_le_bytes(),
        position,
        &(frontier.len() as u64).to_le_bytes(),
        frontier,
    ])
}

/// Why the stored view cannot be trusted.
pub(crate) type Fault = String;

fn redb_fault(e: impl std::fmt::Display) -> Fault {
    format!("redb: {e}")
}

/// Runs a redb operation inside [`contain`], mapping errors and panics to
/// a [`Fault`].
fn guarded<T>(f: impl FnOnce() -> std::result::Result<T, Fault>) -> std::result::Result<T, Fault> {
    match contain(f) {
        Ok(r) => r,
        Err(message) => Err(format!("redb panicked: {message}")),
    }
}

/// How the view was last rebuilt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// The snapshot whose stored state was used, if any.
    pub snapshot: Option<String>,
    /// Entries loaded from that snapshot's state.
    pub snapshot_entries: u64,
    /// WAL events folded after the snapshot (or all of them).
    pub tail_events: u64,
    /// Why the view was rebuilt (`None`: asked for, or a fresh file).
    pub cause: Option<String>,
}

/// The view: the redb database plus the position and frontier in memory.
pub(crate) struct Store {
    db: Option<Database>,
    /// Opened read-only while the view was up to date (no fsync on open or
    /// close); upgraded to `db` by [`Store::ensure_writable`].
    ro: Option<redb::ReadOnlyDatabase>,
    path: PathBuf,
    /// The file was held by another process: this handle keeps its view in
    /// memory (rebuilt on open) and writes no file.
    in_memory: bool,
    pub(crate) position: Option<ObjectId>,
    pub(crate) frontier: Option<EventKey>,
    pub(crate) rebuilt: Option<Rebuilt>,
    /// Writes committed without durability since the last flush.
    dirty: std::cell::Cell<u32>,
}

impl Store {
    /// Opens the view at `path` (creating it), loads and checks its meta.
    /// A damaged file is rebuilt; a file another process holds gives an
    /// in-memory view rebuilt from snapshot + WAL.
    pub(crate) fn open(
        path: PathBuf,
        wal: &WalManager,
        snapshots: &SnapshotManager,
    ) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| KvError::View {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let mut store = Self {
            db: None,
            ro: None,
            path,
            in_memory: false,
            position: None,
            frontier: None,
            rebuilt: None,
            dirty: std::cell::Cell::new(0),
        };
        // Read-only first: an up-to-date view is then open in microseconds
        // (a writable open fsyncs the header, and so does its close).
        if let Ok(Ok(ro)) = contain(|| redb::ReadOnlyDatabase::open(&store.path)) {
            store.ro = Some(ro);
            match store.load() {
                Ok(()) => return Ok(store),
                Err(fault) => {
                    store.heal(wal, snapshots, fault)?;
                    return Ok(store);
                }
            }
        }
        let opened = contain(|| Database::create(&store.path));
        let fault = match opened {
            Ok(Ok(db)) => {
                store.db = Some(db);
                match store.load() {
                    Ok(()) => return Ok(store),
                    Err(f) => f,
                }
            }
            Ok(Err(
                redb::DatabaseError::DatabaseAlreadyOpen
                | redb::DatabaseError::LockProtocolMismatch,
            )) => {
                tracing::debug!(path = %store.path.display(),
                    "key-value view held by another process: using an in-memory view");
                store.in_memory = true;
                store.db = Some(store.memory_db()?);
                store.rebuild(wal, snapshots, None)?;
                return Ok(store);
            }
            Ok(Err(e)) => redb_fault(e),
            Err(message) => format!("redb panicked: {message}"),
        };
        store.heal(wal, snapshots, fault)?;
        Ok(store)
    }

    fn memory_db(&self) -> Result<Database> {
        redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| self.view_error(e))
    }

    fn view_error(&self, e: impl std::fmt::Display) -> KvError {
        KvError::View {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the view lives in memory (its file is held elsewhere).
    pub(crate) fn in_memory(&self) -> bool {
        self.in_memory
    }

    fn db(&self) -> std::result::Result<&Database, Fault> {
        self.db
            .as_ref()
            .ok_or_else(|| "view not open for writing".to_owned())
    }

    fn begin_read(&self) -> std::result::Result<redb::ReadTransaction, Fault> {
        match (&self.db, &self.ro) {
            (Some(db), _) => db.begin_read().map_err(redb_fault),
            (None, Some(ro)) => ro.begin_read().map_err(redb_fault),
            (None, None) => Err("view not open".to_owned()),
        }
    }

    /// Reopens a read-only view for writing (and reloads its meta, which
    /// another process may have moved); a file another process holds
    /// gives an in-memory view rebuilt from snapshot + WAL.
    pub(crate) fn ensure_writable(
        &mut self,
        wal: &WalManager,
        snapshots: &SnapshotManager,
    ) -> Result<()> {
        if self.db.is_some() {
            return Ok(());
        }
        if let Some(ro) = self.ro.take() {
            let _ = contain(move || drop(ro));
        }
        let fault = match contain(|| Database::create(&self.path)) {
            Ok(Ok(db)) => {
                self.db = Some(db);
                match self.load() {
                    Ok(()) => return Ok(()),
                    Err(fault) => fault,
                }
            }
            Ok(Err(
                redb::DatabaseError::DatabaseAlreadyOpen
                | redb::DatabaseError::LockProtocolMismatch,
            )) => {
                self.in_memory = true;
                self.db = Some(self.memory_db()?);
                return self.rebuild(wal, snapshots, None);
            }
            Ok(Err(e)) => redb_fault(e),
            Err(message) => format!("redb panicked: {message}"),
        };
        self.heal(wal, snapshots, fault)
    }

    /// Loads position and frontier; `Err` if the meta table fails its checks.
    fn load(&mut self) -> std::result::Result<(), Fault> {
        let fields = guarded(|| {
            let txn = self.begin_read()?;
            let table = match txn.open_table(META) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(redb_fault(e)),
            };
            let mut out = Vec::new();
            for k in [M_FORMAT, M_POSITION, M_FRONTIER, M_CHECKSUM] {
                out.push(
                    table
                        .get(k)
                        .map_err(redb_fault)?
                        .map(|v| v.value().to_vec()),
                );
            }
            Ok(Some(out))
        })?;
        let Some(fields) = fields else {
            // A fresh file: nothing folded yet.
            self.position = None;
            self.frontier = None;
            return Ok(());
        };
        let [Some(format), Some(position), Some(frontier), Some(sum)] = &fields[..] else {
            return Err("a meta field is missing".into());
        };
        if format.as_slice() != FORMAT {
            return Err("unknown view format".into());
        }
        if sum.as_slice() != meta_sum(position, frontier).as_slice() {
            return Err("meta checksum mismatch".into());
        }
        self.position = if position.is_empty() {
            None
        } else {
            Some(ObjectId::from_hex(position).map_err(|_| "undecodable position".to_owned())?)
        };
        self.frontier = if frontier.is_empty() {
            None
        } else {
            Some(
                ciborium::from_reader(frontier.as_slice())
                    .map_err(|e| format!("undecodable frontier: {e}"))?,
            )
        };
        Ok(())
    }

    /// The record of `key`.
    pub(crate) fn get(&self, key: &str) -> std::result::Result<Option<Record>, Fault> {
        guarded(|| {
            let txn = self.begin_read()?;
            let table = match txn.open_table(ENTRIES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(redb_fault(e)),
            };
            match table.get(key).map_err(redb_fault)? {
                Some(v) => decode_record(key, v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Records with keys in `range` (tombstones included when `tombstones`),
    /// in key order, stopping at the first key that does not satisfy
    /// `keep` (used for prefixes).
    pub(crate) fn range(
        &self,
        range: (Bound<&str>, Bound<&str>),
        keep: &dyn Fn(&str) -> bool,
        tombstones: bool,
    ) -> std::result::Result<Vec<(String, Record)>, Fault> {
        guarded(|| {
            let txn = self.begin_read()?;
            let table = match txn.open_table(ENTRIES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(redb_fault(e)),
            };
            let mut out = Vec::new();
            for item in table.range::<&str>(range).map_err(redb_fault)? {
                let (k, v) = item.map_err(redb_fault)?;
                let key = k.value();
                if !keep(key) {
                    break;
                }
                let record = decode_record(key, v.value())?;
                if tombstones || record.value.is_some() {
                    out.push((key.to_owned(), record));
                }
            }
            Ok(out)
        })
    }

    /// Folds `events` (any order) into the table and moves the position to
    /// `position`, in one write transaction; returns the writes that took
    /// effect, in the total order.
    pub(crate) fn apply(
        &mut self,
        events: &[Envelope],
        position: Option<ObjectId>,
    ) -> std::result::Result<Vec<RawChange>, Fault> {
        let mut parsed: Vec<(String, Record)> = events.iter().filter_map(parse_event).collect();
        parsed.sort_by(|a, b| a.1.version.cmp(&b.1.version));
        let (changes, frontier) = self.write(false, |table| fold(table, parsed), position)?;
        self.position = position;
        self.frontier = frontier;
        if self.dirty.get() >= DURABLE_EVERY {
            self.flush();
        }
        Ok(changes)
    }

    /// One write transaction: the entries table emptied first if `clear`,
    /// `body` edits the entries, then the meta is rewritten for `position`
    /// and the new frontier.
    fn write(
        &self,
        clear: bool,
        body: impl FnOnce(
            &mut redb::Table<&str, &[u8]>,
        ) -> std::result::Result<(Vec<RawChange>, Option<EventKey>), Fault>,
        position: Option<ObjectId>,
    ) -> std::result::Result<(Vec<RawChange>, Option<EventKey>), Fault> {
        let db = self.db()?;
        let old_frontier = self.frontier.clone();
        guarded(|| {
            let mut txn = db.begin_write().map_err(redb_fault)?;
            // Each write is made durable by the next durable commit (on
            // close): the view is a cache, a crash loses at most a suffix
            // that the WAL replays.
            txn.set_durability(redb::Durability::None)
                .map_err(redb_fault)?;
            let (changes, frontier) = {
                if clear {
                    // Dropping the table frees its pages wholesale, far
                    // cheaper than deleting a million entries one by one.
                    txn.delete_table(ENTRIES).map_err(redb_fault)?;
                }
                let mut table = txn.open_table(ENTRIES).map_err(redb_fault)?;
                body(&mut table)?
            };
            let frontier = match (old_frontier, frontier) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            {
                let mut meta = txn.open_table(META).map_err(redb_fault)?;
                let position = position.map(|p| p.to_string()).unwrap_or_default();
                let fr = encode_key(&frontier);
                meta.insert(M_FORMAT, FORMAT).map_err(redb_fault)?;
                meta.insert(M_POSITION, position.as_bytes())
                    .map_err(redb_fault)?;
                meta.insert(M_FRONTIER, fr.as_slice()).map_err(redb_fault)?;
                meta.insert(M_CHECKSUM, meta_sum(position.as_bytes(), &fr).as_slice())
                    .map_err(redb_fault)?;
            }
            txn.commit().map_err(redb_fault)?;
            self.dirty.set(self.dirty.get() + 1);
            Ok((changes, frontier))
        })
    }

    /// Makes every earlier write durable (one durable, empty commit).
    pub(crate) fn flush(&self) {
        if self.dirty.replace(0) == 0 {
            return;
        }
        if let Ok(db) = self.db() {
            let r = guarded(|| {
                let txn = db.begin_write().map_err(redb_fault)?;
                txn.commit().map_err(redb_fault)
            });
            if let Err(e) = r {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot flush the key-value view");
            }
        }
    }

    /// Drops the database, deletes the file and creates an empty one.
    fn recreate(&mut self) -> Result<()> {
        if let Some(db) = self.db.take() {
            let _ = contain(move || drop(db));
        }
        if let Some(ro) = self.ro.take() {
            let _ = contain(move || drop(ro));
        }
        self.position = None;
        self.frontier = None;
        if self.in_memory {
            self.db = Some(self.memory_db()?);
            return Ok(());
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.view_error(e)),
        }
        match contain(|| Database::create(&self.path)) {
            Ok(Ok(db)) => {
                self.db = Some(db);
                Ok(())
            }
            Ok(Err(e)) => Err(self.view_error(e)),
            Err(message) => Err(self.view_error(format!("redb panicked: {message}"))),
        }
    }

    /// Throws the file away and rebuilds it, with a warning.
    pub(crate) fn heal(
        &mut self,
        wal: &WalManager,
        snapshots: &SnapshotManager,
        cause: Fault,
    ) -> Result<()> {
        tracing::warn!(path = %self.path.display(), %cause,
            "key-value view is damaged or stale: rebuilding it from snapshots and the WAL");
        self.recreate()?;
        self.rebuild(wal, snapshots, Some(cause))
    }

    /// Rebuilds the table from the newest usable snapshot's stored state
    /// plus the WAL after it (or the whole WAL), in one transaction.
    pub(crate) fn rebuild(
        &mut self,
        wal: &WalManager,
        snapshots: &SnapshotManager,
        cause: Option<Fault>,
    ) -> Result<()> {
        let head = wal.head()?;
        let mut report = Rebuilt {
            cause,
            ..Rebuilt::default()
        };
        let mut base_state: Option<KvState> = None;
        let mut tail = Vec::new();
        if let Some(head) = head {
            for snapshot in snapshots.list()?.into_iter().flatten() {
                let Ok(base) = snapshot.wal_head() else {
                    continue;
                };
                let Ok(commits) = commits_between(wal.repo(), head, Some(base), wal.ref_name())
                else {
                    continue;
                };
                let state = match snapshots.read_state::<KvState>(&snapshot) {
                    Ok(Some(state)) => state,
                    _ => continue,
                };
                let mut events = Vec::new();
                for c in commits {
                    events.extend(c?.events);
                }
                report.snapshot = Some(snapshot.name.clone());
                base_state = Some(state);
                tail = events;
                break;
            }
            if base_state.is_none() {
                for c in commits_between(wal.repo(), head, None, wal.ref_name())? {
                    tail.extend(c?.events);
                }
            }
        }
        report.tail_events = tail.len() as u64;
        report.snapshot_entries = base_state.as_ref().map_or(0, |s| s.len() as u64);
        let mut parsed: Vec<(String, Record)> = tail.iter().filter_map(parse_event).collect();
        parsed.sort_by(|a, b| a.1.version.cmp(&b.1.version));
        let result = self.write(
            true,
            |table| {
                let mut frontier = None;
                if let Some(state) = base_state {
                    for (key, record) in state.into_records() {
                        frontier = max_key(frontier, Some(record.version.clone()));
                        table
                            .insert(key.as_str(), encode_record(&key, &record).as_slice())
                            .map_err(redb_fault)?;
                    }
                }
                let (_, f) = fold(table, parsed)?;
                Ok((Vec::new(), max_key(frontier, f)))
            },
            head,
        );
        // The frontier is recomputed from the contents, not kept.
        self.frontier = None;
        match result {
            Ok((_, frontier)) => {
                self.position = head;
                self.frontier = frontier;
                self.rebuilt = Some(report);
                Ok(())
            }
            Err(fault) => Err(self.view_error(format!("rebuild failed: {fault}"))),
        }
    }

    /// Every record (tombstones included), for state hashes.
    pub(crate) fn all(&self) -> std::result::Result<Vec<(String, Record)>, Fault> {
        self.range((Bound::Unbounded, Bound::Unbounded), &|_| true, true)
    }

    /// What the log gained after the view's position.
    pub(crate) fn tail(&self, wal: &WalManager) -> Result<Tail> {
        let head = wal.head()?;
        if head == self.position {
            return Ok(Tail::UpToDate);
        }
        let Some(head) = head else {
            // The log's ref is gone: so is everything the view folded.
            return Ok(Tail::Gone);
        };
        let commits = match commits_between(wal.repo(), head, self.position, wal.ref_name()) {
            Ok(c) => c,
            Err(e) => {
                let gone = matches!(e, WalError::NotInLog { .. })
                    || self
                        .position
                        .is_some_and(|p| wal.repo().read_commit(p).is_err());
                if gone {
                    return Ok(Tail::Gone);
                }
                return Err(e.into());
            }
        };
        let mut events = Vec::new();
        for c in commits {
            events.extend(c?.events);
        }
        Ok(Tail::New(head, events))
    }
}

/// What [`Store::tail`] found.
pub(crate) enum Tail {
    /// The view is at the log's head.
    UpToDate,
    /// The position left the log (history rewritten or the ref deleted).
    Gone,
    /// The new head and the events after the position.
    New(ObjectId, Vec<Envelope>),
}

fn max_key(a: Option<EventKey>, b: Option<EventKey>) -> Option<EventKey> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Folds sorted records into the table, last writer wins; returns the
/// writes that took effect and the greatest version seen.
fn fold(
    table: &mut redb::Table<&str, &[u8]>,
    parsed: Vec<(String, Record)>,
) -> std::result::Result<(Vec<RawChange>, Option<EventKey>), Fault> {
    let mut changes = Vec::new();
    let mut frontier = None;
    for (key, record) in parsed {
        frontier = max_key(frontier, Some(record.version.clone()));
        let current = match table.get(key.as_str()).map_err(redb_fault)? {
            Some(v) => Some(decode_record(&key, v.value())?.version),
            None => None,
        };
        if current.is_some_and(|c| c >= record.version) {
            continue;
        }
        table
            .insert(key.as_str(), encode_record(&key, &record).as_slice())
            .map_err(redb_fault)?;
        changes.push(RawChange { key, record });
    }
    Ok((changes, frontier))
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.in_memory {
            self.flush();
        }
        if let Some(db) = self.db.take() {
            let _ = contain(move || drop(db));
        }
        if let Some(ro) = self.ro.take() {
            let _ = contain(move || drop(ro));
        }
    }
}

/// Builds a [`KvState`] from records: the same bytes and hash as
/// `KvProjection` folded over the same events.
pub(crate) fn state_of(records: Vec<(String, Record)>) -> std::result::Result<KvState, Fault> {
    let mut entries = Vec::with_capacity(records.len());
    for (key, r) in records {
        let value = match r.value {
            Some(bytes) => Some(
                Payload::from_canonical_bytes(bytes).map_err(|e| format!("entry {key:?}: {e}"))?,
            ),
            None => None,
        };
        let mut reg = LwwRegister::default();
        reg.set(value, r.version);
        entries.push((key, reg));
    }
    // Records come from the table in key order, each key once.
    Ok(KvState::from_sorted(entries))
}
