//! [`SnapshotManager`]: snapshots of a log as git commits.

use std::sync::Arc;

use larder_codec::{ChunkId, Envelope, blake2b256, chunk_id, decode_chunk_verified, encode_chunk};
use larder_crdt::{Clock, EventKey, Projection, Projector, SystemClock, sort_events};
use larder_git::{EntryKind, Expected, GitRepo, ObjectId, TreeEntry};
use larder_wal::WalManager;
use serde::{Deserialize, Serialize};

use crate::{Result, SnapshotError};

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Events per chunk in a snapshot.
pub const SNAPSHOT_CHUNK_EVENTS: usize = 10_000;

/// One chunk listed in `snapshot.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    /// Path in the snapshot tree, e.g. `events/000000-<id>.bin`.
    pub path: String,
    /// The chunk id (hex).
    pub id: String,
    /// Events in the chunk.
    pub events: u64,
}

/// A projection's state stored in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateEntry {
    /// `Projection::NAME`.
    pub name: String,
    /// `Projection::VERSION`.
    pub version: u32,
    /// Path in the snapshot tree, e.g. `state/larder.kv.cbor`.
    pub path: String,
    /// BLAKE2b-256 (hex) of the encoded state.
    pub state_id: String,
}

/// The contents of `snapshot.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotMeta {
    /// Format version ([`SNAPSHOT_FORMAT_VERSION`]).
    pub format: u32,
    /// The log's ref.
    pub log: String,
    /// The WAL commit covered: the snapshot holds every event of its history.
    pub wal_head: String,
    /// Events in the snapshot.
    pub event_count: u64,
    /// When it was made (ms since the epoch, creator's clock).
    pub created_ms: u64,
    /// The greatest event key covered (where a projection resumes).
    pub frontier: Option<EventKey>,
    /// The event chunks, in the total order.
    pub chunks: Vec<ChunkEntry>,
    /// A projection's state, if one was registered.
    pub projection: Option<StateEntry>,
}

/// A snapshot found under the log's snapshot refs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The name: `<20-digit created millis>-<16 hex>`.
    pub name: String,
    /// The full ref.
    pub reference: String,
    /// The snapshot commit.
    pub commit: ObjectId,
    /// Its `snapshot.json`.
    pub meta: SnapshotMeta,
}

impl SnapshotInfo {
    /// The covered WAL commit.
    pub fn wal_head(&self) -> Result<ObjectId> {
        ObjectId::from_hex(self.meta.wal_head.as_bytes())
            .map_err(|_| self.bad("wal_head is not a commit id"))
    }

    fn bad(&self, reason: &str) -> SnapshotError {
        SnapshotError::BadSnapshot {
            reference: self.reference.clone(),
            commit: self.commit,
            reason: reason.into(),
        }
    }
}

/// When snapshots are taken automatically (see [`SnapshotManager::maybe_create`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot once this many events were appended since the latest one.
    pub every_events: Option<u64>,
    /// Snapshot once the latest one is older than this (and events arrived).
    pub max_age_ms: Option<u64>,
}

impl SnapshotPolicy {
    /// No automatic snapshots.
    pub const OFF: Self = Self {
        every_events: None,
        max_age_ms: None,
    };
}

/// Creates, lists, reads and collects snapshots of one log.
pub struct SnapshotManager {
    wal: WalManager,
    clock: Arc<dyn Clock>,
    policy: SnapshotPolicy,
}

impl std::fmt::Debug for SnapshotManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotManager")
            .field("log", &self.wal.ref_name())
            .field("policy", &self.policy)
            .finish()
    }
}

use larder_codec::to_hex as hex;

