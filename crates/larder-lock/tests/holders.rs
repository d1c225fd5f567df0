//! A lease belongs to one acquisition, not to an actor; tokens never wrap;
//! a leftover `<ref>.lock` file is reported, not retried forever.

use std::sync::Arc;

use larder_codec::ActorId;
use larder_crdt::ManualClock;
use larder_git::{EntryKind, Expected, GitRepo, TreeEntry};
use larder_lock::{Authority, LockError, LockManager, LockOptions};

const MARGIN: u64 = 100;

fn manager(authority: &Authority, actor: &str, clock: &ManualClock) -> LockManager {
    LockManager::with_clock(
        authority.clone(),
        ActorId::new(actor).unwrap(),
        Arc::new(clock.clone()),
        LockOptions {
            max_skew_ms: MARGIN,
            ..LockOptions::default()
        },
    )
}

fn local() -> (tempfile::TempDir, GitRepo) {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(dir.path()).unwrap();
    (dir, repo)
}

/// A bare remote, plus two clones' authorities on it (two processes of one
/// clone share the actor; their repositories do not matter here).
fn bare_remote() -> (Vec<tempfile::TempDir>, GitRepo, Authority, Authority) {
    let remote = tempfile::tempdir().unwrap();
    let remote_repo = GitRepo::init_bare(remote.path()).unwrap();
    let c1 = tempfile::tempdir().unwrap();
    let c2 = tempfile::tempdir().unwrap();
    let a1 = Authority::remote(
        &GitRepo::init(c1.path()).unwrap(),
        &remote.path().display().to_string(),
    )
    .unwrap();
    let a2 = Authority::remote(
        &GitRepo::init(c2.path()).unwrap(),
        &format!("file://{}", remote.path().display()),
    )
    .unwrap();
    (vec![remote, c1, c2], remote_repo, a1, a2)
}

/// Two processes of one clone: same actor, separate managers.
fn same_actor_two_holders(first: &LockManager, second: &LockManager) {
    let lease = first.acquire("deploy", 10_000).unwrap();
    assert_eq!(lease.token, 1);
    match second.acquire("deploy", 10_000) {
        Err(LockError::Held { holder, token, .. }) => {
            assert_eq!((holder.as_str(), token), ("ci", 1));
        }
        other => panic!("the same actor's second acquisition must be refused: {other:?}"),
    }
    // Neither acquisition from the first manager is a re-acquisition either.
    assert!(matches!(
        first.acquire("deploy", 10_000),
        Err(LockError::Held { .. })
    ));
    // The second never got a lease; a lease of its own from earlier (or a
    // made-up one) does not act on the first's.
    let other = second.acquire("other", 10_000).unwrap();
    let mut forged = other.clone();
    forged.resource = "deploy".into();
    assert!(matches!(
        second.release(&forged),
        Err(LockError::NotHolder { .. })
    ));
    assert!(matches!(
        second.renew(&forged, 10_000),
        Err(LockError::NotHolder { .. })
    ));
    assert!(second.check("deploy").unwrap().unwrap().live);
    first.release(&lease).unwrap();
    let next = second.acquire("deploy", 10_000).unwrap();
    assert_eq!(next.token, 2, "a new acquisition, a new token");
    // The first's old lease cannot touch the second's.
    assert!(matches!(
        first.release(&lease),
        Err(LockError::NotHolder { .. })
    ));
    assert!(matches!(
        first.renew(&lease, 10_000),
        Err(LockError::NotHolder { .. })
    ));
    second.release(&next).unwrap();
}

#[test]
fn two_managers_of_one_actor_on_one_repository_exclude_each_other() {
    let (_d, repo) = local();
    let clock = ManualClock::new(1_000_000);
    let auth = Authority::Local(repo);
    same_actor_two_holders(&manager(&auth, "ci", &clock), &manager(&auth, "ci", &clock));
}

#[test]
fn two_clones_of_one_actor_through_a_shared_file_remote_exclude_each_other() {
    let (_dirs, _remote, a1, a2) = bare_remote();
    let clock = ManualClock::new(1_000_000);
    same_actor_two_holders(&manager(&a1, "ci", &clock), &manager(&a2, "ci", &clock));
}

