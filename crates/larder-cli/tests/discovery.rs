//! Repository discovery and remotes as git does them, end to end through
//! the built `larder` binary: from any subdirectory of a work tree, inside
//! a bare repository, with `GIT_DIR`/`GIT_WORK_TREE`; `-C` first, so
//! relative remotes resolve against it (never the process's current
//! directory); `larder init` in a subdirectory uses the enclosing
//! repository; every remote form, network ones through real servers on
//! loopback (this binary ships with the https feature, so http fetches).
//! `git rev-parse` and `git for-each-ref` are the oracles.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use larder_testkit::daemon::{GitDaemon, free_port};
use larder_testkit::fixtures::tempdir;
use larder_testkit::git;
use larder_testkit::http::HttpGitServer;

/// `larder -C <dir> <args>` run from `/` (so nothing depends on the test
/// process's directory), with `env` set and GIT_DIR/GIT_WORK_TREE cleared
/// unless given.
fn larder_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    cmd.current_dir("/")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env("LARDER_ACTOR", "tester");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn larder(dir: &Path, args: &[&str]) -> Output {
    larder_env(dir, args, &[])
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap()
}

/// A work tree with `a/b` inside it.
fn work_tree() -> (tempfile::TempDir, PathBuf) {
    let root = tempdir();
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("a/b")).unwrap();
    git(&work, &["init", "--quiet"]);
    (root, work)
}

fn append(dir: &Path, log: &str) -> Output {
    larder(dir, &["append", "--log", log, "--data", "{\"n\":1}"])
}

#[test]
fn commands_from_a_subdirectory_use_the_work_tree_repository() {
    let (_root, work) = work_tree();
    ok(&append(&work.join("a/b"), "notes"));
    assert!(!work.join("a/b/.git").exists());
    assert!(
        git(&work, &["for-each-ref", "refs/larder/notes/"]).contains("refs/larder/notes/wal"),
        "the append landed in the work tree's repository"
    );
    let log = ok(&larder(&work.join("a"), &["log", "--log", "notes"]));
    assert!(log.contains("\"n\""), "{log}");
}

#[test]
fn init_in_a_subdirectory_sets_up_the_enclosing_repository() {
    let (_root, work) = work_tree();
    let sub = work.join("a/b");
    let out = ok(&larder(&sub, &["--json", "init"]));
    assert!(!sub.join(".git").exists(), "no nested repository");
    let git_dir = git(&sub, &["rev-parse", "--absolute-git-dir"]);
    assert_eq!(
        canonical(Path::new(&git_dir)),
        canonical(&work.join(".git"))
    );
    let printed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        canonical(Path::new(printed["git_dir"].as_str().unwrap())),
        canonical(&work.join(".git"))
    );
    // Outside any repository, init creates one where it is asked.
    let fresh = tempdir();
    ok(&larder(fresh.path(), &["init"]));
    assert_eq!(
        canonical(Path::new(&git(
            fresh.path(),
            &["rev-parse", "--absolute-git-dir"]
        ))),
        canonical(&fresh.path().join(".git"))
    );
}

#[test]
fn bare_repositories_and_their_subdirectories() {
    let root = tempdir();
    let bare = root.path().join("hub.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    ok(&append(&bare.join("refs"), "notes"));
    assert!(git(&bare, &["for-each-ref"]).contains("refs/larder/notes/wal"));
}

#[test]
fn git_dir_and_git_work_tree_are_honoured_relative_to_dash_c() {
    let (root, work) = work_tree();
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // GIT_DIR relative to -C, as `git -C elsewhere` would read it.
    let env = [("GIT_DIR", "../work/.git")];
    ok(&larder_env(
        &elsewhere,
        &["append", "--log", "env", "--data", "1"],
        &env,
    ));
    assert!(git(&work, &["for-each-ref"]).contains("refs/larder/env/wal"));
    assert!(!elsewhere.join(".git").exists());
    let abs = work.join(".git").display().to_string();
    let wt = work.display().to_string();
    let out = ok(&larder_env(
        &elsewhere,
        &["log", "--log", "env"],
        &[("GIT_DIR", &abs), ("GIT_WORK_TREE", &wt)],
    ));
    assert!(!out.is_empty());
    // GIT_DIR naming nothing: one line naming it.
    let out = larder_env(&elsewhere, &["log", "--log", "env"], &[("GIT_DIR", "nope")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn no_repository_is_one_line_saying_what_to_do() {
    let empty = tempdir();
    let out = larder(empty.path(), &["log", "--log", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("not a git repository") && err.contains("larder init"),
        "{err}"
    );
}

#[test]
fn relative_remotes_resolve_against_dash_c_and_config_names_work_for_locks() {
    let (root, work) = work_tree();
    let remote = root.path().join("remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "--quiet", "--bare"]);
    let sub = work.join("a/b");
    ok(&append(&sub, "notes"));
    // `../remote.git` from the work tree's top (git's rule), while the
    // process itself runs in `/`.
    ok(&larder(
        &sub,
        &["sync", "--log", "notes", "--remote", "../remote.git"],
    ));
    assert!(git(&remote, &["for-each-ref"]).contains("refs/larder/notes/heads/tester"));
    // A configured name with a relative URL, for sync and for locks.
    git(&work, &["remote", "add", "origin", "../remote.git"]);
    ok(&larder(&sub, &["sync", "--log", "notes"]));
    ok(&larder(
        &sub,
        &["lock", "acquire", "deploy", "--remote", "origin"],
    ));
    let again = larder(&sub, &["lock", "acquire", "deploy", "--remote", "origin"]);
    assert_eq!(again.status.code(), Some(3), "a live lease is held");
    assert!(git(&remote, &["for-each-ref", "refs/larder/locks/"]).contains("refs/larder/locks/"));
    // A misspelt remote: one line naming it and the configured ones.
    let out = larder(&sub, &["sync", "--log", "notes", "--remote", "orign"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("orign") && err.contains("configured: origin"),
        "{err}"
    );
}

#[test]
fn network_remotes_from_the_command_line() {
    let root = tempdir();
    let bare = root.path().join("log.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let daemon = GitDaemon::start(root.path());
    let http = HttpGitServer::start(root.path());
    let (_w, a) = work_tree();
    let (_v, b) = work_tree();
    ok(&append(&a, "notes"));
    ok(&larder(
        &a,
        &["sync", "--log", "notes", "--remote", &daemon.url(&bare)],
    ));
    ok(&larder(
        &b,
        &["pull", "--log", "notes", "--remote", &http.url(&bare)],
    ));
    let log = ok(&larder(&b, &["log", "--log", "notes"]));
    assert!(log.contains("\"n\""), "{log}");
    ok(&larder(
        &b,
        &["lock", "acquire", "db", "--remote", &http.url(&bare)],
    ));
    let held = larder(
        &a,
        &["lock", "acquire", "db", "--remote", &daemon.url(&bare)],
    );
    assert_eq!(held.status.code(), Some(3));
    // Nothing listening: a prompt, one-line error naming the URL.
    let down = format!("git://127.0.0.1:{}/log.git", free_port());
    let started = Instant::now();
    let out = larder(&a, &["sync", "--log", "notes", "--remote", &down]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&down) && err.trim().lines().count() == 1,
        "{err}"
    );
}
