//! [`View`]: a projection's state kept up to date in a local redb file.

use std::path::{Path, PathBuf};

use larder_codec::Envelope;
use larder_crdt::{EventKey, Projection, Projector, merge_sorted, sort_events};
use larder_git::ObjectId;
use larder_wal::{WalError, commits_between};
use redb::{Database, ReadableDatabase, TableDefinition};

use crate::{Result, SnapshotError, SnapshotManager};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("view");
const K_PROJECTION: &str = "projection";
const K_POSITION: &str = "position";
const K_FRONTIER: &str = "frontier";
const K_APPLIED: &str = "applied";
const K_STATE: &str = "state";

/// How the view reached its current state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// The snapshot started from, if any.
    pub snapshot: Option<String>,
    /// Whether that snapshot's stored state was used (else its events).
    pub used_state: bool,
    /// Events folded from the snapshot's chunks.
    pub snapshot_events: u64,
    /// Events folded from the WAL after the snapshot.
    pub tail_events: u64,
    /// Snapshots skipped because they failed verification.
    pub rejected: Vec<String>,
}

/// A projection's state plus the WAL position it reflects, stored in redb
/// under the git dir (`<git dir>/larder/<log>/view.redb`), never in the work
/// tree. Every update is one redb write transaction holding the new state
/// and the new position together: a crash leaves the previous pair or the
/// new one, and re-applying a batch changes nothing.
pub struct View<P: Projection> {
    db: Database,
    path: PathBuf,
    snapshots: SnapshotManager,
    projector: Projector<P>,
    position: Option<ObjectId>,
}

fn db_error(path: &Path, e: impl Into<redb::Error>) -> SnapshotError {
    SnapshotError::View {
        path: path.display().to_string(),
        source: Box::new(e.into()),
    }
}

impl<P: Projection + Default> View<P> {
    /// The view's file for a log.
    pub fn path_for(snapshots: &SnapshotManager) -> PathBuf {
        let wal = snapshots.wal();
        wal.repo()
            .git_dir()
            .join("larder")
            .join(wal.log())
            .join("view.redb")
    }

