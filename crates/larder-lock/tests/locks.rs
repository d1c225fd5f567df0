//! Lease lock semantics against real repositories.

use std::sync::{Arc, Barrier};

use larder_codec::ActorId;
use larder_crdt::{ManualClock, SkewedClock};
use larder_git::{EntryKind, Expected, GitRepo, TreeEntry};
use larder_lock::{Authority, LockError, LockManager, LockOptions};

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

fn local() -> (tempfile::TempDir, Authority) {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(dir.path()).unwrap();
    (dir, Authority::Local(repo))
}

fn bare_remote() -> (tempfile::TempDir, tempfile::TempDir, Authority) {
    let remote = tempfile::tempdir().unwrap();
    GitRepo::init_bare(remote.path()).unwrap();
    let clone = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(clone.path()).unwrap();
    let authority =
        Authority::remote(&repo, &format!("file://{}", remote.path().display())).unwrap();
    (remote, clone, authority)
}

#[test]
fn acquire_held_release_and_tokens_increase() {
    let (_d, auth) = local();
    let clock = ManualClock::new(1_000_000);
    let alice = manager(&auth, "alice", &clock);
    let bob = manager(&auth, "bob", &clock);
    let lease = alice.acquire("db/main", 10_000).unwrap();
    assert_eq!(lease.token, 1);
    match bob.acquire("db/main", 10_000) {
        Err(LockError::Held {
            holder,
            token,
            expires_in_ms,
            ..
        }) => {
            assert_eq!(
                (holder.as_str(), token, expires_in_ms),
                ("alice", 1, 10_100)
            );
        }
        other => panic!("expected Held, got {other:?}"),
    }
    let info = bob.check("db/main").unwrap().unwrap();
    assert!(info.live);
    assert_eq!(info.holder.as_deref(), Some("alice"));
    alice.release(&lease).unwrap();
    assert!(!bob.check("db/main").unwrap().unwrap().live);
    let next = bob.acquire("db/main", 10_000).unwrap();
    assert_eq!(
        next.token, 2,
        "a new acquisition bumps the token, even after release"
    );
    assert!(alice.check("other").unwrap().is_none());
}

#[test]
fn acquiring_again_while_your_own_lease_is_live_is_refused_and_renew_extends_it() {
    let (_d, auth) = local();
    let clock = ManualClock::new(5_000);
    let a = manager(&auth, "a", &clock);
    let first = a.acquire("r", 1_000).unwrap();
    clock.advance(500);
    // A second acquisition is a second holder, even from the same manager.
    match a.acquire("r", 1_000) {
        Err(LockError::Held {
            holder,
            holder_id,
            token,
            ..
        }) => {
            assert_eq!((holder.as_str(), token), ("a", first.token));
            assert_eq!(holder_id, first.holder_id);
        }
        other => panic!("expected Held, got {other:?}"),
    }
    let renewed = a.renew(&first, 2_000).unwrap();
    assert_eq!((renewed.token, renewed.expires_ms), (1, 7_500));
    assert_eq!(renewed.holder_id, first.holder_id);
    // A later process knows only the token: it renews and releases by it.
    let by_token = a.renew_token("r", 1, 3_000).unwrap();
    assert_eq!(
        (by_token.expires_ms, &by_token.holder_id),
        (8_500, &first.holder_id)
    );
    a.release_token("r", 1).unwrap();
    assert!(!a.is_current("r", 1).unwrap());
}

#[test]
fn non_holders_cannot_release_and_a_taken_over_holder_cannot_renew_or_release() {
    let (_r, _c, auth) = bare_remote();
    let clock = ManualClock::new(0);
    let a = manager(&auth, "a", &clock);
    let b = manager(&auth, "b", &clock);
    let lease = a.acquire("job", 1_000).unwrap();
    assert!(matches!(
        b.release_token("job", lease.token),
        Err(LockError::NotHolder { .. })
    ));
    assert!(matches!(
        b.release_token("never", 1),
        Err(LockError::NotHolder { .. })
    ));
    // Expiry alone does not let others in: the skew margin must pass too.
    clock.set(1_050);
    assert!(matches!(
        b.acquire("job", 1_000),
        Err(LockError::Held { .. })
    ));
    assert!(matches!(
        a.renew(&lease, 1_000),
        Err(LockError::Expired { ago_ms: 50, .. })
    ));
    clock.set(1_101);
    let taken = b.acquire("job", 1_000).unwrap();
    assert_eq!(taken.token, 2);
    assert!(matches!(
        a.renew(&lease, 1_000),
        Err(LockError::NotHolder { .. })
    ));
    assert!(matches!(
        a.release(&lease),
        Err(LockError::NotHolder { .. })
    ));
    b.release(&taken).unwrap();
}

