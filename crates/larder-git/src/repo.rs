//! [`GitRepo`]: a repository handle with exactly the operations larder needs.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::refs::Target;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};

use crate::{GitError, Result};

/// The identity written on commits when the caller gives none, so that an
/// unconfigured machine (no `user.name`, no `user.email`) works.
pub const DEFAULT_IDENTITY: (&str, &str) = ("larder", "larder@localhost");

/// Author and committer of the commits larder writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The name, e.g. `larder`.
    pub name: String,
    /// The email, e.g. `larder@localhost`.
    pub email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            name: DEFAULT_IDENTITY.0.into(),
            email: DEFAULT_IDENTITY.1.into(),
        }
    }
}

/// What a reference must hold for a compare-and-swap to go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The reference must not exist yet.
    MustNotExist,
    /// The reference must point at exactly this object.
    MustBe(ObjectId),
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::MustNotExist => f.write_str("nothing"),
            Expected::MustBe(id) => write!(f, "{id}"),
        }
    }
}

/// The kind of a tree entry larder writes or reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A file.
    Blob,
    /// A directory.
    Tree,
    /// Anything else (executable, symlink, submodule): never written by larder.
    Other,
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// The entry's name (one path component).
    pub name: String,
    /// Blob or tree.
    pub kind: EntryKind,
    /// The object it points at.
    pub id: ObjectId,
}

/// The parts of a commit larder reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit's own id.
    pub id: ObjectId,
    /// Its root tree.
    pub tree: ObjectId,
    /// Its parents, in order.
    pub parents: Vec<ObjectId>,
    /// Committer time, seconds since the Unix epoch.
    pub time: i64,
    /// The full message.
    pub message: String,
}

/// A git repository opened for larder, isolated from global and system
/// configuration so results do not depend on the machine.
///
/// Cloning is cheap (the object store is shared); the handle is `Send`, so
/// give each thread its own clone.
#[derive(Clone)]
pub struct GitRepo {
    repo: gix::Repository,
    /// Where relative remote paths resolve from, as git resolves them: the
    /// top of the work tree when the repository was found from inside it,
    /// else the directory it was opened or discovered from.
    base: PathBuf,
}

impl std::fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepo")
            .field("git_dir", &self.repo.git_dir())
            .finish()
    }
}

/// The most index files (packs and multi-pack indexes) one gix object store
/// can address: gix's own limit, `2^15 - 1`.
pub const MAX_PACK_INDEXES: usize = (1 << 15) - 1;

/// How many pack-index slots a handle's object store gets: twice the index
/// files on disk when it is opened, and at least 1,024, so a long-lived
/// handle keeps seeing the packs that appends and transfers add. A store
/// that runs out anyway (packs piled up while it was open) is not trusted
/// with a miss or an error: lookups are retried on a store sized afresh
/// from the directory (see [`GitRepo::find_any`]).
fn handle_slots() -> gix::odb::store::init::Slots {
    gix::odb::store::init::Slots::AsNeededByDiskState {
        multiplier: 2.0,
        minimum: 1024,
    }
}

/// `path` made absolute against the current directory, without touching
/// the file system (no symlinks resolved); `path` itself if that fails.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn open_options(slots: gix::odb::store::init::Slots) -> gix::open::Options {
    gix::open::Options::isolated().object_store_slots(slots)
}

/// Opens `path` with slots sized from its pack directory; if that count is
/// beyond what gix can address, with gix's maximum, so that refs and pack
/// maintenance still work (object reads then report
/// [`GitError::TooManyPacks`]).
fn open_sized(path: &Path) -> std::result::Result<gix::Repository, gix::Error> {
    match gix::open_opts(path, open_options(handle_slots())) {
        Ok(repo) => Ok(repo),
        Err(first) => {
            let most = u16::try_from(MAX_PACK_INDEXES).unwrap_or(u16::MAX);
            gix::open_opts(
                path,
                open_options(gix::odb::store::init::Slots::Given(most)),
            )
            .map_err(|_| first)
        }
    }
}

