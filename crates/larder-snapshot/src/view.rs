//! [`View`]: a projection's state kept up to date in a local redb file.
//!
//! The file is a cache of the WAL (DESIGN.md, semantics 9): whatever its
//! bytes, opening or using it never panics and never serves a state that a
//! full replay would not give. Everything it stores is covered by a
//! BLAKE2b-256 checksum checked on open; any failure (redb error or panic,
//! checksum mismatch, undecodable field, a stored position that left the
//! log) deletes the file and rebuilds it from the newest snapshot plus the
//! WAL, with a `tracing` warning, and [`View::healed`] says so and why.

use std::fmt;
use std::path::{Path, PathBuf};

use larder_codec::{Envelope, blake2b256};
use larder_crdt::{EventKey, Projection, Projector, sort_events};
use larder_git::ObjectId;
use larder_wal::{WalError, commits_between};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::contain::contain;
use crate::rebuild::RebuildReport;
use crate::{Result, SnapshotError, SnapshotManager};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("view");
/// The ids of the events folded into the state (see [`View::update`]).
const IDS: TableDefinition<&[u8], ()> = TableDefinition::new("event_ids");
const K_PROJECTION: &str = "projection";
const K_POSITION: &str = "position";
const K_FRONTIER: &str = "frontier";
const K_APPLIED: &str = "applied";
const K_STATE: &str = "state";
const K_IDS_FLOOR: &str = "ids_floor";
const K_IDS: &str = "ids";
const K_CHECKSUM: &str = "checksum";

/// The checksummed keys, in checksum order.
const FIELDS: [&str; 7] = [
    K_PROJECTION,
    K_POSITION,
    K_FRONTIER,
    K_APPLIED,
    K_STATE,
    K_IDS_FLOOR,
    K_IDS,
];

/// Why the view threw its file away and rebuilt it instead of trusting it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealCause {
    /// redb returned an error opening or reading the file.
    Unreadable(String),
    /// redb panicked opening, reading or writing the file (the message).
    Panicked(String),
    /// The stored checksum is missing or does not match what is stored
    /// (which part is named).
    ChecksumMismatch(String),
    /// A checksummed field did not decode.
    Undecodable(String),
    /// Writing the file failed.
    WriteFailed(String),
    /// The stored position is no longer in the log's history or no longer
    /// in the object store (history rewritten, then pruned by `git gc`).
    PositionGone(ObjectId),
}

impl fmt::Display for HealCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealCause::Unreadable(e) => write!(f, "redb could not read it: {e}"),
            HealCause::Panicked(m) => write!(f, "redb panicked on it: {m}"),
            HealCause::ChecksumMismatch(what) => write!(f, "checksum mismatch: {what}"),
            HealCause::Undecodable(what) => write!(f, "undecodable {what}"),
            HealCause::WriteFailed(e) => write!(f, "writing it failed: {e}"),
            HealCause::PositionGone(p) => {
                write!(f, "its position {p} is no longer in the log")
            }
        }
    }
}

/// A rebuild the view did on its own: why, and how it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healed {
    /// What was wrong with the stored view.
    pub cause: HealCause,
    /// The rebuild that replaced it.
    pub report: RebuildReport,
}

/// Count and XOR of the ids in the `event_ids` table: stored under the
/// checksum, recomputed on open, so a damaged table is detected without a
/// checksum per entry. Only absent ids are ever inserted, so XOR is exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct IdDigest {
    count: u64,
    xor: [u8; 32],
}

impl IdDigest {
    fn add(&mut self, id: &[u8; 32]) {
        self.count += 1;
        for (x, b) in self.xor.iter_mut().zip(id) {
            *x ^= b;
        }
    }

    fn to_bytes(self) -> Vec<u8> {
        let mut out = self.count.to_le_bytes().to_vec();
        out.extend_from_slice(&self.xor);
        out
    }
}

