//! [`WalManager`]: append to and read one named log.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use larder_codec::{
    ActorId, ChunkId, Envelope, Limits, chunk_id, decode_chunk_verified, encode_chunk_with,
};
use larder_git::{
    ConsolidationPolicy, EntryKind, Expected, GitError, GitRepo, Identity, ObjectBatch, ObjectId,
    TreeEntry,
};

use crate::meta::{CommitKind, Meta, WAL_FORMAT_VERSION};
use crate::walk::{GENERATION_TRAILER, Node, load_node, paint};
use crate::{Result, WalError};

/// The actor recorded in merge commits' `meta.json`: merges are written by
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
        }
    }
}

/// One WAL commit as read back: its id, parents, `meta.json` and events.
#[derive(Clone, Debug)]
pub struct WalCommit {
    /// The commit id.
    pub id: ObjectId,
    /// Its parents (one for an append, several for a merge, none for the first).
    pub parents: Vec<ObjectId>,
    /// Its `meta.json`.
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
}

/// The result of [`WalManager::verify`]: what was read and every problem.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Commits examined.
    pub commits: u64,
    /// Events that decoded and verified.
    pub events: u64,
    /// Every bad object found, each naming its commit and path.
    pub problems: Vec<WalError>,
}

impl VerifyReport {
    /// Whether nothing was wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The write-ahead log of one named log in one repository.
///
/// Cheap to clone; clones share the object store. Give each thread its own.
#[derive(Clone, Debug)]
pub struct WalManager {
    repo: GitRepo,
    log: String,
    ref_name: String,
    options: WalOptions,
    /// The head this handle last wrote or read, with its generation, so a
    /// writer appending again need not read its own last commit back.
    known_head: Cell<Option<(ObjectId, u64)>>,
    /// The background pack consolidation, shared by clones.
    maintenance: Arc<Maintenance>,
}

/// The background pack consolidation of a [`WalManager`] and its clones.
/// Dropping the last handle waits for it, so a short-lived process does
/// not exit halfway through (which would be safe, but would leave the
/// small packs for the next appender).
#[derive(Debug, Default)]
struct Maintenance(Mutex<Option<JoinHandle<()>>>);

impl Maintenance {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn join(&self) {
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
        check_name(&options.namespace)?;
        let ref_name = format!("refs/{}/{log}/wal", options.namespace);
        Ok(Self {
            repo,
            log: log.into(),
            ref_name,
            options,
            known_head: Cell::new(None),
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

    // ---- writing -------------------------------------------------------

    /// Appends `events` as one chunk in one commit and returns the commit.
    ///
    /// The ref moves by compare-and-swap; when another appender wins, the
    /// commit is rebuilt on the new head and retried with backoff. All
    /// events must share one actor. A reader sees all of the batch or none.
    ///
    /// Once the commit is on the ref this returns it: a failure after that
    /// point (the ref's fsync under [`Durability::Fsync`]) is logged as a
    /// warning, never returned as an error a caller would retry — see
    /// [`WalManager::append_committed`] to receive it.
    pub fn append(&self, events: &[Envelope]) -> Result<ObjectId> {
        let done = self.append_committed(events)?;
        if let Some(e) = &done.after_commit {
            tracing::warn!(log = %self.ref_name, commit = %done.commit, error = %e,
                "appended, then failed");
        }
        Ok(done.commit)
    }

    /// [`WalManager::append`], reporting a failure after the commit
    /// separately ([`Committed::after_commit`]) instead of logging it.
    pub fn append_committed(&self, events: &[Envelope]) -> Result<Committed> {
        let first = events.first().ok_or(WalError::EmptyBatch)?;
        if let Some((index, other)) = events
            .iter()
            .enumerate()
            .find(|(_, e)| e.actor() != first.actor())
        {
            return Err(WalError::MixedActors {
                expected: first.actor().to_string(),
                found: other.actor().to_string(),
                index,
            });
        }
        let chunk = encode_chunk_with(events, &self.options.limits)?;
        let cid = chunk_id(&chunk);
        let mut objects = ObjectBatch::new();
        let blob = objects.blob(chunk)?;
        let (y, m, d) = date_of(first.timestamp().millis);
        let mut subtree = objects.tree(&[entry(format!("{cid}.bin"), EntryKind::Blob, blob)])?;
        for name in [d, m, y] {
            subtree = objects.tree(&[entry(name, EntryKind::Tree, subtree)])?;
        }
        let events_tree = subtree;
        let message = format!(
            "larder: append {} event{} by {}\n\nchunk {cid}\n",
            events.len(),
            if events.len() == 1 { "" } else { "s" },
            first.actor()
        );
        let base_meta = Meta {
            format: WAL_FORMAT_VERSION,
            kind: CommitKind::Append,
            actor: first.actor().to_string(),
            chunk: Some(cid.to_hex()),
            events: Some(events.len() as u64),
            previous: None,
            merged: Vec::new(),
        };
        self.commit_with_retry(&objects, &message, |head| {
            let meta = Meta {
                previous: head.map(|h| h.to_string()),
                ..base_meta.clone()
            };
            (meta, vec![entry("events", EntryKind::Tree, events_tree)])
        })
    }

    /// Joins `other` into this log; see [`WalManager::merge_heads`].
    pub fn merge(&self, other: ObjectId) -> Result<MergeOutcome> {
        self.merge_heads(&[other])
    }

    /// Joins `others` (commits whose histories hold verified larder events,
    /// typically fetched remote heads) into this log.
    ///
    /// Of the local head and `others`, heads that are ancestors of another
    /// are dropped. One left: fast-forward to it (or nothing to do). More:
    /// a single merge commit whose parents are the remaining heads sorted by
    /// id, with larder's fixed identity, the newest parent's time and a
    /// fixed message — so every replica merging the same heads writes the
    /// *same* commit, and replicas that have exchanged everything end on one
    /// identical head instead of merging each other's merges forever. The
    /// merge adds no events: the union of the parents' histories is the log.
    pub fn merge_heads(&self, others: &[ObjectId]) -> Result<MergeOutcome> {
        let mut attempts = 0;
        let mut lock_waits = 0;
        loop {
            attempts += 1;
            let head = self.head()?;
            let mut candidates: Vec<ObjectId> = head.iter().chain(others).copied().collect();
            candidates.sort();
            candidates.dedup();
            let mut maximal = Vec::with_capacity(candidates.len());
            for &c in &candidates {
                let mut covered = false;
                for &d in &candidates {
                    if d != c && self.is_ancestor(c, d)? {
                        covered = true;
                        break;
                    }
                }
                if !covered {
                    maximal.push(c);
                }
            }
            let (target, outcome) = match maximal.as_slice() {
                [] => return Ok(MergeOutcome::UpToDate),
                [only] if Some(*only) == head => return Ok(MergeOutcome::UpToDate),
                [only] => (*only, MergeOutcome::FastForward(*only)),
                parents => {
                    let commit = self.write_merge(parents)?;
                    (commit, MergeOutcome::Merged(commit))
                }
            };
            let expected = head.map_or(Expected::MustNotExist, Expected::MustBe);
            match self
                .repo
                .update_ref(&self.ref_name, expected, target, "larder: merge")
            {
                Ok(()) => {
                    // Moved: a failed fsync must not make the merge look
                    // undone (the caller would merge again).
                    if let Err(e) = self.sync_ref_if_durable() {
                        tracing::warn!(log = %self.ref_name, error = %e, "merged, then failed");
                    }
                    return Ok(outcome);
                }
                Err(e) => self.retry_or_fail(e, attempts, &mut lock_waits)?,
            }
        }
    }

    /// Writes the deterministic merge commit of `parents` (sorted, ≥ 2).
    fn write_merge(&self, parents: &[ObjectId]) -> Result<ObjectId> {
        let mut generation = 0;
        let mut newest = parents[0];
        let mut time = 0;
        for &p in parents {
            let g = load_node(&self.repo, p)?.generation;
            if g > generation {
                (generation, newest) = (g, p);
            }
            time = time.max(
                self.repo
                    .read_commit(p)
                    .map_err(|e| object_error(p, "<commit>", p, e))?
                    .time,
            );
        }
        let meta = Meta {
            format: WAL_FORMAT_VERSION,
            kind: CommitKind::Merge,
            actor: MERGE_ACTOR.into(),
            chunk: None,
            events: None,
            previous: Some(parents[0].to_string()),
            merged: parents[1..].iter().map(ToString::to_string).collect(),
        };
        let mut objects = ObjectBatch::new();
        let meta_blob = objects.blob(meta.to_bytes())?;
        let root = objects.tree(&[entry("meta.json", EntryKind::Blob, meta_blob)])?;
        let message = with_generation(
            &format!("larder: merge {} heads\n", parents.len()),
            next_generation(newest, generation)?,
        );
        let commit = objects.commit(root, parents, &message, None, time)?;
        self.repo
            .write_batch(&objects, self.options.durability == Durability::Fsync)?;
        Ok(commit)
    }

    /// Builds the commit on the current head (meta.json, root tree and
    /// commit added to `objects`), writes everything as one pack and moves
    /// the ref by compare-and-swap; on a lost race, rebuilds on the new head.
    fn commit_with_retry(
        &self,
        objects: &ObjectBatch,
        message: &str,
        build: impl Fn(Option<ObjectId>) -> (Meta, Vec<TreeEntry>),
    ) -> Result<Committed> {
        let mut attempts = 0;
        let mut lock_waits = 0;
        loop {
            attempts += 1;
            let head = self.head()?;
            let generation = match head {
                Some(h) => next_generation(h, self.generation_of(h)?)?,
                None => 1,
            };
            let (meta, entries) = build(head);
            let parents: Vec<ObjectId> = head.into_iter().collect();
            let full_message = with_generation(message, generation);
            // The chunk and its trees stay in `objects`; only the parts that
            // depend on the head are rebuilt for each attempt.
            let mut commit_objects = ObjectBatch::new();
            let commit =
                self.add_commit(&mut commit_objects, &meta, entries, &parents, &full_message)?;
            self.repo.write_batches(
                &[objects, &commit_objects],
                self.options.durability == Durability::Fsync,
            )?;
            let expected = head.map_or(Expected::MustNotExist, Expected::MustBe);
            match self.repo.update_ref(
                &self.ref_name,
                expected,
                commit,
                message.lines().next().unwrap_or(""),
            ) {
                Ok(()) => {
                    // The commit is on the ref: from here on nothing may
                    // turn the append into an error.
                    let after_commit = self.sync_ref_if_durable().err();
                    self.known_head.set(Some((commit, generation)));
                    self.consolidate_after(generation);
                    return Ok(Committed {
                        commit,
                        after_commit,
                    });
                }
                Err(e) => self.retry_or_fail(e, attempts, &mut lock_waits)?,
            }
        }
    }

    /// The generation number of `head`, from the cache when this handle
    /// wrote or read it last.
    fn generation_of(&self, head: ObjectId) -> Result<u64> {
        if let Some((known, generation)) = self.known_head.get()
            && known == head
        {
            return Ok(generation);
        }
        let generation = load_node(&self.repo, head)?.generation;
        self.known_head.set(Some((head, generation)));
        Ok(generation)
    }

    /// Merges small packs when the commit just written has a generation
    /// that is a multiple of the policy's fan-in. The merge runs on a
    /// background thread (one per handle at a time), so appends never wait
    /// for it; [`WalManager::finish_maintenance`] waits. The append has
    /// already succeeded, so a failure is reported through `tracing` and
    /// left for the next check (or [`WalManager::compact`]), never returned.
    fn consolidate_after(&self, generation: u64) {
        let Some(policy) = self.options.consolidation else {
            return;
        };
        if !generation.is_multiple_of(policy.fan_in.max(2) as u64) {
            return;
        }
        let mut slot = self.maintenance.slot();
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(done) = slot.take() {
            let _ = done.join();
        }
        let repo = self.repo.clone();
        let log = self.ref_name.clone();
        *slot = Some(std::thread::spawn(move || {
            if let Err(e) = repo.consolidate_packs(&policy) {
                tracing::warn!(%log, error = %e, "pack consolidation failed");
            }
        }));
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

    /// Decides after a failed ref update: back off and retry (lost CAS, or
    /// lock held by a live writer), or fail with a typed error.
    fn retry_or_fail(&self, e: GitError, attempts: u32, lock_waits: &mut u32) -> Result<()> {
        if e.is_retryable() {
            *lock_waits += 1;
            if *lock_waits > self.options.max_lock_waits {
                return Err(WalError::Locked {
                    log: self.ref_name.clone(),
                    lock_path: self
                        .repo
                        .git_dir()
                        .join(format!("{}.lock", self.ref_name))
                        .display()
                        .to_string(),
                });
            }
        } else if !e.is_conflict() {
            return Err(e.into());
        }
        if attempts >= self.options.max_attempts {
            return Err(WalError::Contention {
                log: self.ref_name.clone(),
                attempts,
            });
        }
        backoff(attempts);
        Ok(())
    }

    fn add_commit(
        &self,
        objects: &mut ObjectBatch,
        meta: &Meta,
        mut entries: Vec<TreeEntry>,
        parents: &[ObjectId],
        message: &str,
    ) -> Result<ObjectId> {
        let meta_blob = objects.blob(meta.to_bytes())?;
        entries.push(entry("meta.json", EntryKind::Blob, meta_blob));
        let root = objects.tree(&entries)?;
        Ok(objects.commit(
            root,
            parents,
            message,
            self.options.identity.as_ref(),
            unix_now(),
        )?)
    }

    fn sync_ref_if_durable(&self) -> Result<()> {
        if self.options.durability == Durability::Fsync {
            self.repo.sync_ref(&self.ref_name)?;
        }
        Ok(())
    }

    /// Compacts the object database: moves loose objects (written by other
    /// layers, or by older larder versions) into a pack, then merges every
    /// pack up to the consolidation policy's `max_size` (64 MiB by default)
    /// into one. Safe to run while others append or read: every object
    /// stays readable at every moment, and new packs are flushed to disk
    /// before anything is deleted.
    pub fn compact(&self) -> Result<CompactReport> {
        self.finish_maintenance();
        let loose_objects = self.repo.pack_loose_objects()?.objects;
        let max_size = self.options.consolidation.unwrap_or_default().max_size;
        let merged = self.repo.merge_packs(max_size)?;
        Ok(CompactReport {
            loose_objects,
            packs_merged: merged.packs_merged,
            packs_after: self.repo.pack_count()?,
        })
    }

    // ---- reading -------------------------------------------------------

    /// Every event of the log, in log order.
    pub fn read_all(&self) -> Result<Vec<Envelope>> {
        self.events_since(None)?.collect()
    }

    /// The events appended after `since` (a commit of this log), in log
    /// order. Costs O(new commits), not O(log).
    pub fn read_since(&self, since: ObjectId) -> Result<Vec<Envelope>> {
        self.events_since(Some(since))?.collect()
    }

    /// Streams the events after `since` (all events if `None`), one chunk in
    /// memory at a time.
    pub fn events_since(&self, since: Option<ObjectId>) -> Result<WalEvents> {
        Ok(WalEvents {
            commits: self.commits_since(since)?,
            current: Vec::new().into_iter(),
            failed: false,
        })
    }

    /// Streams the commits after `since` (all if `None`), parents before
    /// children, each fully verified as it is read.
    pub fn commits_since(&self, since: Option<ObjectId>) -> Result<WalCommits> {
        match self.head()? {
            None => match since {
                Some(commit) => Err(WalError::NotInLog {
                    commit,
                    log: self.ref_name.clone(),
                }),
                None => Ok(WalCommits::new(self.repo.clone(), Vec::new())),
            },
            Some(head) => commits_between(&self.repo, head, since, &self.ref_name),
        }
    }

    /// Reads and verifies the whole log, collecting every problem (missing
    /// objects, wrong hashes, bad `meta.json`, undecodable chunks, unexpected
    /// tree entries) instead of stopping at the first.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let Some(head) = self.head()? else {
            return Ok(report);
        };
        let mut queue = vec![head];
        let mut seen: HashSet<ObjectId> = HashSet::from([head]);
        let mut generations: std::collections::HashMap<ObjectId, (u64, Vec<ObjectId>)> =
            std::collections::HashMap::new();
        while let Some(id) = queue.pop() {
            report.commits += 1;
            let info = match self.repo.read_commit(id) {
                Ok(info) => info,
                Err(e) => {
                    report.problems.push(object_error(id, "<commit>", id, e));
                    continue;
                }
            };
            for p in &info.parents {
                if seen.insert(*p) {
                    queue.push(*p);
                }
            }
            match crate::walk::parse_generation(id, &info.message) {
                Ok(g) => {
                    generations.insert(id, (g, info.parents.clone()));
                }
                Err(e) => report.problems.push(e),
            }
            match load_commit(&self.repo, id, info.tree, &info.parents) {
                Ok(commit) => report.events += commit.events.len() as u64,
                Err(e) => report.problems.push(e),
            }
        }
        for (id, (g, parents)) in &generations {
            let parent_gens: Option<Vec<u64>> = parents
                .iter()
                .map(|p| generations.get(p).map(|x| x.0))
                .collect();
            if let Some(pg) = parent_gens {
                let max = pg.into_iter().max().unwrap_or(0);
                if Some(*g) != max.checked_add(1) {
                    report.problems.push(WalError::BadMeta {
                        commit: *id,
                        reason: format!("generation {g}, but its parents' largest is {max}"),
                    });
                }
            }
        }
        Ok(report)
    }
}

/// The commits reachable from `head` but not from `since`, parents first.
/// Errors if `since` is not `head` or one of its ancestors. Costs O(commits
/// after `since`), whatever the length of the log.
pub fn commits_between(
    repo: &GitRepo,
    head: ObjectId,
    since: Option<ObjectId>,
    log: &str,
) -> Result<WalCommits> {
    let painted = paint(repo, head, since)?;
    if let (Some(commit), false) = (since, painted.base_reached) {
        return Err(WalError::NotInLog {
            commit,
            log: log.into(),
        });
    }
    Ok(WalCommits::new(repo.clone(), painted.new))
}

/// A stream of verified WAL commits; see [`WalManager::commits_since`].
pub struct WalCommits {
    repo: GitRepo,
    order: std::vec::IntoIter<Node>,
}

impl WalCommits {
    fn new(repo: GitRepo, order: Vec<Node>) -> Self {
        Self {
            repo,
            order: order.into_iter(),
        }
    }

