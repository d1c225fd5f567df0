//! Deciding what a receiving repository lacks once per transfer, not once
//! per object.
//!
//! gix's object store answers a miss by listing `objects/pack` again (a new
//! pack may have appeared), and every object a transfer brings is a miss:
//! asking about each one cost ~17 µs with one pack and ~1.1 ms with 200
//! (issue #17; a real 8-replica run's p95 sync took 167 ms). A
//! [`Haves`] instead asks the receiver's store in a mode that never
//! rescans, brought up to date at most once (one listing, at its first
//! miss), and mostly about commits: the walk from the tips
//! stops at the first commit the receiver holds, as git's negotiation stops
//! at a common commit, and the trees and blobs of the new commits are told
//! apart from what the receiver holds by comparing each new tree with its
//! parents' trees (a diff), not by a lookup each.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use gix::ObjectId;
use gix::bstr::BString;
use gix::objs::Kind;

use crate::repo::open_sized;
use crate::{GitError, GitRepo, Result};

/// One entry of a tree, as a transfer compares it.
#[derive(Clone, Debug)]
struct Item {
    name: BString,
    mode: gix::objs::tree::EntryMode,
    id: ObjectId,
}

/// A tree's entries, parsed once and shared.
type Entries = Arc<[Item]>;

/// What a repository receiving objects is known to hold, for a series of
/// copies into it ([`Haves::copy_from`]) — one pull of many heads, one push
/// and its retries.
///
/// **What is known.** A snapshot of the receiver's object store: the
/// receiver handle's own store (its pack indexes loaded already), brought
/// up to date with the disk at the first question it cannot answer — one
/// listing of `objects/pack` — and never rescanned afterwards, so a
/// question costs index lookups, not a listing of the pack directory; a
/// copy that finds everything held lists the pack directory once, for
/// cruft packs (`.mtimes` files). Plus everything this
/// value has itself written, which the snapshot does not see.
///
/// **What is assumed.** An object the receiver holds comes with everything
/// it reaches: a commit with its trees, blobs and whole history, a tree with
/// what it names. larder writes every transfer and every append as one
/// pack, index renamed last, so its objects appear together or not at all;
/// git keeps every object reachable from a ref complete. So the walk from
/// the tips stops at the first commit the receiver holds, and below a new
/// commit the objects named by its parents' trees (held, or written by the
/// same copy) are not sent again.
///
/// **Never too little.** Nothing is skipped unless the snapshot holds it,
/// this value wrote it, or it hangs under a tree that is one of those. A
/// stale snapshot (a pack another process wrote after the listing) only
/// ever answers "absent" for an object that is present, and the object is
/// then written again: harmless, git reads either copy. That happens too for an object a
/// new commit takes from further back than its parents (a reverted file):
/// rare, and never a missing object.
pub struct Haves {
    receiver: GitRepo,
    /// A handle on the receiver's object store that never rescans; set up
    /// on first use.
    snapshot: Option<gix::Repository>,
    /// Whether the snapshot has been brought up to date with the disk
    /// since this value was made (done on the first miss).
    refreshed: bool,
    /// Every object written by this value: each is present with all it
    /// reaches.
    written: HashSet<ObjectId>,
    /// The root tree of each commit written by this value.
    commit_trees: HashMap<ObjectId, ObjectId>,
    /// The entries of each tree written by this value, so a later copy's
    /// commits can be compared with them.
    trees: HashMap<ObjectId, Entries>,
    /// The objects the receiver holds only in cruft packs (read once, at
    /// the first question): they count as absent, see [`Haves::holds`].
    cruft: Option<HashSet<ObjectId>>,
}

impl std::fmt::Debug for Haves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Haves")
            .field("receiver", &self.receiver.git_dir())
            .field("snapshot", &self.snapshot.is_some())
            .field("written", &self.written.len())
            .finish()
    }
}

