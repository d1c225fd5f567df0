//! [`SyncManager`]: pull, merge and push one log through one remote.

use larder_codec::{ActorId, blake2b256};
use larder_git::{Expected, GitError, GitRepo, ObjectId, PushOutcome};
use larder_wal::{MergeOutcome, WalManager};

use crate::{Result, SyncError};

/// How objects and refs travel to and from the remote.
#[derive(Clone, Debug)]
pub enum Transport {
    /// A repository on this machine's file system (path or `file://` URL),
    /// used directly: objects are copied between object databases and refs
    /// moved by compare-and-swap. Pure Rust, no `git` process.
    File(Box<GitRepo>),
    /// Any other URL (ssh, https): fetched into staging refs with gix's own
    /// client; pushed fast-forward-only with the `git` binary (gix cannot
    /// push), never with a `+` refspec.
    Network(String),
}

/// What a pull, push or sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Remote heads seen by the pull.
    pub heads_seen: usize,
    /// New commits brought into the local log (verified).
    pub commits_received: u64,
    /// Events in those commits.
    pub events_received: u64,
    /// How the local log changed, if a pull ran.
    pub merge: Option<MergeOutcome>,
    /// Commits the push made available on the remote under our head ref.
    pub commits_sent: u64,
    /// Events in those commits.
    pub events_sent: u64,
    /// Objects written into the remote by the push.
    pub objects_sent: u64,
    /// Whether the push moved our head ref on the remote.
    pub pushed: bool,
    /// The local log's head afterwards.
    pub new_head: Option<ObjectId>,
    /// Lost compare-and-swaps retried on the way.
    pub retries: u32,
}

/// Synchronises one log with one remote.
///
/// Every replica publishes its log's head at `refs/<ns>/<log>/heads/<actor>`
/// on the remote — its own ref, which only it writes, so pushes from many
/// actors never contend. A pull fetches every head into staging refs
/// `refs/remotes/<remote>/<ns>/<log>/heads/<actor>`, verifies every new
/// commit (chunk ids, event ids, layout), and only then merges them into
/// the local log (fast-forward, or one deterministic merge commit).
#[derive(Debug)]
pub struct SyncManager {
    wal: WalManager,
    actor: ActorId,
    remote: String,
    remote_name: String,
    transport: Transport,
    max_attempts: u32,
}

impl SyncManager {
    /// Syncs `wal` as `actor` with `remote`: the name of a remote in the
    /// repository's git config, a path, or a URL.
    pub fn new(wal: WalManager, actor: ActorId, remote: &str) -> Result<Self> {
        let configured = wal
            .repo()
            .gix()
            .config_snapshot()
            .string(format!("remote.{remote}.url").as_str())
            .map(|u| u.to_string());
        let (remote_name, url) = match configured {
            Some(url) => (remote.to_owned(), url),
            None => {
                let hash = blake2b256(&[remote.as_bytes()]);
                let hex = larder_codec::to_hex(&hash[..8]);
                (format!("url-{hex}"), remote.to_owned())
            }
        };
        let transport = if !url.contains("://") || url.starts_with("file://") {
            let path = url.strip_prefix("file://").unwrap_or(&url);
            let repo = GitRepo::open(path).map_err(|e| SyncError::Remote {
                remote: remote.into(),
                reason: format!("cannot open {path}: {e}"),
            })?;
            Transport::File(Box::new(repo))
        } else {
            Transport::Network(url)
        };
        Ok(Self {
            wal,
            actor,
            remote: remote.into(),
            remote_name,
            transport,
            max_attempts: 100,
        })
    }

    /// Syncs through an explicitly chosen transport; `remote_name` names
    /// the staging refs (`refs/remotes/<remote_name>/...`).
    pub fn with_transport(
        wal: WalManager,
        actor: ActorId,
        remote_name: &str,
        transport: Transport,
    ) -> Self {
        let remote = match &transport {
            Transport::File(repo) => repo.git_dir().display().to_string(),
            Transport::Network(url) => url.clone(),
        };
        Self {
            wal,
            actor,
            remote,
            remote_name: remote_name.into(),
            transport,
            max_attempts: 100,
        }
    }

    /// The local log.
    pub fn wal(&self) -> &WalManager {
        &self.wal
    }

    /// The transport in use.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The prefix of every replica's head ref, on the remote.
    pub fn heads_prefix(&self) -> String {
        format!(
            "refs/{}/{}/heads/",
            self.wal.options().namespace,
            self.wal.log()
        )
    }

    /// Our own head ref on the remote.
    pub fn head_ref(&self) -> String {
        format!("{}{}", self.heads_prefix(), self.actor)
    }

    /// Where fetched heads are staged locally.
    pub fn staging_prefix(&self) -> String {
        format!(
            "refs/remotes/{}/{}/{}/heads/",
            self.remote_name,
            self.wal.options().namespace,
            self.wal.log()
        )
    }

    fn local(&self) -> &GitRepo {
        self.wal.repo()
    }

    fn rejected(&self, head_ref: &str, source: larder_wal::WalError) -> SyncError {
        SyncError::Rejected {
            remote: self.remote.clone(),
            head_ref: head_ref.into(),
            source: Box::new(source),
        }
    }

