//! Every remote form through a real server on loopback: `git daemon`
//! (`git://`), `git http-backend` behind a small HTTP server (`http://`),
//! ssh through a stand-in `ssh` (`ssh://host/path` and scp-style
//! `host:path`), plus paths (relative ones resolve from the work tree's
//! top), `file://` URLs and git-config names. Two replicas sync over each
//! and converge; a remote that is down is a typed error naming the URL,
//! within a bounded time.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use larder_codec::{ActorId, Timestamp};
use larder_crdt::{KvProjection, Projection, Projector, sort_events};
use larder_git::{GitError, GitRepo};
use larder_sync::{SyncError, SyncManager, Transport};
use larder_testkit::daemon::{GitDaemon, failing_ssh, fake_ssh, free_port};
use larder_testkit::fixtures::tempdir;
use larder_testkit::git;
use larder_testkit::http::HttpGitServer;
use larder_wal::WalManager;

fn ts(ms: u64) -> Timestamp {
    Timestamp::new(1_700_000_000_000 + ms, 0)
}

/// A replica: its own work tree, configured by `setup` (ssh command, ...).
struct Replica {
    actor: ActorId,
    sync: SyncManager,
    dir: tempfile::TempDir,
}

impl Replica {
    fn new(name: &str, remote: &str, setup: impl Fn(&Path)) -> Self {
        let dir = tempdir();
        git(dir.path(), &["init", "--quiet"]);
        setup(dir.path());
        let wal = WalManager::new(GitRepo::open(dir.path()).unwrap(), "kv").unwrap();
        let actor = ActorId::new(name).unwrap();
        let sync = SyncManager::new(wal, actor.clone(), remote)
            .unwrap_or_else(|e| panic!("{remote}: {e}"));
        Self { actor, sync, dir }
    }

    fn set(&self, key: &str, value: u64, ms: u64) {
        let e = larder_codec::Envelope::new(
            self.actor.clone(),
            ts(ms),
            "kv.set",
            KvProjection::set_payload(key, &value).unwrap(),
        )
        .unwrap();
        self.sync.wal().append(&[e]).unwrap();
    }

    fn state(&self) -> (usize, larder_crdt::StateHash) {
        let mut events = self.sync.wal().read_all().unwrap();
        sort_events(&mut events);
        let mut p = Projector::<KvProjection>::default();
        p.apply_all(&events).unwrap();
        (events.len(), p.state().state_hash())
    }
}

/// Two replicas append concurrently and sync through `remote` until they
/// hold the same events, state and head; `git fsck` on `bare` is clean.
fn converge(remote: &str, bare: &Path, setup: impl Fn(&Path)) {
    let a = Replica::new("alice", remote, &setup);
    let b = Replica::new("bob", remote, &setup);
    assert!(
        matches!(a.sync.transport(), Transport::Network(u) if u == remote),
        "{remote}: {:?}",
        a.sync.transport()
    );
    a.set("x", 1, 1);
    let first = a.sync.sync().unwrap_or_else(|e| panic!("{remote}: {e}"));
    assert!(first.pushed, "{remote}: {first:?}");
    let pulled = b.sync.pull().unwrap();
    assert_eq!(pulled.events_received, 1, "{remote}");
    a.set("y", 2, 3);
    b.set("x", 3, 2);
    for _ in 0..2 {
        let ra = a.sync.sync().unwrap_or_else(|e| panic!("{remote}: {e}"));
        let rb = b.sync.sync().unwrap_or_else(|e| panic!("{remote}: {e}"));
        assert!(
            ra.rejected.is_empty() && rb.rejected.is_empty(),
            "{ra:?} {rb:?}"
        );
    }
    assert_eq!(a.state(), b.state(), "{remote}");
    assert_eq!(a.state().0, 3, "{remote}");
    assert_eq!(
        a.sync.wal().head().unwrap(),
        b.sync.wal().head().unwrap(),
        "{remote}: one head"
    );
    let again = a.sync.sync().unwrap();
    assert_eq!((again.commits_received, again.pushed), (0, false));
    larder_testkit::fixtures::assert_fsck(bare);
    // Staging refs (under refs/remotes/) moved without reflog entries.
    for replica in [&a, &b] {
        let logs = replica.dir.path().join(".git/logs/refs/remotes");
        assert!(
            !logs.exists(),
            "{remote}: staging refs logged: {:?}",
            larder_testkit::fixtures::files(&logs)
        );
    }
}

