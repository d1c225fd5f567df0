//! [`SyncManager`]: pull, merge and push one log through one remote.

use larder_codec::{ActorId, blake2b256};
use larder_git::{DamagedPack, GitError, GitRepo, ObjectId, RemoteLocation};
use larder_wal::{MergeOutcome, WalManager};

use crate::{Result, SyncError};

/// How objects and refs travel to and from the remote.
#[derive(Clone, Debug)]
pub enum Transport {
    /// A repository on this machine's file system (path or `file://` URL),
    /// used directly: objects are copied between object databases and refs
    /// moved by compare-and-swap. Pure Rust, no `git` process.
    File(Box<GitRepo>),
    /// A network URL (`ssh://`, scp-style `user@host:path`, `git://`,
    /// `http://`, `https://`): fetched into staging refs with gix's own
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
    /// Remote heads quarantined by the pull: not merged, each with why.
    pub rejected: Vec<RejectedHead>,
    /// Staging refs the pull could not update or prune because a leftover
    /// lock file holds them (the merge used the fetched ids regardless).
    pub stale_refs: Vec<StaleRef>,
    /// Pack upkeep after the transfer: of the local repository after a
    /// pull, of a file-system remote after a push (see [`Upkeep`]).
    pub upkeep: Vec<Upkeep>,
}

/// Pack upkeep of one repository after a transfer into it.
///
/// Transfers arrive as packs, and a repository that only receives (a bare
/// remote, a pull-only replica) never runs the consolidation appends
/// trigger, so sync runs it: loose objects are packed once many have piled
/// up, and packs are merged by size tier (the WAL's consolidation policy),
/// under the repository's consolidation lock (skipped if another process
/// holds it). It never fails the transfer, which has already succeeded:
/// problems are reported here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Upkeep {
    /// The repository's git directory.
    pub repository: String,
    /// Loose objects moved into a pack.
    pub loose_objects: usize,
    /// Packs merged into larger ones.
    pub packs_merged: usize,
    /// Another process was consolidating it, so nothing was done.
    pub busy: bool,
    /// Damaged packs left alone (each named); the others were merged.
    pub damaged: Vec<DamagedPack>,
    /// Why the upkeep failed, if it did.
    pub error: Option<String>,
}

/// How many lock waits (gix waits ~0.1 s each) a staging ref gets before
/// its lock is taken to be a leftover.
pub(crate) const STAGING_LOCK_WAITS: u32 = 3;

/// A local ref a pull could not update because its `<ref>.lock` stayed
/// held: most likely left by a killed process. Delete the lock file if no
/// larder or git process is running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleRef {
    /// The ref.
    pub reference: String,
    /// The lock file in the way.
    pub lock_path: String,
}

impl std::fmt::Display for StaleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stays locked by {}: if no larder or git process is running, delete it",
            self.reference, self.lock_path
        )
    }
}

/// A remote head a pull refused: its new commits failed verification, or
/// its objects could not be fetched. Nothing of it was merged; the other
/// heads were. It heals by itself once the head's owner deletes or fixes
/// it on the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedHead {
    /// The head's ref on the remote (`refs/<ns>/<log>/heads/<actor>`).
    pub head_ref: String,
    /// The actor the ref belongs to (the last component).
    pub actor: String,
    /// The commit the head pointed at.
    pub head: ObjectId,
    /// The bad commit inside its history, when verification named one.
    pub commit: Option<ObjectId>,
    /// The path inside that commit's tree, when known.
    pub path: Option<String>,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for RejectedHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (actor {}) at {}",
            self.head_ref, self.actor, self.head
        )?;
        if let Some(c) = self.commit {
            write!(f, ", commit {c}")?;
        }
        if let Some(p) = &self.path {
            write!(f, ", {p}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A per-event check a pull runs on every event a remote head brings (after
/// the WAL's own verification), e.g. a signature policy from the facade:
/// `Err(reason)` quarantines the head as a [`RejectedHead`] whose reason
/// names the event. Shared (`Arc`) so a manager stays cheap to build.
pub type EventCheck = std::sync::Arc<
    dyn Fn(&larder_codec::Envelope) -> std::result::Result<(), String> + Send + Sync,
>;

/// (names of the heads the remote advertises, heads whose objects arrived).
pub(crate) type Fetched = (Vec<String>, Vec<(String, ObjectId)>);

/// Synchronises one log with one remote.
///
/// Every replica publishes its log's head at `refs/<ns>/<log>/heads/<actor>`
/// on the remote — its own ref, which only it writes, so pushes from many
/// actors never contend. A pull fetches every head into staging refs
/// `refs/remotes/<remote>/<ns>/<log>/heads/<actor>`, verifies every new
/// commit (chunk ids, event ids, layout), and only then merges them into
/// the local log (fast-forward, or one deterministic merge commit).
pub struct SyncManager {
    pub(crate) wal: WalManager,
    pub(crate) actor: ActorId,
    pub(crate) remote: String,
    pub(crate) remote_name: String,
    pub(crate) transport: Transport,
    pub(crate) max_attempts: u32,
    pub(crate) event_check: Option<EventCheck>,
}

impl std::fmt::Debug for SyncManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncManager")
            .field("wal", &self.wal)
            .field("actor", &self.actor)
            .field("remote", &self.remote)
            .field("remote_name", &self.remote_name)
            .field("transport", &self.transport)
            .field("max_attempts", &self.max_attempts)
            .field("event_check", &self.event_check.is_some())
            .finish()
    }
}