impl GitRepo {
    /// Opens an existing repository (bare or with a work tree) at exactly
    /// `path`, which may be the work tree or the git dir. No search upward
    /// (see [`GitRepo::discover`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let repo = open_sized(path).map_err(|e| GitError::Open {
            path: path.display().to_string(),
            source: Box::new(e),
        })?;
        let base = match repo.workdir() {
            Some(w) => absolute(w),
            None => absolute(path),
        };
        Ok(Self { repo, base })
    }

    /// Finds the repository `dir` belongs to, as git does from `dir`:
    /// `dir` itself, then each parent, is tried as a work tree (with a
    /// `.git` directory or file) or a git dir (a bare repository). The
    /// environment is not read (see [`GitRepo::discover_with_env`]).
    /// Relative remote paths then resolve from the top of the work tree
    /// when `dir` is inside it, else from `dir`.
    pub fn discover(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = absolute(dir.as_ref());
        let (found, _trust) =
            gix::discover::upwards(&dir).map_err(|e| GitError::NotARepository {
                path: dir.display().to_string(),
                reason: if !dir.is_dir() {
                    "no such directory".into()
                } else if e.is_not_found() {
                    "not a git repository (nor any parent)".into()
                } else {
                    e.to_string()
                },
            })?;
        let (git_dir, work_dir) = found.into_repository_and_work_tree_directories();
        let mut repo = Self::open(work_dir.as_deref().unwrap_or(&git_dir))?;
        repo.base = match repo.repo.workdir() {
            Some(w) if dir.starts_with(absolute(w)) => absolute(w),
            _ => dir,
        };
        Ok(repo)
    }

    /// [`GitRepo::discover`] as the `git` command does it, reading the
    /// environment: `GIT_DIR` (relative to `dir`) names the git dir and
    /// stops the search; `GIT_WORK_TREE` (relative to `dir`) names its
    /// work tree. Without `GIT_DIR`, the search upward from `dir`.
    pub fn discover_with_env(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = absolute(dir.as_ref());
        let Some(git_dir) = std::env::var_os("GIT_DIR").filter(|v| !v.is_empty()) else {
            return Self::discover(&dir);
        };
        let git_dir = dir.join(git_dir);
        let work_tree = std::env::var_os("GIT_WORK_TREE")
            .filter(|v| !v.is_empty())
            .map(|w| dir.join(w));
        let mut options = open_options(handle_slots());
        if let Some(w) = &work_tree {
            options = options.config_overrides([format!("core.worktree={}", w.display())]);
        }
        let repo = gix::open_opts(&git_dir, options).map_err(|e| GitError::NotARepository {
            path: git_dir.display().to_string(),
            reason: format!("GIT_DIR names no repository: {e}"),
        })?;
        let base = match repo.workdir() {
            Some(w) if dir.starts_with(absolute(w)) => absolute(w),
            _ => dir,
        };
        Ok(Self { repo, base })
    }

    /// Creates a repository with a work tree at exactly `path` (or opens the
    /// one that is already there). A repository may be created inside
    /// another's work tree this way; for git-like "use the repository this
    /// directory belongs to" see [`GitRepo::discover_or_init`].
    pub fn init(path: impl AsRef<Path>) -> Result<Self> {
        Self::create(path.as_ref(), false)
    }

    /// Sets up `path` for larder: the repository `path` already belongs to,
    /// found as [`GitRepo::discover`] finds it — so in a subdirectory of a
    /// work tree (or inside a bare repository) it is that repository, never
    /// a nested one — or, when `path` belongs to none, a new repository
    /// with a work tree at `path`.
    pub fn discover_or_init(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        match Self::discover(path) {
            Ok(existing) => Ok(existing),
            Err(_) => Self::create(path, false),
        }
    }

    /// Creates a bare repository at exactly `path` (or opens the one
    /// already there). A bare repository inside a work tree is allowed:
    /// the caller asked for one at `path`.
    pub fn init_bare(path: impl AsRef<Path>) -> Result<Self> {
        Self::create(path.as_ref(), true)
    }

    fn create(path: &Path, bare: bool) -> Result<Self> {
        if let Ok(existing) = Self::open(path) {
            return Ok(existing);
        }
        let init_error = |e: Box<dyn std::error::Error + Send + Sync>| GitError::Init {
            path: path.display().to_string(),
            source: e,
        };
        if bare {
            gix::init_bare(path).map_err(|e| init_error(Box::new(e)))?;
        } else {
            gix::init(path).map_err(|e| init_error(Box::new(e)))?;
        }
        Self::open(path)
    }

    /// Where relative remote paths resolve from (git's rule): the top of
    /// the work tree when the repository was found from inside it, else the
    /// directory it was opened or discovered from.
    pub fn base_dir(&self) -> &Path {
        &self.base
    }

    /// The underlying gix repository, for what this wrapper does not cover.
    pub fn gix(&self) -> &gix::Repository {
        &self.repo
    }

    /// The `.git` directory (the repository itself when bare).
    pub fn git_dir(&self) -> &Path {
        self.repo.git_dir()
    }

    /// Whether the repository has no work tree.
    pub fn is_bare(&self) -> bool {
        self.repo.is_bare()
    }

    // ---- objects -------------------------------------------------------

    /// Stores `data` as a blob (a no-op if it already exists).
    pub fn write_blob(&self, data: &[u8]) -> Result<ObjectId> {
        self.repo
            .write_blob(data)
            .map(|id| id.detach())
            .map_err(|e| GitError::gix("writing a blob", e))
    }

    /// Stores a tree made of `entries` (sorted here into git's order).
    pub fn write_tree(&self, entries: &[TreeEntry]) -> Result<ObjectId> {
        self.repo
            .write_object(tree_object(entries)?)
            .map(|id| id.detach())
            .map_err(|e| GitError::gix("writing a tree", e))
    }

    /// Stores a commit of `tree` with `parents`, signed by `identity` (or
    /// [`Identity::default`]) at `time` (seconds since the Unix epoch).
    /// HEAD, the index and the work tree are never touched.
    pub fn write_commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        message: &str,
        identity: Option<&Identity>,
        time: i64,
    ) -> Result<ObjectId> {
        self.repo
            .write_object(commit_object(tree, parents, message, identity, time))
            .map(|id| id.detach())
            .map_err(|e| GitError::gix("writing a commit", e))
    }

    /// Whether the object exists. A lookup that fails (rather than
    /// misses) — the handle's store ran out of pack slots — is answered by a
    /// store opened afresh. A plain miss is not confirmed (transfers ask
    /// about many absent objects): "no" can be stale for an object another
    /// handle packed a moment ago. Where a false "no" matters, read the
    /// object ([`GitRepo::read_commit`] and friends confirm misses).
    pub fn has_object(&self, id: ObjectId) -> bool {
        match self.repo.try_find_header(id) {
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(_) => self
                .fresh_store()
                .is_ok_and(|fresh| matches!(fresh.try_find_header(id), Ok(Some(_)))),
        }
    }

    /// A new object store on this repository, with slots for every index
    /// file now on disk. Lookups fall back to it when the handle's own
    /// store misses or fails: handles that share one store can race while
    /// it rescans `objects/pack` (one thread adopts another's rescan, listed
    /// before the pack it needs appeared), and a long-lived store may have
    /// fewer slots than packs have piled up since it was opened.
    pub(crate) fn fresh_store(&self) -> Result<gix::Repository> {
        open_sized(self.git_dir()).map_err(|e| GitError::Open {
            path: self.git_dir().display().to_string(),
            source: Box::new(e),
        })
    }

    /// Any object, or a typed error: missing, unreadable (corrupt), or out
    /// of gix's reach ([`GitError::TooManyPacks`]).
    ///
    /// A miss or a failure of the handle's store is confirmed with a
    /// freshly opened one ([`GitRepo::fresh_store`]) before it is reported,
    /// so neither a rescan race nor a store with too few pack slots is ever
    /// reported as a missing or corrupt object.
    pub(crate) fn find_any(&self, id: ObjectId) -> Result<gix::ObjectDetached> {
        if let Ok(Some(object)) = self.repo.try_find_object(id) {
            return Ok(object.detach());
        }
        let fresh = self.fresh_store()?;
        match fresh.try_find_object(id) {
            Ok(Some(object)) => Ok(object.detach()),
            Ok(None) => Err(self
                .unreadable_index()
                .unwrap_or(GitError::ObjectMissing { id })),
            Err(e) => Err(self.lookup_error(id, e)),
        }
    }

    /// A pack whose index cannot be read, if there is one: gix skips such
    /// an index, so its objects look missing. Naming the damaged pack is
    /// more use than "missing" (the object may well be in it). Only run on
    /// a confirmed miss.
    fn unreadable_index(&self) -> Option<GitError> {
        let (packs, _) = self.list_packs().ok()?;
        packs.iter().find_map(|pack| {
            let idx = pack.with("idx");
            match gix_pack::index::File::at(&idx, gix::hash::Kind::Sha1) {
                Ok(_) => None,
                // Merged away since the listing.
                Err(_) if !idx.exists() => None,
                Err(e) => Some(GitError::DamagedPack(crate::DamagedPack {
                    pack: pack.with("pack"),
                    object: None,
                    reason: format!("its index {} cannot be read: {e}", idx.display()),
                })),
            }
        })
    }

    /// Classifies a lookup that failed even on a fresh store: more index
    /// files than gix can address is [`GitError::TooManyPacks`]; anything
    /// else is about the object's own bytes (a damaged entry or loose file),
    /// [`GitError::CorruptObject`].
    fn lookup_error(&self, id: ObjectId, e: gix::Error) -> GitError {
        let indexes = self.list_packs().map_or(0, |(packs, _)| packs.len());
        if indexes > MAX_PACK_INDEXES {
            return GitError::TooManyPacks {
                path: self.objects_dir().join("pack").display().to_string(),
                count: indexes,
                max: MAX_PACK_INDEXES,
            };
        }
        GitError::CorruptObject {
            id,
            reason: e.to_string(),
        }
    }

    fn find(&self, id: ObjectId, expected: gix::objs::Kind) -> Result<gix::ObjectDetached> {
        let object = self.find_any(id)?;
        if object.kind != expected {
            return Err(GitError::WrongObjectKind {
                id,
                expected: expected.as_bytes().to_str_lossy().into_owned().leak(),
                actual: object.kind.to_string(),
            });
        }
        Ok(object)
    }

    /// Reads a blob's bytes into `buf` (cleared first), so loops can reuse
    /// one buffer.
    pub fn read_blob_into(&self, id: ObjectId, buf: &mut Vec<u8>) -> Result<()> {
        let object = self.find(id, gix::objs::Kind::Blob)?;
        buf.clear();
        buf.extend_from_slice(&object.data);
        Ok(())
    }

    /// An object's kind and size from its header, without inflating it —
    /// so a reader can refuse a hostile multi-gigabyte blob before
    /// allocating for it. Misses are confirmed as in [`GitRepo::read_blob`].
    pub fn object_header(&self, id: ObjectId) -> Result<(gix::objs::Kind, u64)> {
        if let Ok(Some(h)) = self.repo.try_find_header(id) {
            return Ok((h.kind(), h.size()));
        }
        match self.fresh_store()?.try_find_header(id) {
            Ok(Some(h)) => Ok((h.kind(), h.size())),
            Ok(None) => Err(self
                .unreadable_index()
                .unwrap_or(GitError::ObjectMissing { id })),
            Err(e) => Err(self.lookup_error(id, e)),
        }
    }

    /// Reads a blob's bytes (handed over from gix's buffer, not copied).
    pub fn read_blob(&self, id: ObjectId) -> Result<Vec<u8>> {
        Ok(self.find(id, gix::objs::Kind::Blob)?.data)
    }

    /// Reads a tree's entries, in git's order.
    pub fn read_tree(&self, id: ObjectId) -> Result<Vec<TreeEntry>> {
        let object = self.find(id, gix::objs::Kind::Tree)?;
        let tree =
            gix::objs::TreeRef::from_bytes(&object.data, gix::hash::Kind::Sha1).map_err(|e| {
                GitError::CorruptObject {
                    id,
                    reason: e.to_string(),
                }
            })?;
        Ok(tree
            .entries
            .iter()
            .map(|e| TreeEntry {
                name: e.filename.to_str_lossy().into_owned(),
                kind: if e.mode.is_blob() {
                    EntryKind::Blob
                } else if e.mode.is_tree() {
                    EntryKind::Tree
                } else {
                    EntryKind::Other
                },
                id: e.oid.to_owned(),
            })
            .collect())
    }

    /// Reads a commit's tree, parents, time and message.
    pub fn read_commit(&self, id: ObjectId) -> Result<CommitInfo> {
        let object = self.find(id, gix::objs::Kind::Commit)?;
        let commit = gix::objs::CommitRef::from_bytes(&object.data, gix::hash::Kind::Sha1)
            .map_err(|e| GitError::CorruptObject {
                id,
                reason: e.to_string(),
            })?;
        let time = commit.committer().map(|c| c.seconds()).unwrap_or(0);
        Ok(CommitInfo {
            id,
            tree: commit.tree(),
            parents: commit.parents().collect(),
            time,
            message: commit.message.to_str_lossy().into_owned(),
        })
    }

    // ---- references ----------------------------------------------------

    /// The object a reference points at, or `None` if it does not exist.
    pub fn ref_target(&self, name: &str) -> Result<Option<ObjectId>> {
        check_ref_name(name)?;
        match self.repo.try_find_reference(name) {
            Ok(Some(r)) => Ok(r.target().try_id().map(|id| id.to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(GitError::gix(format!("reading reference {name}"), e)),
        }
    }

    /// Points `name` at `new` if and only if it currently holds `expected`
    /// (compare-and-swap). A lost race is [`GitError::RefConflict`] with the
    /// value found; a held lock is [`GitError::RefLocked`].
    pub fn update_ref(
        &self,
        name: &str,
        expected: Expected,
        new: ObjectId,
        message: &str,
    ) -> Result<()> {
        check_ref_name(name)?;
        let previous = match expected {
            Expected::MustNotExist => PreviousValue::MustNotExist,
            Expected::MustBe(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
        };
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: message.into(),
                },
                expected: previous,
                new: Target::Object(new),
            },
            name: full_name(name)?,
            deref: false,
        };
        self.apply(name, expected, edit)
    }

    /// Deletes `name` if and only if it currently points at `expected`.
    pub fn delete_ref(&self, name: &str, expected: ObjectId) -> Result<()> {
        check_ref_name(name)?;
        let edit = RefEdit {
            change: Change::Delete {
                expected: PreviousValue::MustExistAndMatch(Target::Object(expected)),
                log: RefLog::AndReference,
            },
            name: full_name(name)?,
            deref: false,
        };
        self.apply(name, Expected::MustBe(expected), edit)
    }

    fn apply(&self, name: &str, expected: Expected, edit: RefEdit) -> Result<()> {
        // Where git keeps reflogs (refs/remotes/* in a non-bare repository),
        // they need a committer; an unconfigured machine has none, so the
        // configured one is used if present, else larder's fixed identity.
        let (default_name, default_email) = DEFAULT_IDENTITY;
        let mut time_buf = gix::date::parse::TimeBuf::default();
        let now = gix::date::Time {
            seconds: unix_now(),
            offset: 0,
        };
        let fallback = gix::actor::SignatureRef {
            name: default_name.into(),
            email: default_email.into(),
            time: now.to_str(&mut time_buf),
        };
        let committer = match self.repo.committer() {
            Some(Ok(configured)) => configured,
            _ => fallback,
        };
        match self.repo.edit_references_as(Some(edit), Some(committer)) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify_ref_error(name, expected, e)),
        }
    }

    /// Turns gix's ref-transaction error into a typed one through gix's
    /// own classification API (never by matching message strings).
    fn classify_ref_error(&self, name: &str, expected: Expected, e: gix::Error) -> GitError {
        use gix::refs::file::transaction::prepare;
        let conflict = |actual: Option<ObjectId>| GitError::RefConflict {
            name: name.into(),
            expected: expected.to_string(),
            actual,
        };
        if let Some(out_of_date) = e.downcast_any_ref::<prepare::ReferenceOutOfDate>() {
            return conflict(out_of_date.actual.try_id().map(ToOwned::to_owned));
        }
        if let Some(exists) = e.downcast_any_ref::<prepare::MustNotExist>() {
            return conflict(exists.actual.try_id().map(ToOwned::to_owned));
        }
        if e.is_conflict() {
            return conflict(self.ref_target(name).ok().flatten());
        }
        if e.is_not_found() && matches!(expected, Expected::MustBe(_)) {
            return conflict(None);
        }
        if e.is_retryable() {
            return GitError::RefLocked { name: name.into() };
        }
        GitError::gix(format!("updating reference {name}"), e)
    }

    /// Every reference whose full name starts with `prefix`, sorted by name.
    pub fn list_refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        let platform = self
            .repo
            .references()
            .map_err(|e| GitError::gix("listing references", e))?;
        let iter = platform
            .prefixed(BStr::new(prefix.as_bytes()))
            .map_err(|e| GitError::gix(format!("listing references under {prefix}"), e))?;
        let mut out = Vec::new();
        for r in iter {
            let r =
                r.map_err(|e| GitError::gix(format!("listing references under {prefix}"), e))?;
            if let Some(id) = r.target().try_id() {
                out.push((
                    r.name().as_bstr().to_str_lossy().into_owned(),
                    id.to_owned(),
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    // ---- history -------------------------------------------------------

    /// Commits reachable from `tips` but not from `hidden`, newest first
    /// (breadth-first), each with its parents.
    pub fn walk(
        &self,
        tips: &[ObjectId],
        hidden: &[ObjectId],
    ) -> Result<Vec<(ObjectId, Vec<ObjectId>)>> {
        match walk_in(&self.repo, tips, hidden) {
            Ok(walked) => Ok(walked),
            // The handle's store may have too few slots for the packs on
            // disk now: a fresh one decides.
            Err(_) => walk_in(&self.fresh_store()?, tips, hidden),
        }
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: ObjectId, descendant: ObjectId) -> Result<bool> {
        if ancestor == descendant {
            return Ok(true);
        }
        // Everything reachable from `ancestor` is hidden exactly when it
        // is reachable from `descendant`.
        Ok(self.walk(&[ancestor], &[descendant])?.is_empty())
    }

    // ---- durability ----------------------------------------------------

    /// Flushes a loose reference file and its directory to disk.
    pub fn sync_ref(&self, name: &str) -> Result<()> {
        let file = self.git_dir().join(name);
        if file.exists() {
            sync_path(&file)?;
            if let Some(dir) = file.parent() {
                sync_path(dir)?;
            }
        }
        Ok(())
    }

    /// Flushes a directory entry list to disk.
    pub fn sync_dir(&self, dir: &Path) -> Result<()> {
        sync_path(dir)
    }

    /// The object database directory.
    pub fn objects_dir(&self) -> PathBuf {
        self.repo.objects.store_ref().path().to_path_buf()
    }
}

/// Commits reachable from `tips` but not from `hidden` in `repo`.
fn walk_in(
    repo: &gix::Repository,
    tips: &[ObjectId],
    hidden: &[ObjectId],
) -> Result<Vec<(ObjectId, Vec<ObjectId>)>> {
    let walk = repo
        .rev_walk(tips.iter().copied())
        .with_hidden(hidden.iter().copied())
        .all()
        .map_err(|e| GitError::gix("starting a history walk", e))?;
    let mut out = Vec::new();
    for info in walk {
        let info = info.map_err(|e| GitError::gix("walking history", e))?;
        out.push((info.id, info.parent_ids.iter().copied().collect()));
    }
    Ok(out)
}

/// The git tree made of `entries`, in git's order.
pub(crate) fn tree_object(entries: &[TreeEntry]) -> Result<gix::objs::Tree> {
    let mut tree = gix::objs::Tree::empty();
    for entry in entries {
        let mode = match entry.kind {
            EntryKind::Blob => gix::objs::tree::EntryKind::Blob,
            EntryKind::Tree => gix::objs::tree::EntryKind::Tree,
            EntryKind::Other => {
                return Err(GitError::CorruptObject {
                    id: entry.id,
                    reason: format!(
                        "refusing to write tree entry {:?} of kind Other",
                        entry.name
                    ),
                });
            }
        };
        tree.entries.push(gix::objs::tree::Entry {
            mode: mode.into(),
            filename: entry.name.as_str().into(),
            oid: entry.id,
        });
    }
    tree.entries.sort();
    Ok(tree)
}

/// The git commit of `tree` with `parents`, by `identity` (or
/// [`Identity::default`]) at `time`.
pub(crate) fn commit_object(
    tree: ObjectId,
    parents: &[ObjectId],
    message: &str,
    identity: Option<&Identity>,
    time: i64,
) -> gix::objs::Commit {
    let default = Identity::default();
    let who = identity.unwrap_or(&default);
    let signature = gix::actor::Signature {
        name: who.name.as_str().into(),
        email: who.email.as_str().into(),
        time: gix::date::Time {
            seconds: time,
            offset: 0,
        },
    };
    gix::objs::Commit {
        tree,
        parents: parents.iter().copied().collect(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `name` as gix's validated full reference name.
fn full_name(name: &str) -> Result<gix::refs::FullName> {
    name.try_into().map_err(
        |e: gix::validate::reference::name::Error| GitError::InvalidRefName {
            name: name.into(),
            reason: e.to_string(),
        },
    )
}

fn sync_path(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| GitError::Io {
            what: "fsync",
            path: path.display().to_string(),
            source,
        })
}

/// Rejects ref names that are not full `refs/...` names git would accept.
fn check_ref_name(name: &str) -> Result<()> {
    if !name.starts_with("refs/") {
        return Err(GitError::InvalidRefName {
            name: name.into(),
            reason: "must start with refs/".into(),
        });
    }
    gix::validate::reference::name(BStr::new(name.as_bytes())).map_err(|e| {
        GitError::InvalidRefName {
            name: name.into(),
            reason: e.to_string(),
        }
    })?;
    Ok(())
}