    /// Opens (or creates) the view of `snapshots`' log. A stored state of
    /// another projection or version is ignored (the view starts empty and
    /// [`View::update`] or [`View::rebuild`] fills it).
    pub fn open(snapshots: SnapshotManager) -> Result<Self> {
        let path = Self::path_for(&snapshots);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| db_error(&path, redb::StorageError::from(e)))?;
        }
        let db = Database::create(&path).map_err(|e| db_error(&path, e))?;
        let mut view = Self {
            db,
            path,
            snapshots,
            projector: Projector::default(),
            position: None,
        };
        view.load()?;
        Ok(view)
    }

    fn tag() -> String {
        format!("{}:{}", P::NAME, P::VERSION)
    }

    fn load(&mut self) -> Result<()> {
        let txn = self.db.begin_read().map_err(|e| db_error(&self.path, e))?;
        let table = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(db_error(&self.path, e)),
        };
        let get = |k: &str| -> Result<Option<Vec<u8>>> {
            Ok(table
                .get(k)
                .map_err(|e| db_error(&self.path, e))?
                .map(|v| v.value().to_vec()))
        };
        if get(K_PROJECTION)?.as_deref() != Some(Self::tag().as_bytes()) {
            return Ok(());
        }
        let (Some(position), Some(state)) = (get(K_POSITION)?, get(K_STATE)?) else {
            return Ok(());
        };
        let position = ObjectId::from_hex(&position).ok();
        let frontier: Option<EventKey> =
            get(K_FRONTIER)?.and_then(|f| serde_json::from_slice(&f).ok());
        let applied = get(K_APPLIED)?
            .and_then(|a| a.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        let state = P::decode_state(&state)?;
        self.projector = Projector::resume(state, frontier, applied);
        self.position = position;
        Ok(())
    }

    fn store(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| db_error(&self.path, e))?;
        {
            let mut table = txn.open_table(META).map_err(|e| db_error(&self.path, e))?;
            let position = self.position.map(|p| p.to_string()).unwrap_or_default();
            let frontier = serde_json::to_vec(&self.projector.frontier()).unwrap_or_default();
            let state = self.projector.state().encode_state();
            let applied = self.projector.applied().to_le_bytes();
            for (k, v) in [
                (K_PROJECTION, Self::tag().as_bytes()),
                (K_POSITION, position.as_bytes()),
                (K_FRONTIER, frontier.as_slice()),
                (K_APPLIED, applied.as_slice()),
                (K_STATE, state.as_slice()),
            ] {
                table.insert(k, v).map_err(|e| db_error(&self.path, e))?;
            }
        }
        txn.commit().map_err(|e| db_error(&self.path, e))
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

    /// Folds in what the log gained since the view's position, in one redb
    /// transaction. An order-sensitive projection that sees an event sorting
    /// before what it already applied (merged in from another replica) is
    /// rebuilt instead. Returns how many events were applied.
    pub fn update(&mut self) -> Result<u64> {
        let wal = self.snapshots.wal();
        let Some(head) = wal.head()? else {
            return Ok(0);
        };
        if Some(head) == self.position {
            return Ok(0);
        }
        let commits = match commits_between(wal.repo(), head, self.position, wal.ref_name()) {
            Ok(c) => c,
            // The position left the log's history (rewritten): start over.
            Err(WalError::NotInLog { .. }) => {
                return self.rebuild().map(|r| r.snapshot_events + r.tail_events);
            }
            Err(e) => return Err(e.into()),
        };
        let mut events = Vec::new();
        for c in commits {
            events.extend(c?.events);
        }
        sort_events(&mut events);
        let late = self
            .projector
            .frontier()
            .is_some_and(|f| events.first().is_some_and(|e| EventKey::of(e) <= *f));
        if late && !P::COMMUTATIVE {
            return self.rebuild().map(|r| r.snapshot_events + r.tail_events);
        }
        self.projector.apply_all(&events)?;
        self.position = Some(head);
        self.store()?;
        Ok(events.len() as u64)
    }

    /// Rebuilds from scratch: the newest snapshot that verifies (its stored
    /// state if it holds this projection at this version, else its events),
    /// then every WAL event after it — nothing after the snapshot is
    /// dropped. Snapshots that fail verification are skipped (reported);
    /// with none usable, the whole WAL is replayed.
    pub fn rebuild(&mut self) -> Result<RebuildReport> {
        let mut report = RebuildReport::default();
        let Some(head) = self.snapshots.wal().head()? else {
            self.projector = Projector::default();
            self.position = None;
            self.store()?;
            return Ok(report);
        };
        for snapshot in self.snapshots.list()? {
            let Ok(snapshot) = snapshot else { continue };
            match self.try_from_snapshot(&snapshot, head, &mut report) {
                Ok(()) => {
                    report.snapshot = Some(snapshot.name.clone());
                    self.position = Some(head);
                    self.store()?;
                    return Ok(report);
                }
                Err(_) => report.rejected.push(snapshot.name.clone()),
            }
        }
        // No usable snapshot: replay the whole log.
        let mut events = self.snapshots.wal().read_all()?;
        sort_events(&mut events);
        let mut projector = Projector::<P>::default();
        projector.apply_all(&events)?;
        report.tail_events = events.len() as u64;
        self.projector = projector;
        self.position = Some(head);
        self.store()?;
        Ok(report)
    }

    fn try_from_snapshot(
        &mut self,
        snapshot: &crate::SnapshotInfo,
        head: ObjectId,
        report: &mut RebuildReport,
    ) -> Result<()> {
        let wal = self.snapshots.wal();
        let base = snapshot.wal_head()?;
        let mut tail = Vec::new();
        for c in commits_between(wal.repo(), head, Some(base), wal.ref_name())? {
            tail.extend(c?.events);
        }
        sort_events(&mut tail);
        let frontier = snapshot.meta.frontier.clone();
        let in_order = frontier
            .as_ref()
            .is_none_or(|f| tail.first().is_none_or(|e| EventKey::of(e) > *f));
        let (mut projector, snapshot_events, used_state) =
            match self.snapshots.read_state::<P>(snapshot)? {
                Some(state) if in_order || P::COMMUTATIVE => (
                    Projector::resume(state, frontier, snapshot.meta.event_count),
                    0,
                    true,
                ),
                _ => {
                    // Replay the snapshot's events, merged with the tail so an
                    // order-sensitive projection sees one total order.
                    let events = self.snapshots.read_events(snapshot)?;
                    let n = events.len() as u64;
                    let merged: Vec<Envelope> =
                        merge_sorted([events.into_iter(), std::mem::take(&mut tail).into_iter()])
                            .collect();
                    let mut p = Projector::<P>::default();
                    p.apply_all(&merged)?;
                    report.tail_events = merged.len() as u64 - n;
                    (p, n, false)
                }
            };
        if used_state {
            projector.apply_all(&tail)?;
            report.tail_events = tail.len() as u64;
        }
        report.snapshot_events = snapshot_events;
        report.used_state = used_state;
        self.projector = projector;
        Ok(())
    }
}
