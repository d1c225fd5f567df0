//! [`GitRepo`]: a repository handle with exactly the operations larder needs.

use std::path::{Path, PathBuf};

use gix::ObjectId;

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
    pub(crate) repo: gix::Repository,
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
pub(crate) fn open_sized(path: &Path) -> std::result::Result<gix::Repository, gix::Error> {
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

    /// This repository with an object store of its own — for work on
    /// another thread (pack merges, read-ahead). Clones share one store,
    /// and gix's store can trip an internal assertion when two threads
    /// rescan it at once while packs change; a thread with its own store
    /// never races the caller's.
    pub fn reopen(&self) -> Result<Self> {
        let repo = open_sized(self.git_dir()).map_err(|e| GitError::Open {
            path: self.git_dir().display().to_string(),
            source: Box::new(e),
        })?;
        Ok(Self {
            repo,
            base: self.base.clone(),
        })
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

    // ---- history -------------------------------------------------------

    /// Commits reachable from `tips` but not from `hidden`, newest first
    /// (breadth-first), each with its parents.
    pub fn walk(
        &self,
        tips: &[ObjectId],
        hidden: &[ObjectId],
    ) -> Result<Vec<(ObjectId, Vec<ObjectId>)>> {
        match crate::objects::shared_store(|| walk_in(&self.repo, tips, hidden)) {
            Some(Ok(walked)) => Ok(walked),
            // The handle's store may have too few slots for the packs on
            // disk now (or gix panicked on a concurrent rescan): a fresh
            // one decides.
            _ => walk_in(&self.fresh_store()?, tips, hidden),
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

pub(crate) fn sync_path(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| GitError::Io {
            what: "fsync",
            path: path.display().to_string(),
            source,
        })
}
