//! The linearizable mode on real repositories: writes acknowledged only at
//! the authority's chain swap, reads that see every acknowledged write,
//! compare-and-set across replicas and threads, group commit, and the
//! failures the issue names (foreign chain commit, stale chain lock,
//! unreachable authority, diverged local log, not a repository).

use std::path::Path;
use std::sync::{Arc, Mutex};

use larder_codec::ActorId;
use larder_crdt::{Clock, Hlc, SystemClock};
use larder_git::GitRepo;
use larder_kv::{Batch, Consistency, Expect, Kv, KvError, KvOptions, SharedClock};
use larder_testkit::daemon::GitDaemon;
use larder_testkit::fixtures::{bare_repo, work_repo};
use larder_testkit::git;
use larder_wal::WalManager;

fn clock() -> SharedClock {
    let c: Arc<dyn Clock> = Arc::new(SystemClock);
    Arc::new(Mutex::new(Hlc::new(c)))
}

fn linear(dir: &Path, actor: &str, authority: &str) -> larder_kv::Result<Kv> {
    let wal = WalManager::new(GitRepo::open(dir).unwrap(), "kv").unwrap();
    Kv::open(
        wal,
        ActorId::new(actor).unwrap(),
        clock(),
        KvOptions {
            consistency: Consistency::Linearizable {
                authority: authority.into(),
            },
            ..KvOptions::default()
        },
    )
}

fn eventual(dir: &Path, actor: &str) -> Kv {
    let wal = WalManager::new(GitRepo::open(dir).unwrap(), "kv").unwrap();
    Kv::open(
        wal,
        ActorId::new(actor).unwrap(),
        clock(),
        KvOptions::default(),
    )
    .unwrap()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

const CHAIN: &str = "refs/larder/kv/chain";

#[test]
fn a_write_on_one_replica_is_read_at_once_on_another() {
    let authority = bare_repo();
    let (a_dir, b_dir) = (work_repo(), work_repo());
    let a = linear(a_dir.path(), "alice", &path(authority.path())).unwrap();
    let b = linear(b_dir.path(), "bob", &path(authority.path())).unwrap();
    assert!(a.is_linearizable());
    assert_eq!(b.get::<u32>("x").unwrap(), None);
    let v = a.set("x", &1u32).unwrap();
    // Acknowledged means on the authority's chain.
    let chain = git(authority.path(), &["rev-parse", CHAIN]);
    assert_eq!(
        chain.trim(),
        a.position().unwrap().to_string(),
        "the local log follows the chain"
    );
    // No sync, no refresh: the read asks the authority.
    let e = b.get::<u32>("x").unwrap().unwrap();
    assert_eq!((e.value, e.version), (1, v));
    b.delete("x").unwrap();
    assert_eq!(a.get::<u32>("x").unwrap(), None);
    let mut batch = Batch::new();
    batch.set("p/1", &1).unwrap().set("p/2", &2).unwrap();
    a.write(batch).unwrap();
    assert_eq!(b.scan::<i32>("p/").unwrap().len(), 2);
    // The chain is linear, and plain git reads it.
    let parents = git(authority.path(), &["rev-list", "--parents", CHAIN]);
    assert_eq!(parents.lines().count(), 3);
    assert!(
        parents.lines().all(|l| l.split(' ').count() <= 2),
        "{parents}"
    );
    git(authority.path(), &["fsck", "--full", "--strict"]);
    // Both replicas hold the same state.
    assert_eq!(a.state_hash().unwrap(), b.state_hash().unwrap());
}

#[test]
fn compare_and_set_excludes_concurrent_writers_across_replicas() {
    // 4 threads on each of 2 replicas increment one counter by CAS loops:
    // with the chain's compare-and-swap no increment is lost.
    let authority = bare_repo();
    let dirs = [work_repo(), work_repo()];
    let stores: Vec<Kv> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| linear(d.path(), &format!("r{i}"), &path(authority.path())).unwrap())
        .collect();
    stores[0]
        .compare_and_set("n", Expect::Absent, &0u64)
        .unwrap();
    const PER_THREAD: u64 = 15;
    std::thread::scope(|s| {
        for kv in &stores {
            for _ in 0..4 {
                let kv = kv.clone();
                s.spawn(move || {
                    for _ in 0..PER_THREAD {
                        loop {
                            let current = kv.get::<u64>("n").unwrap().unwrap();
                            let cas = kv
                                .compare_and_set(
                                    "n",
                                    Expect::Version(current.version),
                                    &(current.value + 1),
                                )
                                .unwrap();
                            if cas.swapped {
                                break;
                            }
                        }
                    }
                });
            }
        }
    });
    for kv in &stores {
        assert_eq!(kv.get::<u64>("n").unwrap().unwrap().value, 8 * PER_THREAD);
    }
}

