//! Shared helpers: replicas with their own repository, one bare remote.
#![allow(dead_code)]

use std::path::Path;

use larder_codec::{ActorId, Envelope, Timestamp};
use larder_crdt::{KvProjection, Projection, Projector, StateHash, sort_events};
use larder_git::GitRepo;
use larder_sync::SyncManager;
use larder_wal::WalManager;

pub struct Replica {
    pub actor: ActorId,
    pub sync: SyncManager,
    pub dir: tempfile::TempDir,
}

impl Replica {
    pub fn new(name: &str, remote: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wal = WalManager::new(GitRepo::init(dir.path()).unwrap(), "kv").unwrap();
        let actor = ActorId::new(name).unwrap();
        let sync = SyncManager::new(wal, actor.clone(), &remote.display().to_string()).unwrap();
        Self { actor, sync, dir }
    }

    pub fn wal(&self) -> &WalManager {
        self.sync.wal()
    }

    pub fn set(&self, key: &str, value: u64, ts: Timestamp) -> Envelope {
        Envelope::new(
            self.actor.clone(),
            ts,
            "kv.set",
            KvProjection::set_payload(key, &value).unwrap(),
        )
        .unwrap()
    }

    /// The log's events in the CRDT total order.
    pub fn ordered(&self) -> Vec<Envelope> {
        let mut events = self.wal().read_all().unwrap();
        sort_events(&mut events);
        events
    }

    pub fn state_hash(&self) -> StateHash {
        let mut p = Projector::<KvProjection>::default();
        p.apply_all(&self.ordered()).unwrap();
        p.state().state_hash()
    }
}

/// A bare remote made by the `git` binary.
pub fn bare_remote() -> tempfile::TempDir {
    larder_testkit::fixtures::bare_repo()
}

/// The same tree with every chunk's last byte flipped, wherever the format
/// puts it (any `.bin` blob, at any depth); the record is unchanged, so only
/// the chunk is wrong.
#[allow(dead_code)]
pub fn flip_chunk(repo: &larder_git::GitRepo, tree: larder_git::ObjectId) -> larder_git::ObjectId {
    let mut entries = repo.read_tree(tree).unwrap();
    for e in &mut entries {
        if e.kind == larder_git::EntryKind::Tree {
            e.id = flip_chunk(repo, e.id);
        } else if e.name.ends_with(".bin") {
            let mut bytes = repo.read_blob(e.id).unwrap();
            let n = bytes.len() - 1;
            bytes[n] ^= 1;
            e.id = repo.write_blob(&bytes).unwrap();
        }
    }
    repo.write_tree(&entries).unwrap()
}
