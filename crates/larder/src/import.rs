//! Importing an existing history ([`Log::import`]): events stamped with
//! their original time and author, re-runnable without duplicates.
//!
//! An imported event's actor is its original author and its HLC timestamp
//! is its original time, so it takes its place in the total order by that
//! time, on every replica. Its event id is a function of what was imported
//! (author, time, kind, data, and the key when one is given), so importing
//! the same history again — here or on another replica — yields the same
//! ids: a re-run adds nothing, and two replicas that imported the same
//! file converge to one copy of each event after they sync.

use std::collections::HashSet;

use crate::codec::{ActorId, Envelope, Payload, Timestamp, blake2b256};
use crate::{LarderError, Log, Result};

/// One event of a history being imported.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// When it happened: milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Who wrote it: becomes the event's actor (an actor id: 1–64 ASCII
    /// letters, digits, `_`, `-`, `.`).
    pub author: String,
    /// The event's kind.
    pub kind: String,
    /// Its data.
    pub payload: Payload,
    /// A stable key naming the event in the source system: with one, the
    /// event's id depends on the key and its content, not on where it sits
    /// in the input; without, on its position among the author's events of
    /// the same millisecond.
    pub key: Option<String>,
}

/// What [`Log::import`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Events written.
    pub imported: u64,
    /// Events the log already held (same id: same key and content).
    pub skipped: u64,
    /// Commits written (one per author and up to 1,000 events).
    pub commits: u64,
}

/// Most events of one imported commit.
const CHUNK: usize = 1_000;

impl Log {
    /// Imports `events` (a history from another system): each keeps its
    /// original time as its HLC timestamp and its author as its actor; an
    /// event the log already holds (same id) is skipped, so a re-run adds
    /// nothing. Every event is checked before anything is written: a bad
    /// author, kind or a time more than the clock's drift bound in the
    /// future is [`LarderError::Import`] naming the event's index, and the
    /// log is left as it was. The clock then observes the newest imported
    /// time, so later appends sort after the history.
    pub fn import(&self, events: impl IntoIterator<Item = Imported>) -> Result<ImportReport> {
        let bad = |index: usize, reason: String| LarderError::Import { index, reason };
        // An encrypted log's imported events are sealed like appended ones
        // (deterministically, so a re-run still adds nothing).
        let key = self.write_key()?;
        let existing = self.wal.read_all()?;
        if key.is_none()
            && existing
                .iter()
                .any(|e| crate::crypt::is_sealed(e.payload()))
        {
            return Err(self.key_missing_now());
        }
        let now = {
            let clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
            clock.clock().now_millis()
        };
        let limit = now.saturating_add(crate::crdt::clock::DEFAULT_MAX_DRIFT_MS);
        // Position among one author's events of one millisecond, for keyless ones.
        let mut same_ms: std::collections::HashMap<(String, u64), u32> = Default::default();
        let mut stamped = Vec::new();
        for (index, e) in events.into_iter().enumerate() {
            let actor =
                ActorId::new(e.author.as_str()).map_err(|err| bad(index, err.to_string()))?;
            if e.time_ms > limit {
                return Err(bad(
                    index,
                    format!(
                        "time {} ms is in the future beyond the clock's drift bound",
                        e.time_ms
                    ),
                ));
            }
            let counter = match &e.key {
                Some(key) => {
                    // The key's hash as the counter: stable under reordering.
                    let h = blake2b256(&[&b"larder-import-key\0"[..], key.as_bytes()]);
                    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) >> 1
                }
                None => {
                    let n = same_ms.entry((e.author.clone(), e.time_ms)).or_insert(0);
                    let c = *n;
                    *n += 1;
                    c
                }
            };
            let ts = Timestamp::new(e.time_ms, counter);
            let payload = match &key {
                Some(k) => crate::crypt::seal(k, self.wal.log(), &actor, ts, &e.kind, &e.payload)?,
                None => e.payload,
            };
            let envelope = Envelope::new(actor, ts, e.kind, payload)
                .map_err(|err| bad(index, err.to_string()))?;
            stamped.push(envelope);
        }
        let mut have: HashSet<_> = existing.iter().map(Envelope::id).collect();
        let mut report = ImportReport::default();
        let mut fresh: Vec<Envelope> = Vec::new();
        for e in stamped {
            if have.insert(e.id()) {
                fresh.push(e);
            } else {
                report.skipped += 1;
            }
        }
        crate::crdt::sort_events(&mut fresh);
        // One commit per author run of up to CHUNK events (a chunk holds
        // one actor's events).
        let mut by_author: std::collections::BTreeMap<ActorId, Vec<Envelope>> = Default::default();
        for e in fresh {
            by_author.entry(e.actor().clone()).or_default().push(e);
        }
        let mut newest: Option<(Timestamp, ActorId)> = None;
        for (actor, events) in by_author {
            for chunk in events.chunks(CHUNK) {
                self.wal.append(chunk)?;
                report.commits += 1;
                report.imported += chunk.len() as u64;
                if let Some(last) = chunk.last()
                    && newest.as_ref().is_none_or(|(t, _)| last.timestamp() > *t)
                {
                    newest = Some((last.timestamp(), actor.clone()));
                }
            }
        }
        if let Some((t, actor)) = newest {
            let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
            let _ = clock.observe(t, actor.as_str());
        }
        Ok(report)
    }
}
