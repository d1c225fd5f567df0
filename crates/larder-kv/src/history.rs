//! A key's past: [`Kv::history`] (every write of a key) and
//! [`Kv::get_at`] (its entry as of a commit or a time, from the newest
//! snapshot before that point).

use larder_wal::commits_between;
use serde::de::DeserializeOwned;

use crate::kv::Kv;
use crate::record::{Record, parse_event};
use crate::state::KvState;
use crate::types::*;
use crate::{KvError, Result};

impl Kv {
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
}
