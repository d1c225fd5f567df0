//! Rebuilding a [`View`] from scratch: the newest snapshot that verifies,
//! then the WAL after it — what healing and [`View::rebuild`] run.

use larder_codec::Envelope;
use larder_crdt::{EventKey, Projection, Projector, merge_sorted, sort_events};
use larder_wal::commits_between;

use crate::view::{Ids, View};
use larder_git::ObjectId;

use crate::Result;

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

impl<P: Projection + Default> View<P> {
    /// Rebuilds from scratch: the newest snapshot that verifies (its stored
    /// state if it holds this projection at this version and no event after
    /// it sorts before its frontier, else its events), then every WAL event
    /// after it — nothing after the snapshot is dropped, nothing is folded
    /// twice. Snapshots that fail verification are skipped (reported); with
    /// none usable, the whole WAL is replayed.
    pub fn rebuild(&mut self) -> Result<RebuildReport> {
        self.rebuild_with(true)
    }

    pub(crate) fn rebuild_with(&mut self, use_state: bool) -> Result<RebuildReport> {
        let mut report = RebuildReport::default();
        let Some(head) = self.snapshots.wal().head()? else {
            self.projector = Projector::default();
            self.position = None;
            self.ids_floor = None;
            self.store(Ids::Replace(&[]))?;
            return Ok(report);
        };
        for snapshot in self.snapshots.list()? {
            let Ok(snapshot) = snapshot else { continue };
            match self.try_from_snapshot(&snapshot, head, use_state, &mut report) {
                Ok(folded) => {
                    report.snapshot = Some(snapshot.name.clone());
                    self.position = Some(head);
                    self.store(Ids::Replace(&folded))?;
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
        self.ids_floor = None;
        self.store(Ids::Replace(&events))?;
        Ok(report)
    }

    /// Rebuilds the projector from `snapshot` and the WAL after it; returns
    /// the events folded (whose ids the id table records).
    fn try_from_snapshot(
        &mut self,
        snapshot: &crate::SnapshotInfo,
        head: ObjectId,
        use_state: bool,
        report: &mut RebuildReport,
    ) -> Result<Vec<Envelope>> {
        let wal = self.snapshots.wal();
        let base = snapshot.wal_head()?;
        let mut tail = Vec::new();
        for c in commits_between(wal.repo(), head, Some(base), wal.ref_name())? {
            tail.extend(c?.events);
        }
        sort_events(&mut tail);
        let frontier = snapshot.meta.frontier.clone();
        // With every tail event after the frontier, none can be one the
        // snapshot already holds (same id, same key), and order holds.
        let in_order = frontier
            .as_ref()
            .is_none_or(|f| tail.first().is_none_or(|e| EventKey::of(e) > *f));
        let state = if use_state && in_order {
            self.snapshots.read_state::<P>(snapshot)?
        } else {
            None
        };
        match state {
            Some(state) => {
                let mut projector =
                    Projector::resume(state, frontier.clone(), snapshot.meta.event_count);
                projector.apply_all(&tail)?;
                report.snapshot_events = 0;
                report.tail_events = tail.len() as u64;
                report.used_state = true;
                self.projector = projector;
                self.ids_floor = frontier;
                Ok(tail)
            }
            None => {
                // Replay the snapshot's events merged with the tail: one
                // total order, each event id once.
                let events = self.snapshots.read_events(snapshot)?;
                let n = events.len() as u64;
                let merged: Vec<Envelope> =
                    merge_sorted([events.into_iter(), tail.into_iter()]).collect();
                let mut p = Projector::<P>::default();
                p.apply_all(&merged)?;
                report.snapshot_events = n;
                report.tail_events = (merged.len() as u64).saturating_sub(n);
                report.used_state = false;
                self.projector = p;
                self.ids_floor = None;
                Ok(merged)
            }
        }
    }
}
