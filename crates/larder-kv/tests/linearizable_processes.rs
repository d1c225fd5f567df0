//! Linearizability across OS processes (issue #15, item 4): 8 client
//! processes — each its own clone — run 200 random set / get /
//! compare-and-set / delete operations on 10 keys against one bare
//! authority, reached once as a file path and once over `git daemon` on
//! loopback. Each client records its history (call and return times from
//! the wall clock all processes share) to a file; the parent merges them,
//! adds a final read of every key, and checks the whole history per key
//! with larder-linearize. An operation that failed with an outcome-unknown
//! error is pending in the history; one that failed with a known outcome
//! (nothing written) is dropped; a read that failed is dropped.
//!
//! The eventual-mode variant: 8 processes write at random and sync through
//! a bare remote while they do; after a final sync round every replica has
//! the same `state_hash()`.
//!
//! Seeded: `LARDER_KV_PROC_SEED=<seed>` replays a workload (process timing
//! still varies; the checked properties must hold for every timing). The
//! test binary re-executes itself as the clients (`harness = false`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use larder_codec::ActorId;
use larder_crdt::{Clock, Hlc, SystemClock};
use larder_git::GitRepo;
use larder_kv::{Consistency, Expect, Kv, KvError, KvOptions, SharedClock};
use larder_linearize::{
    History, KvInput, KvModel, KvOutput, Operation, Verdict, check, wall_clock_nanos,
};
use larder_testkit::daemon::GitDaemon;
use larder_testkit::fixtures::assert_fsck;
use larder_testkit::{Rng, harness, seed_from_env};
use larder_wal::WalManager;

const ROLE: &str = "LARDER_KV_PROC_ROLE";
const SEED_VAR: &str = "LARDER_KV_PROC_SEED";
const PROCESSES: u64 = 8;
const OPS: u64 = 200;
const KEYS: u64 = 10;
/// The client id of the parent's final reads.
const FINAL_READER: u64 = 1000;

type Input = KvInput<u64, u64>;
type Output = KvOutput<u64>;

fn main() {
    match harness::role(ROLE).as_deref() {
        Some("linear") => child_linear(),
        Some("eventual") => child_eventual(),
        _ => harness::run_tests(&[
            (
                "eight_processes_over_a_file_authority_are_linearizable",
                over_file_authority,
            ),
            (
                "eight_processes_over_git_daemon_are_linearizable",
                over_git_daemon,
            ),
            (
                "eight_eventual_processes_converge_after_a_final_sync_round",
                eventual_processes_converge,
            ),
        ]),
    }
}

fn clock() -> SharedClock {
    let c: Arc<dyn Clock> = Arc::new(SystemClock);
    Arc::new(Mutex::new(Hlc::new(c)))
}