/// `<root>/<name>.git`, bare, made by git.
fn bare_under(root: &Path, name: &str) -> PathBuf {
    let path = root.join(format!("{name}.git"));
    std::fs::create_dir_all(&path).unwrap();
    git(&path, &["init", "--quiet", "--bare"]);
    path
}

fn no_setup(_: &Path) {}

#[test]
fn git_daemon() {
    let root = tempdir();
    let bare = bare_under(root.path(), "log");
    let daemon = GitDaemon::start(root.path());
    converge(&daemon.url(&bare), &bare, no_setup);
}

#[test]
fn smart_http() {
    let root = tempdir();
    let bare = bare_under(root.path(), "log");
    git(&bare, &["config", "http.receivepack", "true"]);
    let server = HttpGitServer::start(root.path());
    converge(&server.url(&bare), &bare, no_setup);
}

#[test]
fn smart_http_push_of_a_large_chunked_body() {
    // git sends pushes above http.postBuffer (1 MiB) with a chunked body.
    let root = tempdir();
    let bare = bare_under(root.path(), "log");
    git(&bare, &["config", "http.receivepack", "true"]);
    let server = HttpGitServer::start(root.path());
    let url = server.url(&bare);
    let a = Replica::new("alice", &url, |d| {
        git(d, &["config", "http.postBuffer", "4096"]);
    });
    let mut rng = larder_testkit::Rng::new(7);
    let blob: String = (0..200_000)
        .map(|_| char::from(b'a' + (rng.below(26) as u8)))
        .collect();
    let e = larder_codec::Envelope::new(
        a.actor.clone(),
        ts(1),
        "kv.set",
        KvProjection::set_payload("big", &blob).unwrap(),
    )
    .unwrap();
    a.sync.wal().append(&[e]).unwrap();
    assert!(a.sync.push().unwrap().pushed);
    assert!(server.chunked_requests() > 0, "the push went chunked");
    let b = Replica::new("bob", &url, no_setup);
    assert_eq!(b.sync.pull().unwrap().events_received, 1);
    larder_testkit::fixtures::assert_fsck(&bare);
}

#[test]
fn ssh_url_and_scp_style() {
    let root = tempdir();
    let bare = bare_under(root.path(), "log");
    let ssh = fake_ssh(root.path());
    // core.sshCommand in each replica's config: gix's fetch and git's push
    // both run it (no process environment needed).
    let setup = |d: &Path| {
        git(
            d,
            &["config", "core.sshCommand", &ssh.display().to_string()],
        );
    };
    converge(
        &format!("ssh://git@example.invalid{}", bare.display()),
        &bare,
        setup,
    );
    let bare2 = bare_under(root.path(), "scp");
    converge(
        &format!("git@example.invalid:{}", bare2.display()),
        &bare2,
        setup,
    );
}