/// Which event ids a write records.
pub(crate) enum Ids<'a> {
    /// The table is replaced by exactly these.
    Replace(&'a [Envelope]),
    /// These (all absent from the table) are added.
    Add(&'a [Envelope]),
}

/// A projection's state plus the WAL position it reflects, stored in redb
/// under the git dir (`<git dir>/larder/<namespace>/<log>/view.redb`), never
/// in the work tree. Every update is one redb write transaction holding the
/// new state, the new position, the ids of the events it folded and a
/// checksum over them: a crash leaves the previous set or the new one, and
/// re-applying a batch changes nothing.
///
/// The file is a cache: if it fails any check it is deleted, recreated and
/// rebuilt from the newest snapshot plus the WAL (see [`View::healed`]).
pub struct View<P: Projection> {
    /// `None` only while the file is being recreated.
    pub(crate) db: Option<Database>,
    pub(crate) path: PathBuf,
    pub(crate) snapshots: SnapshotManager,
    pub(crate) projector: Projector<P>,
    pub(crate) position: Option<ObjectId>,
    /// The `event_ids` table holds the id of every folded event whose key
    /// is after this (all of them when `None`); events up to it came from a
    /// snapshot's stored state, whose ids were not read.
    pub(crate) ids_floor: Option<EventKey>,
    ids: IdDigest,
    pub(crate) healed: Option<Healed>,
    /// Set while a heal runs, so that a second failure is an error instead
    /// of another heal.
    pub(crate) healing: bool,
}

fn db_error(path: &Path, e: impl Into<redb::Error>) -> SnapshotError {
    SnapshotError::View {
        path: path.display().to_string(),
        source: Box::new(e.into()),
    }
}

/// The checksum over the stored fields, each prefixed by its length.
fn checksum(fields: &[&[u8]]) -> [u8; 32] {
    let lengths: Vec<[u8; 8]> = fields
        .iter()
        .map(|f| (f.len() as u64).to_le_bytes())
        .collect();
    let mut parts: Vec<&[u8]> = vec![b"larder view v1"];
    for (len, field) in lengths.iter().zip(fields) {
        parts.push(len);
        parts.push(field);
    }
    blake2b256(&parts)
}

/// Whether a redb error on open means "someone else has it" rather than
/// "the file is damaged": those are reported, never healed (healing would
/// delete a file another handle is using).
fn in_use(e: &redb::DatabaseError) -> bool {
    matches!(
        e,
        redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch
            | redb::DatabaseError::TransactionInProgress
    )
}

/// The raw stored fields and the digest of the id table.
type RawView = (Vec<Option<Vec<u8>>>, Option<Vec<u8>>, IdDigest);

/// Reads every stored field and recomputes the id table's digest; `None`
/// if no view table exists. Runs inside [`contain`].
fn read_raw(db: &Database) -> std::result::Result<Option<RawView>, String> {
    let err = |e: &dyn fmt::Display| e.to_string();
    let txn = db.begin_read().map_err(|e| err(&e))?;
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(err(&e)),
    };
    let get = |k: &str| -> std::result::Result<Option<Vec<u8>>, String> {
        Ok(table
            .get(k)
            .map_err(|e| err(&e))?
            .map(|v| v.value().to_vec()))
    };
    let mut fields = Vec::with_capacity(FIELDS.len());
    for k in FIELDS {
        fields.push(get(k)?);
    }
    let stored_sum = get(K_CHECKSUM)?;
    let mut digest = IdDigest::default();
    match txn.open_table(IDS) {
        Ok(ids) => {
            for entry in ids.iter().map_err(|e| err(&e))? {
                let (k, _) = entry.map_err(|e| err(&e))?;
                let id: [u8; 32] = k
                    .value()
                    .try_into()
                    .map_err(|_| "an event id that is not 32 bytes".to_owned())?;
                digest.add(&id);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(err(&e)),
    }
    Ok(Some((fields, stored_sum, digest)))
}

impl<P: Projection + Default> View<P> {
    /// The view's file for a log: `<git dir>/larder/<namespace>/<log>/view.redb`,
    /// where `<namespace>` is the WAL's ref namespace (`refs/<namespace>/<log>/wal`),
    /// so logs of one name in two namespaces never share a view.
    pub fn path_for(snapshots: &SnapshotManager) -> PathBuf {
        let wal = snapshots.wal();
        wal.repo()
            .git_dir()
            .join("larder")
            .join(&wal.options().namespace)
            .join(wal.log())
            .join("view.redb")
    }

    /// Opens (or creates) the view of `snapshots`' log and loads the stored
    /// state if its checksum verifies. A stored state of another projection
    /// or version is ignored (the view starts empty and [`View::update`] or
    /// [`View::rebuild`] fills it).
    ///
    /// A damaged file (redb error or panic, checksum mismatch, undecodable
    /// field) is deleted, recreated and rebuilt from snapshot + WAL before
    /// this returns; [`View::healed`] then says why. The file being open
    /// elsewhere (another `View` in this process, or another process) is an
    /// error, never a heal.
    pub fn open(snapshots: SnapshotManager) -> Result<Self> {
        let path = Self::path_for(&snapshots);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| db_error(&path, redb::StorageError::from(e)))?;
        }
        let mut view = Self {
            db: None,
            path,
            snapshots,
            projector: Projector::default(),
            position: None,
            ids_floor: None,
            ids: IdDigest::default(),
            healed: None,
            healing: false,
        };
        let cause = match contain(|| Database::create(&view.path)) {
            Ok(Ok(db)) => {
                view.db = Some(db);
                match view.load() {
                    Ok(()) => return Ok(view),
                    Err(cause) => cause,
                }
            }
            Ok(Err(e)) if in_use(&e) => return Err(db_error(&view.path, e)),
            Ok(Err(e)) => HealCause::Unreadable(e.to_string()),
            Err(message) => HealCause::Panicked(message),
        };
        view.heal(cause)?;
        Ok(view)
    }

    fn tag() -> String {
        format!("{}:{}", P::NAME, P::VERSION)
    }

    /// Loads the stored view; `Err` says why it cannot be trusted.
    fn load(&mut self) -> std::result::Result<(), HealCause> {
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| HealCause::Unreadable("not open".into()))?;
        let (fields, stored_sum, digest) = match contain(|| read_raw(db)) {
            Err(message) => return Err(HealCause::Panicked(message)),
            Ok(Err(e)) => return Err(HealCause::Unreadable(e)),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(raw))) => raw,
        };
        let present: Vec<&[u8]> = fields.iter().filter_map(|f| f.as_deref()).collect();
        if present.is_empty() && stored_sum.is_none() {
            return Ok(());
        }
        if present.len() != FIELDS.len() {
            return Err(HealCause::ChecksumMismatch(
                "a stored field is missing".into(),
            ));
        }
        if stored_sum.as_deref() != Some(checksum(&present).as_slice()) {
            return Err(HealCause::ChecksumMismatch("stored fields".into()));
        }
        let [tag, position, frontier, applied, state, ids_floor, ids] = present[..] else {
            return Err(HealCause::ChecksumMismatch(
                "a stored field is missing".into(),
            ));
        };
        if ids != digest.to_bytes().as_slice() {
            return Err(HealCause::ChecksumMismatch("event id table".into()));
        }
        if tag != Self::tag().as_bytes() {
            // Another projection's view: start empty, the next update
            // replaces it.
            return Ok(());
        }
        let position = if position.is_empty() {
            None
        } else {
            Some(
                ObjectId::from_hex(position)
                    .map_err(|_| HealCause::Undecodable("position".into()))?,
            )
        };
        let frontier: Option<EventKey> = serde_json::from_slice(frontier)
            .map_err(|e| HealCause::Undecodable(format!("frontier: {e}")))?;
        let ids_floor: Option<EventKey> = serde_json::from_slice(ids_floor)
            .map_err(|e| HealCause::Undecodable(format!("ids floor: {e}")))?;
        let applied = <[u8; 8]>::try_from(applied)
            .map(u64::from_le_bytes)
            .map_err(|_| HealCause::Undecodable("applied count".into()))?;
        let state =
            P::decode_state(state).map_err(|e| HealCause::Undecodable(format!("state: {e}")))?;
        self.projector = Projector::resume(state, frontier, applied);
        self.position = position;
        self.ids_floor = ids_floor;
        self.ids = digest;
        Ok(())
    }

    /// Replaces the in-memory view by the stored one (healing the file if
    /// it no longer loads; a heal that fails leaves the view empty, which
    /// the next update rebuilds).
    fn reload(&mut self) {
        self.projector = Projector::default();
        self.position = None;
        self.ids_floor = None;
        self.ids = IdDigest::default();
        if let Err(cause) = self.load()
            && self.heal(cause).is_err()
        {
            self.projector = Projector::default();
            self.position = None;
            self.ids_floor = None;
            self.ids = IdDigest::default();
        }
    }

    /// Drops the database, deletes the file and creates an empty one.
    fn recreate(&mut self) -> Result<()> {
        if let Some(db) = self.db.take() {
            // redb may panic again while dropping a damaged database.
            let _ = contain(move || drop(db));
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(db_error(&self.path, redb::StorageError::from(e))),
        }
        match contain(|| Database::create(&self.path)) {
            Ok(Ok(db)) => {
                self.db = Some(db);
                Ok(())
            }
            Ok(Err(e)) => Err(db_error(&self.path, e)),
            Err(message) => Err(SnapshotError::ViewPanic {
                path: self.path.display().to_string(),
                message,
            }),
        }
    }

    /// Throws the stored view away and rebuilds it from snapshot + WAL,
    /// with a warning; remembered for [`View::healed`].
    fn heal(&mut self, cause: HealCause) -> Result<RebuildReport> {
        tracing::warn!(
            path = %self.path.display(),
            %cause,
            "larder view is damaged or stale: rebuilding it from snapshots and the WAL"
        );
        self.healing = true;
        let result = self.recreate().and_then(|()| self.rebuild());
        self.healing = false;
        let report = result?;
        self.healed = Some(Healed {
            cause,
            report: report.clone(),
        });
        Ok(report)
    }

    /// Writes the state, position, id changes and checksum in one redb
    /// transaction. A failed write (error or panic) heals the file: it is
    /// recreated and rebuilt, since an incremental id table cannot be
    /// rewritten from memory.
    pub(crate) fn store(&mut self, ids: Ids<'_>) -> Result<()> {
        let (new, replace) = match ids {
            Ids::Replace(events) => (events, true),
            Ids::Add(events) => (events, false),
        };
        let mut digest = if replace {
            IdDigest::default()
        } else {
            self.ids
        };
        for e in new {
            digest.add(e.id().as_bytes());
        }
        let tag = Self::tag();
        let position = self.position.map(|p| p.to_string()).unwrap_or_default();
        let frontier = serde_json::to_vec(&self.projector.frontier()).unwrap_or_default();
        let ids_floor = serde_json::to_vec(&self.ids_floor).unwrap_or_default();
        let state = self.projector.state().encode_state();
        let applied = self.projector.applied().to_le_bytes();
        let digest_bytes = digest.to_bytes();
        let fields: [&[u8]; 7] = [
            tag.as_bytes(),
            position.as_bytes(),
            frontier.as_slice(),
            applied.as_slice(),
            state.as_slice(),
            ids_floor.as_slice(),
            digest_bytes.as_slice(),
        ];
        let sum = checksum(&fields);
        let write = |db: &Database| -> std::result::Result<(), redb::Error> {
            let txn = db.begin_write()?;
            {
                if replace {
                    txn.delete_table(IDS)?;
                }
                let mut table = txn.open_table(IDS)?;
                for e in new {
                    table.insert(e.id().as_bytes().as_slice(), ())?;
                }
                let mut table = txn.open_table(META)?;
                for (k, v) in FIELDS.iter().zip(fields) {
                    table.insert(*k, v)?;
                }
                table.insert(K_CHECKSUM, sum.as_slice())?;
            }
            txn.commit()?;
            Ok(())
        };
        let outcome = match &self.db {
            Some(db) => contain(|| write(db)),
            None => Ok(Err(redb::Error::DatabaseClosed)),
        };
        let cause = match outcome {
            Ok(Ok(())) => {
                self.ids = digest;
                return Ok(());
            }
            // The file was just recreated and writing it still fails.
            Ok(Err(e)) if self.healing => return Err(db_error(&self.path, e)),
            Err(message) if self.healing => {
                return Err(SnapshotError::ViewPanic {
                    path: self.path.display().to_string(),
                    message,
                });
            }
            Ok(Err(e)) => HealCause::WriteFailed(e.to_string()),
            Err(message) => HealCause::Panicked(message),
        };
        self.heal(cause).map(|_| ())
    }

    /// Which of `events` are in the id table; `Err` if the table could not
    /// be read.
    fn known(&self, events: &[Envelope]) -> std::result::Result<Vec<bool>, HealCause> {
        let Some(db) = &self.db else {
            return Err(HealCause::Unreadable("not open".into()));
        };
        let read = || -> std::result::Result<Vec<bool>, redb::Error> {
            let txn = db.begin_read()?;
            let table = match txn.open_table(IDS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => {
                    return Ok(vec![false; events.len()]);
                }
                Err(e) => return Err(e.into()),
            };
            events
                .iter()
                .map(|e| Ok(table.get(e.id().as_bytes().as_slice())?.is_some()))
                .collect()
        };
        match contain(read) {
            Ok(Ok(known)) => Ok(known),
            Ok(Err(e)) => Err(HealCause::Unreadable(e.to_string())),
            Err(message) => Err(HealCause::Panicked(message)),
        }
    }

    /// The projection's state.
    pub fn state(&self) -> &P {
        self.projector.state()
    }

    /// The WAL commit the state reflects.
    pub fn position(&self) -> Option<ObjectId> {
        self.position
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last time this handle threw its stored view away and rebuilt it
    /// on its own (a damaged file on open, a failed write, a position that
    /// left the log), and why; `None` if it never did.
    pub fn healed(&self) -> Option<&Healed> {
        self.healed.as_ref()
    }

    /// Folds in what the log gained since the view's position, in one redb
    /// transaction, and returns how many events were applied.
    ///
    /// Events are deduplicated by event id against everything already
    /// folded, so a projection that is not idempotent (a counter) gets the
    /// same state as a rebuild even when one envelope sits in two commits.
    /// Only events sorting at or before the frontier can be duplicates; they
    /// are looked up in the view's table of folded ids. An order-sensitive
    /// projection that still meets such an event (merged in from another
    /// replica) is rebuilt instead.
    ///
    /// A view with no position, or whose position left the log (history
    /// rewritten; the commit pruned by `git gc`), is rebuilt.
    pub fn update(&mut self) -> Result<u64> {
        let wal = self.snapshots.wal();
        let Some(head) = wal.head()? else {
            if self.position.is_none() {
                return Ok(0);
            }
            // The log's ref is gone: so is everything the view folded.
            return self.rebuild().map(|_| 0);
        };
        let Some(position) = self.position else {
            return self.rebuild().map(|r| r.snapshot_events + r.tail_events);
        };
        if head == position {
            return Ok(0);
        }
        let commits = match commits_between(wal.repo(), head, Some(position), wal.ref_name()) {
            Ok(c) => c,
            Err(e) => {
                let gone = matches!(e, WalError::NotInLog { .. })
                    || wal.repo().read_commit(position).is_err();
                if !gone {
                    return Err(e.into());
                }
                return self
                    .heal(HealCause::PositionGone(position))
                    .map(|r| r.snapshot_events + r.tail_events);
            }
        };
        let mut events = Vec::new();
        for c in commits {
            events.extend(c?.events);
        }
        sort_events(&mut events);
        // Sorted: the events at or before the frontier come first.
        let late = match self.projector.frontier() {
            Some(f) => events.partition_point(|e| EventKey::of(e) <= *f),
            None => 0,
        };
        if late > 0 {
            let floor_reached = self
                .ids_floor
                .as_ref()
                .is_some_and(|floor| EventKey::of(&events[0]) <= *floor);
            if floor_reached {
                // Folded ids before the floor came from a snapshot's stored
                // state and are unknown: replay without stored states,
                // which also fills the id table for good.
                return self
                    .rebuild_with(false)
                    .map(|r| r.snapshot_events + r.tail_events);
            }
            let known = match self.known(&events[..late]) {
                Ok(k) => k,
                Err(cause) => {
                    return self.heal(cause).map(|r| r.snapshot_events + r.tail_events);
                }
            };
            let mut i = 0;
            let mut new_late = 0;
            events.retain(|_| {
                let keep = known.get(i).is_none_or(|k| !k);
                if i < late && keep {
                    new_late += 1;
                }
                i += 1;
                keep
            });
            if new_late > 0 && !P::COMMUTATIVE {
                return self.rebuild().map(|r| r.snapshot_events + r.tail_events);
            }
        }
        if let Err(e) = self.projector.apply_all(&events) {
            // Part of the batch is folded in memory, the position did not
            // move: go back to the stored pair, or a retry would fold that
            // part twice.
            self.reload();
            return Err(e.into());
        }
        self.position = Some(head);
        self.store(Ids::Add(&events))?;
        Ok(events.len() as u64)
    }
}

impl<P: Projection> Drop for View<P> {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            // redb may panic closing a damaged file; never from a drop.
            let _ = contain(move || drop(db));
        }
    }
}