fn open(dir: &Path, actor: &str, consistency: Consistency) -> Kv {
    let wal = WalManager::new(GitRepo::open(dir).unwrap(), "kv").unwrap();
    Kv::open(
        wal,
        ActorId::new(actor).unwrap(),
        clock(),
        KvOptions {
            consistency,
            ..KvOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("opening {}: {e}", dir.display()))
}

fn linearizable(authority: &str) -> Consistency {
    Consistency::Linearizable {
        authority: authority.to_owned(),
    }
}

fn key_name(key: u64) -> String {
    format!("k{key}")
}

/// The generator of client `client` of a run seeded `seed`.
fn client_rng(seed: u64, client: u64) -> Rng {
    Rng::new(seed ^ (client + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// A temporary directory on tmpfs when there is one: durability is not
/// under test here, and fsyncs on a shared disk would dominate the run.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("larder-kv-proc")
            .tempdir_in(shm)
    {
        return dir;
    }
    larder_testkit::fixtures::tempdir()
}

/// A temporary repository with a work tree.
fn work_repo() -> tempfile::TempDir {
    let dir = tempdir();
    GitRepo::init(dir.path()).unwrap();
    dir
}

// --- the history's text form -------------------------------------------

fn opt(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), |v| v.to_string())
}

fn parse_opt(s: &str) -> Option<Option<u64>> {
    if s == "-" {
        Some(None)
    } else {
        s.parse().ok().map(Some)
    }
}

fn input_text(input: &Input) -> String {
    match input {
        KvInput::Get(k) => format!("get {k}"),
        KvInput::Set(k, v) => format!("set {k} {v}"),
        KvInput::Delete(k) => format!("del {k}"),
        KvInput::Cas { key, expected, new } => format!("cas {key} {} {new}", opt(*expected)),
    }
}

fn parse_input(s: &str) -> Option<Input> {
    let w: Vec<&str> = s.split(' ').collect();
    Some(match w[..] {
        ["get", k] => KvInput::Get(k.parse().ok()?),
        ["set", k, v] => KvInput::Set(k.parse().ok()?, v.parse().ok()?),
        ["del", k] => KvInput::Delete(k.parse().ok()?),
        ["cas", k, e, n] => KvInput::Cas {
            key: k.parse().ok()?,
            expected: parse_opt(e)?,
            new: n.parse().ok()?,
        },
        _ => return None,
    })
}

fn output_text(output: &Output) -> String {
    match output {
        KvOutput::Value(v) => format!("value {}", opt(*v)),
        KvOutput::Ok => "ok".to_owned(),
        KvOutput::CasResult(b) => format!("cas {b}"),
    }
}

fn parse_output(s: &str) -> Option<Output> {
    let w: Vec<&str> = s.split(' ').collect();
    Some(match w[..] {
        ["value", v] => KvOutput::Value(parse_opt(v)?),
        ["ok"] => KvOutput::Ok,
        ["cas", b] => KvOutput::CasResult(b.parse().ok()?),
        _ => return None,
    })
}

// --- one operation against a store --------------------------------------

/// What became of one operation, for the history.
enum Fate {
    Completed(Output),
    /// May or may not have taken effect.
    Pending,
    /// Known not to have taken effect (or a read, which has none).
    Dropped(&'static str),
}

/// Runs `input` on `kv` and classifies the answer.
fn perform(kv: &Kv, input: &Input) -> Fate {
    let is_read = matches!(input, KvInput::Get(_));
    let result: larder_kv::Result<Output> = match input {
        KvInput::Get(k) => kv
            .get::<u64>(&key_name(*k))
            .map(|e| KvOutput::Value(e.map(|e| e.value))),
        KvInput::Set(k, v) => kv.set(&key_name(*k), v).map(|_| KvOutput::Ok),
        KvInput::Delete(k) => kv.delete(&key_name(*k)).map(|_| KvOutput::Ok),
        KvInput::Cas { key, expected, new } => {
            let expect = match expected {
                Some(v) => Expect::Value(*v),
                None => Expect::Absent,
            };
            kv.compare_and_set(&key_name(*key), expect, new)
                .map(|c| KvOutput::CasResult(c.swapped))
        }
    };
    match result {
        Ok(out) => Fate::Completed(out),
        Err(KvError::Authority {
            outcome_unknown: true,
            ..
        }) if !is_read => Fate::Pending,
        Err(KvError::Authority { .. }) => Fate::Dropped("authority"),
        Err(KvError::Contention { .. }) => Fate::Dropped("contention"),
        Err(KvError::AuthorityLocked { .. }) => Fate::Dropped("locked"),
        Err(KvError::ClockBehind { .. }) => Fate::Dropped("clock-behind"),
        // Anything else is a bug (a diverged log, a foreign commit, a
        // broken view): the test fails on it.
        Err(e) => panic!("{input:?}: unexpected error {e}"),
    }
}

// --- the linearizable clients ----------------------------------------------

/// Child: `<repo> <authority> <client> <seed> <ops> <history file>`; waits
/// for a line on stdin, runs its operations, writes its history and a
/// tally of dropped operations (`<history file>.dropped`).
fn child_linear() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repo, authority, client, seed, ops, out] = &args[..] else {
        panic!("linear child arguments: {args:?}");
    };
    let client: u64 = client.parse().unwrap();
    let seed: u64 = seed.parse().unwrap();
    let ops: u64 = ops.parse().unwrap();
    let kv = open(
        Path::new(repo),
        &format!("c{client}"),
        linearizable(authority),
    );
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();

    let mut rng = client_rng(seed, client);
    let mut history: History<Input, Output> = History::new();
    let mut dropped: HashMap<&'static str, u64> = HashMap::new();
    // The last value this client saw per key: what its compare-and-sets
    // expect (so that some of them succeed).
    let mut seen: HashMap<u64, Option<u64>> = HashMap::new();
    for seq in 0..ops {
        let key = rng.below(KEYS);
        // Unique per write, so a read names exactly one write.
        let value = (client << 32) | seq;
        let input = match rng.below(100) {
            0..40 => KvInput::Get(key),
            40..65 => KvInput::Set(key, value),
            65..75 => KvInput::Delete(key),
            _ => KvInput::Cas {
                key,
                expected: seen.get(&key).copied().flatten(),
                new: value,
            },
        };
        let call = wall_clock_nanos();
        let fate = perform(&kv, &input);
        let ret = wall_clock_nanos();
        match fate {
            Fate::Completed(out) => {
                if let KvOutput::Value(v) = &out {
                    seen.insert(key, *v);
                }
                history.push(Operation::completed(client, input, out, call, ret));
            }
            Fate::Pending => {
                *dropped.entry("pending").or_default() += 1;
                history.push(Operation::pending(client, input, call));
            }
            Fate::Dropped(why) => *dropped.entry(why).or_default() += 1,
        }
    }
    let text = history.to_lines(input_text, output_text).unwrap();
    std::fs::write(out, text).unwrap();
    let mut tally: Vec<String> = dropped.iter().map(|(k, n)| format!("{k}={n}")).collect();
    tally.sort();
    std::fs::write(format!("{out}.dropped"), tally.join(" ")).unwrap();
}

