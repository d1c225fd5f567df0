//! The `git` binary as a transport for network remotes (gix cannot push):
//! `git push --porcelain` parsed into typed outcomes, `git fetch`, and
//! `git ls-remote`. Pushes never use a `+` refspec.

use std::process::Command;

use gix::ObjectId;

use crate::{GitError, GitRepo, Result};

/// What `git push --porcelain` reported for one ref.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote ref now points at the pushed commit.
    Updated,
    /// It already did.
    UpToDate,
    /// The remote moved: `stale info` (lease lost), `fetch first` or
    /// `non-fast-forward`. Read again and retry.
    Lost(String),
}

impl GitRepo {
    fn git(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new("git")
            .arg("--git-dir")
            .arg(self.git_dir())
            .args(args)
            .output()
            .map_err(|source| GitError::Io {
                what: "running git",
                path: "git".into(),
                source,
            })
    }

    /// `git push --porcelain [--force-with-lease=<ref>:<expected>] <url> <commit>:<ref>`.
    /// `lease`: `Some(None)` = the ref must not exist, `Some(Some(id))` = it
    /// must point at `id`, `None` = plain fast-forward-only push.
    pub fn push_with_git(
        &self,
        url: &str,
        commit: ObjectId,
        reference: &str,
        lease: Option<Option<ObjectId>>,
    ) -> Result<PushOutcome> {
        let refspec = format!("{commit}:{reference}");
        let lease_arg = lease.map(|e| {
            format!(
                "--force-with-lease={reference}:{}",
                e.map(|i| i.to_string()).unwrap_or_default()
            )
        });
        let mut args = vec!["push", "--porcelain"];
        if let Some(l) = &lease_arg {
            args.push(l);
        }
        args.extend([url, refspec.as_str()]);
        let out = self.git(&args)?;
        parse_push(
            url,
            reference,
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// `git fetch --no-tags <url> <refspecs>`; staging refspecs may be forced.
    pub fn fetch_with_git(&self, url: &str, refspecs: &[&str]) -> Result<()> {
        let mut args = vec!["fetch", "--quiet", "--no-tags", url];
        args.extend(refspecs);
        let out = self.git(&args)?;
        if !out.status.success() {
            return Err(remote_error(url, &String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// `git ls-remote <url> <pattern>`: the remote refs matching `pattern`.
    pub fn ls_remote_with_git(&self, url: &str, pattern: &str) -> Result<Vec<(String, ObjectId)>> {
        let out = self.git(&["ls-remote", url, pattern])?;
        if !out.status.success() {
            return Err(remote_error(url, &String::from_utf8_lossy(&out.stderr)));
        }
        let mut refs = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut parts = line.split_whitespace();
            if let (Some(hex), Some(name)) = (parts.next(), parts.next())
                && let Ok(id) = ObjectId::from_hex(hex.as_bytes())
            {
                refs.push((name.to_owned(), id));
            }
        }
        Ok(refs)
    }
}

fn remote_error(url: &str, stderr: &str) -> GitError {
    let stderr = stderr.trim();
    let unreachable = [
        "Could not read from remote repository",
        "unable to connect",
        "Connection refused",
        "Could not resolve host",
        "Failed to connect",
        "does not appear to be a git repository",
        "not found",
        "unable to access",
    ];
    if !stderr.contains("Authentication failed") && unreachable.iter().any(|s| stderr.contains(s)) {
        return GitError::RemoteUnreachable {
            url: url.into(),
            reason: stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        };
    }
    let kind = if stderr.contains("Authentication failed")
        || stderr.contains("Permission denied")
        || stderr.contains("could not read Username")
    {
        "authentication failed"
    } else {
        "remote failed"
    };
    GitError::Remote {
        url: url.into(),
        reason: format!("{kind}: {stderr}"),
    }
}

/// The lock file git on the remote could not create for `reference`, when
/// its stderr says so (`cannot lock ref '<ref>': Unable to create
/// '<path>.lock': File exists.`). `Some("")` when git named the ref but no
/// path.
///
/// git prints the same `cannot lock ref` for a lost compare-and-swap
/// (`… is at A but expected B`, a concurrent push moved the ref): that is
/// not a lock, it is a race to retry, so only a line that names a lock
/// file that could not be created counts.
fn remote_lock(reference: &str, stderr: &str) -> Option<String> {
    let line = stderr.lines().find(|l| {
        l.contains(&format!("cannot lock ref '{reference}'"))
            && (l.contains("Unable to create") || l.contains("File exists"))
    })?;
    let path = line
        .split("Unable to create '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or("");
    Some(path.replace("/./", "/"))
}

/// Reads `git push --porcelain` output for `reference`. A remote that
/// could not lock the ref (its `<ref>.lock` exists) is
/// [`GitError::RemoteRefLocked`], naming the lock file when git does.
pub fn parse_push(url: &str, reference: &str, stdout: &str, stderr: &str) -> Result<PushOutcome> {
    // A concurrent push moved the ref between the advertisement and the
    // update: a lost compare-and-swap, to retry after reading again.
    if let Some(line) = stderr.lines().find(|l| {
        l.contains(&format!("cannot lock ref '{reference}'")) && l.contains("but expected")
    }) {
        let why = line.split_once(": ").map_or(line, |(_, rest)| rest).trim();
        return Ok(PushOutcome::Lost(format!("the remote ref moved ({why})")));
    }
    if let Some(lock_path) = remote_lock(reference, stderr) {
        let refused = stdout.lines().any(|l| {
            l.starts_with('!') && l.split('\t').nth(1).is_some_and(|s| s.ends_with(reference))
        });
        if refused
            || !stdout
                .lines()
                .any(|l| l.split('\t').nth(1).is_some_and(|s| s.ends_with(reference)))
        {
            return Err(GitError::RemoteRefLocked {
                url: url.into(),
                reference: reference.into(),
                lock_path: if lock_path.is_empty() {
                    format!("{reference}.lock in the remote repository")
                } else {
                    lock_path
                },
            });
        }
    }
    for line in stdout.lines() {
        let mut fields = line.split('\t');
        let (Some(flag), Some(spec)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !spec.ends_with(reference) {
            continue;
        }
        let summary = fields.next().unwrap_or("").to_owned();
        return match flag {
            " " | "+" | "*" => Ok(PushOutcome::Updated),
            "=" => Ok(PushOutcome::UpToDate),
            "!" if ["stale info", "fetch first", "non-fast-forward"]
                .iter()
                .any(|s| summary.contains(s)) =>
            {
                Ok(PushOutcome::Lost(summary))
            }
            // receive-pack's ref transaction failed and the remote gave no
            // other reason (over git daemon its stderr is not relayed): a
            // concurrent push took the ref between its check and its
            // update. The remote says the ref was not updated — a lost
            // race, not an unknown outcome.
            "!" if summary.contains("remote rejected")
                && summary.contains("failed to update ref")
                && !stderr.contains("cannot lock ref") =>
            {
                Ok(PushOutcome::Lost(summary))
            }
            _ => Err(GitError::Remote {
                url: url.into(),
                reason: format!("push of {reference} refused: {summary}"),
            }),
        };
    }
    Err(remote_error(url, stderr))
}

/// Fetching with gix's own client (file, `file://`, ssh via the `ssh`
/// binary; https when gix is built with an HTTP transport feature).
#[cfg(feature = "network")]
impl GitRepo {
    /// Fetches `refspecs` from `url` with gix. Staging refspecs may be
    /// forced (`+src:dst`); the live log ref is never a destination.
    /// Returns every remote ref the refspecs matched, as the remote
    /// advertised it (name, object) — what a caller needs to prune
    /// destination refs whose source is gone.
    pub fn fetch_with_gix(&self, url: &str, refspecs: &[&str]) -> Result<Vec<(String, ObjectId)>> {
        let fail = |what: &str, e: gix::Error| GitError::Remote {
            url: url.into(),
            reason: format!("{what}: {}", error_chain(&e)),
        };
        let unreachable = |e: gix::Error| GitError::RemoteUnreachable {
            url: url.into(),
            reason: error_chain(&e),
        };
        // gix's fetch asks for a committer for its ref edits; an
        // unconfigured machine has none, so lend larder's identity.
        // A handle opened now: the long-lived one may not have noticed the
        // packs larder wrote since (appends, merges), and negotiation must
        // peel every local ref.
        let mut repo = self.fresh_store()?;
        if repo.committer().is_none() {
            let mut config = repo.config_snapshot_mut();
            for (key, value) in [
                ("committer.name", crate::DEFAULT_IDENTITY.0),
                ("committer.email", crate::DEFAULT_IDENTITY.1),
            ] {
                config
                    .set_raw_value(key, value)
                    .map_err(|e| fail("cannot set the committer", e))?;
            }
        }
        apply_ssh_command(&mut repo, url).map_err(|e| fail("cannot set the ssh command", e))?;
        // The refs a fetch writes only mirror the remote's (sync's staging
        // refs, larder-kv's copy of the chain): no reflog, which git would
        // keep for refs/remotes/* in a non-bare repository, a line per
        // fetch that nothing trims. Set after the config edits above, which
        // re-read it.
        repo.refs.write_reflog = gix::refs::store::WriteReflog::Disable;
        let remote = repo
            .remote_at(url)
            .map_err(|e| fail("invalid remote", e))?
            .with_refspecs(refspecs.iter().copied(), gix::remote::Direction::Fetch)
            .map_err(|e| fail("invalid refspec", e))?
            // Only what the refspecs name: no tags followed into the
            // caller's refs/tags/.
            .with_fetch_tags(gix::remote::fetch::Tags::None);
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(unreachable)?;
        let interrupt = std::sync::atomic::AtomicBool::new(false);
        let outcome = connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(unreachable)?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| fail("fetch failed", e))?;
        Ok(outcome
            .ref_map
            .mappings
            .iter()
            .filter_map(|m| {
                let name = m.remote.as_name()?.to_string();
                Some((name, m.remote.as_id()?.to_owned()))
            })
            .collect())
    }
}

/// gix's error and its sources, on one line (`a: b: c`).
#[cfg(feature = "network")]
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Makes gix's ssh transport run the program `git` would, in git's order:
/// `GIT_SSH_COMMAND`, else `core.sshCommand` (the repository's config, then
/// the global and system ones), else `GIT_SSH`, else `ssh`. Repositories
/// are opened isolated from the environment and the global config, so all
/// but the repository's own setting are copied into the fetch handle's
/// configuration here (the global files are read only for ssh URLs).
#[cfg(feature = "network")]
fn apply_ssh_command(repo: &mut gix::Repository, url: &str) -> std::result::Result<(), gix::Error> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let in_repo = repo.config_snapshot().string("core.sshCommand").is_some();
    let is_ssh = matches!(
        crate::classify_remote(url, std::path::Path::new("/")),
        Ok(crate::RemoteLocation::Network {
            scheme: crate::NetworkScheme::Ssh,
            ..
        })
    );
    let global = || {
        gix::config::File::from_globals()
            .ok()
            .and_then(|f| f.string("core.sshCommand").map(|v| v.to_string()))
            .filter(|v| !v.trim().is_empty())
    };
    let setting = if let Some(command) = env("GIT_SSH_COMMAND") {
        Some(("core.sshCommand", command))
    } else if in_repo || !is_ssh {
        None
    } else if let Some(command) = global() {
        Some(("core.sshCommand", command))
    } else {
        env("GIT_SSH").map(|p| ("gitoxide.ssh.commandWithoutShellFallback", p))
    };
    if let Some((key, value)) = setting {
        repo.config_snapshot_mut()
            .set_raw_value(key, value.as_str())?;
    }
    Ok(())
}