#[test]
fn two_contenders_for_an_expired_lease_exactly_one_wins() {
    for round in 0..20 {
        let (_r, _c, auth) = bare_remote();
        let clock = ManualClock::new(0);
        manager(&auth, "old", &clock).acquire("x", 10).unwrap();
        clock.set(1_000);
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = ["p", "q"]
            .into_iter()
            .map(|name| {
                let (auth, clock, barrier) = (auth.clone(), clock.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let m = manager(&auth, name, &clock);
                    barrier.wait();
                    m.acquire("x", 60_000)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert_eq!(winners[0].token, 2);
        let loser = results.iter().find(|r| r.is_err()).unwrap();
        assert!(
            matches!(loser, Err(LockError::Held { token: 2, .. })),
            "round {round}: {loser:?}"
        );
    }
}

#[test]
fn huge_ttls_saturate() {
    let (_d, auth) = local();
    let clock = ManualClock::new(u64::MAX - 10);
    let lease = manager(&auth, "a", &clock).acquire("r", u64::MAX).unwrap();
    assert_eq!(lease.expires_ms, u64::MAX);
    assert!(matches!(
        manager(&auth, "b", &clock).acquire("r", 1),
        Err(LockError::Held { .. })
    ));
}

#[test]
fn a_malformed_record_is_reported_for_its_resource_alone() {
    let (_d, auth) = local();
    let clock = ManualClock::new(0);
    let m = manager(&auth, "a", &clock);
    m.acquire("good", 1_000).unwrap();
    m.acquire("bad", 1_000).unwrap();
    // Overwrite "bad" with a commit holding garbage.
    let Authority::Local(repo) = &auth else {
        unreachable!()
    };
    let blob = repo.write_blob(b"{ nope").unwrap();
    let tree = repo
        .write_tree(&[TreeEntry {
            name: "lock.json".into(),
            kind: EntryKind::Blob,
            id: blob,
        }])
        .unwrap();
    let commit = repo.write_commit(tree, &[], "junk", None, 0).unwrap();
    let name = m.ref_for("bad");
    let old = repo.ref_target(&name).unwrap().unwrap();
    repo.update_ref(&name, Expected::MustBe(old), commit, "corrupt")
        .unwrap();
    // A record for one resource stored under another's ref is refused too.
    let good_commit = repo.ref_target(&m.ref_for("good")).unwrap().unwrap();
    repo.update_ref(
        &m.ref_for("moved"),
        Expected::MustNotExist,
        good_commit,
        "move",
    )
    .unwrap();

    let entries = m.list().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries.iter().filter(|e| e.is_ok()).count(), 1);
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Ok(info) if info.resource == "good"))
    );
    assert!(matches!(m.check("bad"), Err(LockError::Malformed { .. })));
    assert!(matches!(m.check("moved"), Err(LockError::Malformed { .. })));
    assert!(m.check("good").unwrap().is_some());
}

#[test]
fn gc_trims_history_and_keeps_tokens_monotonic() {
    let (_r, _c, auth) = bare_remote();
    let clock = ManualClock::new(0);
    let m = manager(&auth, "a", &clock);
    for _ in 0..3 {
        let l = m.acquire("r", 100).unwrap();
        m.release(&l).unwrap();
    }
    let live = m.acquire("busy", 1_000_000).unwrap();
    m.renew(&live, 1_000_000).unwrap();
    assert_eq!(m.gc().unwrap(), 1, "only the free lock is trimmed");
    let name = m.ref_for("r");
    let repo = match &auth {
        Authority::FileRemote { repo, .. } => repo.clone(),
        _ => unreachable!(),
    };
    let head = repo.ref_target(&name).unwrap().unwrap();
    assert!(repo.read_commit(head).unwrap().parents.is_empty());
    assert_eq!(m.acquire("r", 100).unwrap().token, 4);
    assert_eq!(m.check("busy").unwrap().unwrap().token, 1);
}