    /// How many commits remain.
    pub fn remaining(&self) -> usize {
        self.order.len()
    }
}

impl Iterator for WalCommits {
    type Item = Result<WalCommit>;

    fn next(&mut self) -> Option<Self::Item> {
        let node = self.order.next()?;
        Some(load_commit(&self.repo, node.id, node.tree, &node.parents))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.order.size_hint()
    }
}

/// A stream of verified events; see [`WalManager::events_since`].
pub struct WalEvents {
    commits: WalCommits,
    current: std::vec::IntoIter<Envelope>,
    failed: bool,
}

impl Iterator for WalEvents {
    type Item = Result<Envelope>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(Ok(event));
            }
            if self.failed {
                return None;
            }
            match self.commits.next()? {
                Ok(commit) => self.current = commit.events.into_iter(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

pub(crate) fn object_error(commit: ObjectId, path: &str, id: ObjectId, e: GitError) -> WalError {
    match e {
        GitError::ObjectMissing { id } => WalError::MissingObject {
            commit,
            path: path.into(),
            id,
        },
        GitError::WrongObjectKind {
            expected, actual, ..
        } => WalError::BadTree {
            commit,
            path: path.into(),
            reason: format!("object {id} is a {actual}, expected a {expected}"),
        },
        other => WalError::Git {
            commit: Some(commit),
            source: other,
        },
    }
}

/// Reads one WAL commit's tree, `meta.json` and chunk, checking every part
/// against what larder writes.
pub(crate) fn load_commit(
    repo: &GitRepo,
    id: ObjectId,
    tree: ObjectId,
    parents: &[ObjectId],
) -> Result<WalCommit> {
    let bad_tree = |path: &str, reason: String| WalError::BadTree {
        commit: id,
        path: path.into(),
        reason,
    };
    let root = repo
        .read_tree(tree)
        .map_err(|e| object_error(id, "/", tree, e))?;
    let mut meta_blob = None;
    let mut events_tree = None;
    for e in &root {
        match (e.name.as_str(), e.kind) {
            ("meta.json", EntryKind::Blob) => meta_blob = Some(e.id),
            ("events", EntryKind::Tree) => events_tree = Some(e.id),
            (name, kind) => {
                return Err(bad_tree(
                    "/",
                    format!("unexpected entry {name:?} ({kind:?})"),
                ));
            }
        }
    }
    let meta_blob = meta_blob.ok_or_else(|| bad_tree("/", "no meta.json".into()))?;
    let meta_bytes = repo
        .read_blob(meta_blob)
        .map_err(|e| object_error(id, "meta.json", meta_blob, e))?;
    let meta = Meta::parse(id, &meta_bytes)?;
    meta.check_parents(id, parents)?;
    if ActorId::new(meta.actor.as_str()).is_err() {
        return Err(WalError::BadMeta {
            commit: id,
            reason: format!("invalid actor {:?}", meta.actor),
        });
    }
    let (Some(chunk_hex), Some(events_tree)) = (&meta.chunk, events_tree) else {
        if events_tree.is_some() {
            return Err(bad_tree(
                "/events",
                "a merge commit carries no events".into(),
            ));
        }
        return Ok(WalCommit {
            id,
            parents: parents.to_vec(),
            meta,
            events: Vec::new(),
            chunk_bytes: 0,
        });
    };
    let cid: ChunkId = chunk_hex.parse().map_err(|_| WalError::BadMeta {
        commit: id,
        reason: format!("chunk {chunk_hex:?} is not a chunk id"),
    })?;

    // events/YYYY/MM/DD/<chunk-id>.bin, each level holding exactly one entry.
    let mut path = String::from("events");
    let mut dir = events_tree;
    let mut date = Vec::with_capacity(3);
    for digits in [4usize, 2, 2] {
        let entries = repo
            .read_tree(dir)
            .map_err(|e| object_error(id, &path, dir, e))?;
        let [only] = entries.as_slice() else {
            return Err(bad_tree(
                &path,
                format!(
                    "expected one date directory, found {} entries",
                    entries.len()
                ),
            ));
        };
        path.push('/');
        path.push_str(&only.name);
        if only.kind != EntryKind::Tree
            || only.name.len() != digits
            || !only.name.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad_tree(&path, "expected a date directory".into()));
        }
        date.push(only.name.clone());
        dir = only.id;
    }
    let entries = repo
        .read_tree(dir)
        .map_err(|e| object_error(id, &path, dir, e))?;
    let expected_name = format!("{cid}.bin");
    let [only] = entries.as_slice() else {
        return Err(bad_tree(
            &path,
            format!("expected one chunk, found {} entries", entries.len()),
        ));
    };
    path.push('/');
    path.push_str(&only.name);
    if only.kind != EntryKind::Blob || only.name != expected_name {
        return Err(bad_tree(
            &path,
            format!("expected the chunk {expected_name} named in meta.json"),
        ));
    }
    let bytes = repo
        .read_blob(only.id)
        .map_err(|e| object_error(id, &path, only.id, e))?;
    let events = decode_chunk_verified(&bytes, &cid).map_err(|source| WalError::Chunk {
        commit: id,
        path: path.clone(),
        source: Box::new(source),
    })?;
    if meta.events != Some(events.len() as u64) {
        return Err(WalError::BadMeta {
            commit: id,
            reason: format!(
                "meta.json counts {:?} events, the chunk holds {}",
                meta.events,
                events.len()
            ),
        });
    }
    if let Some(e) = events.iter().find(|e| e.actor().as_str() != meta.actor) {
        return Err(WalError::BadMeta {
            commit: id,
            reason: format!(
                "chunk holds an event by {}, meta.json names {}",
                e.actor(),
                meta.actor
            ),
        });
    }
    let (y, m, d) = date_of(events[0].timestamp().millis);
    if date != [y, m, d] {
        return Err(bad_tree(
            &path,
            "the date directories do not match the first event's timestamp".into(),
        ));
    }
    Ok(WalCommit {
        id,
        parents: parents.to_vec(),
        meta,
        events,
        chunk_bytes: bytes.len() as u64,
    })
}

/// The generation of a child of `parent` (whose generation is `generation`),
/// or a typed error when a hostile history claims the largest one.
fn next_generation(parent: ObjectId, generation: u64) -> Result<u64> {
    generation.checked_add(1).ok_or_else(|| WalError::BadMeta {
        commit: parent,
        reason: format!("generation {generation} leaves no room for a successor"),
    })
}

/// Appends the generation trailer to a commit message.
fn with_generation(message: &str, generation: u64) -> String {
    format!("{message}\n{GENERATION_TRAILER}: {generation}\n")
}

fn entry(name: impl Into<String>, kind: EntryKind, id: ObjectId) -> TreeEntry {
    TreeEntry {
        name: name.into(),
        kind,
        id,
    }
}

/// `YYYY`, `MM`, `DD` (UTC) of a millisecond timestamp; far-out-of-range
/// timestamps clamp to the representable dates.
fn date_of(millis: u64) -> (String, String, String) {
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Sleeps a little after a lost compare-and-swap: exponential up to 5 ms,
/// with jitter so that contenders spread out.
fn backoff(attempt: u32) {
    let base_us = 20u64 << attempt.min(8);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = u64::from(nanos % 1000) * base_us / 1000;
    std::thread::sleep(Duration::from_micros((base_us + jitter).min(5_000)));
}