#[test]
fn a_holder_acquiring_again_inside_the_margin_after_its_own_expiry_is_told_so() {
    let (_d, repo) = local();
    let clock = ManualClock::new(10_000);
    let auth = Authority::Local(repo);
    let m = manager(&auth, "ci", &clock);
    let lease = m.acquire("r", 1_000).unwrap();
    clock.set(11_040); // expired 40 ms ago, margin 100 ms
    let err = m.acquire("r", 1_000).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("own") && text.contains("expired") && text.contains("margin"),
        "the message must say it is our own expired lease waiting out the margin: {text}"
    );
    assert!(!text.contains("held by"), "{text}");
    match err {
        LockError::OwnLeaseInSkewMargin {
            token,
            expired_ago_ms,
            retry_in_ms,
            ..
        } => assert_eq!((token, expired_ago_ms, retry_in_ms), (1, 40, 60)),
        other => panic!("expected OwnLeaseInSkewMargin, got {other:?}"),
    }
    assert_eq!(err_retry(&m, "r"), Some(60));
    // Someone else waiting for the same lease still sees it as held.
    assert!(matches!(
        manager(&auth, "other", &clock).acquire("r", 1_000),
        Err(LockError::Held { .. })
    ));
    clock.set(11_100);
    let next = m.acquire("r", 1_000).unwrap();
    assert_eq!(next.token, lease.token + 1);
}

fn err_retry(m: &LockManager, resource: &str) -> Option<u64> {
    m.acquire(resource, 1_000).unwrap_err().retry_after_ms()
}

/// Points `resource`'s lock ref at a hand-written `lock.json`.
fn write_record(repo: &GitRepo, m: &LockManager, json: &str) {
    let blob = repo.write_blob(json.as_bytes()).unwrap();
    let tree = repo
        .write_tree(&[TreeEntry {
            name: "lock.json".into(),
            kind: EntryKind::Blob,
            id: blob,
        }])
        .unwrap();
    let commit = repo.write_commit(tree, &[], "crafted", None, 0).unwrap();
    let name = m.ref_for("r");
    let expected = repo
        .ref_target(&name)
        .unwrap()
        .map_or(Expected::MustNotExist, Expected::MustBe);
    repo.update_ref(&name, expected, commit, "crafted").unwrap();
}

#[test]
fn the_last_token_is_never_wrapped_or_reissued() {
    let (_d, repo) = local();
    let clock = ManualClock::new(10_000);
    let auth = Authority::Local(repo.clone());
    let m = manager(&auth, "ci", &clock);
    // A released lock (format 1, as older builds wrote it) whose last token
    // is u64::MAX.
    write_record(
        &repo,
        &m,
        &format!(
            r#"{{"format":1,"resource":"r","holder":null,"token":{},"acquired_ms":1,"expires_ms":2,"nonce":"x"}}"#,
            u64::MAX
        ),
    );
    let info = m.check("r").unwrap().unwrap();
    assert_eq!(info.token, u64::MAX);
    let err = m.acquire("r", 1_000).unwrap_err();
    assert!(
        matches!(err, LockError::TokensExhausted { .. }),
        "expected TokensExhausted, got {err:?}"
    );
    assert!(err.to_string().contains(&u64::MAX.to_string()), "{err}");
    // Nothing was written: the record still says u64::MAX, free.
    let after = m.check("r").unwrap().unwrap();
    assert_eq!((after.token, after.holder), (u64::MAX, None));
    // An expired lease at u64::MAX cannot be taken over either.
    write_record(
        &repo,
        &m,
        &format!(
            r#"{{"format":1,"resource":"r","holder":"old","token":{},"acquired_ms":1,"expires_ms":2,"nonce":"y"}}"#,
            u64::MAX
        ),
    );
    assert!(matches!(
        manager(&auth, "b", &clock).acquire("r", 1_000),
        Err(LockError::TokensExhausted { .. })
    ));
}

