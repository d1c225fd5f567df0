//! Watching a log: [`Log::watch`] / [`Log::watch_from`] yield events as
//! they land — this process's appends, other processes' and syncs' — with
//! a position to resume from after a restart.
//!
//! The watch keeps one position: the log commit up to which everything has
//! been delivered. Each round reads the log's head, delivers the events of
//! the commits between the position and the head (in the total order) and
//! moves the position to the head. Rounds run when the log's ref changes
//! (file-system notifications on the ref's directory and `packed-refs`)
//! and at least every poll interval (the fallback where notifications are
//! missing, e.g. network file systems). Since every round starts where the
//! last ended, no event is missed between catching up and following live.
//!
//! Delivery is at least once across restarts: every event carries the
//! position to resume from once it is handled — the round's starting
//! position for all but the round's last event, the round's head for the
//! last — so resuming from the position of the last event handled
//! delivers again at most the rest of that round, never skips.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::codec::Envelope;
use crate::git::ObjectId;
use crate::{LarderError, Log, Result, crdt, wal};

/// How often a watch looks at the log's ref when no notification came.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// An event delivered by a [`LogWatch`].
#[derive(Clone, Debug, PartialEq)]
pub struct Watched {
    /// The event.
    pub event: Envelope,
    /// Where to resume ([`Log::watch_from`]) once this event is handled
    /// (`None`: from the log's beginning).
    pub position: Option<ObjectId>,
}

/// A stream of a log's new events; see the module docs. Iterating blocks
/// until the next event (or an error).
pub struct LogWatch {
    wal: wal::WalManager,
    position: Option<ObjectId>,
    pending: VecDeque<Watched>,
    poll: Duration,
    wake: Receiver<()>,
    // Kept alive for as long as the watch: dropping it stops notifications.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for LogWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWatch")
            .field("log", &self.wal.ref_name())
            .field("position", &self.position)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Log {
    /// Watches for events appended from now on.
    pub fn watch(&self) -> Result<LogWatch> {
        let head = self.wal.head()?;
        self.watch_inner(head, true)
    }

    /// Watches from `position` (a [`Watched::position`] saved earlier;
    /// `None`: from the log's beginning): first every event after it, then
    /// new ones as they land. A position that is no longer in the log's
    /// history is [`LarderError::WatchPositionGone`].
    pub fn watch_from(&self, position: Option<ObjectId>) -> Result<LogWatch> {
        self.watch_inner(position, false)
    }

    fn watch_inner(&self, position: Option<ObjectId>, trusted: bool) -> Result<LogWatch> {
        if !trusted && let Some(p) = position {
            check_in_history(&self.wal, p)?;
        }
        let (tx, rx) = mpsc::channel();
        let watcher = start_notifications(&self.wal, tx);
        Ok(LogWatch {
            wal: self.wal.clone(),
            position,
            pending: VecDeque::new(),
            poll: DEFAULT_POLL,
            wake: rx,
            _watcher: watcher,
        })
    }
}

impl LogWatch {
    /// Looks at the log's ref at least this often (default 250 ms).
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The position everything before has been read up to (what
    /// [`Log::watch_from`] takes to resume without skipping anything
    /// not yet returned is the last returned event's
    /// [`Watched::position`]).
    pub fn position(&self) -> Option<ObjectId> {
        self.position
    }

    /// The next event, waiting at most `timeout`; `None` if none landed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Watched>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(w) = self.pending.pop_front() {
                return Ok(Some(w));
            }
            self.round()?;
            if !self.pending.is_empty() {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            match self.wake.recv_timeout(self.poll.min(deadline - now)) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {
                    // Coalesce a burst of notifications into one round.
                    while self.wake.try_recv().is_ok() {}
                }
                // Notifications stopped: keep polling.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(self.poll.min(deadline - now));
                }
            }
        }
    }

    /// One round: the events of the commits between the position and the
    /// head, queued with their resume positions.
    fn round(&mut self) -> Result<()> {
        let Some(head) = self.wal.head()? else {
            return Ok(());
        };
        if Some(head) == self.position {
            return Ok(());
        }
        if let Some(p) = self.position {
            check_in_history(&self.wal, p)?;
        }
        let mut events = Vec::new();
        for c in wal::commits_between(self.wal.repo(), head, self.position, self.wal.ref_name())? {
            events.extend(c?.events);
        }
        crdt::sort_events(&mut events);
        let start = self.position;
        let n = events.len();
        for (i, event) in events.into_iter().enumerate() {
            let position = if i + 1 == n { Some(head) } else { start };
            self.pending.push_back(Watched { event, position });
        }
        self.position = Some(head);
        Ok(())
    }
}

impl Iterator for LogWatch {
    type Item = Result<Watched>;

    /// Blocks until the next event.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(w)) => return Some(Ok(w)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

fn check_in_history(wal: &wal::WalManager, position: ObjectId) -> Result<()> {
    let gone = || LarderError::WatchPositionGone {
        position: position.to_string(),
        log: wal.ref_name().to_owned(),
    };
    let Some(head) = wal.head()? else {
        return Err(gone());
    };
    if wal.repo().read_commit(position).is_err() || !wal.is_ancestor(position, head)? {
        return Err(gone());
    }
    Ok(())
}

/// Notifications on the directory holding the log's ref and on
/// `packed-refs`; `None` where the platform gives none (the watch polls).
fn start_notifications(
    wal: &wal::WalManager,
    tx: mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let git_dir = wal.repo().git_dir().to_path_buf();
    let refs = git_dir.join("refs");
    let mut watcher = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
        let _ = tx.send(());
    })
    .ok()?;
    // Loose refs anywhere under refs/ (the log's own, created later too)
    // and packed-refs in the git dir.
    watcher
        .watch(&refs, notify::RecursiveMode::Recursive)
        .ok()?;
    let _ = watcher.watch(&git_dir, notify::RecursiveMode::NonRecursive);
    Some(watcher)
}
