//! Reading: the commits and events of a log after a position, in log order,
//! each commit fully verified as it is read, one chunk in memory at a time.

use larder_codec::{ActorId, ChunkId, Envelope, decode_chunk_verified};
use larder_git::{EntryKind, GitError, GitRepo, ObjectId};

use crate::meta::{CommitKind, Meta, WalFormat};
use crate::trailers;
use crate::wal::{WalCommit, WalManager, date_of};
use crate::walk::{Node, paint, paint_many};
use crate::{Result, WalError};

impl WalManager {
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
    ///
    /// A repository without the log's ref but with heads published under
    /// `refs/<ns>/<log>/heads/` — a hub, the bare remote replicas push to —
    /// reads the union of those heads: the log every replica converges to.
    pub fn commits_since(&self, since: Option<ObjectId>) -> Result<WalCommits> {
        let tips = self.tips()?;
        match tips.as_slice() {
            [] => match since {
                Some(commit) => Err(WalError::NotInLog {
                    commit,
                    log: self.ref_name.clone(),
                }),
                None => Ok(WalCommits::new(self.repo.clone(), Vec::new())),
            },
            [head] => commits_between(&self.repo, *head, since, &self.ref_name),
            heads => {
                let painted = paint_many(&self.repo, heads, since)?;
                if let (Some(commit), false) = (since, painted.base_reached) {
                    return Err(WalError::NotInLog {
                        commit,
                        log: self.ref_name.clone(),
                    });
                }
                Ok(WalCommits::new(self.repo.clone(), painted.new))
            }
        }
    }

    /// The heads replicas published for this log in this repository
    /// (`refs/<ns>/<log>/heads/<actor>`), sorted by ref name: what a hub
    /// holds instead of a log ref.
    pub fn published_heads(&self) -> Result<Vec<(String, ObjectId)>> {
        let prefix = format!("refs/{}/{}/heads/", self.options.namespace, self.log);
        Ok(self.repo.list_refs(&prefix)?)
    }

