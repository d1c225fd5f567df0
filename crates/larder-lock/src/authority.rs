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

use std::path::Path;
use std::process::Command;

use larder_git::{EntryKind, Expected, GitRepo, ObjectId, TreeEntry};

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
    Lost,
}

impl Authority {
    /// `remote` as an authority for `local`: a path or `file://` URL to an
    /// existing repository is used directly; anything else goes through the
    /// `git` binary.
    pub fn remote(local: &GitRepo, remote: &str) -> Result<Self> {
        let path = remote.strip_prefix("file://").unwrap_or(remote);
        if !remote.contains("://") || remote.starts_with("file://") {
            let repo = GitRepo::open(Path::new(path)).map_err(|e| LockError::Remote {
                remote: remote.into(),
                reason: format!("not a git repository: {e}"),
            })?;
            return Ok(Authority::FileRemote {
                location: remote.into(),
                repo,
            });
        }
        Ok(Authority::GitBinary {
            url: remote.into(),
            local: local.clone(),
        })
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
                let out = git(local, &["ls-remote", url, name])?;
                let Some(line) = out.lines().find(|l| l.ends_with(name)) else {
                    return Ok(None);
                };
                let hex = line.split_whitespace().next().unwrap_or("");
                let id = ObjectId::from_hex(hex.as_bytes()).map_err(|_| LockError::Remote {
                    remote: url.clone(),
                    reason: format!("unexpected ls-remote output {line:?}"),
                })?;
                if !local.has_object(id) {
                    git(local, &["fetch", "--quiet", "--no-tags", url, name])?;
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
                let out = git(local, &["ls-remote", url, &format!("{prefix}*")])?;
                let mut refs = Vec::new();
                for line in out.lines() {
                    let mut parts = line.split_whitespace();
                    let (Some(hex), Some(name)) = (parts.next(), parts.next()) else {
                        continue;
                    };
                    if let Ok(id) = ObjectId::from_hex(hex.as_bytes()) {
                        refs.push((name.to_owned(), id));
                    }
                }
                let missing: Vec<&str> = refs
                    .iter()
                    .filter(|(_, id)| !local.has_object(*id))
                    .map(|(n, _)| n.as_str())
                    .collect();
                if !missing.is_empty() {
                    let mut args = vec!["fetch", "--quiet", "--no-tags", url.as_str()];
                    args.extend(missing);
                    git(local, &args)?;
                }
                Ok(refs)
            }
        }
    }

    /// Writes a lock-state commit holding `record` (JSON) on top of `parent`.
    pub(crate) fn write_state(
        &self,
        record: &[u8],
        parent: Option<ObjectId>,
        message: &str,
        time: i64,
    ) -> Result<ObjectId> {
        let repo = self.object_repo();
        let blob = repo.write_blob(record).map_err(|e| self.git_error(e))?;
        let tree = repo
            .write_tree(&[TreeEntry {
                name: "lock.json".into(),
                kind: EntryKind::Blob,
                id: blob,
            }])
            .map_err(|e| self.git_error(e))?;
        let parents: Vec<ObjectId> = parent.into_iter().collect();
        repo.write_commit(tree, &parents, message, None, time)
            .map_err(|e| self.git_error(e))
    }

    /// Points `name` at `new` if and only if it holds `expected`.
    pub(crate) fn cas(&self, name: &str, expected: Option<ObjectId>, new: ObjectId) -> Result<Cas> {
        match self {
            Authority::Local(repo) | Authority::FileRemote { repo, .. } => {
                let expected = expected.map_or(Expected::MustNotExist, Expected::MustBe);
                match repo.update_ref(name, expected, new, "larder: lock") {
                    Ok(()) => Ok(Cas::Done),
                    Err(e) if e.is_conflict() || e.is_retryable() => Ok(Cas::Lost),
                    Err(e) => Err(self.git_error(e)),
                }
            }
            Authority::GitBinary { url, local } => {
                let lease = format!(
                    "--force-with-lease={name}:{}",
                    expected.map(|e| e.to_string()).unwrap_or_default()
                );
                let refspec = format!("{new}:{name}");
                let out = Command::new("git")
                    .arg("-C")
                    .arg(local.git_dir())
                    .args(["push", "--porcelain", &lease, url, &refspec])
                    .output()
                    .map_err(|e| LockError::Remote {
                        remote: url.clone(),
                        reason: format!("cannot run git: {e}"),
                    })?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                parse_push(
                    url,
                    name,
                    &stdout,
                    &String::from_utf8_lossy(&out.stderr),
                    out.status.success(),
                )
            }
        }
    }
}

/// Reads `git push --porcelain` output for one ref.
pub(crate) fn parse_push(
    url: &str,
    name: &str,
    stdout: &str,
    stderr: &str,
    success: bool,
) -> Result<Cas> {
    for line in stdout.lines() {
        let mut fields = line.split('\t');
        let (Some(flag), Some(spec)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !spec.ends_with(name) {
            continue;
        }
        let summary = fields.next().unwrap_or("");
        return match flag {
            " " | "+" | "*" | "=" => Ok(Cas::Done),
            "!" if summary.contains("stale info")
                || summary.contains("fetch first")
                || summary.contains("non-fast-forward") =>
            {
                Ok(Cas::Lost)
            }
            _ => Err(LockError::Remote {
                remote: url.into(),
                reason: format!("push of {name} refused: {summary}"),
            }),
        };
    }
    let reason = if stderr.contains("Authentication failed") || stderr.contains("Permission denied")
    {
        format!("authentication failed: {}", stderr.trim())
    } else {
        format!("push failed (exit success={success}): {}", stderr.trim())
    };
    Err(LockError::Remote {
        remote: url.into(),
        reason,
    })
}

fn git(local: &GitRepo, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(local.git_dir())
        .args(args)
        .output()
        .map_err(|e| LockError::Remote {
            remote: args.join(" "),
            reason: format!("cannot run git: {e}"),
        })?;
    if !out.status.success() {
        return Err(LockError::Remote {
            remote: args.get(1).copied().unwrap_or("").into(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
