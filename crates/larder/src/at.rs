//! Time travel: a log as of a commit or a time ([`Log::at`]) — its events
//! in the total order and any projection folded from them, starting from
//! the newest snapshot before that point when there is one.

use crate::codec::{Envelope, Timestamp};
use crate::crdt::{self, EventKey, Projection, Projector};
use crate::kv::At;
use crate::{LarderError, Log, Result, snapshot, wal};

/// A log as of one point in its past: what [`Log::at`] returns.
#[derive(Debug)]
pub struct LogAt {
    at: At,
    /// The snapshot the replay started from, if one was used.
    snapshot: Option<snapshot::SnapshotInfo>,
    /// The events after the snapshot (all of them without one), in the
    /// total order, up to the point.
    tail: Vec<Envelope>,
    snapshots: snapshot::SnapshotManager,
}

impl LogAt {
    /// The point this view is at.
    pub fn at(&self) -> At {
        self.at
    }

    /// The snapshot the replay started from (`None`: the whole log was read).
    pub fn snapshot(&self) -> Option<&str> {
        self.snapshot.as_ref().map(|s| s.name.as_str())
    }

    /// Every event up to the point, in the total order (the snapshot's
    /// stored events merged with the ones after it).
    pub fn events(&self) -> Result<Vec<Envelope>> {
        let Some(snapshot) = &self.snapshot else {
            return Ok(self.tail.clone());
        };
        let base = self.snapshots.read_events(snapshot)?;
        Ok(crdt::merge_sorted([base.into_iter(), self.tail.clone().into_iter()]).collect())
    }

    /// Projection `P` folded over the events up to the point — from the
    /// snapshot's stored state when it holds `P` and every later event
    /// sorts after its frontier, else by replaying.
    pub fn project<P: Projection + Default>(&self) -> Result<P> {
        if let Some(snapshot) = &self.snapshot {
            let frontier = snapshot.meta.frontier.clone();
            let in_order = frontier
                .as_ref()
                .is_none_or(|f| self.tail.first().is_none_or(|e| EventKey::of(e) > *f));
            if in_order && let Some(state) = self.snapshots.read_state::<P>(snapshot)? {
                let mut p = Projector::resume(state, frontier, snapshot.meta.event_count);
                p.apply_all(&self.tail)?;
                return Ok(p.into_state());
            }
        }
        let mut p = Projector::<P>::default();
        p.apply_all(&self.events()?)?;
        Ok(p.into_state())
    }
}

impl Log {
    /// The log as of `at`: [`At::Commit`] — every event in that commit's
    /// history (the commit must be in the log's); [`At::Time`] — every
    /// event the log holds now whose HLC timestamp is at or before the
    /// time (`Timestamp::new(ms, u32::MAX)` for a wall time).
    ///
    /// The newest snapshot that lies before the point is the starting
    /// place (its events, or its stored state for [`LogAt::project`]);
    /// only the commits after it are read. A commit not in the log is
    /// [`LarderError::NotInLog`]; a time before the log's first event is
    /// [`LarderError::BeforeLog`].
    pub fn at(&self, at: At) -> Result<LogAt> {
        let wal = &self.wal;
        let snapshots = snapshot::SnapshotManager::new(wal.clone());
        let not_in_log = |what: String| LarderError::NotInLog {
            at: what,
            log: wal.ref_name().to_owned(),
        };
        let Some(head) = wal.head()? else {
            return Err(match at {
                At::Commit(c) => not_in_log(c.to_string()),
                At::Time(t) => LarderError::BeforeLog {
                    at: t.to_string(),
                    log: wal.ref_name().to_owned(),
                    first: None,
                },
            });
        };
        let (tip, cutoff) = match at {
            At::Commit(c) => {
                if wal.repo().read_commit(c).is_err() || !wal.is_ancestor(c, head)? {
                    return Err(not_in_log(c.to_string()));
                }
                (c, None)
            }
            At::Time(t) => (head, Some(t)),
        };
        let mut chosen = None;
        for snapshot in snapshots.list()?.into_iter().flatten() {
            let Ok(base) = snapshot.wal_head() else {
                continue;
            };
            let covered = snapshot
                .meta
                .frontier
                .as_ref()
                .is_none_or(|f| cutoff.is_none_or(|t| f.timestamp <= t));
            if covered && wal.is_ancestor(base, tip).unwrap_or(false) {
                chosen = Some((snapshot, base));
                break;
            }
        }
        let mut tail = Vec::new();
        let mut first: Option<Timestamp> = None;
        let base = chosen.as_ref().map(|(_, b)| *b);
        for c in wal::commits_between(wal.repo(), tip, base, wal.ref_name())? {
            for e in c?.events {
                first = Some(first.map_or(e.timestamp(), |f| f.min(e.timestamp())));
                if cutoff.is_none_or(|t| e.timestamp() <= t) {
                    tail.push(e);
                }
            }
        }
        crdt::sort_events(&mut tail);
        let snapshot = chosen.map(|(s, _)| s);
        let empty = tail.is_empty() && snapshot.as_ref().is_none_or(|s| s.meta.event_count == 0);
        if let (At::Time(t), true, Some(first)) = (at, empty, first) {
            return Err(LarderError::BeforeLog {
                at: t.to_string(),
                log: wal.ref_name().to_owned(),
                first: Some(first.to_string()),
            });
        }
        Ok(LogAt {
            at,
            snapshot,
            tail,
            snapshots,
        })
    }
}