/// One copy in the making: the objects to write, in one pack.
struct Plan<'s> {
    source: &'s GitRepo,
    batch: Vec<(ObjectId, Kind, Vec<u8>)>,
    /// Every object in `batch`.
    emitted: HashSet<ObjectId>,
    /// The new commits, parents before children: (commit, root tree,
    /// parents).
    commits: Vec<(ObjectId, ObjectId, Vec<ObjectId>)>,
    /// The root tree of each new commit.
    commit_trees: HashMap<ObjectId, ObjectId>,
    /// The entries of each tree in `batch`.
    trees: HashMap<ObjectId, Entries>,
    /// The entries of trees read from the receiver to compare with.
    bases: HashMap<ObjectId, Option<Entries>>,
}

impl<'s> Plan<'s> {
    fn new(source: &'s GitRepo) -> Self {
        Self {
            source,
            batch: Vec::new(),
            emitted: HashSet::new(),
            commits: Vec::new(),
            commit_trees: HashMap::new(),
            trees: HashMap::new(),
            bases: HashMap::new(),
        }
    }

    fn emit(&mut self, id: ObjectId, kind: Kind, data: Vec<u8>) {
        if self.emitted.insert(id) {
            self.batch.push((id, kind, data));
        }
    }

    /// Reads `id` from the source, which must be of kind `expected` (it is
    /// named by a tree entry of that kind).
    fn read(&self, id: ObjectId, expected: Kind) -> Result<gix::ObjectDetached> {
        let object = self.source.find_any(id)?;
        if object.kind != expected {
            return Err(GitError::WrongObjectKind {
                id,
                expected: kind_name(expected),
                actual: object.kind.to_string(),
            });
        }
        Ok(object)
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Blob => "blob",
        Kind::Tree => "tree",
        Kind::Commit => "commit",
        Kind::Tag => "tag",
    }
}

fn corrupt<E: std::fmt::Display>(id: ObjectId) -> impl Fn(E) -> GitError {
    move |e| GitError::CorruptObject {
        id,
        reason: e.to_string(),
    }
}

fn parse_tree(id: ObjectId, data: &[u8]) -> Result<Entries> {
    let tree = gix::objs::TreeRef::from_bytes(data, gix::hash::Kind::Sha1).map_err(corrupt(id))?;
    Ok(tree
        .entries
        .iter()
        .map(|e| Item {
            name: e.filename.to_owned(),
            mode: e.mode,
            id: e.oid.to_owned(),
        })
        .collect())
}

impl GitRepo {
    /// What this repository holds, for copies into it: see [`Haves`]. Costs
    /// nothing until the first copy, which takes one snapshot of the object
    /// store (one listing of `objects/pack`); reuse the value for every
    /// copy of one pull or push.
    pub fn haves(&self) -> Haves {
        Haves {
            receiver: self.clone(),
            snapshot: None,
            refreshed: false,
            written: HashSet::new(),
            commit_trees: HashMap::new(),
            trees: HashMap::new(),
            cruft: None,
        }
    }
}

impl Haves {
    /// Copies into the receiver every object reachable from `tips` in
    /// `source` that the receiver lacks, and returns how many objects were
    /// written. The guarantees of [`GitRepo::copy_reachable_from`] hold:
    /// one pack (index renamed last, flushed to disk), every object hashed
    /// as it is written, a corrupt object
    /// ([`GitError::CorruptObject`]) or one of the wrong kind
    /// ([`GitError::WrongObjectKind`]) writes nothing. After an error this
    /// value can go on with other tips.
    pub fn copy_from(&mut self, source: &GitRepo, tips: &[ObjectId]) -> Result<usize> {
        self.open_snapshot();
        let mut plan = Plan::new(source);
        let roots = self.plan_commits(&mut plan, tips)?;
        for root in roots {
            self.plan_tree(&mut plan, root, Vec::new())?;
        }
        let commits = std::mem::take(&mut plan.commits);
        for (_, tree, parents) in &commits {
            let bases = parents
                .iter()
                .filter_map(|p| self.tree_of(&plan, *p))
                .collect();
            self.plan_tree(&mut plan, *tree, bases)?;
        }
        let copied = plan.batch.len();
        self.receiver.write_pack(&plan.batch)?;
        self.written.extend(plan.emitted);
        self.commit_trees.extend(plan.commit_trees);
        self.trees.extend(plan.trees);
        Ok(copied)
    }

