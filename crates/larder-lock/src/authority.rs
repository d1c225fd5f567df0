//! Where lock state lives and how it is compare-and-swapped.
//!
//! - **Local**: the repository itself (agents sharing one clone).
//! - **File remote**: a repository on the local file system (a bare remote
//!   by path or `file://` URL), opened directly: the lock commit is written
//!   into its object database and its ref moved by compare-and-swap —
//!   natively, no `git` process.
//! - **Git binary**: any other remote (ssh, https). The lock commit is
//!   written locally and pushed with
//!   `git push --porcelain --force-with-lease=<ref>:<expected> <url> <commit>:<ref>`
//!   (an explicit expected value, never a `+` refspec); the current value is
//!   read with `git ls-remote` and fetched with `git fetch`.
//!
//! Each lock state is one commit (see `record.rs`), written as one object.

use larder_git::{Expected, GitRepo, ObjectId, PushOutcome, RemoteLocation};

use crate::{LockError, Result};

/// The authority whose refs decide who holds a lock.
#[derive(Clone, Debug)]
pub enum Authority {
    /// The local repository.
    Local(GitRepo),
    /// A repository on this machine's file system, used directly.
    FileRemote {
        /// How the remote was named (path or URL).
        location: String,
        /// The remote repository.
        repo: GitRepo,
    },
    /// A remote reached through the `git` binary.
    GitBinary {
        /// The remote URL.
        url: String,
        /// The local repository, where lock commits are built.
        local: GitRepo,
    },
}

/// Outcome of a compare-and-swap.
pub(crate) enum Cas {
    Done,
    /// The ref did not hold the expected value.
    Lost,
    /// The ref's `.lock` file existed through git's wait (another writer,
    /// or one that crashed); the path is that file.
    Locked(String),
}

impl Authority {
    /// `remote` as an authority for `local`, resolved by the same rules as
    /// sync ([`GitRepo::resolve_remote`]): a git-config remote name
    /// (`origin`), a path (relative ones from the work tree's top, or the
    /// directory the repository was opened from) or `file://` URL to an
    /// existing repository — used directly — or an `ssh://`, scp-style
    /// `user@host:path`, `git://`, `http://` or `https://` URL, reached
    /// through the `git` binary. A path without a repository or an unknown
    /// scheme is [`LockError::UnusableRemote`] naming it.
    pub fn remote(local: &GitRepo, remote: &str) -> Result<Self> {
        let resolved = local
            .resolve_remote(remote)
            .map_err(LockError::UnusableRemote)?;
        match &resolved.location {
            RemoteLocation::Local(_) => {
                let repo = resolved
                    .open_local(&local.configured_remotes())
                    .map_err(LockError::UnusableRemote)?;
                Ok(Authority::FileRemote {
                    location: remote.into(),
                    repo,
                })
            }
            RemoteLocation::Network { url, .. } => Ok(Authority::GitBinary {
                url: url.clone(),
                local: local.clone(),
            }),
        }
    }

    /// A human-readable name for errors.
    pub fn describe(&self) -> String {
        match self {
            Authority::Local(repo) => format!("local repository {}", repo.git_dir().display()),
            Authority::FileRemote { location, .. } => format!("remote {location}"),
            Authority::GitBinary { url, .. } => format!("remote {url}"),
        }
    }

    /// The repository where lock commits are written and read.
    pub(crate) fn object_repo(&self) -> &GitRepo {
        match self {
            Authority::Local(repo) | Authority::FileRemote { repo, .. } => repo,
            Authority::GitBinary { local, .. } => local,
        }
    }

    fn git_error(&self, source: larder_git::GitError) -> LockError {
        LockError::Authority {
            authority: self.describe(),
            source,
        }
    }

    /// The commit a lock ref points at, if it exists.
    pub(crate) fn read(&self, name: &str) -> Result<Option<ObjectId>> {
        match self {
            Authority::Local(repo) | Authority::FileRemote { repo, .. } => {
                repo.ref_target(name).map_err(|e| self.git_error(e))
            }
            Authority::GitBinary { url, local } => {
                let refs = local
                    .ls_remote_with_git(url, name)
                    .map_err(|e| self.git_error(e))?;
                let Some((_, id)) = refs.into_iter().find(|(n, _)| n == name) else {
                    return Ok(None);
                };
                if !local.has_object(id) {
                    local
                        .fetch_with_git(url, &[name])
                        .map_err(|e| self.git_error(e))?;
                }
                Ok(Some(id))
            }
        }
    }

    /// Every lock ref under `prefix`.
    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        match self {
            Authority::Local(repo) | Authority::FileRemote { repo, .. } => {
                repo.list_refs(prefix).map_err(|e| self.git_error(e))
            }
            Authority::GitBinary { url, local } => {
                let refs = local
                    .ls_remote_with_git(url, &format!("{prefix}*"))
                    .map_err(|e| self.git_error(e))?;
                let missing: Vec<&str> = refs
                    .iter()
                    .filter(|(_, id)| !local.has_object(*id))
                    .map(|(n, _)| n.as_str())
                    .collect();
                if !missing.is_empty() {
                    local
                        .fetch_with_git(url, &missing)
                        .map_err(|e| self.git_error(e))?;
                }
                Ok(refs)
            }
        }
    }

    /// Writes a lock-state commit of `tree` on top of `parent`: one loose
    /// object (a single object is one file either way; a pack would be two,
    /// and would pile up packs for the WAL's consolidation to merge).
    pub(crate) fn write_state(
        &self,
        tree: ObjectId,
        parent: Option<ObjectId>,
        message: &str,
        time: i64,
    ) -> Result<ObjectId> {
        let parents: Vec<ObjectId> = parent.into_iter().collect();
        self.object_repo()
            .write_commit(tree, &parents, message, None, time)
            .map_err(|e| self.git_error(e))
    }

    /// Stores git's empty tree in the object repository (a no-op if it is
    /// there already) and returns its id.
    pub(crate) fn write_empty_tree(&self) -> Result<ObjectId> {
        self.object_repo()
            .write_tree(&[])
            .map_err(|e| self.git_error(e))
    }

    /// Points `name` at `new` if and only if it holds `expected`.
    pub(crate) fn cas(&self, name: &str, expected: Option<ObjectId>, new: ObjectId) -> Result<Cas> {
        match self {
            Authority::Local(repo) | Authority::FileRemote { repo, .. } => {
                let expected = expected.map_or(Expected::MustNotExist, Expected::MustBe);
                match repo.update_ref(name, expected, new, "larder: lock") {
                    Ok(()) => Ok(Cas::Done),
                    Err(e) if e.is_conflict() => Ok(Cas::Lost),
                    Err(e) if e.is_retryable() => Ok(Cas::Locked(
                        repo.git_dir()
                            .join(format!("{name}.lock"))
                            .display()
                            .to_string(),
                    )),
                    Err(e) => Err(self.git_error(e)),
                }
            }
            Authority::GitBinary { url, local } => {
                match local.push_with_git(url, new, name, Some(expected)) {
                    Ok(PushOutcome::Updated | PushOutcome::UpToDate) => Ok(Cas::Done),
                    Ok(PushOutcome::Lost(_)) => Ok(Cas::Lost),
                    // The remote's `<ref>.lock` is held: waited for, then
                    // named (`LockError::RefLocked`), as for a local ref.
                    Err(larder_git::GitError::RemoteRefLocked { lock_path, .. }) => {
                        Ok(Cas::Locked(lock_path))
                    }
                    Err(e) => Err(self.git_error(e)),
                }
            }
        }
    }
}
