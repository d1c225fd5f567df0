//! [`SyncManager`]: pull, merge and push one log through one remote.

use larder_codec::{ActorId, blake2b256};
use larder_git::{DamagedPack, Expected, GitError, GitRepo, ObjectId, PushOutcome, RemoteLocation};
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
const STAGING_LOCK_WAITS: u32 = 3;

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
type Fetched = (Vec<String>, Vec<(String, ObjectId)>);

/// Synchronises one log with one remote.
///
/// Every replica publishes its log's head at `refs/<ns>/<log>/heads/<actor>`
/// on the remote — its own ref, which only it writes, so pushes from many
/// actors never contend. A pull fetches every head into staging refs
/// `refs/remotes/<remote>/<ns>/<log>/heads/<actor>`, verifies every new
/// commit (chunk ids, event ids, layout), and only then merges them into
/// the local log (fast-forward, or one deterministic merge commit).
pub struct SyncManager {
    wal: WalManager,
    actor: ActorId,
    remote: String,
    remote_name: String,
    transport: Transport,
    max_attempts: u32,
    event_check: Option<EventCheck>,
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

    fn local(&self) -> &GitRepo {
        self.wal.repo()
    }

    /// Fetches every replica's head, verifies each head's new commits on its
    /// own, and merges the heads that verify into the local log (one
    /// fast-forward or one deterministic merge). A head whose new commits
    /// fail verification — or whose objects cannot be fetched — is
    /// quarantined: skipped, and named in [`SyncReport::rejected`]; it never
    /// blocks other actors' events. Nothing of a rejected head reaches the
    /// log, and once its owner deletes or fixes it, the next pull heals.
    ///
    /// Staging refs mirror the remote's heads: each fetched head is staged,
    /// and a staging ref whose head is gone from the remote is deleted.
    pub fn pull(&self) -> Result<SyncReport> {
        self.pull_with(&|_| {})
    }

    /// [`SyncManager::pull`], calling `progress(n)` as each `n` more
    /// incoming commits have been verified (for a progress display).
    pub fn pull_with(&self, progress: &dyn Fn(u64)) -> Result<SyncReport> {
        let mut rejected = Vec::new();
        let (advertised, fetched) = match &self.transport {
            Transport::File(remote) => self.fetch_file(remote, &mut rejected)?,
            Transport::Network(url) => {
                let fetched = self.fetch_network(url, &mut rejected)?;
                // gix does not flush what it fetched; the file transport
                // flushes every pack it writes.
                if self.wal.options().durability == larder_wal::Durability::Fsync {
                    self.local().sync_packs()?;
                }
                fetched
            }
        };
        let stale_refs = self.mirror_staging(&advertised, &fetched)?;
        let ids: Vec<ObjectId> = fetched.iter().map(|(_, id)| *id).collect();
        let verdicts = match &self.event_check {
            Some(check) => self
                .wal
                .incoming_each_checked(&ids, progress, &|e| check(e))?,
            None => self.wal.incoming_each_with(&ids, progress)?,
        };
        let mut good = Vec::with_capacity(ids.len());
        let (mut commits, mut events) = (0, 0);
        for ((name, id), verdict) in fetched.iter().zip(verdicts) {
            match verdict {
                Ok((c, e)) => {
                    good.push(*id);
                    commits += c;
                    events += e;
                }
                Err(e) => rejected.push(self.reject(name, *id, e.commit(), e.path(), &e)),
            }
        }
        let merge = self.wal.merge_heads(&good)?;
        let upkeep = self.upkeep(self.local()).into_iter().collect();
        Ok(SyncReport {
            heads_seen: advertised.len(),
            commits_received: commits,
            events_received: events,
            merge: Some(merge),
            new_head: self.wal.head()?,
            rejected,
            stale_refs,
            upkeep,
            ..SyncReport::default()
        })
    }

    /// A quarantine record for remote head `name` at `head`.
    fn reject(
        &self,
        name: &str,
        head: ObjectId,
        commit: Option<ObjectId>,
        path: Option<&str>,
        reason: &dyn std::fmt::Display,
    ) -> RejectedHead {
        RejectedHead {
            head_ref: name.into(),
            actor: name
                .strip_prefix(&self.heads_prefix())
                .unwrap_or(name)
                .into(),
            head,
            commit,
            path: path.map(str::to_owned),
            reason: reason.to_string(),
        }
    }