    /// Sets up the snapshot: a handle on the receiver's own object store
    /// (shared with its clones, so the pack indexes a long-lived handle
    /// has loaded are not loaded again) that never rescans. It is brought
    /// up to date with the disk only when it first misses
    /// ([`Haves::refresh`]): a transfer with nothing new lists nothing.
    fn open_snapshot(&mut self) {
        if self.snapshot.is_some() {
            return;
        }
        let mut repo = self.receiver.repo.clone();
        // A store that has not looked at the disk yet will list the pack
        // directory on its first lookup: it is up to date then.
        self.refreshed = repo.objects.store_ref().metrics().num_refreshes == 0;
        repo.objects.refresh_never();
        self.snapshot = Some(repo);
    }

    /// Brings the snapshot up to date with the disk, once: a lookup that
    /// misses through the receiver's own handle, in gix's default refresh
    /// mode, lists `objects/pack` and loads what is new into the store the
    /// snapshot shares. If that lookup fails rather than misses (the store
    /// has too few slots for the packs on disk now) or gix panics in the
    /// shared store, the snapshot becomes a store of its own, opened now.
    fn refresh(&mut self) -> Result<()> {
        self.refreshed = true;
        let probe = ObjectId::null(gix::hash::Kind::Sha1);
        let current = matches!(
            crate::objects::shared_store(|| self.receiver.repo.try_find_header(probe)),
            Some(Ok(None))
        );
        if !current {
            let dir = self.receiver.git_dir();
            let mut repo = open_sized(dir).map_err(|e| GitError::Open {
                path: dir.display().to_string(),
                source: Box::new(e),
            })?;
            repo.objects.refresh_never();
            self.snapshot = Some(repo);
        }
        Ok(())
    }

    /// Whether the snapshot holds `id` (a panic in gix's shared store is
    /// "no": the object is then sent again).
    fn snapshot_has(&self, id: ObjectId) -> bool {
        self.snapshot.as_ref().is_some_and(|s| {
            crate::objects::shared_store(|| s.objects.exists_without_refresh(&id)).unwrap_or(false)
        })
    }

    /// Whether the receiver holds `id` with everything it reaches: written
    /// by this value, or in the snapshot. The first miss brings the
    /// snapshot up to date and asks again; later misses list nothing.
    ///
    /// git's empty tree is never "held": gix answers "present" for it even
    /// when no copy is stored, but `git fsck` wants one, so it is sent
    /// (a few bytes; WAL merges and lock states use it).
    ///
    /// An object in a cruft pack (unreachable, kept by compaction for its
    /// grace period and dropped by a later compaction) is not "held" either:
    /// it is copied again, so the ref the caller moves next never depends
    /// on a copy that may be about to go. (A cruft object may also sit in
    /// an ordinary pack; copying it once more is harmless.)
    fn holds(&mut self, id: ObjectId) -> Result<bool> {
        if self.written.contains(&id) {
            return Ok(true);
        }
        if self.never_held(id) {
            return Ok(false);
        }
        if self.snapshot_has(id) {
            return Ok(true);
        }
        if self.refreshed {
            return Ok(false);
        }
        self.refresh()?;
        Ok(self.snapshot_has(id))
    }

