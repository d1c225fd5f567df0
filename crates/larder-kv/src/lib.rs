//! larder's replicated key-value store over one named log.
//!
//! A [`Kv`] stores serde values under text keys. Every write is a
//! `kv.set` / `kv.delete` event (the payloads of `larder_crdt::KvProjection`,
//! so the projection, this crate and `larder kv` agree) stamped with the
//! replica's actor and hybrid logical clock; a [`Batch`] is one chunk in
//! one commit. Each key carries a [`Version`] — the (timestamp, actor,
//! event id) of its last write — which [`Kv::get`] returns,
//! [`Kv::compare_and_set`] can compare, and last-writer-wins uses to merge
//! replicas.
//!
//! Reads come from a per-key redb view under the git dir (a point read per
//! `get`; an update touches only the keys it writes), caught up from its
//! stored position on open and after every write, rebuilt from the newest
//! snapshot plus the WAL tail when it fails its checks.
//!
//! Modes ([`Consistency`]): eventual (local commits, convergence through
//! any git remote with [`Kv::sync`]) and linearizable (every operation
//! takes effect at one compare-and-swap of a chain ref on an authoritative
//! remote, reads first learn that ref's head; concurrent writers of one
//! process share swaps — `linear.rs`, `authority.rs`). `docs/kv.md` says
//! exactly what each guarantees.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use larder_kv::{Kv, KvOptions, Expect};
//! let dir = tempfile::tempdir()?;
//! let repo = larder_git::GitRepo::init(dir.path())?;
//! let wal = larder_wal::WalManager::new(repo, "kv")?;
//! let clock: Arc<dyn larder_crdt::Clock> = Arc::new(larder_crdt::SystemClock);
//! let clock = Arc::new(Mutex::new(larder_crdt::Hlc::new(clock)));
//! let actor = larder_codec::ActorId::new("alice")?;
//! let kv = Kv::open(wal, actor, clock, KvOptions::default())?;
//! kv.set("user/1", &"ada")?;
//! assert_eq!(kv.get::<String>("user/1")?.map(|e| e.value), Some("ada".into()));
//! let cas = kv.compare_and_set("user/1", Expect::Value("ada".to_string()), &"grace".to_string())?;
//! assert!(cas.swapped);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod authority;
mod error;
mod history;
mod inner;
mod kv;
mod lease;
mod linear;
mod record;
mod remote;
mod state;
mod store;
mod types;
mod watch;

pub use authority::{Authority, FileAuthority, LOCK_WAITS, NetworkAuthority, Swap, open_authority};
pub use error::{KvError, Result};
pub use kv::Kv;
pub use store::Rebuilt;
pub use types::{
    At, Batch, Cas, Change, Consistency, DEFAULT_LOG, Entry, Expect, KvOptions, MAX_KEY_LEN,
    ReadLease, SharedClock, Version,
};
pub use watch::Watch;
