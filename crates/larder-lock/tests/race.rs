//! Eight processes race for one resource through one bare remote, 60 times
//! each, all as the same actor (as processes of one clone would be): a
//! lease belongs to one acquisition, not to an actor. Each winner proves exclusivity by creating a marker file with
//! O_EXCL while it holds the lease, and records (token, start, end). The
//! checker then proves: no two holding intervals overlap, and tokens
//! strictly increase in acquisition order.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use larder_codec::ActorId;
use larder_git::GitRepo;
use larder_lock::{Authority, LockError, LockManager};

const ROLE: &str = "LARDER_LOCK_TEST_ROLE";
const PROCESSES: usize = 8;
const ITERATIONS: usize = 60;

fn main() {
    if larder_testkit::harness::role(ROLE).as_deref() == Some("contender") {
        contender();
        return;
    }
    larder_testkit::harness::run_tests(&[("eight_processes_race_through_one_remote", race)]);
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn contender() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (remote, work, me) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]), &args[2]);
    let local = GitRepo::init(work.join(format!("clone-{me}"))).unwrap();
    let authority = Authority::remote(&local, &remote.display().to_string()).unwrap();
    // Every process acts as one actor: they must still exclude each other.
    let locks = LockManager::new(authority, ActorId::new("racer").unwrap());
    let marker = work.join("holder.marker");
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(work.join("holds.log"))
        .unwrap();
    let mut waits = 0u32;
    for _ in 0..ITERATIONS {
        let lease = loop {
            match locks.acquire("the-resource", 30_000) {
                Ok(lease) => break lease,
                Err(LockError::Held { .. } | LockError::Stale { .. }) => {
                    waits = waits.wrapping_add(1);
                    std::thread::yield_now();
                }
                Err(e) => panic!("{me}: acquire failed: {e}"),
            }
        };
        let start = nanos();
        // Exclusivity witness: fails if another holder's marker exists.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .unwrap_or_else(|e| {
                panic!(
                    "{me}: token {} acquired while another process held the lock: {e}",
                    lease.token
                )
            });
        std::fs::remove_file(&marker).unwrap();
        let end = nanos();
        writeln!(log, "{} {start} {end} {me}", lease.token).unwrap();
        locks.release(&lease).unwrap();
    }
    let _ = waits;
}

fn race() {
    let remote = tempfile::tempdir().unwrap();
    GitRepo::init_bare(remote.path()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            larder_testkit::harness::child(ROLE, "contender")
                .args([remote.path(), work.path(), Path::new(&format!("proc-{p}"))])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(
            c.wait().unwrap().success(),
            "a contender failed (see its panic above)"
        );
    }
    let log = std::fs::read_to_string(work.path().join("holds.log")).unwrap();
    let mut holds: Vec<(u64, u128, u128, String)> = log
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].to_owned(),
            )
        })
        .collect();
    assert_eq!(holds.len(), PROCESSES * ITERATIONS);
    holds.sort_by_key(|h| h.1);
    for w in holds.windows(2) {
        assert!(
            w[0].2 < w[1].1,
            "holding intervals overlap: {:?} and {:?}",
            w[0],
            w[1]
        );
        assert!(
            w[0].0 < w[1].0,
            "tokens not strictly increasing in acquisition order: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    assert_eq!(
        holds.last().unwrap().0,
        (PROCESSES * ITERATIONS) as u64,
        "one token per acquisition"
    );
}