    /// Where reads start: the log's ref and every published head
    /// (deduplicated). A replica has only the first (its remotes' heads are
    /// staged elsewhere); a hub has only published heads — or both, if
    /// someone appended there too — and reads their union either way.
    pub fn tips(&self) -> Result<Vec<ObjectId>> {
        let mut tips: Vec<ObjectId> = self.head()?.into_iter().collect();
        tips.extend(self.published_heads()?.into_iter().map(|(_, id)| id));
        tips.sort();
        tips.dedup();
        Ok(tips)
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

/// Below this many commits a stream reads on the caller's thread alone:
/// starting a helper thread (tens of µs) would cost more than it saves.
const PREFETCH_MIN_COMMITS: usize = 64;

/// Commits are split between the two threads in blocks of this many
/// consecutive commits (a hand-over per commit would cost a thread wake-up
/// each), and the helper reads at most this many commits ahead: a bound on
/// the chunks in memory at once, however long the log.
const PREFETCH_BLOCK: usize = 16;

/// A stream of verified WAL commits; see [`WalManager::commits_since`].
///
/// Long streams read on two threads: in blocks of 16 consecutive commits,
/// the caller's thread reads and verifies the even blocks, a helper thread
/// (with its own handle on the repository) the odd ones, handing each
/// commit over in order through a channel at most one block deep. So a
/// read uses two cores, yields exactly the same sequence, and holds at
/// most ~17 commits' chunks in memory. Dropping the stream stops the
/// helper.
pub struct WalCommits {
    repo: GitRepo,
    order: Vec<Node>,
    /// Position of the next commit to yield.
    next: usize,
    /// Commits at odd positions, read by the helper, in order.
    helper: Option<Helper>,
}

struct Helper {
    received: std::sync::mpsc::Receiver<Result<WalCommit>>,
    thread: std::thread::JoinHandle<()>,
}

impl WalCommits {
    fn new(repo: GitRepo, order: Vec<Node>) -> Self {
        let helper = (order.len() >= PREFETCH_MIN_COMMITS
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
        .then(|| {
            let odd: Vec<Node> = order
                .iter()
                .enumerate()
                .filter(|(i, _)| helper_reads(*i))
                .map(|(_, node)| node.clone())
                .collect();
            // Its own store, so the two readers never rescan one store at
            // once (see `GitRepo::reopen`); the caller's if that fails.
            let repo = repo.reopen().unwrap_or_else(|_| repo.clone());
            let (send, received) = std::sync::mpsc::sync_channel(PREFETCH_BLOCK);
            std::thread::Builder::new()
                .name("larder-wal-read".into())
                .spawn(move || {
                    for node in odd {
                        let commit =
                            load_commit(&repo, node.id, node.tree, &node.parents, node.format);
                        if send.send(commit).is_err() {
                            // The stream was dropped.
                            return;
                        }
                    }
                })
                .ok()
                .map(|thread| Helper { received, thread })
        })
        .flatten();
        Self {
            repo,
            order,
            next: 0,
            helper,
        }
    }

    /// How many commits remain.
    pub fn remaining(&self) -> usize {
        self.order.len() - self.next
    }
}

/// Whether the helper thread reads the commit at `position`.
fn helper_reads(position: usize) -> bool {
    (position / PREFETCH_BLOCK) % 2 == 1
}

impl Drop for WalCommits {
    fn drop(&mut self) {
        if let Some(Helper { received, thread }) = self.helper.take() {
            // A blocked send fails once the receiver is gone, so the helper
            // stops after at most the commit it is reading.
            drop(received);
            let _ = thread.join();
        }
    }
}

impl Iterator for WalCommits {
    type Item = Result<WalCommit>;

    fn next(&mut self) -> Option<Self::Item> {
        let position = self.next;
        let node = self.order.get(position)?;
        self.next += 1;
        if helper_reads(position)
            && let Some(helper) = &self.helper
        {
            match helper.received.recv() {
                Ok(commit) => return Some(commit),
                // The helper is gone (it cannot fail otherwise): read the
                // rest here.
                Err(_) => self.helper = None,
            }
        }
        Some(load_commit(
            &self.repo,
            node.id,
            node.tree,
            &node.parents,
            node.format,
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
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

/// Reads one WAL commit — its record, tree and chunk — checking every part
/// against what larder writes in the commit's `format`.
pub(crate) fn load_commit(
    repo: &GitRepo,
    id: ObjectId,
    tree: ObjectId,
    parents: &[ObjectId],
    format: WalFormat,
) -> Result<WalCommit> {
    match format {
        WalFormat::V1 => load_v1(repo, id, tree, parents),
        WalFormat::V2 => load_v2(repo, id, tree, parents),
    }
}

/// A tree of commit `id` that is not what larder writes.
fn bad_tree(id: ObjectId, path: &str, reason: String) -> WalError {
    WalError::BadTree {
        commit: id,
        path: path.into(),
        reason,
    }
}

/// The record's actor must be a valid actor id.
fn check_actor(id: ObjectId, meta: &Meta) -> Result<()> {
    if ActorId::new(meta.actor.as_str()).is_err() {
        return Err(WalError::BadMeta {
            commit: id,
            reason: format!("invalid actor {:?}", meta.actor),
        });
    }
    Ok(())
}

/// Reads a format-2 commit: the record from its trailers, then a tree that
/// is empty (a merge) or holds exactly one blob, `<chunk-id>.bin`.
fn load_v2(
    repo: &GitRepo,
    id: ObjectId,
    tree: ObjectId,
    parents: &[ObjectId],
) -> Result<WalCommit> {
    let bad_tree = |path: &str, reason: String| bad_tree(id, path, reason);
    let info = repo
        .read_commit(id)
        .map_err(|e| object_error(id, "<commit>", id, e))?;
    // The record's parents are the commit's own (nothing to check them
    // against, unlike format 1's `meta.json`).
    let mut meta = trailers::parse(id, &info.message, parents)?;
    if meta.kind == CommitKind::Merge {
        // git's empty tree is known by its id: nothing to read.
        if !tree.is_empty_tree() {
            let root = repo
                .read_tree(tree)
                .map_err(|e| object_error(id, "/", tree, e))?;
            let path = root.first().map_or("/".into(), |e| format!("/{}", e.name));
            return Err(bad_tree(
                &path,
                "a merge commit carries no events: its tree is empty".into(),
            ));
        }
        return Ok(WalCommit {
            id,
            parents: parents.to_vec(),
            meta,
            events: Vec::new(),
            chunk_bytes: 0,
        });
    }
    let root = repo
        .read_tree(tree)
        .map_err(|e| object_error(id, "/", tree, e))?;
    let [only] = root.as_slice() else {
        return Err(bad_tree(
            "/",
            format!("expected one chunk, found {} entries", root.len()),
        ));
    };
    let path = only.name.clone();
    let cid = only
        .name
        .strip_suffix(".bin")
        .and_then(|hex| hex.parse::<ChunkId>().ok())
        .filter(|cid| only.kind == EntryKind::Blob && format!("{cid}.bin") == only.name)
        .ok_or_else(|| bad_tree(&path, "expected a blob named <chunk-id>.bin".into()))?;
    meta.chunk = Some(cid.to_string());
    check_actor(id, &meta)?;
    let (events, chunk_bytes) = read_chunk(repo, id, &path, only.id, &cid, &meta)?;
    Ok(WalCommit {
        id,
        parents: parents.to_vec(),
        meta,
        events,
        chunk_bytes,
    })
}

/// Reads the chunk blob `blob` at `path` of commit `id` (its size checked
/// from the object header before it is inflated), decodes and verifies it
/// against `cid`, and checks it against the record: the event count and
/// that every event is by the record's actor. Returns the events and the
/// chunk's size.
fn read_chunk(
    repo: &GitRepo,
    id: ObjectId,
    path: &str,
    blob: ObjectId,
    cid: &ChunkId,
    meta: &Meta,
) -> Result<(Vec<Envelope>, u64)> {
    let (_, size) = repo
        .object_header(blob)
        .map_err(|e| object_error(id, path, blob, e))?;
    if size > larder_codec::MAX_CHUNK_LEN as u64 {
        return Err(WalError::Chunk {
            commit: id,
            path: path.into(),
            source: Box::new(larder_codec::CodecError::ChunkTooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit: larder_codec::MAX_CHUNK_LEN,
            }),
        });
    }
    let bytes = repo
        .read_blob(blob)
        .map_err(|e| object_error(id, path, blob, e))?;
    let events = decode_chunk_verified(&bytes, cid).map_err(|source| WalError::Chunk {
        commit: id,
        path: path.into(),
        source: Box::new(source),
    })?;
    if meta.events != Some(events.len() as u64) {
        return Err(WalError::BadMeta {
            commit: id,
            reason: format!(
                "the record counts {:?} events, the chunk holds {}",
                meta.events,
                events.len()
            ),
        });
    }
    if let Some(e) = events.iter().find(|e| e.actor().as_str() != meta.actor) {
        return Err(WalError::BadMeta {
            commit: id,
            reason: format!(
                "chunk holds an event by {}, the record names {}",
                e.actor(),
                meta.actor
            ),
        });
    }
    Ok((events, bytes.len() as u64))
}

/// Reads a format-1 commit: its tree, `meta.json` and the chunk at
/// `events/YYYY/MM/DD/<chunk-id>.bin`.
fn load_v1(
    repo: &GitRepo,
    id: ObjectId,
    tree: ObjectId,
    parents: &[ObjectId],
) -> Result<WalCommit> {
    let bad_tree = |path: &str, reason: String| bad_tree(id, path, reason);
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
    // Sizes come from object headers before anything is inflated: a
    // hostile head cannot make a reader allocate gigabytes.
    let (_, meta_size) = repo
        .object_header(meta_blob)
        .map_err(|e| object_error(id, "meta.json", meta_blob, e))?;
    if meta_size > crate::meta::MAX_META_LEN {
        return Err(WalError::BadMeta {
            commit: id,
            reason: format!(
                "meta.json is {meta_size} bytes; at most {} are read",
                crate::meta::MAX_META_LEN
            ),
        });
    }
    let meta_bytes = repo
        .read_blob(meta_blob)
        .map_err(|e| object_error(id, "meta.json", meta_blob, e))?;
    let meta = Meta::parse(id, &meta_bytes)?;
    meta.check_parents(id, parents)?;
    check_actor(id, &meta)?;
    let (Some(chunk_hex), Some(events_tree)) = (&meta.chunk, events_tree) else {
        if events_tree.is_some() {
            return Err(bad_tree(
                "/events",
                "a merge commit carries no events".into(),
            ));
        }
        if meta.chunk.is_some() {
            // An append whose chunk is gone would read as an empty commit
            // and silently lose its events.
            return Err(bad_tree(
                "/",
                "an append commit has no events/ tree for the chunk meta.json names".into(),
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
    let (events, chunk_bytes) = read_chunk(repo, id, &path, only.id, &cid, &meta)?;
    let first = events.first().map_or(0, |e| e.timestamp().millis);
    let (y, m, d) = date_of(first);
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
        chunk_bytes,
    })
}