    /// File transport: copies each head's objects on its own, so a head
    /// with a corrupt or missing object is quarantined alone. Returns the
    /// heads the remote has and those whose objects arrived.
    fn fetch_file(&self, remote: &GitRepo, rejected: &mut Vec<RejectedHead>) -> Result<Fetched> {
        let refs = remote.list_refs(&self.heads_prefix())?;
        let mut fetched = Vec::with_capacity(refs.len());
        for (name, id) in &refs {
            match self.local().copy_reachable_from(remote, &[*id]) {
                Ok(_) => fetched.push((name.clone(), *id)),
                Err(
                    e @ (GitError::CorruptObject { .. }
                    | GitError::ObjectMissing { .. }
                    | GitError::WrongObjectKind { .. }
                    | GitError::DamagedPack(_)),
                ) => rejected.push(self.reject(name, *id, None, None, &e)),
                Err(other) => return Err(other.into()),
            }
        }
        let advertised = refs.into_iter().map(|(name, _)| name).collect();
        Ok((advertised, fetched))
    }

    /// Network transport: one fetch of every head into the staging refs; if
    /// that fails (one bad object fails a whole fetch), the heads are
    /// listed and fetched one by one, and those that still fail are
    /// quarantined. A remote that cannot be reached at all is an error.
    fn fetch_network(&self, url: &str, rejected: &mut Vec<RejectedHead>) -> Result<Fetched> {
        let prefix = self.heads_prefix();
        let staging = self.staging_prefix();
        let spec = format!("+{prefix}*:{staging}*");
        let together = match self.local().fetch_with_gix(url, &[&spec]) {
            Ok(mapped) => {
                let advertised = mapped.iter().map(|(n, _)| n.clone()).collect();
                return Ok((advertised, mapped));
            }
            Err(e) => e,
        };
        let listed = match self.local().ls_remote_with_git(url, &format!("{prefix}*")) {
            Ok(listed) if !listed.is_empty() => listed,
            _ => return Err(together.into()),
        };
        let mut fetched = Vec::with_capacity(listed.len());
        for (name, id) in &listed {
            let Some(actor) = name.strip_prefix(&prefix) else {
                continue;
            };
            let one = format!("+{name}:{staging}{actor}");
            match self.local().fetch_with_gix(url, &[&one]) {
                // What the fetch brought, not what the listing said: the
                // head may have moved in between.
                Ok(mapped) => fetched.push(
                    mapped
                        .into_iter()
                        .find(|(n, _)| n == name)
                        .unwrap_or((name.clone(), *id)),
                ),
                Err(e) => rejected.push(self.reject(name, *id, None, None, &e)),
            }
        }
        let advertised = listed.into_iter().map(|(name, _)| name).collect();
        Ok((advertised, fetched))
    }

