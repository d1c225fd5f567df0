//! The git backend's single error type.

use gix::ObjectId;

/// What went wrong in the git backend, with the object or ref involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// The repository could not be opened.
    #[error("cannot open git repository at {path}: {source}")]
    Open {
        /// Where we looked.
        path: String,
        /// gix's reason.
        #[source]
        source: Box<gix::Error>,
    },
    /// No repository contains the directory: nothing was found there or in
    /// any parent (or `GIT_DIR` names none).
    #[error(
        "cannot open git repository at {path}: {reason}; run `larder init` there, or name the repository with -C <dir> or GIT_DIR"
    )]
    NotARepository {
        /// The directory the search started from (or `GIT_DIR`).
        path: String,
        /// Why: `not a git repository (nor any parent)`, no such
        /// directory, or gix's reason.
        reason: String,
    },
    /// A remote given as a path (or `file://` URL, or a configured remote
    /// whose URL is one) names no repository.
    #[error("remote {remote}: {}", remote_not_found(remote, path, known))]
    RemoteNotFound {
        /// The remote as the caller gave it.
        remote: String,
        /// The absolute path looked at.
        path: String,
        /// The remotes configured in the repository, when `remote` could
        /// have been meant as one of their names.
        known: Vec<String>,
    },
    /// A remote larder cannot use: empty, or a URL scheme it has no
    /// transport for (or one not compiled in).
    #[error("remote {remote}: {reason}")]
    UnsupportedRemote {
        /// The remote as the caller gave it.
        remote: String,
        /// Why, and what to do.
        reason: String,
    },
    /// A network remote could not be reached or refused the connection
    /// (nothing listening, unknown host, the ssh command failed, no such
    /// repository on the server, access denied).
    #[error(
        "cannot reach remote {url}: {reason}; check the URL, that the server is up and that you may access it"
    )]
    RemoteUnreachable {
        /// The remote's URL.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// A repository could not be created.
    #[error("cannot create git repository at {path}: {source}")]
    Init {
        /// Where it should have been created.
        path: String,
        /// gix's reason.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An object the caller asked for does not exist.
    #[error("object {id} is missing from the repository")]
    ObjectMissing {
        /// The missing object.
        id: ObjectId,
    },
    /// An object exists but is of another kind than expected.
    #[error("object {id} is a {actual}, expected a {expected}")]
    WrongObjectKind {
        /// The object.
        id: ObjectId,
        /// The kind the caller needed.
        expected: &'static str,
        /// The kind found.
        actual: String,
    },
    /// A stored object could not be parsed.
    #[error("object {id} is corrupt: {reason}")]
    CorruptObject {
        /// The object.
        id: ObjectId,
        /// What was wrong.
        reason: String,
    },
    /// More pack index files than gix can address in one object store
    /// ([`MAX_PACK_INDEXES`](crate::MAX_PACK_INDEXES)): objects cannot be
    /// looked up until packs are merged (`larder compact`, whose merging
    /// reads pack files directly, or `git repack -d`).
    #[error(
        "{path} holds {count} pack indexes, more than the {max} one object store can address; merge them with `larder compact` or `git repack -d`"
    )]
    TooManyPacks {
        /// The pack directory.
        path: String,
        /// Index files found.
        count: usize,
        /// The most gix can address.
        max: usize,
    },
    /// A pack file (or its index) is damaged: its index cannot be read, or
    /// an entry's bytes do not match the index. Consolidation leaves such a
    /// pack where it is (its intact objects stay readable) and goes on with
    /// the others; see [`GitRepo::check_packs`](crate::GitRepo::check_packs).
    #[error("{0}")]
    DamagedPack(crate::DamagedPack),
    /// A reference name is not valid.
    #[error("invalid reference name {name:?}: {reason}")]
    InvalidRefName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A compare-and-swap on a reference lost: the ref did not hold the
    /// expected value. `actual` is what it held (None: it did not exist).
    #[error("reference {name} changed concurrently: expected {expected}, found {}", actual.map_or("nothing".to_string(), |a| a.to_string()))]
    RefConflict {
        /// The reference.
        name: String,
        /// What the caller expected, as text (`nothing` if it had to be absent).
        expected: String,
        /// What the reference actually pointed at, if anything.
        actual: Option<ObjectId>,
    },
    /// A reference is locked by another writer (its `.lock` file exists);
    /// retrying later may succeed.
    #[error("reference {name} is locked by another writer; retry later")]
    RefLocked {
        /// The reference.
        name: String,
    },
    /// A push was refused because the ref is locked on the remote: git
    /// there could not create `<ref>.lock` (a git or larder process is
    /// writing the ref, or one was killed and left the file behind).
    #[error(
        "remote {url}: {reference} is locked by {lock_path}: if no git or larder process is writing to that repository, a killed one left it behind; delete it there"
    )]
    RemoteRefLocked {
        /// The remote.
        url: String,
        /// The ref that could not be updated.
        reference: String,
        /// The lock file, as the remote's git named it (or `<ref>.lock`
        /// inside the remote repository when it did not).
        lock_path: String,
    },
    /// A remote reached through the `git` binary failed or refused.
    #[error("remote {url}: {reason}")]
    Remote {
        /// The remote.
        url: String,
        /// What it said.
        reason: String,
    },
    /// An I/O error outside gix (fsync, directories).
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The file or directory.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure reported by gix, with what we were doing.
    #[error("{context}: {source}")]
    Gix {
        /// What larder was doing.
        context: String,
        /// gix's error.
        #[source]
        source: gix::Error,
    },
}

impl GitError {
    /// Whether retrying the same operation later may succeed (a ref lock
    /// held by another writer, here or on a remote).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            GitError::RefLocked { .. } | GitError::RemoteRefLocked { .. }
        )
    }

    /// Whether this is a lost compare-and-swap.
    pub fn is_conflict(&self) -> bool {
        matches!(self, GitError::RefConflict { .. })
    }

    pub(crate) fn gix(context: impl Into<String>, source: impl Into<gix::Error>) -> Self {
        GitError::Gix {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The text of [`GitError::RemoteNotFound`] after `remote <name>: `.
fn remote_not_found(remote: &str, path: &str, known: &[String]) -> String {
    const FORMS: &str =
        "a path to a repository, a URL (ssh://, user@host:path, git://, http(s)://)";
    if known.is_empty() {
        return format!(
            "no git repository at {path}; give {FORMS} or a remote from `git remote -v`"
        );
    }
    let configured = if known.iter().all(|k| k == "none") {
        "no remotes are configured".to_owned()
    } else {
        format!("configured: {}", known.join(", "))
    };
    format!(
        "no configured remote of that name ({configured}) and no git repository at {path}; add it with `git remote add {remote} <url>`, or give {FORMS}"
    )
}

/// Shorthand for results whose error is [`GitError`].
pub type Result<T, E = GitError> = std::result::Result<T, E>;
