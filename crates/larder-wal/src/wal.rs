//! [`WalManager`]: one named log — its ref, options and the types its
//! operations return. The operations live by concept: `append.rs`,
//! `merge.rs`, `read.rs`, `verify.rs`, `incoming.rs`.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use larder_codec::{Envelope, Limits};
use larder_git::{ConsolidationPolicy, EntryKind, GitRepo, Identity, ObjectId, TreeEntry};

use crate::group::GroupCommit;
use crate::meta::{Meta, WalFormat};
use crate::walk::paint;
use crate::{Result, WalError};

/// The actor recorded for merge commits: merges are written by
/// no one in particular, so that every replica writes the same commit.
pub const MERGE_ACTOR: &str = "larder";

/// Whether `append` waits for the written data to reach the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Objects (one pack per append) and the ref are written atomically
    /// (temp file + rename) but not fsynced: safe against killed processes;
    /// after a power loss the newest appends may be lost, or the ref may
    /// name objects that never reached the disk. git's default.
    #[default]
    Buffered,
    /// Before `append` returns, the append's pack and index, the ref and
    /// their directories are fsynced.
    Fsync,
}

/// How a [`WalManager`] writes.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// First component under `refs/`; the log lives at
    /// `refs/<namespace>/<log>/wal`.
    pub namespace: String,
    /// See [`Durability`].
    pub durability: Durability,
    /// Author/committer of WAL commits; larder's fixed identity if `None`.
    pub identity: Option<Identity>,
    /// How many lost compare-and-swaps `append` tolerates before giving up.
    pub max_attempts: u32,
    /// How many times a held ref lock is waited for (gix waits ~0.1 s each
    /// time) before [`WalError::Locked`] is returned.
    pub max_lock_waits: u32,
    /// How the small packs that appends write are merged as they pile up;
    /// `None` leaves them to [`WalManager::compact`] or `git gc`. The
    /// appender whose commit's generation is a multiple of the policy's
    /// `fan_in` starts a merge on a background thread (a directory listing
    /// when nothing is due).
    pub consolidation: Option<ConsolidationPolicy>,
    /// Size bounds `append` applies to each event and each chunk (defaults
    /// 1 MiB and 64 MiB; at most the format's ceilings, which every reader
    /// enforces, so anything appended can be read everywhere).
    pub limits: Limits,
    /// The commit format appends and merges are written in (format 2 by
    /// default; every format is read). See [`WalFormat`].
    pub format: WalFormat,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            namespace: "larder".into(),
            durability: Durability::Buffered,
            identity: None,
            max_attempts: 10_000,
            max_lock_waits: 30,
            consolidation: Some(ConsolidationPolicy::default()),
            limits: Limits::default(),
            format: WalFormat::default(),
        }
    }
}

/// One WAL commit as read back: its id, parents, record and events.
#[derive(Clone, Debug)]
pub struct WalCommit {
    /// The commit id.
    pub id: ObjectId,
    /// Its parents (one for an append, several for a merge, none for the first).
    pub parents: Vec<ObjectId>,
    /// Its record (format 1's `meta.json`, or format 2's trailers, parents
    /// and chunk name, in the same shape).
    pub meta: Meta,
    /// Its events in chunk order (empty for a merge).
    pub events: Vec<Envelope>,
    /// The size of its chunk in bytes (0 for a merge).
    pub chunk_bytes: u64,
}

/// An append whose commit is on the log's ref: the append happened, whatever
/// `after_commit` says. A caller must not answer `after_commit` by
/// appending the same events again — that would write them twice.
#[derive(Debug)]
pub struct Committed {
    /// The commit now at the head of the log (or in its history).
    pub commit: ObjectId,
    /// The commit's parent: the head it was written on (in a group, the
    /// previous member's commit), `None` for a log's first commit. A
    /// caller whose view stood at this parent can apply its own events
    /// without reading the commit back (which would make the object store
    /// rescan its packs for the one just written).
    pub parent: Option<ObjectId>,
    /// A failure after the compare-and-swap succeeded: with
    /// [`Durability::Fsync`], the fsync of the ref. The commit is visible
    /// to readers but may not survive a power loss.
    pub after_commit: Option<WalError>,
}