#[test]
fn the_git_binary_transport_does_cas_with_force_with_lease() {
    let remote = tempfile::tempdir().unwrap();
    GitRepo::init_bare(remote.path()).unwrap();
    let url = format!("file://{}", remote.path().display());
    let clones: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let auths: Vec<Authority> = clones
        .iter()
        .map(|c| Authority::GitBinary {
            url: url.clone(),
            local: GitRepo::init(c.path()).unwrap(),
        })
        .collect();
    let clock = ManualClock::new(0);
    let a = manager(&auths[0], "a", &clock);
    let b = manager(&auths[1], "b", &clock);
    let lease = a.acquire("net", 1_000).unwrap();
    assert!(matches!(
        b.acquire("net", 1_000),
        Err(LockError::Held { token: 1, .. })
    ));
    a.release(&lease).unwrap();
    assert_eq!(b.acquire("net", 1_000).unwrap().token, 2);
    assert_eq!(b.list().unwrap().len(), 1);
    // The remote's ref moved, as plain git sees it.
    let out = std::process::Command::new("git")
        .args([
            "-C",
            &remote.path().display().to_string(),
            "for-each-ref",
            "refs/larder/locks/",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn simulation_with_skewed_clocks_never_has_two_live_holders() {
    const MARGIN: u64 = 200;
    for seed in 0..30u64 {
        let (_d, auth) = local();
        let truth = ManualClock::new(1_000_000);
        let mut rng = larder_testkit::Rng::new(seed);
        // Each actor's clock is off by at most MARGIN/2, so any two differ by at most MARGIN.
        let actors: Vec<(LockManager, i64)> = (0..4)
            .map(|i| {
                let skew = (rng.next_u64() % (MARGIN + 1)) as i64 - (MARGIN / 2) as i64;
                let clock = SkewedClock::new(truth.clone(), skew);
                let m = LockManager::with_clock(
                    auth.clone(),
                    ActorId::new(format!("sim{i}")).unwrap(),
                    Arc::new(clock),
                    LockOptions {
                        max_skew_ms: MARGIN,
                        ..LockOptions::default()
                    },
                );
                (m, skew)
            })
            .collect();
        let mut leases: Vec<Option<larder_lock::Lease>> = vec![None; actors.len()];
        let mut last_token = 0;
        for step in 0..300 {
            let i = (rng.next_u64() % actors.len() as u64) as usize;
            let (m, skew) = &actors[i];
            match rng.next_u64() % 5 {
                0 | 1 => {
                    if let Ok(l) = m.acquire("res", 50 + rng.next_u64() % 400) {
                        assert!(
                            l.token >= last_token,
                            "seed {seed} step {step}: token went back"
                        );
                        last_token = l.token;
                        leases[i] = Some(l);
                    }
                }
                2 => {
                    if let Some(l) = &leases[i]
                        && let Ok(n) = m.renew(l, 50 + rng.next_u64() % 400)
                    {
                        leases[i] = Some(n);
                    }
                }
                3 => {
                    if let Some(l) = leases[i].take() {
                        let _ = m.release(&l);
                    }
                }
                _ => truth.advance(rng.next_u64() % 150),
            }
            let _ = skew;
            // Safety: at most one actor believes, by its own clock, that it
            // holds an unexpired lease.
            let believers: Vec<usize> = (0..actors.len())
                .filter(|&j| {
                    let now = truth.now_millis_skewed(actors[j].1);
                    leases[j].as_ref().is_some_and(|l| now < l.expires_ms)
                })
                .collect();
            assert!(
                believers.len() <= 1,
                "seed {seed} step {step}: live holders {believers:?}"
            );
        }
    }
}

trait SkewedNow {
    fn now_millis_skewed(&self, skew: i64) -> u64;
}

impl SkewedNow for ManualClock {
    fn now_millis_skewed(&self, skew: i64) -> u64 {
        use larder_crdt::Clock;
        self.now_millis().saturating_add_signed(skew)
    }
}
