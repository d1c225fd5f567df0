//! How lock states are stored: format 3 is one commit (record in the
//! message, empty tree) that plain git reads and `git fsck` accepts; older
//! `lock.json` records are still read and are taken over by format-3 states.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use larder_codec::ActorId;
use larder_crdt::ManualClock;
use larder_git::{EntryKind, Expected, GitRepo, TreeEntry};
use larder_lock::{
    Authority, LOCK_FORMAT_VERSION, LockError, LockManager, LockOptions, LockRecord,
};

fn manager(authority: &Authority, actor: &str, clock: &ManualClock) -> LockManager {
    LockManager::with_clock(
        authority.clone(),
        ActorId::new(actor).unwrap(),
        Arc::new(clock.clone()),
        LockOptions {
            max_skew_ms: 100,
            ..LockOptions::default()
        },
    )
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every object file under `objects/` (loose objects and packs).
fn object_files(git_dir: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    walk(&git_dir.join("objects"))
}

#[test]
fn a_lock_state_is_one_commit_with_the_record_in_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let git_dir = repo.git_dir().to_path_buf();
    let clock = ManualClock::new(1_763_830_000_000);
    let m = manager(&Authority::Local(repo), "agent-7", &clock);
    let before = object_files(&git_dir);
    let lease = m.acquire("deploy/prod", 30_000).unwrap();
    // The first state: its commit, plus git's empty tree, written once.
    assert_eq!(object_files(&git_dir), before + 2);
    m.release(&lease).unwrap();
    assert_eq!(object_files(&git_dir), before + 3, "one object per state");
    let lease = m.acquire("deploy/prod", 30_000).unwrap();
    m.release(&lease).unwrap();
    assert_eq!(object_files(&git_dir), before + 5);

    let name = m.ref_for("deploy/prod");
    let head = git(&git_dir, &["cat-file", "-p", &name]);
    assert!(
        head.starts_with("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent "),
        "{head}"
    );
    let (_, message) = head.split_once("\n\n").unwrap();
    let (subject, json) = message.split_once("\n\n").unwrap();
    assert_eq!(subject, "larder: lock release (token 2)");
    let record: LockRecord = serde_json::from_str(json.trim_end()).unwrap();
    assert_eq!(record.format, LOCK_FORMAT_VERSION);
    assert_eq!(LOCK_FORMAT_VERSION, 3);
    assert_eq!((record.resource.as_str(), record.token), ("deploy/prod", 2));
    assert_eq!((record.holder, record.holder_id), (None, None));
    // The history is plain git's to read, and git finds nothing wrong.
    let log = git(&git_dir, &["log", "--format=%s", &name]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "larder: lock release (token 2)",
            "larder: lock acquire (token 2)",
            "larder: lock release (token 1)",
            "larder: lock acquire (token 1)",
        ]
    );
    git(&git_dir, &["fsck", "--strict", "--no-progress"]);
}

/// Points `resource`'s lock ref at a hand-written `lock.json`, as builds
/// of formats 1 and 2 stored it.
fn write_lock_json(repo: &GitRepo, m: &LockManager, resource: &str, json: &str) {
    let blob = repo.write_blob(json.as_bytes()).unwrap();
    let tree = repo
        .write_tree(&[TreeEntry {
            name: "lock.json".into(),
            kind: EntryKind::Blob,
            id: blob,
        }])
        .unwrap();
    let commit = repo
        .write_commit(tree, &[], "older build", None, 0)
        .unwrap();
    let name = m.ref_for(resource);
    let expected = repo
        .ref_target(&name)
        .unwrap()
        .map_or(Expected::MustNotExist, Expected::MustBe);
    repo.update_ref(&name, expected, commit, "older build")
        .unwrap();
}

#[test]
fn format_two_records_are_read_and_the_next_state_is_format_three() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let clock = ManualClock::new(10_000);
    let auth = Authority::Local(repo.clone());
    let m = manager(&auth, "ci", &clock);
    write_lock_json(
        &repo,
        &m,
        "r",
        r#"{"format":2,"resource":"r","holder":"ci","holder_id":"abc","token":5,"acquired_ms":9000,"expires_ms":20000,"nonce":"x"}"#,
    );
    let info = m.check("r").unwrap().unwrap();
    assert_eq!(
        (
            info.holder.as_deref(),
            info.holder_id.as_deref(),
            info.token
        ),
        (Some("ci"), Some("abc"), 5)
    );
    // A live format-2 lease is another acquisition's, also for its actor.
    assert!(matches!(
        m.acquire("r", 1_000),
        Err(LockError::Held { token: 5, .. })
    ));
    m.release_token("r", 5).unwrap();
    let lease = m.acquire("r", 1_000).unwrap();
    assert_eq!(lease.token, 6);
    let head = repo.ref_target(&m.ref_for("r")).unwrap().unwrap();
    assert!(repo.read_commit(head).unwrap().tree.is_empty_tree());
    // A format-3 record is only valid in a commit message: in lock.json
    // it is malformed.
    write_lock_json(
        &repo,
        &m,
        "r",
        r#"{"format":3,"resource":"r","holder":null,"token":6,"acquired_ms":1,"expires_ms":2,"nonce":"y"}"#,
    );
    assert!(matches!(m.check("r"), Err(LockError::Malformed { .. })));
    assert!(matches!(
        m.acquire("r", 1_000),
        Err(LockError::Malformed { .. })
    ));
}

#[test]
fn an_empty_tree_commit_without_a_record_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let clock = ManualClock::new(10_000);
    let m = manager(&Authority::Local(repo.clone()), "ci", &clock);
    let lease = m.acquire("r", 1_000).unwrap();
    let tree = repo.write_tree(&[]).unwrap();
    let name = m.ref_for("r");
    let old = repo.ref_target(&name).unwrap().unwrap();
    let junk = repo
        .write_commit(tree, &[old], "larder: lock acquire (token 2)\n", None, 0)
        .unwrap();
    repo.update_ref(&name, Expected::MustBe(old), junk, "junk")
        .unwrap();
    // The manager remembers the state it wrote; the ref moved since, so its
    // swap from that state loses and the fresh read finds the bad record.
    match m.release(&lease) {
        Err(LockError::Malformed { reason, .. }) => {
            assert!(reason.contains("holds no record"), "{reason}")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert_eq!(repo.ref_target(&name).unwrap(), Some(junk), "nothing moved");
}
