//! SIGKILL mid-write in linearizable mode (issue #15, item 4): a writer
//! process journals each write (fsynced) before issuing it and again once
//! it is acknowledged, and is SIGKILLed at random points, several times,
//! alternating between two clones of one authority. Afterwards, whatever
//! the kill timing was:
//!
//! - every acknowledged write is on the authority's chain, exactly once;
//! - every write that failed with a known outcome is not on it;
//! - every other write (killed in flight, or outcome unknown) is on it at
//!   most once;
//! - the chain is linear, `git fsck` passes, and a fresh reader sees the
//!   state the chain implies.
//!
//! A kill can leave a `<ref>.lock` behind (git's lock files outlive their
//! process); as an operator would once no writer runs, the parent removes
//! lock files after each kill, and counts them.
//!
//! Seeded kill points: `LARDER_KV_FAULT_SEED=<seed>` replays the schedule
//! (the kill lands wherever the writer is by then).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use larder_codec::ActorId;
use larder_crdt::{Clock, Hlc, KV_SET, KvProjection, Projection, SystemClock};
use larder_git::GitRepo;
use larder_kv::{Consistency, Kv, KvError, KvOptions, SharedClock};
use larder_testkit::fixtures::{assert_fsck, tempdir, work_repo};
use larder_testkit::{Rng, git, harness, seed_from_env};
use larder_wal::{WalManager, commits_between};

const ROLE: &str = "LARDER_KV_FAULT_ROLE";
const CHAIN: &str = "refs/larder/kv/chain";
/// Kill rounds; a last round then runs to completion.
const KILLS: u64 = 8;
const KEYS: u64 = 7;

fn main() {
    match harness::role(ROLE).as_deref() {
        Some("writer") => child_writer(),
        _ => harness::run_tests(&[(
            "sigkill_mid_write_loses_no_acknowledged_write_and_duplicates_none",
            sigkill_mid_write,
        )]),
    }
}

fn clock() -> SharedClock {
    let c: Arc<dyn Clock> = Arc::new(SystemClock);
    Arc::new(Mutex::new(Hlc::new(c)))
}

fn open(dir: &Path, actor: &str, authority: &str) -> larder_kv::Result<Kv> {
    let wal = WalManager::new(GitRepo::open(dir).unwrap(), "kv").unwrap();
    Kv::open(
        wal,
        ActorId::new(actor).unwrap(),
        clock(),
        KvOptions {
            consistency: Consistency::Linearizable {
                authority: authority.to_owned(),
            },
            ..KvOptions::default()
        },
    )
}

/// Appends `line` to the journal and fsyncs it.
fn journal(file: &mut std::fs::File, line: &str) {
    writeln!(file, "{line}").unwrap();
    file.sync_all().unwrap();
}

/// Child: `<repo> <authority> <journal> <first write> <count>`. Write `i`
/// sets key `k<i % KEYS>` to `i`: journalled `begin i` before, then `ack
/// i` (and a line on stdout), `fail i` (known not written) or `unknown i`.
fn child_writer() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repo, authority, journal_path, first, count] = &args[..] else {
        panic!("writer arguments: {args:?}");
    };
    let first: u64 = first.parse().unwrap();
    let count: u64 = count.parse().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal_path)
        .unwrap();
    let kv = open(Path::new(repo), "writer", authority).unwrap();
    let mut out = std::io::stdout().lock();
    for i in first..first + count {
        journal(&mut file, &format!("begin {i}"));
        writeln!(out, "begin {i}").unwrap();
        out.flush().unwrap();
        match kv.set(&format!("k{}", i % KEYS), &i) {
            Ok(_) => {
                journal(&mut file, &format!("ack {i}"));
                writeln!(out, "ack {i}").unwrap();
                out.flush().unwrap();
            }
            Err(KvError::Authority {
                outcome_unknown: true,
                ..
            }) => journal(&mut file, &format!("unknown {i}")),
            Err(
                KvError::Authority { .. }
                | KvError::Contention { .. }
                | KvError::AuthorityLocked { .. },
            ) => journal(&mut file, &format!("fail {i}")),
            Err(e) => panic!("write {i}: unexpected error {e}"),
        }
    }
}