/// What [`WalManager::merge`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The other head was already part of the log.
    UpToDate,
    /// The log's ref moved forward to the other head (no new commit).
    FastForward(ObjectId),
    /// A merge commit joining both heads was written.
    Merged(ObjectId),
}

/// What [`WalManager::compact`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Loose objects moved into a pack.
    pub loose_objects: usize,
    /// Packs merged into one (0 if there was at most one).
    pub packs_merged: usize,
    /// Packs in the repository afterwards.
    pub packs_after: usize,
    /// Unreachable objects older than the grace period that were dropped.
    pub unreachable_dropped: usize,
    /// Unreachable objects kept (younger than the grace period, or
    /// pruning was skipped), in a cruft pack.
    pub unreachable_kept: usize,
    /// Extra copies of objects that several packs held, written once.
    pub duplicates_dropped: usize,
    /// Large objects compressed again at zlib's default level.
    pub recompressed: usize,
}

/// The write-ahead log of one named log in one repository.
///
/// Cheap to clone; clones share the object store, the background
/// consolidation and the group-commit queue. Give each thread its own
/// clone: appends made at the same time through clones are written as one
/// group (one pack, one ref update; see [`WalManager::append_committed`]).
#[derive(Clone, Debug)]
pub struct WalManager {
    pub(crate) repo: GitRepo,
    pub(crate) log: String,
    pub(crate) ref_name: String,
    pub(crate) options: WalOptions,
    /// Group commit of concurrent appends, and the head last written or
    /// read with its generation (so an appender need not read its
    /// predecessor's commit back), shared by clones.
    pub(crate) group: Arc<GroupCommit>,
    /// The background pack consolidation, shared by clones.
    pub(crate) maintenance: Arc<Maintenance>,
}

/// The background pack consolidation of a [`WalManager`] and its clones.
/// Dropping the last handle waits for it, so a short-lived process does
/// not exit halfway through (which would be safe, but would leave the
/// small packs for the next appender).
#[derive(Debug, Default)]
pub(crate) struct Maintenance {
    /// The running (or finished, not yet joined) consolidation.
    running: Mutex<Option<JoinHandle<()>>>,
    /// Packs this handle and its clones wrote since they last started a
    /// consolidation.
    pub(crate) packs_since: AtomicU64,
}

impl Maintenance {
    pub(crate) fn slot(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn join(&self) {
        let handle = self.slot().take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.join();
    }
}

/// Checks that `name` can be one component of a ref name.
/// Log names that would collide with, or read like, larder's own refs
/// under `refs/<ns>/`: lock records live at `refs/<ns>/locks/…`, so a log
/// named `locks` would be listed as a malformed lock; the others name
/// parts of every log's own tree of refs.
pub const RESERVED_LOG_NAMES: &[&str] = &["locks", "heads", "snapshots", "wal"];

pub(crate) fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 128 {
        Some("longer than 128 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
    {
        Some("only ASCII letters, digits, '_', '-', '.' and '@' are allowed")
    } else if name.starts_with(['.', '-']) || name.ends_with('.') || name.ends_with(".lock") {
        Some("must not start with '.' or '-', nor end with '.' or '.lock'")
    } else if name.contains("..") || name.contains("@{") {
        Some("must not contain '..'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(WalError::InvalidName {
            name: name.into(),
            reason,
        }),
        None => Ok(()),
    }
}

impl WalManager {
    /// The log `log` in `repo`, with default options.
    pub fn new(repo: GitRepo, log: &str) -> Result<Self> {
        Self::with_options(repo, log, WalOptions::default())
    }

    /// The log `log` in `repo`, with `options`.
    pub fn with_options(repo: GitRepo, log: &str, options: WalOptions) -> Result<Self> {
        check_name(log)?;
        if RESERVED_LOG_NAMES.contains(&log) {
            return Err(WalError::InvalidName {
                name: log.into(),
                reason: "reserved for larder's own refs (locks, heads, snapshots, wal)",
            });
        }
        check_name(&options.namespace)?;
        let ref_name = format!("refs/{}/{log}/wal", options.namespace);
        Ok(Self {
            repo,
            log: log.into(),
            ref_name,
            options,
            group: Arc::default(),
            maintenance: Arc::default(),
        })
    }