    /// Stages every fetched head and deletes staging refs whose remote
    /// head is gone, so a deleted bad head stops being considered.
    fn mirror_staging(
        &self,
        advertised: &[String],
        fetched: &[(String, ObjectId)],
    ) -> Result<Vec<StaleRef>> {
        let prefix = self.heads_prefix();
        let staging = self.staging_prefix();
        let mut stale = Vec::new();
        for (name, id) in fetched {
            let actor = name.strip_prefix(&prefix).unwrap_or(name);
            stale.extend(self.set_staging(&format!("{staging}{actor}"), *id)?);
        }
        let present: std::collections::HashSet<&str> = advertised
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix))
            .collect();
        for (name, id) in self.local().list_refs(&staging)? {
            let actor = name.strip_prefix(&staging).unwrap_or(&name);
            if !present.contains(actor) {
                match self.local().delete_ref(&name, id) {
                    Ok(()) => {}
                    // Someone else pruned or moved it: theirs to keep.
                    Err(e) if e.is_conflict() => {}
                    Err(e) if e.is_retryable() => stale.push(self.stale(&name)),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(stale)
    }

    /// Points a staging ref at `id` (staging refs mirror the remote; they
    /// are ours to overwrite).
    ///
    /// A staging ref whose `.lock` stays held through a few waits (a pull
    /// killed while updating it leaves the file behind) is left as it was
    /// and returned as a [`StaleRef`] naming the lock file: merges use the
    /// fetched ids, not the staging refs, so the pull goes on — but the
    /// caller is told, instead of every later pull stalling silently.
    fn set_staging(&self, name: &str, id: ObjectId) -> Result<Option<StaleRef>> {
        let mut lock_waits = 0;
        for _ in 0..self.max_attempts {
            let current = self.local().ref_target(name)?;
            if current == Some(id) {
                return Ok(None);
            }
            let expected = current.map_or(Expected::MustNotExist, Expected::MustBe);
            match self.local().update_ref(name, expected, id, "larder: fetch") {
                Ok(()) => return Ok(None),
                Err(e) if e.is_retryable() => {
                    lock_waits += 1;
                    if lock_waits >= STAGING_LOCK_WAITS {
                        return Ok(Some(self.stale(name)));
                    }
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(self.stale(name)))
    }

    /// A staging ref held by a leftover lock file.
    fn stale(&self, name: &str) -> StaleRef {
        StaleRef {
            reference: name.into(),
            lock_path: self
                .local()
                .git_dir()
                .join(format!("{name}.lock"))
                .display()
                .to_string(),
        }
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
                self.push_file(remote, head, &name, &mut report)?;
                if report.pushed {
                    report.upkeep.extend(self.upkeep(remote));
                }
                Ok(report)
            }
            Transport::Network(url) => {
                // A ref lock on the remote is waited out a few times, with
                // growing pauses (git itself does not wait for it).
                let waits = self.wal.options().max_lock_waits.min(5);
                let mut tries = 0;
                let outcome = loop {
                    match self.local().push_with_git(url, head, &name, None) {
                        Ok(outcome) => break outcome,
                        Err(GitError::RemoteRefLocked { lock_path, .. }) => {
                            if tries >= waits {
                                return Err(SyncError::RemoteLocked {
                                    remote: self.remote.clone(),
                                    head_ref: name,
                                    lock_path,
                                });
                            }
                            std::thread::sleep(std::time::Duration::from_millis(
                                (50u64 << tries).min(800),
                            ));
                            tries += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                match outcome {
                    PushOutcome::Updated => {
                        report.pushed = true;
                        Ok(report)
                    }
                    PushOutcome::UpToDate => Ok(report),
                    PushOutcome::Lost(reason) => Err(SyncError::Remote {
                        remote: self.remote.clone(),
                        reason: format!("push of {name} rejected ({reason}); pull first"),
                    }),
                }
            }
        }
    }

    /// File transport push: copies what the remote lacks (one pack), then
    /// moves our head ref there by compare-and-swap. A lost swap is retried
    /// up to `max_attempts` times; a ref whose `<ref>.lock` stays through
    /// the WAL's `max_lock_waits` waits (gix waits ~0.1 s each) is
    /// [`SyncError::RemoteLocked`], naming the file.
    fn push_file(
        &self,
        remote: &GitRepo,
        head: ObjectId,
        name: &str,
        report: &mut SyncReport,
    ) -> Result<()> {
        let max_lock_waits = self.wal.options().max_lock_waits;
        let (mut lost, mut lock_waits) = (0u32, 0u32);
        loop {
            let current = remote.ref_target(name)?;
            if current == Some(head) {
                return Ok(());
            }
            if let Some(c) = current
                // `read_commit` confirms a miss on a freshly opened store
                // (a shared one can miss a pack a concurrent merge just
                // wrote): only a commit truly absent, or not in our
                // history, is a divergence.
                && (self.local().read_commit(c).is_err() || !self.wal.is_ancestor(c, head)?)
            {
                return Err(SyncError::Diverged {
                    remote: self.remote.clone(),
                    head_ref: name.into(),
                    remote_head: c,
                });
            }
            let (commits, events) = self.wal.count_between(head, current)?;
            report.commits_sent = commits;
            report.events_sent = events;
            report.objects_sent += remote.copy_reachable_from(self.local(), &[head])? as u64;
            let expected = current.map_or(Expected::MustNotExist, Expected::MustBe);
            match remote.update_ref(name, expected, head, "larder: push") {
                Ok(()) => {
                    report.pushed = true;
                    report.retries = lost + lock_waits;
                    return Ok(());
                }
                Err(e) if e.is_retryable() => {
                    lock_waits += 1;
                    if lock_waits > max_lock_waits {
                        return Err(SyncError::RemoteLocked {
                            remote: self.remote.clone(),
                            head_ref: name.into(),
                            lock_path: remote
                                .git_dir()
                                .join(format!("{name}.lock"))
                                .display()
                                .to_string(),
                        });
                    }
                }
                Err(e) if e.is_conflict() => {
                    lost += 1;
                    if lost >= self.max_attempts {
                        return Err(SyncError::Remote {
                            remote: self.remote.clone(),
                            reason: format!("{name} kept changing"),
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Pack upkeep of `repo` after a transfer into it (see [`Upkeep`]);
    /// `None` when the WAL's consolidation is switched off.
    fn upkeep(&self, repo: &GitRepo) -> Option<Upkeep> {
        let policy = self.wal.options().consolidation?;
        let mut upkeep = Upkeep {
            repository: repo.git_dir().display().to_string(),
            ..Upkeep::default()
        };
        match repo.maintain(&policy) {
            Ok(done) => {
                upkeep.loose_objects = done.loose_objects;
                upkeep.packs_merged = done.packs_merged;
                upkeep.busy = done.busy;
                upkeep.damaged = done.damaged;
            }
            Err(e) => upkeep.error = Some(e.to_string()),
        }
        Some(upkeep)
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
