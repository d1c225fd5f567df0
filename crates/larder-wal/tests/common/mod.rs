//! Helpers shared by the WAL tests: temp repositories, events, the git oracle.
#![allow(dead_code)]

use std::path::Path;

use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_git::GitRepo;
use larder_wal::WalManager;

pub fn event(actor: &str, n: u64) -> Envelope {
    Envelope::new(
        ActorId::new(actor).unwrap(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "test.event",
        Payload::from_serde(&(actor, n)).unwrap(),
    )
    .unwrap()
}

pub fn batch(actor: &str, start: u64, len: u64) -> Vec<Envelope> {
    (start..start + len).map(|n| event(actor, n)).collect()
}

pub fn wal_in(dir: &Path, bare: bool) -> WalManager {
    wal_in_format(dir, bare, larder_wal::WalFormat::default())
}

/// [`wal_in`], writing commits in `format`.
#[allow(dead_code)]
pub fn wal_in_format(dir: &Path, bare: bool, format: larder_wal::WalFormat) -> WalManager {
    let repo = if bare {
        GitRepo::init_bare(dir)
    } else {
        GitRepo::init(dir)
    }
    .unwrap();
    let options = larder_wal::WalOptions {
        format,
        ..larder_wal::WalOptions::default()
    };
    WalManager::with_options(repo, "test", options).unwrap()
}

/// The `git` binary, the interoperability oracle.
#[allow(unused_imports)]
pub use larder_testkit::git;

/// The (actor, n) pairs of a list of test events.
pub fn keys(events: &[Envelope]) -> Vec<(String, u64)> {
    events
        .iter()
        .map(|e| e.payload().deserialize::<(String, u64)>().unwrap())
        .collect()
}