    /// Whether `id` is sent even where the receiver seems to hold it: git's
    /// empty tree, and objects in a cruft pack (see [`Haves::holds`]). The
    /// cruft packs are listed once per `Haves`, at the first question.
    fn never_held(&mut self, id: ObjectId) -> bool {
        let receiver = &self.receiver;
        id.is_empty_tree()
            || self
                .cruft
                .get_or_insert_with(|| receiver.cruft_object_ids())
                .contains(&id)
    }

    /// An object of the receiver from the snapshot, if it is there and of
    /// kind `kind`.
    fn receiver_object(&self, id: ObjectId, kind: Kind) -> Option<gix::ObjectDetached> {
        let snapshot = self.snapshot.as_ref()?;
        match crate::objects::shared_store(|| snapshot.try_find_object(id)) {
            Some(Ok(Some(o))) if o.kind == kind => Some(o.detach()),
            _ => None,
        }
    }

    /// Walks commits from `tips` in the source down to those the receiver
    /// holds, adding each new commit to the plan parents first (and tags,
    /// and blobs given as tips). Returns trees given as tips (or tagged),
    /// whose contents are planned afterwards.
    fn plan_commits(&mut self, plan: &mut Plan<'_>, tips: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut roots = Vec::new();
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut read: HashMap<ObjectId, (ObjectId, Vec<ObjectId>, Vec<u8>)> = HashMap::new();
        // Depth-first; a commit is added once all its parents are
        // (children-expanded?).
        // (id, expanded, named as a commit's parent: must be a commit)
        let mut stack: Vec<(ObjectId, bool, bool)> =
            tips.iter().rev().map(|t| (*t, false, false)).collect();
        while let Some((id, expanded, parent)) = stack.pop() {
            if expanded {
                if let Some((tree, parents, data)) = read.remove(&id) {
                    plan.emit(id, Kind::Commit, data);
                    plan.commit_trees.insert(id, tree);
                    plan.commits.push((id, tree, parents));
                }
                continue;
            }
            if !seen.insert(id) || self.holds(id)? {
                continue;
            }
            let object = plan.source.find_any(id)?;
            if parent && object.kind != Kind::Commit {
                return Err(GitError::WrongObjectKind {
                    id,
                    expected: "commit (a commit's parent)",
                    actual: object.kind.to_string(),
                });
            }
            match object.kind {
                Kind::Commit => {
                    let (tree, parents) = {
                        let commit =
                            gix::objs::CommitRef::from_bytes(&object.data, gix::hash::Kind::Sha1)
                                .map_err(corrupt(id))?;
                        (commit.tree(), commit.parents().collect::<Vec<ObjectId>>())
                    };
                    stack.push((id, true, false));
                    for parent in parents.iter().rev() {
                        if !seen.contains(parent) {
                            stack.push((*parent, false, true));
                        }
                    }
                    read.insert(id, (tree, parents, object.data));
                }
                Kind::Tag => {
                    let target = gix::objs::TagRef::from_bytes(&object.data, gix::hash::Kind::Sha1)
                        .map_err(corrupt(id))?
                        .target();
                    plan.emit(id, Kind::Tag, object.data);
                    stack.push((target, false, false));
                }
                Kind::Tree => roots.push(id),
                Kind::Blob => plan.emit(id, Kind::Blob, object.data),
            }
        }
        Ok(roots)
    }

    /// The root tree of commit `id`: a new one of this plan, one this
    /// value wrote, or one the receiver holds. `None` when none of those
    /// knows it (nothing is then compared with it; more is sent).
    fn tree_of(&self, plan: &Plan<'_>, id: ObjectId) -> Option<ObjectId> {
        if let Some(tree) = plan.commit_trees.get(&id).or(self.commit_trees.get(&id)) {
            return Some(*tree);
        }
        let object = self.receiver_object(id, Kind::Commit)?;
        gix::objs::CommitRef::from_bytes(&object.data, gix::hash::Kind::Sha1)
            .ok()
            .map(|c| c.tree())
    }

