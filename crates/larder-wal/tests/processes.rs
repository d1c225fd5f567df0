//! Appender *processes*: concurrent appends lose nothing, and a process
//! killed with SIGKILL at arbitrary points leaves a log that reads cleanly
//! and holds a whole-batch prefix of what it appended.
//!
//! The test binary re-executes itself as the child (selected by an
//! environment variable), so children and parent share one build.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};

use common::{batch, git, keys};
use larder_git::GitRepo;
use larder_testkit::{Rng, harness, run_seeds};
use larder_wal::{WalError, WalManager, WalOptions};

const ROLE: &str = "LARDER_WAL_TEST_ROLE";

fn main() {
    match harness::role(ROLE).as_deref() {
        Some("append") => child_append(),
        Some("crash") => child_crash(),
        _ => harness::run_tests(&[
            (
                "four_processes_hundred_appends_each_lose_nothing",
                four_processes,
            ),
            (
                "sigkill_at_random_points_leaves_a_whole_batch_prefix",
                crash_points,
            ),
        ]),
    }
}

fn open(path: &Path) -> WalManager {
    WalManager::new(GitRepo::open(path).unwrap(), "test").unwrap()
}

fn spawn(role: &str, repo: &Path, args: &[String]) -> Child {
    harness::child(ROLE, role)
        .arg(repo)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Child: wait for "go" on stdin, then append `count` single-event batches.
fn child_append() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wal = open(Path::new(&args[0]));
    let actor = &args[1];
    let count: u64 = args[2].parse().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    for n in 0..count {
        wal.append(&batch(actor, n, 1)).unwrap();
    }
}

/// The batches the crash child appends, in order: sizes cycle 1..=4.
fn crash_batch(i: u64) -> Vec<larder_codec::Envelope> {
    let start: u64 = (0..i).map(|j| j % 4 + 1).sum();
    batch("crasher", start, i % 4 + 1)
}

/// Child: append batches forever, acknowledging each on stdout.
fn child_crash() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wal = open(Path::new(&args[0]));
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        wal.append(&crash_batch(i)).unwrap();
        writeln!(out, "appended {i}").unwrap();
        out.flush().unwrap();
    }
}

fn four_processes() {
    let dir = tempfile::tempdir().unwrap();
    GitRepo::init_bare(dir.path()).unwrap();
    let mut children: Vec<Child> = (0..4)
        .map(|p| spawn("append", dir.path(), &[format!("proc-{p}"), "100".into()]))
        .collect();
    // Start them together: every child is blocked on stdin until now.
    for c in &mut children {
        writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "an appender process failed");
    }
    let all = keys(&open(dir.path()).read_all().unwrap());
    assert_eq!(all.len(), 400);
    for p in 0..4 {
        let actor = format!("proc-{p}");
        let mine: Vec<u64> = all
            .iter()
            .filter(|(a, _)| *a == actor)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(
            mine,
            (0..100).collect::<Vec<_>>(),
            "{actor}: each event once, in order"
        );
    }
    git(dir.path(), &["fsck", "--full", "--strict"]);
}

/// Twelve seeded kill points; `LARDER_CRASH_SEED=<seed>` replays one.
fn crash_points() {
    const BASE: u64 = 0x001a_2de5;
    run_seeds("LARDER_CRASH_SEED", BASE..BASE + 12, crash_once);
}

fn crash_once(seed: u64) {
    let kill_after = 1 + Rng::new(seed).below(40);
    let dir = tempfile::tempdir().unwrap();
    GitRepo::init(dir.path()).unwrap();
    let mut child = spawn("crash", dir.path(), &[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..kill_after {
        lines.next().unwrap().unwrap();
    }
    // The child is now somewhere inside a later append.
    child.kill().unwrap();
    child.wait().unwrap();

    let wal = open(dir.path());
    let got = wal
        .read_all()
        .unwrap_or_else(|e| panic!("seed {seed}: log unreadable after crash: {e}"));
    let report = wal.verify().unwrap();
    assert!(report.is_ok(), "seed {seed}: {:?}", report.problems);
    // A whole-batch prefix, at least as long as what was acknowledged.
    let mut expected = Vec::new();
    let mut i = 0;
    while expected.len() < got.len() {
        expected.extend(crash_batch(i));
        i += 1;
    }
    assert_eq!(got, expected, "seed {seed}: not a whole-batch prefix");
    assert!(
        i >= kill_after,
        "seed {seed}: lost acknowledged batches ({i} < {kill_after})"
    );
    git(dir.path(), &["fsck", "--full", "--strict"]);

    // The log stays writable, or says clearly why not.
    let options = WalOptions {
        max_lock_waits: 2,
        ..WalOptions::default()
    };
    let wal =
        WalManager::with_options(GitRepo::open(dir.path()).unwrap(), "test", options).unwrap();
    let lock = dir.path().join(".git/refs/larder/test/wal.lock");
    match wal.append(&crash_batch(i)) {
        Ok(_) => assert!(!lock.exists()),
        Err(WalError::Locked { lock_path, .. }) => {
            assert!(lock.exists(), "seed {seed}: Locked without a lock file");
            assert!(lock_path.ends_with("wal.lock"));
            std::fs::remove_file(&lock).unwrap();
            wal.append(&crash_batch(i)).unwrap();
        }
        Err(e) => panic!("seed {seed}: append after crash failed: {e}"),
    }
}
