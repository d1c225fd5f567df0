//! `GIT_SSH_COMMAND` in the environment, with nothing in git config: gix's
//! fetch (whose repositories are opened isolated from the environment) and
//! `git push` must both run the same program, as git does. One test in its
//! own binary, because it sets a process-wide variable.

use std::path::Path;

use larder_codec::{ActorId, Envelope, Timestamp};
use larder_crdt::KvProjection;
use larder_git::GitRepo;
use larder_sync::{SyncManager, Transport};
use larder_testkit::daemon::fake_ssh;
use larder_testkit::fixtures::tempdir;
use larder_testkit::git;
use larder_wal::WalManager;

fn replica(dir: &Path, actor: &str, url: &str) -> SyncManager {
    git(dir, &["init", "--quiet"]);
    let wal = WalManager::new(GitRepo::open(dir).unwrap(), "kv").unwrap();
    SyncManager::new(wal, ActorId::new(actor).unwrap(), url).unwrap()
}

#[test]
fn git_ssh_command_from_the_environment_drives_fetch_and_push() {
    let root = tempdir();
    let bare = root.path().join("log.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    let ssh = fake_ssh(root.path());
    // SAFETY: the only test in this binary; set before any thread spawns
    // a process.
    unsafe { std::env::set_var("GIT_SSH_COMMAND", &ssh) };
    let url = format!("ssh://example.invalid{}", bare.display());
    let (da, db) = (tempdir(), tempdir());
    let a = replica(da.path(), "alice", &url);
    let b = replica(db.path(), "bob", &url);
    assert!(matches!(a.transport(), Transport::Network(_)));
    let e = Envelope::new(
        ActorId::new("alice").unwrap(),
        Timestamp::new(1_700_000_000_000, 0),
        "kv.set",
        KvProjection::set_payload("k", &1u64).unwrap(),
    )
    .unwrap();
    a.wal().append(&[e]).unwrap();
    assert!(a.sync().unwrap().pushed, "git push ran the stand-in");
    let pulled = b.pull().unwrap();
    assert!(pulled.rejected.is_empty(), "{pulled:?}");
    assert_eq!(pulled.events_received, 1, "gix's fetch ran the stand-in");
    assert!(b.sync().unwrap().pushed);
    assert!(a.pull().unwrap().merge.is_some());
    assert_eq!(a.wal().head().unwrap(), b.wal().head().unwrap());
}