    /// The entries of tree `id`, which the receiver will hold with all it
    /// names once the plan is written: a tree of the plan (its bytes are
    /// hashed before anything is written), one this value wrote, or one
    /// read from the receiver's snapshot. Never from the source alone: a
    /// source tree whose bytes do not match its id could name objects the
    /// receiver lacks.
    fn entries_of(&self, plan: &mut Plan<'_>, id: ObjectId) -> Option<Entries> {
        if let Some(entries) = plan.trees.get(&id).or(self.trees.get(&id)) {
            return Some(entries.clone());
        }
        if let Some(known) = plan.bases.get(&id) {
            return known.clone();
        }
        let entries = self
            .receiver_object(id, Kind::Tree)
            .and_then(|o| parse_tree(id, &o.data).ok());
        plan.bases.insert(id, entries.clone());
        entries
    }

    /// Adds tree `root` and what it names to the plan, except what the
    /// receiver holds or the plan has: entries equal to an entry of the
    /// trees in `bases` (the same path in the commit's parents), objects
    /// written before, objects already planned. Submodule links are not
    /// followed (their commits live in another repository).
    ///
    /// The snapshot is asked only about objects at a path none of the
    /// bases has (a new directory or file, a moved one, a root commit's
    /// tree): there is nothing to compare them with, and content moved or
    /// copied from elsewhere is found there. An object that changed at a
    /// path the bases have is new but for a revert, so it is not asked
    /// about — a lookup that misses scans every pack index of the snapshot.
    fn plan_tree(
        &mut self,
        plan: &mut Plan<'_>,
        root: ObjectId,
        bases: Vec<ObjectId>,
    ) -> Result<()> {
        let mut stack = vec![(root, bases)];
        while let Some((id, bases)) = stack.pop() {
            if plan.emitted.contains(&id) || self.written.contains(&id) {
                continue;
            }
            // The same tree at this path in a parent: held, if the
            // receiver's copy of it reads as a tree (a damaged receiver
            // gets it again) and it is not one of those always sent.
            if bases.contains(&id) && !self.never_held(id) && self.entries_of(plan, id).is_some() {
                continue;
            }
            if bases.is_empty() && self.holds(id)? {
                continue;
            }
            let object = plan.read(id, Kind::Tree)?;
            let entries = parse_tree(id, &object.data)?;
            let base_entries: Vec<Entries> = bases
                .iter()
                .filter_map(|b| self.entries_of(plan, *b))
                .collect();
            // What the parents' trees name, by id and by whether it is a
            // tree: an entry is held only as what a parent holds it as (a
            // forged tree naming a parent's submodule commit, or a blob
            // id as a tree, is sent or fails, never skipped).
            let known: HashSet<(ObjectId, bool)> = base_entries
                .iter()
                .flat_map(|e| e.iter())
                .filter(|i| !i.mode.is_commit())
                .map(|i| (i.id, i.mode.is_tree()))
                .collect();
            for item in entries.iter() {
                if item.mode.is_commit()
                    || plan.emitted.contains(&item.id)
                    || self.written.contains(&item.id)
                {
                    continue;
                }
                if known.contains(&(item.id, item.mode.is_tree())) && !self.never_held(item.id) {
                    continue;
                }
                if item.mode.is_tree() {
                    let below = base_entries
                        .iter()
                        .flat_map(|e| e.iter())
                        .filter(|b| b.mode.is_tree() && b.name == item.name)
                        .map(|b| b.id)
                        .collect();
                    stack.push((item.id, below));
                } else {
                    let new_path = !base_entries
                        .iter()
                        .any(|e| e.iter().any(|b| b.name == item.name));
                    if new_path && self.holds(item.id)? {
                        continue;
                    }
                    let blob = plan.read(item.id, Kind::Blob)?;
                    plan.emit(item.id, Kind::Blob, blob.data);
                }
            }
            plan.emit(id, Kind::Tree, object.data);
            plan.trees.insert(id, entries);
        }
        Ok(())
    }
}