#[test]
fn format_one_records_are_read_and_their_holder_has_no_holder_id() {
    let (_d, repo) = local();
    let clock = ManualClock::new(10_000);
    let auth = Authority::Local(repo.clone());
    let m = manager(&auth, "ci", &clock);
    write_record(
        &repo,
        &m,
        r#"{"format":1,"resource":"r","holder":"ci","token":7,"acquired_ms":9000,"expires_ms":20000,"nonce":"x"}"#,
    );
    let info = m.check("r").unwrap().unwrap();
    assert_eq!(
        (
            info.holder.as_deref(),
            info.holder_id.as_deref(),
            info.token
        ),
        (Some("ci"), None, 7)
    );
    // A live format-1 lease of our own actor is someone's acquisition: held.
    assert!(matches!(
        m.acquire("r", 1_000),
        Err(LockError::Held { token: 7, .. })
    ));
    // The process that took it (an older build) is released by token.
    m.release_token("r", 7).unwrap();
    let next = m.acquire("r", 1_000).unwrap();
    assert_eq!(next.token, 8);
    assert!(next.holder_id.is_some());
    assert_eq!(m.check("r").unwrap().unwrap().holder_id, next.holder_id);
}

#[test]
fn a_leftover_ref_lock_file_is_reported_with_its_path_and_removing_it_heals() {
    for remote in [false, true] {
        let (_dirs, remote_repo, a1, _a2) = bare_remote();
        let (_d, repo) = local();
        let (auth, git_dir) = if remote {
            (a1, remote_repo.git_dir().to_path_buf())
        } else {
            (Authority::Local(repo.clone()), repo.git_dir().to_path_buf())
        };
        let clock = ManualClock::new(10_000);
        let m = LockManager::with_clock(
            auth,
            ActorId::new("ci").unwrap(),
            Arc::new(clock.clone()),
            LockOptions {
                max_skew_ms: MARGIN,
                max_lock_waits: 2,
                ..LockOptions::default()
            },
        );
        let lease = m.acquire("r", 1_000).unwrap();
        // A process killed in the middle of a lock change left this behind.
        let lock_file = git_dir.join(format!("{}.lock", m.ref_for("r")));
        std::fs::write(&lock_file, b"").unwrap();
        let started = std::time::Instant::now();
        let err = m.release(&lease).unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "bounded wait"
        );
        match &err {
            LockError::RefLocked { lock_path, .. } => {
                assert_eq!(std::path::Path::new(lock_path), lock_file.as_path());
            }
            other => panic!("expected RefLocked, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&lock_file.display().to_string()), "{text}");
        assert!(text.contains("delete"), "the remedy is named: {text}");
        std::fs::remove_file(&lock_file).unwrap();
        m.release(&lease).unwrap();
        assert!(!m.check("r").unwrap().unwrap().live);
    }
}

#[test]
fn after_a_takeover_the_old_token_is_not_current_and_a_fenced_store_refuses_it() {
    let (_d, repo) = local();
    let clock = ManualClock::new(10_000);
    let auth = Authority::Local(repo);
    let (a, b) = (manager(&auth, "a", &clock), manager(&auth, "b", &clock));
    assert!(!a.is_current("r", 1).unwrap(), "never acquired");
    let store = larder_lock::FencedStore::new(0u32);
    let old = a.acquire("r", 1_000).unwrap();
    assert!(a.is_current("r", old.token).unwrap());
    assert!(b.is_current("r", old.token).unwrap(), "anyone may ask");
    store.write(old.token, |n| *n += 1).unwrap();
    store.write(old.token, |n| *n += 1).unwrap(); // same holder, again
    clock.set(11_000);
    assert!(
        !a.is_current("r", old.token).unwrap(),
        "expired is not current"
    );
    clock.set(11_100);
    let new = b.acquire("r", 1_000).unwrap();
    assert!(new.token > old.token);
    assert!(!a.is_current("r", old.token).unwrap());
    assert!(a.is_current("r", new.token).unwrap());
    store.write(new.token, |n| *n += 10).unwrap();
    match store.write(old.token, |n| *n += 100) {
        Err(LockError::Fenced { token, highest }) => {
            assert_eq!((token, highest), (old.token, new.token))
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert_eq!(store.read(|n| *n), 12);
    assert_eq!(store.highest_token(), new.token);
    b.release(&new).unwrap();
    assert!(!b.is_current("r", new.token).unwrap(), "released");
    // A store restored with its highest token keeps refusing.
    let restored = larder_lock::FencedStore::with_highest_token((), new.token);
    assert!(restored.write(old.token, |_| ()).is_err());
    assert!(restored.write(new.token + 1, |_| ()).is_ok());
}
