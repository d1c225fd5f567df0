//! larder: an event-sourced application's log inside a git repository.
//!
//! [`Larder`] is the one handle: open or create a repository, append typed
//! events to named logs (actor identity and hybrid-logical-clock timestamps
//! filled in), sync with remotes, take snapshots, keep a projection's view,
//! and take lease locks. Every layer is re-exported, so depending on
//! `larder` alone gives everything.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let larder = larder::Larder::init(dir.path())?;
//! let log = larder.log("notes")?;
//! log.append("note.added", &"hello")?;
//! assert_eq!(log.events()?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

/// The README's library example, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use larder_codec as codec;
pub use larder_crdt as crdt;
pub use larder_git as git;
pub use larder_lock as lock;
pub use larder_snapshot as snapshot;
pub use larder_sync as sync;
pub use larder_wal as wal;

use codec::{ActorId, Envelope, Payload};
use crdt::{Hlc, SystemClock};
use git::{GitRepo, ObjectId};

/// Any failure of any layer, with the layer's own typed error inside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LarderError {
    /// Encoding or decoding events.
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    /// Clocks and projections.
    #[error(transparent)]
    Crdt(#[from] crdt::CrdtError),
    /// The git backend.
    #[error(transparent)]
    Git(#[from] git::GitError),
    /// The write-ahead log.
    #[error(transparent)]
    Wal(#[from] Box<wal::WalError>),
    /// Sync.
    #[error(transparent)]
    Sync(#[from] Box<sync::SyncError>),
    /// Snapshots and the view.
    #[error(transparent)]
    Snapshot(#[from] Box<snapshot::SnapshotError>),
    /// Locks.
    #[error(transparent)]
    Lock(#[from] Box<lock::LockError>),
    /// A log that has no commits where one was required.
    #[error(
        "no log named {log} in this repository (known: {known}); append to it first or check the name"
    )]
    NoSuchLog {
        /// The name asked for.
        log: String,
        /// The logs that exist, comma-separated.
        known: String,
    },
    /// Reading or writing the actor identity file.
    #[error("actor identity {path}: {reason}")]
    Identity {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

macro_rules! boxed_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for LarderError {
            fn from(e: $t) -> Self {
                LarderError::$v(Box::new(e))
            }
        }
    )*};
}
boxed_from!(wal::WalError => Wal, sync::SyncError => Sync, snapshot::SnapshotError => Snapshot, lock::LockError => Lock);

/// Shorthand for results whose error is [`LarderError`].
pub type Result<T, E = LarderError> = std::result::Result<T, E>;

/// A repository holding larder logs.
pub struct Larder {
    repo: GitRepo,
    actor: ActorId,
    clock: Arc<Mutex<Hlc<SystemClock>>>,
}

impl std::fmt::Debug for Larder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Larder")
            .field("git_dir", &self.repo.git_dir())
            .field("actor", &self.actor)
            .finish()
    }
}