fn spawn(role: &str, args: &[String]) -> Child {
    harness::child(ROLE, role)
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts every child at once (each waits on stdin) and waits for all.
fn run_together(mut children: Vec<Child>) {
    for c in &mut children {
        writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
    }
    for (i, mut c) in children.into_iter().enumerate() {
        let status = c.wait().unwrap();
        assert!(status.success(), "client process {i} failed: {status}");
    }
}

/// Runs the 8 × 200 workload against `authority` (its bare repository at
/// `bare`), merges the histories and checks them.
fn linearizable_run(name: &str, bare: &Path, authority: &str) {
    let seed = seed_from_env(SEED_VAR, 0x15_0004);
    let scratch = tempdir();
    let dirs: Vec<_> = (0..PROCESSES).map(|_| work_repo()).collect();
    let files: Vec<PathBuf> = (0..PROCESSES)
        .map(|c| scratch.path().join(format!("client-{c}.history")))
        .collect();
    let started = Instant::now();
    let children = (0..PROCESSES)
        .map(|c| {
            spawn(
                "linear",
                &[
                    dirs[c as usize].path().display().to_string(),
                    authority.to_owned(),
                    c.to_string(),
                    seed.to_string(),
                    OPS.to_string(),
                    files[c as usize].display().to_string(),
                ],
            )
        })
        .collect();
    run_together(children);
    let elapsed = started.elapsed();

    let mut history: History<Input, Output> = History::new();
    let mut tallies = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        history.merge(History::from_lines(&text, parse_input, parse_output).unwrap());
        tallies.push(std::fs::read_to_string(f.with_extension("history.dropped")).unwrap());
    }
    // A final read of every key, after every client has finished: the
    // chain's final state must be explained by the same order.
    let reader_dir = work_repo();
    let reader = open(reader_dir.path(), "reader", linearizable(authority));
    for key in 0..KEYS {
        let call = wall_clock_nanos();
        let Fate::Completed(out) = perform(&reader, &KvInput::Get(key)) else {
            panic!("the final read of key {key} failed");
        };
        let ret = wall_clock_nanos();
        history.push(Operation::completed(
            FINAL_READER,
            KvInput::Get(key),
            out,
            call,
            ret,
        ));
    }

    let ops = history.operations();
    let completed = |f: &dyn Fn(&Operation<Input, Output>) -> bool| {
        ops.iter().filter(|o| o.ret.is_some() && f(o)).count()
    };
    let writes = completed(&|o| !matches!(o.input, KvInput::Get(_)));
    let reads_of_values = completed(&|o| matches!(o.output, Some(KvOutput::Value(Some(_)))));
    let cas_won = completed(&|o| o.output == Some(KvOutput::CasResult(true)));
    let pending = ops.iter().filter(|o| o.ret.is_none()).count();
    println!(
        "{name}: {} operations recorded ({writes} completed writes, {reads_of_values} reads of a value, \
         {cas_won} successful compare-and-sets, {pending} pending) in {elapsed:.2?}; dropped per client: {tallies:?}",
        ops.len()
    );
    // Not vacuous: most writes happened, reads saw values, CAS won.
    assert!(writes as u64 >= PROCESSES * OPS / 4, "too few writes");
    assert!(reads_of_values > 0 && cas_won > 0);

    let checked = Instant::now();
    let verdict = check(&KvModel::new(), &history).unwrap();
    println!("{name}: checked in {:.2?}", checked.elapsed());
    if verdict != Verdict::Linearizable {
        let keep = std::env::temp_dir().join(format!("larder-kv-{name}-{seed}.history"));
        std::fs::write(&keep, history.to_lines(input_text, output_text).unwrap()).unwrap();
        panic!(
            "{name}, seed {seed}: {}\nthe merged history is in {}",
            verdict.explain(&history),
            keep.display()
        );
    }
    assert_fsck(bare);
}

