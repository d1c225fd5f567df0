//! Lock authorities named in every remote form, each through a real server
//! on loopback where there is one: `git daemon` (`git://`), `git
//! http-backend` behind a small HTTP server (`http://`), a stand-in `ssh`
//! (`ssh://host/path`, scp-style `host:path`), a path (relative ones from
//! the work tree's top), a `file://` URL and a git-config remote name
//! (`origin`, resolved exactly as sync resolves it). Over each, two
//! clones exclude each other: a second acquire of a live lease is `Held`,
//! and tokens keep increasing across release and re-acquisition.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use larder_codec::ActorId;
use larder_git::{GitError, GitRepo};
use larder_lock::{Authority, LockError, LockManager};
use larder_testkit::daemon::{GitDaemon, failing_ssh, fake_ssh, free_port};
use larder_testkit::fixtures::tempdir;
use larder_testkit::git;
use larder_testkit::http::HttpGitServer;

/// `<root>/<name>.git`, bare, made by git.
fn bare_under(root: &Path, name: &str) -> PathBuf {
    let path = root.join(format!("{name}.git"));
    std::fs::create_dir_all(&path).unwrap();
    git(&path, &["init", "--quiet", "--bare"]);
    path
}

/// A clone-like work tree configured by `setup`, with a lock manager for
/// `remote` as `actor`.
fn manager(remote: &str, actor: &str, setup: &dyn Fn(&Path)) -> (tempfile::TempDir, LockManager) {
    let dir = tempdir();
    git(dir.path(), &["init", "--quiet"]);
    setup(dir.path());
    let repo = GitRepo::open(dir.path()).unwrap();
    let authority = Authority::remote(&repo, remote).unwrap_or_else(|e| panic!("{remote}: {e}"));
    (
        dir,
        LockManager::new(authority, ActorId::new(actor).unwrap()),
    )
}

/// Two holders through `remote`: exclusion, release, increasing tokens.
fn exclusion(remote: &str, setup: &dyn Fn(&Path)) {
    let (_a, alice) = manager(remote, "alice", setup);
    let (_b, bob) = manager(remote, "bob", setup);
    let lease = alice
        .acquire("deploy", 60_000)
        .unwrap_or_else(|e| panic!("{remote}: {e}"));
    match bob.acquire("deploy", 60_000) {
        Err(LockError::Held { holder, token, .. }) => {
            assert_eq!((holder.as_str(), token), ("alice", lease.token), "{remote}")
        }
        other => panic!("{remote}: expected Held, got {other:?}"),
    }
    // A second acquisition by the same actor is another holder: Held too.
    assert!(
        matches!(alice.acquire("deploy", 60_000), Err(LockError::Held { .. })),
        "{remote}"
    );
    alice.release(&lease).unwrap();
    let next = bob.acquire("deploy", 60_000).unwrap();
    assert!(next.token > lease.token, "{remote}");
    assert!(bob.is_current("deploy", next.token).unwrap(), "{remote}");
    assert!(
        !alice.is_current("deploy", lease.token).unwrap(),
        "{remote}"
    );
}

fn no_setup(_: &Path) {}

#[test]
fn git_daemon() {
    let root = tempdir();
    let bare = bare_under(root.path(), "locks");
    let daemon = GitDaemon::start(root.path());
    exclusion(&daemon.url(&bare), &no_setup);
    larder_testkit::fixtures::assert_fsck(&bare);
}

#[test]
fn smart_http() {
    let root = tempdir();
    let bare = bare_under(root.path(), "locks");
    git(&bare, &["config", "http.receivepack", "true"]);
    let server = HttpGitServer::start(root.path());
    exclusion(&server.url(&bare), &no_setup);
    larder_testkit::fixtures::assert_fsck(&bare);
}

#[test]
fn ssh_url_and_scp_style() {
    let root = tempdir();
    let ssh = fake_ssh(root.path());
    let setup = |d: &Path| {
        git(
            d,
            &["config", "core.sshCommand", &ssh.display().to_string()],
        );
    };
    let bare = bare_under(root.path(), "locks");
    exclusion(&format!("ssh://example.invalid{}", bare.display()), &setup);
    let scp = bare_under(root.path(), "scp");
    exclusion(&format!("git@example.invalid:{}", scp.display()), &setup);
}

#[test]
fn config_names_paths_and_file_urls() {
    let root = tempdir();
    let bare = bare_under(root.path(), "locks");
    // `origin` by name (it failed before: only paths and URLs were
    // understood), relative to the work tree's top.
    let origin = |d: &Path| {
        git(d, &["remote", "add", "origin", &bare.display().to_string()]);
    };
    exclusion("origin", &origin);
    let other = bare_under(root.path(), "other");
    exclusion(&format!("file://{}", other.display()), &no_setup);
    let third = bare_under(root.path(), "third");
    exclusion(&third.display().to_string(), &no_setup);
    // A relative path resolves from the work tree's top, not the process's
    // current directory.
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    git(&work, &["init", "--quiet"]);
    let from_sub = GitRepo::discover(work.join("sub")).unwrap();
    match Authority::remote(&from_sub, "../third.git").unwrap() {
        Authority::FileRemote { repo, .. } => assert_eq!(
            repo.git_dir().canonicalize().unwrap(),
            third.canonicalize().unwrap()
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_remotes_are_typed_errors_naming_them_within_a_bound() {
    let dir = tempdir();
    git(dir.path(), &["init", "--quiet"]);
    git(
        dir.path(),
        &["remote", "add", "origin", "/nonexistent/x.git"],
    );
    let repo = GitRepo::open(dir.path()).unwrap();
    // Nothing there, or no such configured remote: refused when named.
    for (remote, configured) in [("/nonexistent/larder.git", false), ("orign", true)] {
        match Authority::remote(&repo, remote) {
            Err(LockError::UnusableRemote(GitError::RemoteNotFound { remote: r, .. })) => {
                assert_eq!(r, remote)
            }
            other => panic!("{remote}: {other:?}"),
        }
        let msg = Authority::remote(&repo, remote).unwrap_err().to_string();
        assert_eq!(msg.contains("configured: origin"), configured, "{msg}");
    }
    assert!(matches!(
        Authority::remote(&repo, "ftp://example.invalid/x.git"),
        Err(LockError::UnusableRemote(
            GitError::UnsupportedRemote { .. }
        ))
    ));
    // Nothing listening / an ssh that cannot connect: the first operation
    // fails fast, naming the URL.
    let scripts = tempdir();
    let ssh = failing_ssh(scripts.path());
    git(
        dir.path(),
        &["config", "core.sshCommand", &ssh.display().to_string()],
    );
    let repo = GitRepo::open(dir.path()).unwrap();
    for url in [
        format!("git://127.0.0.1:{}/x.git", free_port()),
        format!("http://127.0.0.1:{}/x.git", free_port()),
        "ssh://nowhere.invalid/srv/x.git".to_owned(),
    ] {
        let manager = LockManager::new(
            Authority::remote(&repo, &url).unwrap(),
            ActorId::new("a").unwrap(),
        );
        let started = Instant::now();
        let err = manager.acquire("deploy", 1_000).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(30), "{url}");
        let msg = err.to_string();
        assert!(msg.contains(&url), "{url}: {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(
            matches!(
                &err,
                LockError::Authority {
                    source: GitError::RemoteUnreachable { .. },
                    ..
                }
            ),
            "{url}: {err:?}"
        );
    }
}