impl Larder {
    /// Opens an existing repository (work tree or git dir, bare or not).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_repo(GitRepo::open(path)?)
    }

    /// Creates a repository with a work tree at `path`, or opens it.
    pub fn init(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_repo(GitRepo::init(path)?)
    }

    /// Creates a bare repository at `path`, or opens it.
    pub fn init_bare(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_repo(GitRepo::init_bare(path)?)
    }

    fn with_repo(repo: GitRepo) -> Result<Self> {
        let actor = load_or_create_actor(&repo)?;
        Ok(Self {
            repo,
            actor,
            clock: Arc::new(Mutex::new(Hlc::new(SystemClock))),
        })
    }

    /// This replica's actor id: created on first use (`actor-<16 hex>`) and
    /// stored in `<git dir>/larder/actor`, so it survives restarts and never
    /// travels with pushes.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// The repository.
    pub fn repo(&self) -> &GitRepo {
        &self.repo
    }

    /// The names of the logs that have at least one commit.
    pub fn logs(&self) -> Result<Vec<String>> {
        Ok(self
            .repo
            .list_refs("refs/larder/")?
            .into_iter()
            .filter_map(|(r, _)| {
                r.strip_prefix("refs/larder/")?
                    .strip_suffix("/wal")
                    .map(str::to_owned)
            })
            .filter(|name| !name.contains('/'))
            .collect())
    }

    /// The log `name`, which must already have commits ([`LarderError::NoSuchLog`] otherwise).
    pub fn existing_log(&self, name: &str) -> Result<Log> {
        let log = self.log(name)?;
        if log.wal.head()?.is_none() {
            let known = self.logs()?;
            return Err(LarderError::NoSuchLog {
                log: name.into(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        Ok(log)
    }

    /// The log named `name` (`refs/larder/<name>/wal`).
    pub fn log(&self, name: &str) -> Result<Log> {
        let wal = wal::WalManager::new(self.repo.clone(), name)?;
        Ok(Log {
            wal,
            actor: self.actor.clone(),
            clock: self.clock.clone(),
        })
    }

    /// Log `name` with projection `P` registered: every append and sync
    /// through the returned handle also updates `P`'s redb view, and
    /// applies `policy` for automatic snapshots.
    pub fn log_with_view<P: crdt::Projection + Default>(
        &self,
        name: &str,
        policy: snapshot::SnapshotPolicy,
    ) -> Result<ViewedLog<P>> {
        let log = self.log(name)?;
        let snapshots =
            snapshot::SnapshotManager::with_clock(log.wal.clone(), Arc::new(SystemClock), policy);
        let mut view = snapshot::View::<P>::open(snapshot::SnapshotManager::new(log.wal.clone()))?;
        view.update()?;
        Ok(ViewedLog {
            log,
            view,
            snapshots,
        })
    }

    /// A sync manager for log `name` with `remote` (git-config name, path or URL).
    pub fn sync(&self, name: &str, remote: &str) -> Result<sync::SyncManager> {
        Ok(sync::SyncManager::new(
            self.log(name)?.wal,
            self.actor.clone(),
            remote,
        )?)
    }

    /// Snapshots of log `name`.
    pub fn snapshots(&self, name: &str) -> Result<snapshot::SnapshotManager> {
        Ok(snapshot::SnapshotManager::new(self.log(name)?.wal))
    }

    /// Lease locks decided by this repository (agents sharing one clone).
    pub fn locks(&self) -> lock::LockManager {
        lock::LockManager::new(
            lock::Authority::Local(self.repo.clone()),
            self.actor.clone(),
        )
    }

    /// Lease locks decided by `remote` (path, `file://` or network URL).
    pub fn locks_on(&self, remote: &str) -> Result<lock::LockManager> {
        let authority = lock::Authority::remote(&self.repo, remote)?;
        Ok(lock::LockManager::new(authority, self.actor.clone()))
    }
}

fn load_or_create_actor(repo: &GitRepo) -> Result<ActorId> {
    let path = repo.git_dir().join("larder").join("actor");
    let err = |reason: String| LarderError::Identity {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(ActorId::new(text.trim())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed = format!(
                "{}:{}:{:?}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
                repo.git_dir()
            );
            let hash = codec::blake2b256(&[seed.as_bytes()]);
            let id = codec::to_hex(&hash[..8]);
            let actor = ActorId::new(format!("actor-{id}"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            // Create-new: if another process won the race, use its id.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    writeln!(f, "{actor}").map_err(|e| err(e.to_string()))?;
                    Ok(actor)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
                    Ok(ActorId::new(text.trim())?)
                }
                Err(e) => Err(err(e.to_string())),
            }
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// One log, appending as this replica's actor with its clock.
pub struct Log {
    wal: wal::WalManager,
    actor: ActorId,
    clock: Arc<Mutex<Hlc<SystemClock>>>,
}

impl Log {
    /// Appends one event of `kind` with any serde `data`; returns the commit.
    pub fn append<T: Serialize + ?Sized>(&self, kind: &str, data: &T) -> Result<ObjectId> {
        self.append_batch(&[(kind, Payload::from_serde(data)?)])
    }

    /// Appends several events as one batch (one chunk, one commit).
    ///
    /// Before stamping, the clock observes every event the log has gained
    /// since it last looked — whether it came from this handle, a sync, or
    /// another process — so a new event always sorts after every event the
    /// replica already holds (causality, whatever the wall clocks say).
    pub fn append_batch(&self, events: &[(&str, Payload)]) -> Result<ObjectId> {
        let mut envelopes = Vec::with_capacity(events.len());
        let observed_head;
        let last;
        {
            let mut clock = self
                .clock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            observed_head = self.observe_log(&mut clock)?;
            for (kind, payload) in events {
                envelopes.push(Envelope::new(
                    self.actor.clone(),
                    clock.now()?,
                    *kind,
                    payload.clone(),
                )?);
            }
            last = clock.last();
        }
        let commit = self.wal.append(&envelopes)?;
        // Covered: everything up to the head observed before appending; the
        // next append reads from there (including this commit). A cache: if
        // it is lost or torn, the next append rereads the log.
        if let Some(head) = observed_head {
            let _ = std::fs::write(
                self.clock_file(),
                format!("{head} {} {}\n", last.millis, last.counter),
            );
        }
        Ok(commit)
    }

    fn clock_file(&self) -> std::path::PathBuf {
        self.wal
            .repo()
            .git_dir()
            .join("larder")
            .join(self.wal.log())
            .join("clock")
    }

    /// Moves `clock` past every event in the log that it has not seen yet
    /// and returns the head it covered. Timestamps beyond the clock's drift
    /// bound are not adopted (the drift guard), and do not block appends.
    fn observe_log(&self, clock: &mut Hlc<SystemClock>) -> Result<Option<ObjectId>> {
        let Some(head) = self.wal.head()? else {
            return Ok(None);
        };
        let cached = std::fs::read_to_string(self.clock_file())
            .ok()
            .and_then(|text| {
                let mut parts = text.split_whitespace();
                let commit = ObjectId::from_hex(parts.next()?.as_bytes()).ok()?;
                let millis = parts.next()?.parse().ok()?;
                let counter = parts.next()?.parse().ok()?;
                Some((commit, codec::Timestamp::new(millis, counter)))
            });
        let since = match cached {
            Some((commit, ts)) => {
                let _ = clock.observe(ts, "clock cache");
                Some(commit)
            }
            None => None,
        };
        if since == Some(head) {
            return Ok(Some(head));
        }
        let commits = match wal::commits_between(self.wal.repo(), head, since, self.wal.ref_name())
        {
            Ok(c) => c,
            // The cached position left the history: read everything.
            Err(wal::WalError::NotInLog { .. }) => {
                wal::commits_between(self.wal.repo(), head, None, self.wal.ref_name())?
            }
            Err(e) => return Err(e.into()),
        };
        for commit in commits {
            for e in commit?.events {
                let _ = clock.observe(e.timestamp(), e.actor().as_str());
            }
        }
        Ok(Some(head))
    }

    /// Every event in the CRDT total order (the same on every replica).
    pub fn events(&self) -> Result<Vec<Envelope>> {
        let mut events = self.wal.read_all()?;
        crdt::sort_events(&mut events);
        Ok(events)
    }

    /// Folds every event, in the total order, into projection `P`.
    pub fn project<P: crdt::Projection + Default>(&self) -> Result<P> {
        let mut p = crdt::Projector::<P>::default();
        p.apply_all(&self.events()?)?;
        Ok(p.into_state())
    }

    /// The write-ahead log underneath.
    pub fn wal(&self) -> &wal::WalManager {
        &self.wal
    }
}

/// A log with a registered projection whose redb view is kept up to date
/// (see [`Larder::log_with_view`]).
pub struct ViewedLog<P: crdt::Projection> {
    log: Log,
    view: snapshot::View<P>,
    snapshots: snapshot::SnapshotManager,
}

impl<P: crdt::Projection + Default> ViewedLog<P> {
    /// Appends one event, then updates the view (and snapshots if due).
    pub fn append<T: Serialize + ?Sized>(&mut self, kind: &str, data: &T) -> Result<ObjectId> {
        let commit = self.log.append(kind, data)?;
        self.refresh()?;
        Ok(commit)
    }

    /// Appends a batch, then updates the view (and snapshots if due).
    pub fn append_batch(&mut self, events: &[(&str, Payload)]) -> Result<ObjectId> {
        let commit = self.log.append_batch(events)?;
        self.refresh()?;
        Ok(commit)
    }

    /// Syncs with `remote` as `actor`, then updates the view.
    pub fn sync(&mut self, larder: &Larder, remote: &str) -> Result<sync::SyncReport> {
        let report =
            sync::SyncManager::new(self.log.wal.clone(), larder.actor().clone(), remote)?.sync()?;
        self.refresh()?;
        Ok(report)
    }

    /// Folds whatever the log gained into the view; snapshots per policy.
    pub fn refresh(&mut self) -> Result<u64> {
        let applied = self.view.update()?;
        self.snapshots.maybe_create::<P>()?;
        Ok(applied)
    }

    /// The projection's current state.
    pub fn state(&self) -> &P {
        self.view.state()
    }

    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The view (position, rebuild).
    pub fn view_mut(&mut self) -> &mut snapshot::View<P> {
        &mut self.view
    }
}
