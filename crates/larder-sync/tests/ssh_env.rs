//! The ssh program from outside the repository's config — `core.sshCommand`
//! in the global config (`GIT_CONFIG_GLOBAL`), then `GIT_SSH_COMMAND` in the
//! environment: gix's fetch (whose repositories are opened isolated from
//! both) and `git push` must run the same program, as git does. One test in
//! its own binary, because it sets process-wide variables.

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
fn global_config_and_git_ssh_command_drive_fetch_and_push() {
    let root = tempdir();
    let bare = root.path().join("log.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    let ssh = fake_ssh(root.path());
    let global = root.path().join("global.gitconfig");
    std::fs::write(
        &global,
        format!("[core]\n\tsshCommand = {}\n", ssh.display()),
    )
    .unwrap();
    // SAFETY: the only test in this binary; set before any thread spawns
    // a process.
    unsafe { std::env::set_var("GIT_CONFIG_GLOBAL", &global) };
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
    // Now from the environment, which wins over the global config (made
    // useless here).
    std::fs::write(&global, "[core]\n\tsshCommand = false\n").unwrap();
    // SAFETY: as above; no other thread is running.
    unsafe { std::env::set_var("GIT_SSH_COMMAND", &ssh) };
    assert!(b.sync().unwrap().pushed);
    assert!(a.pull().unwrap().merge.is_some());
    assert_eq!(a.wal().head().unwrap(), b.wal().head().unwrap());
}