    /// Fetches every replica's head, verifies what is new, and merges it
    /// into the local log. On any verification failure nothing is merged.
    pub fn pull(&self) -> Result<SyncReport> {
        let staging = self.staging_prefix();
        let heads: Vec<(String, ObjectId)> = match &self.transport {
            Transport::File(remote) => {
                let refs = remote.list_refs(&self.heads_prefix())?;
                for (name, id) in &refs {
                    self.local()
                        .copy_reachable_from(remote, &[*id])
                        .map_err(|e| match e {
                            GitError::CorruptObject { .. } | GitError::ObjectMissing { .. } => {
                                self.rejected(name, larder_wal::WalError::from(e))
                            }
                            other => SyncError::Git(other),
                        })?;
                    let actor = name.strip_prefix(&self.heads_prefix()).unwrap_or(name);
                    self.set_staging(&format!("{staging}{actor}"), *id)?;
                }
                refs
            }
            Transport::Network(url) => {
                let spec = format!("+{}*:{staging}*", self.heads_prefix());
                self.local().fetch_with_gix(url, &[&spec])?;
                self.local().list_refs(&staging)?
            }
        };
        let ids: Vec<ObjectId> = heads.iter().map(|(_, id)| *id).collect();
        let (commits, events) = self
            .wal
            .incoming_many(&ids)
            .map_err(|e| self.rejected(&format!("{}*", self.heads_prefix()), e))?;
        let merge = self.wal.merge_heads(&ids)?;
        Ok(SyncReport {
            heads_seen: heads.len(),
            commits_received: commits,
            events_received: events,
            merge: Some(merge),
            new_head: self.wal.head()?,
            ..SyncReport::default()
        })
    }

    /// Points a staging ref at `id` (staging refs mirror the remote; they
    /// are ours to overwrite).
    fn set_staging(&self, name: &str, id: ObjectId) -> Result<()> {
        for _ in 0..self.max_attempts {
            let current = self.local().ref_target(name)?;
            if current == Some(id) {
                return Ok(());
            }
            let expected = current.map_or(Expected::MustNotExist, Expected::MustBe);
            match self.local().update_ref(name, expected, id, "larder: fetch") {
                Ok(()) => return Ok(()),
                Err(e) if e.is_conflict() || e.is_retryable() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Publishes the local log's head at our own head ref on the remote,
    /// copying what the remote lacks first. Never forced: if the remote ref
    /// is not in our history, [`SyncError::Diverged`].
    pub fn push(&self) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let Some(head) = self.wal.head()? else {
            return Ok(report);
        };
        report.new_head = Some(head);
        let name = self.head_ref();
        match &self.transport {
            Transport::File(remote) => {
                for attempt in 0..self.max_attempts {
                    let current = remote.ref_target(&name)?;
                    if current == Some(head) {
                        return Ok(report);
                    }
                    if let Some(c) = current
                        && (!self.local().has_object(c) || !self.wal.is_ancestor(c, head)?)
                    {
                        return Err(SyncError::Diverged {
                            remote: self.remote.clone(),
                            head_ref: name,
                            remote_head: c,
                        });
                    }
                    let (commits, events) = self.wal.count_between(head, current)?;
                    report.commits_sent = commits;
                    report.events_sent = events;
                    report.objects_sent +=
                        remote.copy_reachable_from(self.local(), &[head])? as u64;
                    let expected = current.map_or(Expected::MustNotExist, Expected::MustBe);
                    match remote.update_ref(&name, expected, head, "larder: push") {
                        Ok(()) => {
                            report.pushed = true;
                            report.retries = attempt;
                            return Ok(report);
                        }
                        Err(e) if e.is_conflict() || e.is_retryable() => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(SyncError::Remote {
                    remote: self.remote.clone(),
                    reason: format!("{name} kept changing"),
                })
            }
            Transport::Network(url) => match self.local().push_with_git(url, head, &name, None)? {
                PushOutcome::Updated => {
                    report.pushed = true;
                    Ok(report)
                }
                PushOutcome::UpToDate => Ok(report),
                PushOutcome::Lost(reason) => Err(SyncError::Remote {
                    remote: self.remote.clone(),
                    reason: format!("push of {name} rejected ({reason}); pull first"),
                }),
            },
        }
    }

    /// Pull, then push.
    pub fn sync(&self) -> Result<SyncReport> {
        let pulled = self.pull()?;
        let pushed = self.push()?;
        Ok(SyncReport {
            commits_sent: pushed.commits_sent,
            events_sent: pushed.events_sent,
            objects_sent: pushed.objects_sent,
            pushed: pushed.pushed,
            retries: pulled.retries + pushed.retries,
            new_head: self.wal.head()?,
            ..pulled
        })
    }
}

/// Merges log `from` into log `into` (two logs in one repository, e.g. a
/// per-branch log `issues@feature` into `issues@main`) with the same CRDT
/// union as a pull: verified, then fast-forward or one deterministic merge.
pub fn merge_log(from: &WalManager, into: &WalManager) -> Result<MergeOutcome> {
    let Some(head) = from.head()? else {
        return Ok(MergeOutcome::UpToDate);
    };
    into.incoming(head)?;
    Ok(into.merge(head)?)
}