#[test]
fn concurrent_writers_of_one_process_share_compare_and_swaps() {
    let authority = bare_repo();
    let dir = work_repo();
    let kv = linear(dir.path(), "alice", &path(authority.path())).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let kv = kv.clone();
            s.spawn(move || {
                for i in 0..25 {
                    kv.set(&format!("t{t}/{i}"), &i).unwrap();
                }
            });
        }
    });
    assert_eq!(kv.len().unwrap(), 200);
    let (groups, requests) = kv.group_commits();
    assert_eq!(requests, 200);
    assert!(groups <= 200);
    // Every acknowledged write is on the chain.
    let other = work_repo();
    let reader = linear(other.path(), "bob", &path(authority.path())).unwrap();
    assert_eq!(reader.len().unwrap(), 200);
    let commits = git(authority.path(), &["rev-list", "--count", CHAIN]);
    assert_eq!(commits.trim().parse::<u64>().unwrap(), groups);
}

#[test]
fn a_failed_compare_and_set_writes_nothing() {
    let authority = bare_repo();
    let dir = work_repo();
    let kv = linear(dir.path(), "alice", &path(authority.path())).unwrap();
    kv.set("k", &"a").unwrap();
    let before = git(authority.path(), &["rev-parse", CHAIN]);
    let cas = kv
        .compare_and_set("k", Expect::Value("b".to_string()), &"c".to_string())
        .unwrap();
    assert!(!cas.swapped);
    assert_eq!(cas.current.unwrap().value, "a");
    assert_eq!(git(authority.path(), &["rev-parse", CHAIN]), before);
    let cas = kv
        .compare_and_set("k", Expect::Value("a".to_string()), &"c".to_string())
        .unwrap();
    assert!(cas.swapped);
    assert_eq!(cas.current.unwrap().value, "c");
}

#[test]
fn a_foreign_commit_on_the_chain_is_a_typed_error_naming_it() {
    let authority = bare_repo();
    let (a_dir, b_dir) = (work_repo(), work_repo());
    let a = linear(a_dir.path(), "alice", &path(authority.path())).unwrap();
    a.set("x", &1).unwrap();
    // Someone puts a plain git commit on top of the chain.
    let tree = git(authority.path(), &["mktree"]);
    let parent = git(authority.path(), &["rev-parse", CHAIN]);
    let foreign = git(
        authority.path(),
        &[
            "commit-tree",
            tree.trim(),
            "-p",
            parent.trim(),
            "-m",
            "not larder",
        ],
    );
    git(authority.path(), &["update-ref", CHAIN, foreign.trim()]);
    let b = linear(b_dir.path(), "bob", &path(authority.path())).unwrap();
    let before = b.position();
    match b.get::<i32>("x") {
        Err(KvError::ForeignCommit { commit, .. }) => assert_eq!(commit, foreign.trim()),
        other => panic!("expected ForeignCommit, got {other:?}"),
    }
    let r = a.set("y", &2);
    assert!(matches!(r, Err(KvError::ForeignCommit { .. })), "{r:?}");
    assert_eq!(b.position(), before, "nothing of it was applied");
}