impl SyncManager {
    /// Syncs `wal` as `actor` with `remote`, resolved by git's rules
    /// ([`GitRepo::resolve_remote`]): the name of a remote in the
    /// repository's git config, a path (relative ones from the work tree's
    /// top, or the directory the repository was opened from), a `file://`
    /// URL — these use [`Transport::File`] — or an `ssh://`, scp-style
    /// `user@host:path`, `git://`, `http://` or `https://` URL
    /// ([`Transport::Network`]). A path without a repository, an unknown
    /// scheme, or http(s) in a build without the `https` feature is an
    /// error naming the remote; nothing is contacted here.
    pub fn new(wal: WalManager, actor: ActorId, remote: &str) -> Result<Self> {
        let resolved = wal.repo().resolve_remote(remote)?;
        let remote_name = match &resolved.name {
            Some(name) => name.clone(),
            None => {
                let hash = blake2b256(&[resolved.key().as_bytes()]);
                format!("url-{}", larder_codec::to_hex(&hash[..8]))
            }
        };
        let transport = match &resolved.location {
            RemoteLocation::Local(_) => {
                let known = wal.repo().configured_remotes();
                Transport::File(Box::new(resolved.open_local(&known)?))
            }
            RemoteLocation::Network { url, scheme } => {
                if scheme.needs_http_client() && !larder_git::HTTP_FETCH {
                    return Err(GitError::UnsupportedRemote {
                        remote: remote.into(),
                        reason: format!(
                            "{url}: http(s) remotes need larder built with the `https` feature (larder, larder-sync or larder-git); the larder command has it"
                        ),
                    }
                    .into());
                }
                Transport::Network(url.clone())
            }
        };
        Ok(Self {
            wal,
            actor,
            remote: remote.into(),
            remote_name,
            transport,
            max_attempts: 100,
            event_check: None,
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
            event_check: None,
        }
    }

    /// The same manager, running `check` on every event each pull brings
    /// in: a head carrying an event the check refuses is quarantined
    /// ([`SyncReport::rejected`], reason naming the commit, chunk and
    /// event) and the other heads merge as usual. Events already in the
    /// local log are not checked again. This crate knows nothing of what is
    /// checked (the facade passes its signature policy).
    pub fn with_event_check(mut self, check: EventCheck) -> Self {
        self.event_check = Some(check);
        self
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

    pub(crate) fn local(&self) -> &GitRepo {
        self.wal.repo()
    }

    /// Pull, then push.
    ///
    /// If the push fails after the pull merged, the error is
    /// [`SyncError::PushAfterPull`], carrying the pull's report: the local
    /// log did change. Retrying is safe (a pull and a push are idempotent).
    pub fn sync(&self) -> Result<SyncReport> {
        self.sync_with(&|_| {})
    }

    /// [`SyncManager::sync`] with the pull's progress reported as in
    /// [`SyncManager::pull_with`].
    pub fn sync_with(&self, progress: &dyn Fn(u64)) -> Result<SyncReport> {
        let pulled = self.pull_with(progress)?;
        let pushed = match self.push() {
            Ok(pushed) => pushed,
            Err(source) => {
                return Err(SyncError::PushAfterPull {
                    pulled: Box::new(pulled),
                    source: Box::new(source),
                });
            }
        };
        Ok(SyncReport {
            commits_sent: pushed.commits_sent,
            events_sent: pushed.events_sent,
            objects_sent: pushed.objects_sent,
            pushed: pushed.pushed,
            retries: pulled.retries + pushed.retries,
            new_head: self.wal.head()?,
            upkeep: pulled.upkeep.into_iter().chain(pushed.upkeep).collect(),
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
    into.incoming(head).map_err(|e| SyncError::Rejected {
        remote: from.repo().git_dir().display().to_string(),
        head_ref: from.ref_name().into(),
        source: Box::new(e),
    })?;
    Ok(into.merge(head)?)
}
