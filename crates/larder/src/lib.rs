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

mod at;
mod branch;
pub mod crypt;
mod identity;
mod import;
mod log;
mod signing;
mod watch;

use std::path::Path;
use std::sync::{Arc, Mutex};

pub use at::LogAt;

/// The git config key that makes every write of a repository durable
/// against power loss (`true`: [`wal::Durability::Fsync`]).
pub const FSYNC_CONFIG: &str = "larder.fsync";

/// The git config key choosing the WAL commit format new commits are
/// written in: `2` (the default) or `1`, for a log shared with builds
/// older than format 2 (they refuse format-2 commits). Both are read.
pub const WAL_FORMAT_CONFIG: &str = "larder.walFormat";
pub use branch::{BRANCH_LOGS_CONFIG, branch_suffix};
pub use crypt::{Data, Decryptor, KeyId, LogEvent, LogKey};
pub use identity::{ACTOR_CONFIG, ACTOR_ENV, ActorSource};
pub use import::{ImportReport, Imported};
pub use larder_kv::At;
pub use log::{Committed, Log, ViewedLog};
pub use signing::{REQUIRE_SIGNATURES_CONFIG, SIGNING_KEY_CONFIG, SignatureIssue, SignatureReport};
pub use watch::{DEFAULT_POLL, LogWatch, Watched};

pub use larder_codec as codec;
pub use larder_crdt as crdt;
pub use larder_git as git;
pub use larder_kv as kv;
pub use larder_lock as lock;
pub use larder_sign as sign;
pub use larder_snapshot as snapshot;
pub use larder_sync as sync;
pub use larder_wal as wal;

use codec::ActorId;
use crdt::{Clock, Hlc, SystemClock};
use git::GitRepo;
use identity::Identity;
use log::SharedHlc;

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
    /// The key-value store.
    #[error(transparent)]
    Kv(#[from] Box<kv::KvError>),
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
    /// A commit given as a point in a log's past is not in its history.
    #[error("{at} is not a commit of log {log}")]
    NotInLog {
        /// The commit asked for.
        at: String,
        /// The log's ref.
        log: String,
    },
    /// A time given as a point in a log's past is before its first event.
    #[error("{at} is before log {log} began{}", first.as_ref().map(|f| format!(" (its first event is at {f})")).unwrap_or_default())]
    BeforeLog {
        /// The time asked for.
        at: String,
        /// The log's ref.
        log: String,
        /// The log's earliest event time, when it has events.
        first: Option<String>,
    },
    /// An event of a history being imported is not valid; nothing was
    /// written.
    #[error("import: event {index}: {reason}")]
    Import {
        /// Its position in the input (0-based).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A watch position (saved from an earlier watch) is no longer in the
    /// log's history: the log was rewritten, or the position is from
    /// another log.
    #[error(
        "watch position {position} is not in the history of log {log}; start again from the beginning or from the current head"
    )]
    WatchPositionGone {
        /// The position given.
        position: String,
        /// The log's ref.
        log: String,
    },
    /// Keys, signatures and the trust policy.
    #[error(transparent)]
    Sign(#[from] sign::SignError),
    /// A git config value larder cannot use.
    #[error("git config {key}: {reason}")]
    Config {
        /// The config key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A log key (a key file, an entry of `LARDER_LOG_KEY`, a key line
    /// given to import) is not a valid key line.
    #[error("log key in {origin} is malformed: {reason}")]
    KeyMalformed {
        /// Where the key came from: the file's path, or the variable.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file cannot be read or written (or no random key could be
    /// drawn).
    #[error("log key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The log is encrypted (this replica has its marker, or saw sealed
    /// events) but this replica has no key for it: appending would write
    /// plaintext into an encrypted log, so nothing was written.
    #[error(
        "log {log} is encrypted and this replica has no key for it (no {path}, no LARDER_LOG_KEY entry): import it with `larder crypt import --log {log} <KEYLINE>`; nothing was written"
    )]
    KeyMissing {
        /// The log.
        log: String,
        /// Where its key file would be.
        path: String,
    },
    /// The log already has a different key here; replacing it would make
    /// the events sealed with it unreadable.
    #[error("log {log} already has a key ({path}); it was left as it is")]
    KeyExists {
        /// The log.
        log: String,
        /// Its key file.
        path: String,
    },
    /// An event is sealed with another key than the one this replica holds.
    #[error(
        "event {event} of log {log} is sealed with key {sealed_with}, but this replica's key is {have}: wrong key"
    )]
    WrongKey {
        /// The log.
        log: String,
        /// The event id (hex).
        event: String,
        /// The key id in the sealed payload.
        sealed_with: String,
        /// The id of the key held here.
        have: String,
    },
    /// An event's sealed payload does not decrypt with the log key.
    #[error("event {event} of log {log} cannot be decrypted: {reason}")]
    Decrypt {
        /// The log.
        log: String,
        /// The event id (hex).
        event: String,
        /// Why.
        reason: String,
    },
    /// A payload could not be sealed; nothing was written.
    #[error("log {log}: cannot encrypt: {reason}")]
    Encrypt {
        /// The log.
        log: String,
        /// Why.
        reason: String,
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
boxed_from!(wal::WalError => Wal, sync::SyncError => Sync, snapshot::SnapshotError => Snapshot, lock::LockError => Lock, kv::KvError => Kv);

/// Shorthand for results whose error is [`LarderError`].
pub type Result<T, E = LarderError> = std::result::Result<T, E>;

/// A repository holding larder logs.
///
/// Opening a repository writes nothing: the actor id is created on the
/// first write that needs it (an append, a sync, a lock), so a read-only
/// look at any repository — a bare remote included — leaves it as it was.
pub struct Larder {
    repo: GitRepo,
    /// How every log's appends (and merges, and pulls) reach the disk.
    durability: wal::Durability,
    identity: Arc<Identity>,
    keys: Arc<signing::Keys>,
    wall: Arc<dyn Clock>,
    clock: SharedHlc,
}

impl std::fmt::Debug for Larder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Larder")
            .field("git_dir", &self.repo.git_dir())
            .field("actor", &self.identity.existing().ok().flatten())
            .finish()
    }
}