fn over_file_authority() {
    let root = tempdir();
    let bare = root.path().join("authority.git");
    GitRepo::init_bare(&bare).unwrap();
    linearizable_run("file", &bare, &bare.display().to_string());
}

fn over_git_daemon() {
    let root = tempdir();
    let bare = root.path().join("authority.git");
    GitRepo::init_bare(&bare).unwrap();
    let daemon = GitDaemon::start(root.path());
    let url = daemon.url(&bare);
    linearizable_run("git-daemon", &bare, &url);
}

// --- eventual mode ----------------------------------------------------------

/// Child: `<repo> <remote> <client> <seed> <ops>`; waits for a line on
/// stdin, then writes at random and syncs with the remote now and then
/// (a sync that loses a push race is retried by the next one).
fn child_eventual() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repo, remote, client, seed, ops] = &args[..] else {
        panic!("eventual child arguments: {args:?}");
    };
    let client: u64 = client.parse().unwrap();
    let ops: u64 = ops.parse().unwrap();
    let kv = open(
        Path::new(repo),
        &format!("c{client}"),
        Consistency::Eventual,
    );
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let mut rng = client_rng(seed.parse().unwrap(), client);
    let mut failed_syncs = 0;
    for seq in 0..ops {
        let key = key_name(rng.below(KEYS));
        match rng.below(100) {
            0..65 => {
                kv.set(&key, &((client << 32) | seq)).unwrap();
            }
            65..85 => {
                kv.delete(&key).unwrap();
            }
            _ => {
                if kv.sync(remote).is_err() {
                    failed_syncs += 1;
                }
            }
        }
    }
    if kv.sync(remote).is_err() {
        failed_syncs += 1;
    }
    eprintln!("eventual client {client}: {failed_syncs} syncs lost a race");
}

fn eventual_processes_converge() {
    let seed = seed_from_env(SEED_VAR, 0x15_0004);
    let root = tempdir();
    let remote = root.path().join("remote.git");
    GitRepo::init_bare(&remote).unwrap();
    let remote_s = remote.display().to_string();
    let dirs: Vec<_> = (0..PROCESSES).map(|_| work_repo()).collect();
    let started = Instant::now();
    let children = (0..PROCESSES)
        .map(|c| {
            spawn(
                "eventual",
                &[
                    dirs[c as usize].path().display().to_string(),
                    remote_s.clone(),
                    c.to_string(),
                    seed.to_string(),
                    OPS.to_string(),
                ],
            )
        })
        .collect();
    run_together(children);
    // The final sync round, one replica at a time: the first pass gathers
    // every replica's writes on the remote, the second hands them out.
    let stores: Vec<Kv> = dirs
        .iter()
        .enumerate()
        .map(|(c, d)| open(d.path(), &format!("c{c}"), Consistency::Eventual))
        .collect();
    for _ in 0..2 {
        for kv in &stores {
            kv.sync(&remote_s).unwrap();
        }
    }
    let hashes: Vec<_> = stores.iter().map(|kv| kv.state_hash().unwrap()).collect();
    println!(
        "eventual: {PROCESSES} processes x {OPS} operations, converged in {:.2?}",
        started.elapsed()
    );
    for (c, h) in hashes.iter().enumerate() {
        assert_eq!(*h, hashes[0], "replica {c} differs from replica 0");
    }
    // The same state on a fresh replica, and on every key's read.
    let fresh_dir = work_repo();
    let fresh = open(fresh_dir.path(), "fresh", Consistency::Eventual);
    fresh.pull(&remote_s).unwrap();
    assert_eq!(fresh.state_hash().unwrap(), hashes[0]);
    assert!(fresh.len().unwrap() > 0);
    for key in 0..KEYS {
        let want = fresh.get::<u64>(&key_name(key)).unwrap();
        for (c, kv) in stores.iter().enumerate() {
            assert_eq!(kv.get::<u64>(&key_name(key)).unwrap(), want, "replica {c}");
        }
    }
    assert_fsck(&remote);
}