/// Whether `name` is `<20 digits>-<16 lowercase hex>`.
fn valid_name(name: &str) -> bool {
    let (time, tag) = match name.split_once('-') {
        Some(parts) => parts,
        None => return false,
    };
    time.len() == 20
        && time.bytes().all(|b| b.is_ascii_digit())
        && tag.len() == 16
        && tag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl SnapshotManager {
    /// Snapshots of `wal`, timed by the system clock, no automatic policy.
    pub fn new(wal: WalManager) -> Self {
        Self::with_clock(wal, Arc::new(SystemClock), SnapshotPolicy::OFF)
    }

    /// Snapshots with an injected clock and a policy.
    pub fn with_clock(wal: WalManager, clock: Arc<dyn Clock>, policy: SnapshotPolicy) -> Self {
        Self { wal, clock, policy }
    }

    /// The log.
    pub fn wal(&self) -> &WalManager {
        &self.wal
    }

    fn repo(&self) -> &GitRepo {
        self.wal.repo()
    }

    /// The prefix of this log's snapshot refs.
    pub fn prefix(&self) -> String {
        format!(
            "refs/{}/{}/snapshots/",
            self.wal.options().namespace,
            self.wal.log()
        )
    }

    /// Snapshots every event of the log (no projection state).
    pub fn create(&self) -> Result<SnapshotInfo> {
        self.create_inner::<larder_crdt::KvProjection>(false, &|_, _| {})
    }

    /// Snapshots every event and the state of projection `P` folded over them.
    pub fn create_with<P: Projection + Default>(&self) -> Result<SnapshotInfo> {
        self.create_inner::<P>(true, &|_, _| {})
    }

    /// [`SnapshotManager::create_with`], calling `progress(done, total)`
    /// as the log's commits are read (`total` is known once the walk is
    /// planned), for a progress display.
    pub fn create_with_progress<P: Projection + Default>(
        &self,
        progress: &dyn Fn(u64, u64),
    ) -> Result<SnapshotInfo> {
        self.create_inner::<P>(true, progress)
    }

    fn create_inner<P: Projection + Default>(
        &self,
        with_state: bool,
        progress: &dyn Fn(u64, u64),
    ) -> Result<SnapshotInfo> {
        let head = self.wal.head()?.ok_or_else(|| SnapshotError::EmptyLog {
            log: self.wal.ref_name().into(),
        })?;
        let commits = larder_wal::commits_between(self.repo(), head, None, self.wal.ref_name())?;
        let total = commits.remaining() as u64;
        let mut events: Vec<Envelope> = Vec::new();
        for (done, commit) in commits.enumerate() {
            events.extend(commit?.events);
            progress(done as u64 + 1, total);
        }
        sort_events(&mut events);
        let frontier = events.last().map(EventKey::of);
        let mut entries = Vec::new();
        let mut chunk_dir = Vec::new();
        let mut chunks = Vec::new();
        for (i, part) in events.chunks(SNAPSHOT_CHUNK_EVENTS).enumerate() {
            let bytes = encode_chunk(part)?;
            let id = chunk_id(&bytes);
            let name = format!("{i:06}-{id}.bin");
            chunk_dir.push(TreeEntry {
                name: name.clone(),
                kind: EntryKind::Blob,
                id: self.repo().write_blob(&bytes)?,
            });
            chunks.push(ChunkEntry {
                path: format!("events/{name}"),
                id: id.to_hex(),
                events: part.len() as u64,
            });
        }
        if !chunk_dir.is_empty() {
            entries.push(TreeEntry {
                name: "events".into(),
                kind: EntryKind::Tree,
                id: self.repo().write_tree(&chunk_dir)?,
            });
        }
        let projection = if with_state {
            let mut projector = Projector::<P>::default();
            projector.apply_all(&events)?;
            let state = projector.state().encode_state();
            let file = format!("{}.cbor", P::NAME);
            let blob = self.repo().write_blob(&state)?;
            let state_tree = self.repo().write_tree(&[TreeEntry {
                name: file.clone(),
                kind: EntryKind::Blob,
                id: blob,
            }])?;
            entries.push(TreeEntry {
                name: "state".into(),
                kind: EntryKind::Tree,
                id: state_tree,
            });
            Some(StateEntry {
                name: P::NAME.into(),
                version: P::VERSION,
                path: format!("state/{file}"),
                state_id: hex(&blake2b256(&[&state])),
            })
        } else {
            None
        };
        let created_ms = self.clock.now_millis();
        let meta = SnapshotMeta {
            format: SNAPSHOT_FORMAT_VERSION,
            log: self.wal.ref_name().into(),
            wal_head: head.to_string(),
            event_count: events.len() as u64,
            created_ms,
            frontier,
            chunks,
            projection,
        };
        let meta_bytes = serde_json::to_vec_pretty(&meta).unwrap_or_default();
        entries.push(TreeEntry {
            name: "snapshot.json".into(),
            kind: EntryKind::Blob,
            id: self.repo().write_blob(&meta_bytes)?,
        });
        let tree = self.repo().write_tree(&entries)?;
        let message = format!(
            "larder: snapshot of {} events at {head}\n",
            meta.event_count
        );
        let commit = self.repo().write_commit(
            tree,
            &[head],
            &message,
            None,
            i64::try_from(created_ms / 1000).unwrap_or(0),
        )?;
        // Unique for distinct contents, even within one millisecond.
        let name = format!(
            "{created_ms:020}-{}",
            &hex(&blake2b256(&[&meta_bytes, tree.as_bytes()]))[..16]
        );
        let reference = format!("{}{name}", self.prefix());
        match self.repo().update_ref(
            &reference,
            Expected::MustNotExist,
            commit,
            "larder: snapshot",
        ) {
            Ok(()) => {}
            // The identical snapshot already exists: creating it is idempotent.
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
        self.read_info(
            &name,
            &reference,
            self.repo().ref_target(&reference)?.unwrap_or(commit),
        )
    }

    fn read_info(&self, name: &str, reference: &str, commit: ObjectId) -> Result<SnapshotInfo> {
        let bad = |reason: String| SnapshotError::BadSnapshot {
            reference: reference.into(),
            commit,
            reason,
        };
        let info = self
            .repo()
            .read_commit(commit)
            .map_err(|e| bad(e.to_string()))?;
        let root = self
            .repo()
            .read_tree(info.tree)
            .map_err(|e| bad(e.to_string()))?;
        let meta_entry = root
            .iter()
            .find(|e| e.name == "snapshot.json")
            .ok_or_else(|| bad("no snapshot.json".into()))?;
        let bytes = self
            .repo()
            .read_blob(meta_entry.id)
            .map_err(|e| bad(e.to_string()))?;
        let meta: SnapshotMeta =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("snapshot.json: {e}")))?;
        if meta.format != SNAPSHOT_FORMAT_VERSION {
            return Err(bad(format!("unsupported format {}", meta.format)));
        }
        // Checked here so that every listed snapshot has a usable
        // `wal_head` (callers display and parse it).
        if ObjectId::from_hex(meta.wal_head.as_bytes()).is_err() {
            return Err(bad(format!(
                "wal_head {:?} is not a commit id",
                meta.wal_head
            )));
        }
        Ok(SnapshotInfo {
            name: name.into(),
            reference: reference.into(),
            commit,
            meta,
        })
    }

    /// Every snapshot, newest first; a ref larder did not write, or one
    /// whose `snapshot.json` is unreadable, is an error entry of its own.
    pub fn list(&self) -> Result<Vec<Result<SnapshotInfo>>> {
        let prefix = self.prefix();
        let mut refs = self.repo().list_refs(&prefix)?;
        refs.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(refs
            .into_iter()
            .map(|(reference, commit)| {
                let name = reference
                    .strip_prefix(&prefix)
                    .unwrap_or(&reference)
                    .to_owned();
                if !valid_name(&name) {
                    return Err(SnapshotError::BadName { reference });
                }
                self.read_info(&name, &reference, commit)
            })
            .collect())
    }

    /// The newest readable snapshot.
    pub fn latest(&self) -> Result<Option<SnapshotInfo>> {
        Ok(self.list()?.into_iter().find_map(Result::ok))
    }

    /// A snapshot's events, in the total order, every chunk verified.
    pub fn read_events(&self, snapshot: &SnapshotInfo) -> Result<Vec<Envelope>> {
        let root = self.tree_of(snapshot)?;
        let dir = root.iter().find(|e| e.name == "events");
        let files = match dir {
            Some(d) => self.repo().read_tree(d.id)?,
            None => Vec::new(),
        };
        if files.len() != snapshot.meta.chunks.len() {
            return Err(snapshot.bad("events/ does not match the chunk list"));
        }
        // `snapshot.json` is input, not a promise: its counts must agree
        // (at most SNAPSHOT_CHUNK_EVENTS per chunk) before anything is read.
        let listed = snapshot
            .meta
            .chunks
            .iter()
            .try_fold(0u64, |sum, c| {
                (c.events <= SNAPSHOT_CHUNK_EVENTS as u64)
                    .then(|| sum.checked_add(c.events))
                    .flatten()
            })
            .ok_or_else(|| {
                snapshot.bad(&format!(
                    "a chunk claims more than {SNAPSHOT_CHUNK_EVENTS} events"
                ))
            })?;
        if listed != snapshot.meta.event_count {
            return Err(snapshot.bad(&format!(
                "event_count {} does not match the chunks' {listed}",
                snapshot.meta.event_count
            )));
        }
        // At most one chunk's worth up front; beyond that the vector grows
        // with what actually decodes.
        let mut events =
            Vec::with_capacity(usize::try_from(listed).map_or(0, |n| n.min(SNAPSHOT_CHUNK_EVENTS)));
        for chunk in &snapshot.meta.chunks {
            let file = chunk.path.strip_prefix("events/").unwrap_or(&chunk.path);
            let entry = files
                .iter()
                .find(|e| e.name == file)
                .ok_or_else(|| snapshot.bad(&format!("{} is missing", chunk.path)))?;
            let id: ChunkId = chunk.id.parse().map_err(|_| snapshot.bad("bad chunk id"))?;
            let bytes = self.repo().read_blob(entry.id)?;
            let decoded =
                decode_chunk_verified(&bytes, &id).map_err(|source| SnapshotError::Chunk {
                    reference: snapshot.reference.clone(),
                    path: chunk.path.clone(),
                    source: Box::new(source),
                })?;
            if decoded.len() as u64 != chunk.events {
                return Err(snapshot.bad(&format!(
                    "{} holds {} events, not {}",
                    chunk.path,
                    decoded.len(),
                    chunk.events
                )));
            }
            events.extend(decoded);
        }
        if events.len() as u64 != snapshot.meta.event_count {
            return Err(snapshot.bad("event_count does not match the chunks"));
        }
        Ok(events)
    }

    /// A snapshot's stored state of projection `P`, verified against its
    /// state id; `None` if it holds no state of `P` at this version.
    pub fn read_state<P: Projection>(&self, snapshot: &SnapshotInfo) -> Result<Option<P>> {
        let Some(entry) = &snapshot.meta.projection else {
            return Ok(None);
        };
        if entry.name != P::NAME || entry.version != P::VERSION {
            return Ok(None);
        }
        let root = self.tree_of(snapshot)?;
        let state_dir = root
            .iter()
            .find(|e| e.name == "state")
            .ok_or_else(|| snapshot.bad("no state/"))?;
        let file = entry.path.strip_prefix("state/").unwrap_or(&entry.path);
        let blob = self
            .repo()
            .read_tree(state_dir.id)?
            .into_iter()
            .find(|e| e.name == file)
            .ok_or_else(|| snapshot.bad(&format!("{} is missing", entry.path)))?;
        let bytes = self.repo().read_blob(blob.id)?;
        let computed = hex(&blake2b256(&[&bytes]));
        if computed != entry.state_id {
            return Err(SnapshotError::StateMismatch {
                reference: snapshot.reference.clone(),
                path: entry.path.clone(),
                expected: entry.state_id.clone(),
                computed,
            });
        }
        Ok(Some(P::decode_state(&bytes)?))
    }

    fn tree_of(&self, snapshot: &SnapshotInfo) -> Result<Vec<TreeEntry>> {
        let info = self.repo().read_commit(snapshot.commit)?;
        Ok(self.repo().read_tree(info.tree)?)
    }

    /// Deletes all but the newest `keep` snapshots (each by compare-and-swap
    /// on its ref); returns how many were deleted. Sync never mirrors
    /// snapshot refs, so a deleted snapshot stays deleted.
    pub fn gc(&self, keep: usize) -> Result<usize> {
        let valid: Vec<SnapshotInfo> = self.list()?.into_iter().filter_map(Result::ok).collect();
        let mut deleted = 0;
        for old in valid.iter().skip(keep) {
            self.repo().delete_ref(&old.reference, old.commit)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Applies the policy: snapshots (with `P`'s state) when enough events
    /// arrived since the latest snapshot or it is too old. Call it after
    /// appends or syncs; a no-op when the policy is off.
    pub fn maybe_create<P: Projection + Default>(&self) -> Result<Option<SnapshotInfo>> {
        if self.policy == SnapshotPolicy::OFF {
            return Ok(None);
        }
        let Some(head) = self.wal.head()? else {
            return Ok(None);
        };
        let latest = self.latest()?;
        let base = match &latest {
            Some(s) => Some(s.wal_head()?),
            None => None,
        };
        if base == Some(head) {
            return Ok(None);
        }
        let (_, new_events) = self.wal.count_between(head, base)?;
        let due_by_count = self.policy.every_events.is_some_and(|n| new_events >= n);
        let due_by_age = match (self.policy.max_age_ms, &latest) {
            (Some(age), Some(s)) => {
                self.clock.now_millis().saturating_sub(s.meta.created_ms) >= age
            }
            (Some(_), None) => true,
            _ => false,
        };
        if due_by_count || due_by_age {
            self.create_with::<P>().map(Some)
        } else {
            Ok(None)
        }
    }
}