#[test]
fn a_stale_chain_lock_is_a_typed_error_naming_the_file() {
    let authority = bare_repo();
    let dir = work_repo();
    let kv = linear(dir.path(), "alice", &path(authority.path())).unwrap();
    kv.set("x", &1).unwrap();
    let lock = authority.path().join(format!("{CHAIN}.lock"));
    std::fs::write(&lock, b"").unwrap();
    match kv.set("x", &2) {
        Err(KvError::AuthorityLocked { lock_path, .. }) => {
            assert_eq!(Path::new(&lock_path), lock)
        }
        other => panic!("expected AuthorityLocked, got {other:?}"),
    }
    std::fs::remove_file(&lock).unwrap();
    kv.set("x", &3).unwrap();
    assert_eq!(kv.get::<i32>("x").unwrap().unwrap().value, 3);
}

#[test]
fn an_unreachable_authority_fails_linearizable_operations_not_eventual_ones() {
    let authority = bare_repo();
    let dir = work_repo();
    let kv = linear(dir.path(), "alice", &path(authority.path())).unwrap();
    kv.set("x", &1).unwrap();
    let moved = authority.path().with_extension("gone");
    std::fs::rename(authority.path(), &moved).unwrap();
    let r = kv.set("x", &2);
    assert!(matches!(r, Err(KvError::Authority { .. })), "{r:?}");
    assert!(matches!(kv.get::<i32>("x"), Err(KvError::Authority { .. })));
    // A network authority that refuses connections fails fast, typed.
    let daemonless = format!(
        "git://127.0.0.1:{}/x.git",
        larder_testkit::daemon::free_port()
    );
    let other = work_repo();
    let net = linear(other.path(), "bob", &daemonless).unwrap();
    match net.set("x", &1) {
        Err(KvError::Authority {
            outcome_unknown, ..
        }) => assert!(!outcome_unknown),
        r => panic!("expected Authority, got {r:?}"),
    }
    // Eventual writes need no authority.
    let ev_dir = work_repo();
    let ev = eventual(ev_dir.path(), "carol");
    ev.set("x", &9).unwrap();
    std::fs::rename(&moved, authority.path()).unwrap();
    kv.set("x", &3).unwrap();
}

#[test]
fn a_local_log_with_writes_the_authority_never_ordered_is_diverged() {
    let authority = bare_repo();
    let (a_dir, b_dir) = (work_repo(), work_repo());
    let a = linear(a_dir.path(), "alice", &path(authority.path())).unwrap();
    a.set("x", &1).unwrap();
    // b wrote eventually first: its log is not on the chain.
    eventual(b_dir.path(), "bob").set("y", &2).unwrap();
    let b = linear(b_dir.path(), "bob", &path(authority.path())).unwrap();
    assert!(matches!(b.get::<i32>("x"), Err(KvError::Diverged { .. })));
    assert!(matches!(b.set("z", &3), Err(KvError::Diverged { .. })));
}

#[test]
fn an_authority_that_is_not_a_repository_is_a_typed_error() {
    let dir = work_repo();
    let nowhere = larder_testkit::fixtures::tempdir();
    let err = linear(dir.path(), "alice", &path(nowhere.path())).unwrap_err();
    assert!(err.to_string().contains(&path(nowhere.path())), "{err}");
    let err = linear(dir.path(), "alice", "no-such-remote").unwrap_err();
    assert!(err.to_string().contains("no-such-remote"), "{err}");
    let err = linear(dir.path(), "alice", "").unwrap_err();
    assert!(matches!(err, KvError::Mode(_)));
}

#[test]
fn eventual_replicas_follow_the_chain_read_only() {
    let authority = bare_repo();
    let (a_dir, f_dir) = (work_repo(), work_repo());
    let a = linear(a_dir.path(), "alice", &path(authority.path())).unwrap();
    for i in 0..5 {
        a.set(&format!("k{i}"), &i).unwrap();
    }
    let follower = eventual(f_dir.path(), "fred");
    assert_eq!(follower.follow(&path(authority.path())).unwrap(), 5);
    assert_eq!(follower.len().unwrap(), 5);
    assert_eq!(follower.state_hash().unwrap(), a.state_hash().unwrap());
    // Following changed nothing on the authority.
    let chain = git(authority.path(), &["rev-parse", CHAIN]);
    assert_eq!(chain.trim(), a.position().unwrap().to_string());
    // A linearizable store refuses eventual pulls.
    assert!(matches!(
        a.pull(&path(authority.path())),
        Err(KvError::Mode(_))
    ));
}

