//! The facade finds repositories as git does: `Larder::open` from any
//! subdirectory of a work tree or of a bare repository; `Larder::init` in a
//! subdirectory sets up the enclosing repository (never a nested one);
//! relative remotes resolve from the work tree's top. `git rev-parse` is
//! the oracle.

use std::path::Path;

use larder::{Larder, LarderError};
use larder_testkit::fixtures::tempdir;
use larder_testkit::git;

fn same(a: &Path, b: &Path) -> bool {
    a.canonicalize().unwrap() == b.canonicalize().unwrap()
}

#[test]
fn open_and_init_from_a_subdirectory_use_the_work_tree() {
    let root = tempdir();
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("a/b")).unwrap();
    git(&work, &["init", "--quiet"]);
    let sub = work.join("a/b");
    let opened = Larder::open(&sub).unwrap();
    assert!(same(opened.repo().git_dir(), &work.join(".git")));
    assert!(same(opened.repo().base_dir(), &work));
    let inited = Larder::init(&sub).unwrap();
    assert!(!sub.join(".git").exists(), "no nested repository");
    let oracle = git(&sub, &["rev-parse", "--absolute-git-dir"]);
    assert!(same(inited.repo().git_dir(), Path::new(&oracle)));
    inited.log("notes").unwrap().append("n", &1u64).unwrap();
    assert!(git(&work, &["for-each-ref"]).contains("refs/larder/notes/wal"));
}

#[test]
fn open_inside_a_bare_repository_and_nowhere() {
    let root = tempdir();
    let bare = root.path().join("hub.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    let opened = Larder::open(bare.join("refs/heads")).unwrap();
    assert!(same(opened.repo().git_dir(), &bare));
    let nowhere = tempdir();
    match Larder::open(nowhere.path()) {
        Err(LarderError::Git(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("not a git repository") && msg.contains("larder init"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn relative_remotes_resolve_from_the_work_tree_top() {
    let root = tempdir();
    let remote = root.path().join("remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "--quiet", "--bare"]);
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("deep/er")).unwrap();
    git(&work, &["init", "--quiet"]);
    git(&work, &["remote", "add", "origin", "../remote.git"]);
    let larder = Larder::open(work.join("deep/er")).unwrap();
    larder.log("notes").unwrap().append("n", &1u64).unwrap();
    assert!(
        larder
            .sync("notes", "../remote.git")
            .unwrap()
            .sync()
            .unwrap()
            .pushed
    );
    larder.sync("notes", "origin").unwrap().sync().unwrap();
    let locks = larder.locks_on("origin").unwrap();
    locks.acquire("deploy", 10_000).unwrap();
    assert!(git(&remote, &["for-each-ref"]).contains("refs/larder/locks/"));
}