    /// The log's name.
    pub fn log(&self) -> &str {
        &self.log
    }

    /// The full name of the log's ref, e.g. `refs/larder/issues/wal`.
    pub fn ref_name(&self) -> &str {
        &self.ref_name
    }

    /// The repository.
    pub fn repo(&self) -> &GitRepo {
        &self.repo
    }

    /// The options in force.
    pub fn options(&self) -> &WalOptions {
        &self.options
    }

    /// The newest commit of the log, or `None` if nothing was appended yet.
    pub fn head(&self) -> Result<Option<ObjectId>> {
        Ok(self.repo.ref_target(&self.ref_name)?)
    }

    /// Waits until background pack consolidation started by this handle
    /// (or its clones) has finished.
    pub fn finish_maintenance(&self) {
        self.maintenance.join();
    }

    /// Whether `ancestor` is `descendant` or in its history, by a
    /// generation-bounded walk.
    pub fn is_ancestor(&self, ancestor: ObjectId, descendant: ObjectId) -> Result<bool> {
        Ok(paint(&self.repo, descendant, Some(ancestor))?.base_reached)
    }

    /// Compacts the object database: moves loose objects (written by other
    /// layers, or by older larder versions) into a pack, then rewrites
    /// every pack up to the consolidation policy's `max_size` (64 MiB by
    /// default) as one, each object once, dropping objects that no ref
    /// reaches once they are older than
    /// [`DEFAULT_PRUNE_GRACE`](larder_git::DEFAULT_PRUNE_GRACE) (two weeks,
    /// git's default) — see [`GitRepo::compact_opts`]. Safe to run while
    /// others append or read: every object a ref reaches stays readable at
    /// every moment, an appender's objects are young until its ref moves,
    /// and new packs are flushed to disk before anything is deleted.
    pub fn compact(&self) -> Result<CompactReport> {
        self.compact_with(larder_git::Unreachable::DropOlderThan(
            larder_git::DEFAULT_PRUNE_GRACE,
        ))
    }

    /// [`WalManager::compact`] with another rule for unreachable objects:
    /// [`Unreachable::Keep`](larder_git::Unreachable::Keep) keeps them all,
    /// `DropOlderThan(Duration::ZERO)` drops every one at once (`git gc
    /// --prune=now`: only when nobody else writes to the repository).
    pub fn compact_with(&self, unreachable: larder_git::Unreachable) -> Result<CompactReport> {
        self.finish_maintenance();
        let options = larder_git::CompactOptions {
            max_size: self.options.consolidation.unwrap_or_default().max_size,
            unreachable,
        };
        let done = self.repo.compact_opts(&options, &|_| {})?;
        Ok(CompactReport {
            loose_objects: done.loose_objects,
            packs_merged: done.packs_merged,
            packs_after: self.repo.pack_count()?,
            unreachable_dropped: done.unreachable_dropped,
            unreachable_kept: done.unreachable_kept,
            duplicates_dropped: done.duplicates_dropped,
            recompressed: done.recompressed,
        })
    }
}

pub(crate) fn entry(name: impl Into<String>, kind: EntryKind, id: ObjectId) -> TreeEntry {
    TreeEntry {
        name: name.into(),
        kind,
        id,
    }
}

/// `YYYY`, `MM`, `DD` (UTC) of a millisecond timestamp; far-out-of-range
/// timestamps clamp to the representable dates.
pub(crate) fn date_of(millis: u64) -> (String, String, String) {
    let seconds = i64::try_from(millis / 1000).unwrap_or(i64::MAX);
    let dt = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(if seconds < 0 {
        time::OffsetDateTime::UNIX_EPOCH
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    });
    (
        format!("{:04}", dt.year()),
        format!("{:02}", u8::from(dt.month())),
        format!("{:02}", dt.day()),
    )
}