#[test]
fn paths_file_urls_and_config_names() {
    let root = tempdir();
    let bare = bare_under(root.path(), "log");
    // A work tree beside the remote; relative paths resolve from its top,
    // also when the repository is found from a subdirectory.
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("sub/dir")).unwrap();
    git(&work, &["init", "--quiet"]);
    git(&work, &["remote", "add", "origin", "../log.git"]);
    let from_sub = GitRepo::discover(work.join("sub/dir")).unwrap();
    assert_eq!(from_sub.base_dir(), work.as_path());
    for remote in [
        "../log.git".to_owned(),
        "../log".to_owned(),
        format!("file://{}", bare.display()),
        bare.display().to_string(),
        "origin".to_owned(),
    ] {
        let wal = WalManager::new(from_sub.clone(), "kv").unwrap();
        let sync = SyncManager::new(wal, ActorId::new("w").unwrap(), &remote)
            .unwrap_or_else(|e| panic!("{remote}: {e}"));
        let Transport::File(repo) = sync.transport() else {
            panic!("{remote}: {:?}", sync.transport());
        };
        assert_eq!(
            repo.git_dir().canonicalize().unwrap(),
            bare.canonicalize().unwrap(),
            "{remote}"
        );
    }
    // The same remote spelt two ways shares staging refs.
    let staging = |r: &str| {
        SyncManager::new(
            WalManager::new(from_sub.clone(), "kv").unwrap(),
            ActorId::new("w").unwrap(),
            r,
        )
        .unwrap()
        .staging_prefix()
    };
    assert_eq!(
        staging("../log.git"),
        staging(&format!("file://{}", bare.display()))
    );
    assert_eq!(staging("origin"), "refs/remotes/origin/larder/kv/heads/");
}

/// Runs `f` and checks it fails within `bound` with a typed error naming
/// `url`.
fn fails_fast(remote: &str, bound: Duration, setup: impl Fn(&Path)) -> SyncError {
    let dir = tempdir();
    git(dir.path(), &["init", "--quiet"]);
    setup(dir.path());
    let wal = WalManager::new(GitRepo::open(dir.path()).unwrap(), "kv").unwrap();
    let started = Instant::now();
    let result = SyncManager::new(wal, ActorId::new("a").unwrap(), remote).and_then(|s| s.sync());
    let took = started.elapsed();
    let err = match result {
        Ok(r) => panic!("{remote}: a remote that is down synced: {r:?}"),
        Err(e) => e,
    };
    assert!(took < bound, "{remote}: took {took:?}");
    assert!(
        err.to_string().contains(remote)
            || err.to_string().contains(remote.trim_end_matches(".git")),
        "{remote}: {err}"
    );
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    err
}

#[test]
fn a_remote_that_is_down_is_a_typed_error_naming_it() {
    let port = free_port();
    let err = fails_fast(
        &format!("git://127.0.0.1:{port}/log.git"),
        Duration::from_secs(10),
        no_setup,
    );
    assert!(
        matches!(err, SyncError::Git(GitError::RemoteUnreachable { .. })),
        "{err:?}"
    );
    let port = free_port();
    let err = fails_fast(
        &format!("http://127.0.0.1:{port}/log.git"),
        Duration::from_secs(30),
        no_setup,
    );
    assert!(
        matches!(err, SyncError::Git(GitError::RemoteUnreachable { .. })),
        "{err:?}"
    );
    let scripts = tempdir();
    let ssh = failing_ssh(scripts.path());
    let err = fails_fast(
        "ssh://nowhere.invalid/srv/log.git",
        Duration::from_secs(10),
        |d| {
            git(
                d,
                &["config", "core.sshCommand", &ssh.display().to_string()],
            );
        },
    );
    assert!(
        matches!(err, SyncError::Git(GitError::RemoteUnreachable { .. })),
        "{err:?}"
    );
    let err = fails_fast(
        "/nonexistent/larder/remote.git",
        Duration::from_secs(5),
        no_setup,
    );
    assert!(
        matches!(err, SyncError::Git(GitError::RemoteNotFound { .. })),
        "{err:?}"
    );
    // A bare word that is neither a configured remote nor a path: the
    // message lists the configured remotes.
    let err = fails_fast("orign", Duration::from_secs(5), |d| {
        git(d, &["remote", "add", "origin", "/srv/none.git"]);
    });
    assert!(err.to_string().contains("configured: origin"), "{err}");
    // An unknown scheme.
    let err = fails_fast(
        "ftp://example.invalid/log.git",
        Duration::from_secs(5),
        no_setup,
    );
    assert!(
        matches!(err, SyncError::Git(GitError::UnsupportedRemote { .. })),
        "{err:?}"
    );
}