/// Every `*.lock` file under `dir`'s refs (and packed-refs' lock).
fn lock_files(git_dir: &Path) -> Vec<PathBuf> {
    larder_testkit::fixtures::files(git_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .collect()
}

fn sigkill_mid_write() {
    let seed = seed_from_env("LARDER_KV_FAULT_SEED", 0x15_0043);
    let mut rng = Rng::new(seed);
    let root = tempdir();
    let bare = root.path().join("authority.git");
    GitRepo::init_bare(&bare).unwrap();
    let authority = bare.display().to_string();
    let clones = [work_repo(), work_repo()];
    let journal_path = root.path().join("journal");
    let started = Instant::now();
    let mut next = 0u64;
    let mut removed_locks = Vec::new();
    for round in 0..=KILLS {
        let clone = clones[(round % 2) as usize].path();
        let last = round == KILLS;
        let count = if last { 20 } else { 1_000_000 };
        let mut child: Child = harness::child(ROLE, "writer")
            .args([
                clone.display().to_string(),
                authority.clone(),
                journal_path.display().to_string(),
                next.to_string(),
                count.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut acks = BufReader::new(child.stdout.take().unwrap()).lines();
        if last {
            for line in acks.by_ref() {
                line.unwrap();
            }
            let status = child.wait().unwrap();
            assert!(status.success(), "the last writer failed: {status}");
        } else {
            // Kill inside the write that begins after this many others:
            // once it has begun, at a random point of the next ~15 ms (a
            // write takes a few ms; the kill lands before, during or after
            // its swap).
            let kill_at = 1 + rng.below(12);
            let mut begun = 0;
            while begun < kill_at {
                let line = acks
                    .next()
                    .unwrap_or_else(|| panic!("round {round}: the writer exited early"))
                    .unwrap();
                if line.starts_with("begin ") {
                    begun += 1;
                }
            }
            std::thread::sleep(std::time::Duration::from_micros(rng.below(15_000)));
            child.kill().unwrap();
            child.wait().unwrap();
            // No writer runs now: locks left behind are stale.
            for dir in [bare.clone(), clone.join(".git")] {
                for lock in lock_files(&dir) {
                    std::fs::remove_file(&lock).unwrap();
                    removed_locks.push(lock);
                }
            }
        }
        let text = std::fs::read_to_string(&journal_path).unwrap();
        next = text
            .lines()
            .filter_map(|l| l.strip_prefix("begin "))
            .map(|n| n.parse::<u64>().unwrap() + 1)
            .max()
            .unwrap_or(0);
    }

    // What the journal says of each write.
    let text = std::fs::read_to_string(&journal_path).unwrap();
    let mut fate: HashMap<u64, &str> = HashMap::new();
    for line in text.lines() {
        let (what, n) = line.split_once(' ').unwrap();
        fate.insert(n.parse().unwrap(), what);
    }
    // How often each write is on the chain.
    let repo = GitRepo::open(&bare).unwrap();
    let head = repo.ref_target(CHAIN).unwrap().expect("a chain");
    let mut on_chain: HashMap<u64, u64> = HashMap::new();
    let mut projection = KvProjection::default();
    let mut commits = 0;
    for commit in commits_between(&repo, head, None, CHAIN).unwrap() {
        let commit = commit.unwrap();
        commits += 1;
        assert!(
            commit.parents.len() <= 1,
            "chain commit {} has {} parents",
            commit.id,
            commit.parents.len()
        );
        for e in &commit.events {
            projection.apply(e).unwrap();
            if e.kind() == KV_SET {
                let (_, value): (String, u64) = e.payload().deserialize().unwrap();
                *on_chain.entry(value).or_default() += 1;
            }
        }
    }
    let count = |what: &str| fate.values().filter(|f| **f == what).count();
    println!(
        "{} writes: {} acknowledged, {} failed, {} unknown, {} cut by a kill; {commits} chain commits; \
         {} stale lock files removed {removed_locks:?}; {:.2?}",
        fate.len(),
        count("ack"),
        count("fail"),
        count("unknown"),
        count("begin"),
        removed_locks.len(),
        started.elapsed()
    );
    for (n, what) in &fate {
        let times = on_chain.get(n).copied().unwrap_or(0);
        match *what {
            "ack" => assert_eq!(
                times, 1,
                "acknowledged write {n} is on the chain {times} times"
            ),
            "fail" => assert_eq!(times, 0, "failed write {n} is on the chain {times} times"),
            _ => assert!(times <= 1, "{what} write {n} is on the chain {times} times"),
        }
    }
    for n in on_chain.keys() {
        assert!(
            fate.contains_key(n),
            "write {n} on the chain was never begun"
        );
    }
    // The chain is an ordinary linear git history; a fresh reader sees the
    // state it implies.
    let linear = git(&bare, &["rev-list", "--min-parents=2", CHAIN]);
    assert!(linear.trim().is_empty(), "merges on the chain: {linear}");
    assert_fsck(&bare);
    let reader_dir = work_repo();
    let reader = open(reader_dir.path(), "reader", &authority).unwrap();
    assert_eq!(reader.state_hash().unwrap(), projection.state_hash());
    // Every clone catches up with it too.
    for c in &clones {
        let kv = open(c.path(), "writer", &authority).unwrap();
        assert_eq!(kv.state_hash().unwrap(), projection.state_hash());
    }
}