impl Larder {
    /// Opens the repository `path` belongs to, found as git finds it: `path`
    /// itself, then each parent, as a work tree or a git dir (bare or not).
    /// The environment is not read; see [`Larder::open_from_env`]. Relative
    /// remote paths resolve from the work tree's top when `path` is inside
    /// it, else from `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::with_repo(GitRepo::discover(path)?))
    }

    /// Opens the repository as the `git` command would when started in
    /// `dir` (`git -C dir`): `GIT_DIR` (relative to `dir`) and
    /// `GIT_WORK_TREE` when set, else the search upward from `dir`.
    pub fn open_from_env(dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::with_repo(GitRepo::discover_with_env(dir)?))
    }

    /// Sets up `path` for larder: the repository it already belongs to (a
    /// subdirectory of a work tree, or of a bare repository, uses that
    /// repository — never a nested one), else a new repository with a work
    /// tree at `path`.
    pub fn init(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::with_repo(GitRepo::discover_or_init(path)?))
    }

    /// Creates a bare repository at `path`, or opens it.
    pub fn init_bare(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::with_repo(GitRepo::init_bare(path)?))
    }

    fn with_repo(repo: GitRepo) -> Self {
        let configured = repo
            .gix()
            .config_snapshot()
            .string(identity::ACTOR_CONFIG)
            .map(|v| v.to_string());
        let identity = Arc::new(Identity::new(repo.git_dir(), configured));
        let signing_key = repo
            .gix()
            .config_snapshot()
            .string(signing::SIGNING_KEY_CONFIG)
            .map(|v| v.to_string());
        let keys = Arc::new(signing::Keys::new(repo.git_dir(), signing_key));
        let wall: Arc<dyn Clock> = Arc::new(SystemClock);
        let durability = if repo
            .gix()
            .config_snapshot()
            .boolean(FSYNC_CONFIG)
            .unwrap_or(false)
        {
            wal::Durability::Fsync
        } else {
            wal::Durability::Buffered
        };
        Self {
            durability,
            repo,
            identity,
            keys,
            clock: Arc::new(Mutex::new(Hlc::new(wall.clone()))),
            wall,
        }
    }

    /// The same handle timed by `clock` instead of the system clock: the
    /// hybrid logical clock of every append, lock leases and snapshot
    /// policies all read it (tests run on a simulated clock this way).
    /// Logs taken from the handle before the call keep the old clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Arc::new(Mutex::new(Hlc::new(clock.clone())));
        self.wall = clock;
        self
    }

    /// The same handle writing with `durability`, whatever `git config
    /// larder.fsync` says: [`wal::Durability::Fsync`] flushes every
    /// append's pack and ref (and the ref's directories), every merge's
    /// ref and every pack a pull copies before returning. Logs taken from
    /// the handle before the call keep the old setting.
    pub fn with_durability(mut self, durability: wal::Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The WAL of the log named exactly `name` (no branch resolution),
    /// with this handle's durability.
    pub(crate) fn wal_named(&self, name: &str) -> Result<wal::WalManager> {
        Ok(wal::WalManager::with_options(
            self.repo.clone(),
            name,
            wal::WalOptions {
                durability: self.durability,
                format: self.wal_format()?,
                ..wal::WalOptions::default()
            },
        )?)
    }

    /// The WAL commit format this handle writes: `git config
    /// larder.walFormat` (1 or 2), format 2 when unset. Any other value is
    /// [`LarderError::Config`], so a typo never silently picks a format.
    pub fn wal_format(&self) -> Result<wal::WalFormat> {
        let config = self.repo.gix().config_snapshot();
        let Some(value) = config.string(WAL_FORMAT_CONFIG) else {
            return Ok(wal::WalFormat::default());
        };
        let text = value.to_string();
        text.trim()
            .parse::<u32>()
            .ok()
            .and_then(wal::WalFormat::from_version)
            .ok_or_else(|| LarderError::Config {
                key: WAL_FORMAT_CONFIG.into(),
                reason: format!("{text:?} is not a WAL format this build writes (1 or 2)"),
            })
    }

    /// How this handle's logs reach the disk (see [`Larder::with_durability`]).
    pub fn durability(&self) -> wal::Durability {
        self.durability
    }

    /// The same handle acting as `actor`, whatever `LARDER_ACTOR`, `git
    /// config larder.actor` or the actor file say. Logs taken from the
    /// handle before the call keep the old actor.
    pub fn with_actor(mut self, actor: ActorId) -> Self {
        let configured = self
            .repo
            .gix()
            .config_snapshot()
            .string(identity::ACTOR_CONFIG)
            .map(|v| v.to_string());
        self.identity =
            Arc::new(Identity::new(self.repo.git_dir(), configured).with_explicit(actor));
        self
    }

    /// This replica's actor id: given by [`Larder::with_actor`], else the
    /// `LARDER_ACTOR` environment variable, else `git config larder.actor`,
    /// else `<git dir>/larder/actor` — created on first use
    /// (`actor-<16 hex>`), so it survives restarts and never travels with
    /// pushes. Creating it is a write: concurrent first uses agree on one
    /// id. A copied clone gets a fresh one (see [`Larder::copied_from`]).
    pub fn actor(&self) -> Result<&ActorId> {
        self.identity.get()
    }

    /// Where [`Larder::actor`] comes from (resolving it, which may create
    /// the actor file).
    pub fn actor_source(&self) -> Result<ActorSource> {
        self.identity.source()
    }

    /// The git dir this repository's actor file was made for, when that is
    /// another repository: this one is a copy (`cp -r` of a clone), and
    /// gets a fresh actor on its first write instead of sharing one.
    /// Nothing is written by asking.
    pub fn copied_from(&self) -> Result<Option<std::path::PathBuf>> {
        self.identity.copied_from()
    }

    /// The actor id if this repository has one yet, without creating it.
    pub fn existing_actor(&self) -> Result<Option<ActorId>> {
        self.identity.existing()
    }

    /// The repository.
    pub fn repo(&self) -> &GitRepo {
        &self.repo
    }

    /// The names of the logs that have at least one commit: a log ref
    /// (`refs/larder/<log>/wal`), or — in a hub, the bare remote replicas
    /// push to — published heads (`refs/larder/<log>/heads/<actor>`).
    pub fn logs(&self) -> Result<Vec<String>> {
        let mut logs: Vec<String> = self
            .repo
            .list_refs("refs/larder/")?
            .into_iter()
            .filter_map(|(r, _)| {
                let rest = r.strip_prefix("refs/larder/")?;
                let name = rest
                    .strip_suffix("/wal")
                    .or_else(|| rest.split_once("/heads/").map(|(log, _)| log))?;
                (!name.contains('/')).then(|| name.to_owned())
            })
            .collect();
        logs.sort();
        logs.dedup();
        Ok(logs)
    }

    /// The log `name`, which must already have commits ([`LarderError::NoSuchLog`] otherwise).
    /// In a hub (no log ref, only replicas' published heads) it reads the
    /// union of the heads.
    pub fn existing_log(&self, name: &str) -> Result<Log> {
        let log = self.log(name)?;
        if log.wal.tips()?.is_empty() {
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

    /// The log named `name` (`refs/larder/<name>/wal`) — with branch-aware
    /// logs on, the current branch's (`<name>@<branch>`, see
    /// [`Larder::resolve_log_name`]).
    pub fn log(&self, name: &str) -> Result<Log> {
        let wal = self.wal_named(&self.resolve_log_name(name))?;
        Ok(Log {
            wal,
            identity: self.identity.clone(),
            keys: self.keys.clone(),
            clock: self.clock.clone(),
            clock_cache: Default::default(),
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
            snapshot::SnapshotManager::with_clock(log.wal.clone(), self.wall.clone(), policy);
        let mut view = snapshot::View::<P>::open(snapshot::SnapshotManager::new(log.wal.clone()))?;
        view.update()?;
        Ok(ViewedLog {
            log,
            view,
            snapshots,
        })
    }

    /// A sync manager for log `name` with `remote`: a git-config name, a
    /// path (relative ones resolve as git resolves them), a `file://`,
    /// `ssh://`, `git://`, `http(s)://` URL or scp-style `user@host:path`
    /// (see [`git::GitRepo::resolve_remote`]).
    ///
    /// Pulls check every incoming event under the trust policy
    /// ([`Larder::trust_policy`]) when it trusts any key or requires
    /// signatures: a head carrying an event it refuses is quarantined
    /// ([`sync::SyncReport::rejected`], reason given) and the rest merges.
    pub fn sync(&self, name: &str, remote: &str) -> Result<sync::SyncManager> {
        self.sync_manager(self.log(name)?.wal, remote)
    }

    /// The key-value store over log `name` ([`kv::DEFAULT_LOG`] is `kv`),
    /// writing as this replica's actor with its hybrid logical clock, so
    /// its writes sort after every event the replica holds.
    pub fn kv(&self, name: &str) -> Result<kv::Kv> {
        self.kv_with(name, kv::KvOptions::default())
    }

    /// The key-value store over log `name` with `options` — e.g.
    /// `Consistency::Linearizable { authority: "origin".into() }` for the
    /// linearizable mode (docs/kv.md).
    pub fn kv_with(&self, name: &str, options: kv::KvOptions) -> Result<kv::Kv> {
        Ok(kv::Kv::open(
            self.log(name)?.wal,
            self.actor()?.clone(),
            self.clock.clone(),
            options,
        )?)
    }

    /// Snapshots of log `name`.
    pub fn snapshots(&self, name: &str) -> Result<snapshot::SnapshotManager> {
        Ok(snapshot::SnapshotManager::with_clock(
            self.log(name)?.wal,
            self.wall.clone(),
            snapshot::SnapshotPolicy::OFF,
        ))
    }

    /// Lease locks decided by this repository (agents sharing one clone).
    pub fn locks(&self) -> Result<lock::LockManager> {
        Ok(lock::LockManager::with_clock(
            lock::Authority::Local(self.repo.clone()),
            self.actor()?.clone(),
            self.wall.clone(),
            lock::LockOptions::default(),
        ))
    }

    /// Lease locks decided by `remote`, resolved exactly as for
    /// [`Larder::sync`]: a git-config name (`origin`), a path, or a URL.
    pub fn locks_on(&self, remote: &str) -> Result<lock::LockManager> {
        let authority = lock::Authority::remote(&self.repo, remote)?;
        Ok(lock::LockManager::with_clock(
            authority,
            self.actor()?.clone(),
            self.wall.clone(),
            lock::LockOptions::default(),
        ))
    }
}