#[test]
fn over_git_daemon_the_swap_is_a_force_with_lease_push() {
    let root = larder_testkit::fixtures::tempdir();
    let bare = root.path().join("auth.git");
    GitRepo::init_bare(&bare).unwrap();
    let daemon = GitDaemon::start(root.path());
    let url = daemon.url(&bare);
    let (a_dir, b_dir) = (work_repo(), work_repo());
    let a = linear(a_dir.path(), "alice", &url).unwrap();
    let b = linear(b_dir.path(), "bob", &url).unwrap();
    a.set("n", &0u32).unwrap();
    std::thread::scope(|s| {
        for kv in [&a, &b] {
            let kv = kv.clone();
            s.spawn(move || {
                for _ in 0..5 {
                    loop {
                        let cur = kv.get::<u32>("n").unwrap().unwrap();
                        if kv
                            .compare_and_set("n", Expect::Version(cur.version), &(cur.value + 1))
                            .unwrap()
                            .swapped
                        {
                            break;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(a.get::<u32>("n").unwrap().unwrap().value, 10);
    assert_eq!(b.get::<u32>("n").unwrap().unwrap().value, 10);
    git(&bare, &["fsck", "--full", "--strict"]);
}

fn packs(git_dir: &Path) -> usize {
    std::fs::read_dir(git_dir.join("objects/pack"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pack")
        })
        .count()
}

#[test]
fn packs_stay_few_on_the_authority_and_the_replica() {
    // One pack per swap on both sides, merged every 16 as the WAL does;
    // without that, lookups slowed down with every write.
    let authority = bare_repo();
    let dir = work_repo();
    {
        let kv = linear(dir.path(), "alice", &path(authority.path())).unwrap();
        for i in 0..100 {
            kv.set(&format!("k{}", i % 7), &i).unwrap();
        }
    } // dropping the store waits for background merges
    let (remote, local) = (packs(authority.path()), packs(&dir.path().join(".git")));
    assert!(remote <= 32, "{remote} packs on the authority");
    assert!(local <= 32, "{local} packs in the replica");
    git(authority.path(), &["fsck", "--full", "--strict"]);
}

/// A file authority that counts fetches (reads that asked the authority).
#[derive(Debug)]
struct Counting {
    inner: larder_kv::FileAuthority,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
}

impl larder_kv::Authority for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn fetch(
        &self,
        local: &GitRepo,
        chain: &str,
    ) -> larder_kv::Result<Option<larder_git::ObjectId>> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.fetch(local, chain)
    }
    fn swap(
        &self,
        local: &GitRepo,
        chain: &str,
        old: Option<larder_git::ObjectId>,
        new: larder_git::ObjectId,
    ) -> larder_kv::Result<larder_kv::Swap> {
        self.inner.swap(local, chain, old, new)
    }
}

fn counted(
    dir: &Path,
    actor: &str,
    authority: &Path,
    clock: SharedClock,
) -> (Kv, Arc<std::sync::atomic::AtomicUsize>) {
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let auth = Counting {
        inner: larder_kv::FileAuthority::new(path(authority), GitRepo::open(authority).unwrap()),
        fetches: fetches.clone(),
    };
    let wal = WalManager::new(GitRepo::open(dir).unwrap(), "kv").unwrap();
    let kv = Kv::open_with_authority(
        wal,
        ActorId::new(actor).unwrap(),
        clock,
        KvOptions::default(),
        Box::new(auth),
    )
    .unwrap();
    (kv, fetches)
}

fn manual(clock: &larder_crdt::ManualClock) -> SharedClock {
    let c: Arc<dyn Clock> = Arc::new(clock.clone());
    Arc::new(Mutex::new(Hlc::new(c)))
}

#[test]
fn a_read_lease_serves_reads_locally_and_refuses_other_writers() {
    use std::sync::atomic::Ordering::SeqCst;
    let authority = bare_repo();
    let (a_dir, b_dir) = (work_repo(), work_repo());
    let (a, a_fetches) = counted(a_dir.path(), "alice", authority.path(), clock());
    let (b, _) = counted(b_dir.path(), "bob", authority.path(), clock());
    b.set("x", &1).unwrap();
    let lease = a.acquire_lease(std::time::Duration::from_secs(60)).unwrap();
    assert_eq!(lease.token, 1);
    let before = a_fetches.load(SeqCst);
    for _ in 0..10 {
        assert_eq!(a.get::<i32>("x").unwrap().unwrap().value, 1);
    }
    assert_eq!(
        a.scan::<i32>("").unwrap().len(),
        1,
        "the lease key is hidden"
    );
    assert_eq!(a_fetches.load(SeqCst), before, "lease reads ask no one");
    // Another handle cannot write while the lease is live — nor take it.
    assert!(matches!(b.set("x", &2), Err(KvError::LeaseHeld { .. })));
    assert!(matches!(
        b.acquire_lease(std::time::Duration::from_secs(1)),
        Err(KvError::LeaseHeld { .. })
    ));
    assert!(matches!(
        b.compare_and_set("x", Expect::Value(1), &3),
        Err(KvError::LeaseHeld { .. })
    ));
    // The holder writes, and others read it through the authority.
    a.set("x", &4).unwrap();
    assert_eq!(b.get::<i32>("x").unwrap().unwrap().value, 4);
    assert_eq!(a_fetches.load(SeqCst), before);
    a.release_lease().unwrap();
    b.set("x", &5).unwrap();
    assert_eq!(a.get::<i32>("x").unwrap().unwrap().value, 5);
    assert!(
        a_fetches.load(SeqCst) > before,
        "after release reads ask again"
    );
    // A new holder gets a greater fencing token.
    assert_eq!(
        b.acquire_lease(std::time::Duration::from_secs(60))
            .unwrap()
            .token,
        2
    );
}

#[test]
fn a_read_lease_expires_with_the_skew_margin_on_both_sides() {
    use std::sync::atomic::Ordering::SeqCst;
    let authority = bare_repo();
    let (a_dir, b_dir) = (work_repo(), work_repo());
    let wall = larder_crdt::ManualClock::new(1_800_000_000_000);
    let (a, a_fetches) = counted(a_dir.path(), "alice", authority.path(), manual(&wall));
    let (b, _) = counted(b_dir.path(), "bob", authority.path(), manual(&wall));
    a.set("x", &1).unwrap();
    let lease = a.acquire_lease(std::time::Duration::from_secs(10)).unwrap();
    let t0 = 1_800_000_000_000;
    assert_eq!(lease.expires_ms, t0 + 10_000);
    // Before expiry minus the margin: local reads.
    wall.set(t0 + 7_000);
    let n = a_fetches.load(SeqCst);
    a.get::<i32>("x").unwrap();
    assert_eq!(a_fetches.load(SeqCst), n);
    // Within the margin before expiry: the holder asks again.
    wall.set(t0 + 8_500);
    a.get::<i32>("x").unwrap();
    assert_eq!(a_fetches.load(SeqCst), n + 1);
    // Expired, but within the margin after: others still wait.
    wall.set(t0 + 11_000);
    assert!(matches!(b.set("x", &2), Err(KvError::LeaseHeld { .. })));
    // Past the margin: others write.
    wall.set(t0 + 12_001);
    b.set("x", &3).unwrap();
    assert_eq!(a.get::<i32>("x").unwrap().unwrap().value, 3);
}

#[test]
fn a_compare_and_set_after_own_write_sees_writes_made_since_elsewhere() {
    // A writer remembers the head of its own last swap to skip a fetch;
    // a compare-and-set that would not match there must not be decided on
    // that (possibly old) state.
    let authority = bare_repo();
    let (a_dir, b_dir) = (work_repo(), work_repo());
    let a = linear(a_dir.path(), "alice", &path(authority.path())).unwrap();
    let b = linear(b_dir.path(), "bob", &path(authority.path())).unwrap();
    a.set("x", &1).unwrap();
    b.set("x", &2).unwrap();
    let cas = a.compare_and_set("x", Expect::Value(2), &3).unwrap();
    assert!(cas.swapped, "{cas:?}");
    assert_eq!(b.get::<i32>("x").unwrap().unwrap().value, 3);
}
