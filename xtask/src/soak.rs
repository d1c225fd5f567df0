//! `cargo xtask soak`: a long randomized run of the real `larder` binary.
//!
//! One bare remote and K replicas in a temporary directory. Each round a
//! seeded RNG picks a replica, appends one event with unique data
//! `{"r":<replica>,"n":<round>}` and syncs it (sometimes only a push or only a
//! pull). About every `--kill-every` rounds one of those processes is
//! SIGKILLed mid-flight. At the end every replica is synced until quiescent
//! and the invariants are checked: acknowledged events exactly once
//! everywhere, killed ones at most once, one order, `git fsck` clean, a fresh
//! replica gets the same log, and the remote's packs and loose objects are
//! bounded. Not part of CI (it takes minutes); see "Soak" in docs/sync.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::root;

/// The log every replica writes.
const LOG: &str = "soak";
/// The most packs the remote may hold at the end.
const MAX_REMOTE_PACKS: u64 = 64;
/// Sync passes at the end before giving up on quiescence.
const MAX_FINAL_PASSES: usize = 10;
/// A larder process still running after this long is killed and reported.
const OP_TIMEOUT: Duration = Duration::from_secs(120);
/// The signal `Child::kill` sends on unix.
const SIGKILL: i32 = 9;
/// The longest delay before a kill, in microseconds (0–40 ms).
const MAX_KILL_DELAY_US: u64 = 40_000;
/// An operation that succeeds but takes this long is reported as slow (a
/// normal one takes tens of milliseconds), and the soak looks for leftover
/// ref locks it may have been waiting on.
const SLOW: Duration = Duration::from_secs(2);

const USAGE: &str = "usage: cargo xtask soak [--rounds N] [--replicas K] [--seed S] [--kill-every M] [--keep] [--larder PATH]";

/// Command-line options.
struct Options {
    rounds: u64,
    replicas: usize,
    seed: u64,
    kill_every: u64,
    keep: bool,
    /// A `larder` binary to soak instead of building one.
    larder: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = Options {
            rounds: 2_000,
            replicas: 4,
            seed: seed_from_time(),
            kill_every: 50,
            keep: false,
            larder: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "--keep" {
                opts.keep = true;
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = |what: &str| -> Result<u64, String> {
                value
                    .parse::<u64>()
                    .map_err(|e| format!("{what} {value:?}: {e}\n{USAGE}"))
            };
            match flag.as_str() {
                "--rounds" => opts.rounds = number("--rounds")?,
                "--replicas" => opts.replicas = number("--replicas")? as usize,
                "--seed" => opts.seed = number("--seed")?,
                "--kill-every" => opts.kill_every = number("--kill-every")?,
                "--larder" => opts.larder = Some(PathBuf::from(value)),
                _ => return Err(format!("unknown option {flag}\n{USAGE}")),
            }
        }
        if opts.replicas == 0 {
            return Err(format!("--replicas must be at least 1\n{USAGE}"));
        }
        Ok(opts)
    }
}

fn seed_from_time() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

/// splitmix64: tiny, seedable, good enough to pick replicas and delays.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// FNV-1a 64: a stable hash of the converged log for the report.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// One larder operation of a round.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    Append,
    Sync,
    Push,
    Pull,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Append => "append",
            Op::Sync => "sync",
            Op::Push => "push",
            Op::Pull => "pull",
        }
    }
}

/// How a process ended.
struct Outcome {
    /// Exit code; `None` when it died by a signal (our kill).
    code: Option<i32>,
    /// We sent SIGKILL and the process died of it (a process that exited
    /// on its own just before the kill is not counted: its exit code stands).
    killed: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn describe(&self) -> String {
        let code = self
            .code
            .map_or_else(|| "signal".to_string(), |c| c.to_string());
        let first = self.stderr.lines().next().unwrap_or("(no stderr)");
        format!("exit {code}: {first}")
    }
}

/// Runs the `larder` binary, one process at a time, output to files (so a
/// long `log` never fills a pipe while we poll the child).
struct Runner {
    bin: PathBuf,
    out: PathBuf,
    err: PathBuf,
}

impl Runner {
    fn new(bin: PathBuf, scratch: &Path) -> Self {
        Runner {
            bin,
            out: scratch.join("stdout.txt"),
            err: scratch.join("stderr.txt"),
        }
    }

    fn spawn(&self, program: &Path, dir: &Path, args: &[&str]) -> Result<Child, String> {
        let out = File::create(&self.out)
            .map_err(|e| format!("cannot create {}: {e}", self.out.display()))?;
        let err = File::create(&self.err)
            .map_err(|e| format!("cannot create {}: {e}", self.err.display()))?;
        Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))
    }

    /// Runs `larder -C <dir> <args>`; if `kill_after` is given, SIGKILLs the
    /// process after that delay unless it has already exited.
    fn larder(
        &self,
        dir: &Path,
        args: &[&str],
        kill_after: Option<Duration>,
    ) -> Result<Outcome, String> {
        let dir_text = dir.display().to_string();
        let mut full = vec!["-C", dir_text.as_str()];
        full.extend_from_slice(args);
        self.run(&self.bin.clone(), Path::new("/"), &full, kill_after)
    }

    /// Runs `git -C <dir> <args>`.
    fn git(&self, dir: &Path, args: &[&str]) -> Result<Outcome, String> {
        let dir_text = dir.display().to_string();
        let mut full = vec!["-C", dir_text.as_str()];
        full.extend_from_slice(args);
        self.run(Path::new("git"), Path::new("/"), &full, None)
    }

    fn run(
        &self,
        program: &Path,
        cwd: &Path,
        args: &[&str],
        kill_after: Option<Duration>,
    ) -> Result<Outcome, String> {
        let start = Instant::now();
        let mut child = self.spawn(program, cwd, args)?;
        if let Some(delay) = kill_after {
            std::thread::sleep(delay);
            if poll(&mut child, program)?.is_none() {
                // `Child::kill` sends SIGKILL on unix.
                child
                    .kill()
                    .map_err(|e| format!("cannot kill {}: {e}", program.display()))?;
            }
        }
        let status = loop {
            if let Some(status) = poll(&mut child, program)? {
                break status;
            }
            if start.elapsed() > OP_TIMEOUT {
                child
                    .kill()
                    .map_err(|e| format!("cannot kill {}: {e}", program.display()))?;
                let _ = child.wait();
                return Err(format!(
                    "`{} {}` still ran after {OP_TIMEOUT:?}: hung",
                    program.display(),
                    args.join(" ")
                ));
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let elapsed = start.elapsed();
        let killed = kill_after.is_some() && status.signal() == Some(SIGKILL);
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        Ok(Outcome {
            code: status.code(),
            killed,
            stdout: read(&self.out)?,
            stderr: read(&self.err)?,
            elapsed,
        })
    }
}

fn poll(child: &mut Child, program: &Path) -> Result<Option<std::process::ExitStatus>, String> {
    child
        .try_wait()
        .map_err(|e| format!("waiting for {}: {e}", program.display()))
}

/// A `.lock` file the soak deleted because an operation failed or stalled
/// on it.
struct Remedy {
    round: u64,
    op: Op,
    path: PathBuf,
    trigger: Trigger,
}

/// How the soak learnt which `.lock` file to delete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The error message named the file (`… stays locked by <path>: …`).
    NamedByError,
    /// The error named only the ref (`reference <name> is locked …`).
    RefNamed,
    /// The operation took longer than [`SLOW`] and its message named no
    /// file (usually it exited 0 and said nothing); the soak found the file
    /// by scanning `refs/`.
    SlowScan,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::NamedByError => "named by the error",
            Trigger::RefNamed => "error named only the ref",
            Trigger::SlowScan => "slow operation, found by scanning refs/",
        }
    }
}

/// An operation that took longer than [`SLOW`].
struct Slow {
    round: u64,
    replica: usize,
    op: Op,
    elapsed: Duration,
    ok: bool,
}

/// What the rounds did.
#[derive(Default)]
struct Stats {
    ops: BTreeMap<Op, u64>,
    kills_scheduled: u64,
    kills_delivered: BTreeMap<Op, u64>,
    kills_missed: u64,
    quarantined: u64,
    /// The longest operation of the run (killed ones excluded).
    slowest: Option<(Duration, Op)>,
}

/// An operation that failed and stayed failed after any remedy.
struct Failure {
    round: u64,
    replica: usize,
    op: Op,
    what: String,
}

struct Soak {
    opts: Options,
    /// Replicas, ops and kill rounds: the same draws for a seed, whatever
    /// the timing.
    rng: Rng,
    /// Kill delays: a second stream, so that a kill that carries over (its
    /// process had already exited) does not shift the choices above.
    kill_rng: Rng,
    runner: Runner,
    remote: PathBuf,
    replicas: Vec<PathBuf>,
    /// `(replica, round)` of appends that exited 0.
    acked: BTreeSet<(u64, u64)>,
    /// Appends that were killed or failed: each may land at most once.
    unacked: BTreeSet<(u64, u64)>,
    stats: Stats,
    remedies: Vec<Remedy>,
    failures: Vec<Failure>,
    slow: Vec<Slow>,
    /// Running mean of uninterrupted durations per op, in µs: a kill's delay
    /// is drawn below it (and below 40 ms) so most kills land mid-flight.
    typical_us: BTreeMap<Op, u64>,
    /// A kill that found its process already gone carries over.
    kill_pending: bool,
}

/// Entry point: `cargo xtask soak [...]`.
pub fn soak(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args)?;
    let seed = opts.seed;
    println!(
        "soak: seed {seed}, {} rounds, {} replicas, a kill about every {} rounds",
        opts.rounds, opts.replicas, opts.kill_every
    );
    let bin = match &opts.larder {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => return Err(format!("--larder {}: no such file", path.display())),
        None => build_cli()?,
    };
    println!("soak: larder binary {}", bin.display());
    let dir = std::env::temp_dir().join(format!("larder-soak-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    println!("soak: working in {}", dir.display());
    let keep = opts.keep;
    let result = Soak::setup(opts, bin, &dir).and_then(|mut s| s.run());
    match &result {
        Ok(()) if !keep => {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                eprintln!("soak: could not remove {}: {e}", dir.display());
            }
        }
        Ok(()) => println!("soak: kept {}", dir.display()),
        Err(_) => eprintln!(
            "soak: FAILED with seed {seed} (rerun: cargo xtask soak --seed {seed} ...); files kept in {}",
            dir.display()
        ),
    }
    result
}

/// `cargo build --release -p larder-cli --locked`; returns the binary.
fn build_cli() -> Result<PathBuf, String> {
    crate::run(
        "cargo",
        &["build", "--release", "-p", "larder-cli", "--locked"],
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bin = target.join("release").join("larder");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("built larder-cli but {} is missing", bin.display()))
    }
}

impl Soak {
    fn setup(opts: Options, bin: PathBuf, dir: &Path) -> Result<Self, String> {
        let runner = Runner::new(bin, dir);
        let remote = dir.join("remote.git");
        init(&runner, &remote, true)?;
        let replicas: Vec<PathBuf> = (0..opts.replicas)
            .map(|i| dir.join(format!("replica-{i}")))
            .collect();
        for r in &replicas {
            init(&runner, r, false)?;
        }
        Ok(Soak {
            rng: Rng(opts.seed),
            kill_rng: Rng(opts.seed ^ 0x6B69_6C6C_6B69_6C6C),
            opts,
            runner,
            remote,
            replicas,
            acked: BTreeSet::new(),
            unacked: BTreeSet::new(),
            stats: Stats::default(),
            remedies: Vec::new(),
            failures: Vec::new(),
            slow: Vec::new(),
            typical_us: BTreeMap::new(),
            kill_pending: false,
        })
    }

    fn run(&mut self) -> Result<(), String> {
        let start = Instant::now();
        for round in 0..self.opts.rounds {
            self.round(round)?;
            if (round + 1) % 250 == 0 {
                println!(
                    "soak: round {}/{}, {} acknowledged, {} kills, {:.0?}",
                    round + 1,
                    self.opts.rounds,
                    self.acked.len(),
                    self.stats.kills_delivered.values().sum::<u64>(),
                    start.elapsed()
                );
            }
        }
        let rounds_time = start.elapsed();
        let report = self.finish()?;
        report.print(self, rounds_time, start.elapsed());
        report.verdict(self.opts.seed)
    }

    /// One round: append on a random replica, then sync, push or pull.
    fn round(&mut self, round: u64) -> Result<(), String> {
        let replica = self.rng.below(self.replicas.len() as u64) as usize;
        let exchange = match self.rng.below(100) {
            0..70 => Op::Sync,
            70..85 => Op::Push,
            _ => Op::Pull,
        };
        if self.opts.kill_every > 0 && self.rng.below(self.opts.kill_every) == 0 {
            self.stats.kills_scheduled += 1;
            self.kill_pending = true;
        }
        let target = if self.rng.percent(50) {
            Op::Append
        } else {
            exchange
        };
        let victim = self.kill_pending.then_some(target);
        self.append(round, replica, victim == Some(Op::Append))?;
        self.exchange(round, replica, exchange, victim == Some(exchange))?;
        Ok(())
    }

    /// The delay before a kill: uniform below the op's typical duration,
    /// and never more than 40 ms.
    fn kill_delay(&mut self, op: Op) -> Duration {
        let typical = self
            .typical_us
            .get(&op)
            .copied()
            .unwrap_or(MAX_KILL_DELAY_US);
        let bound = typical.clamp(1, MAX_KILL_DELAY_US);
        Duration::from_micros(self.kill_rng.below(bound + 1))
    }

    fn note_duration(&mut self, op: Op, outcome: &Outcome) {
        if outcome.killed || !outcome.ok() {
            return;
        }
        let us = outcome.elapsed.as_micros() as u64;
        let mean = self.typical_us.entry(op).or_insert(us);
        *mean = (*mean * 7 + us) / 8;
    }

    /// Runs one op on a replica, optionally killing it; on a failure caused
    /// by a leftover `.lock` file applies the documented remedy (delete it:
    /// no other process is running) and retries once.
    fn op(
        &mut self,
        round: u64,
        replica: usize,
        op: Op,
        args: &[&str],
        kill: bool,
    ) -> Result<Outcome, String> {
        *self.stats.ops.entry(op).or_default() += 1;
        let dir = self.replicas[replica].clone();
        let delay = if kill {
            Some(self.kill_delay(op))
        } else {
            None
        };
        let outcome = self.runner.larder(&dir, args, delay)?;
        if kill {
            if outcome.killed {
                *self.stats.kills_delivered.entry(op).or_default() += 1;
                self.kill_pending = false;
            } else {
                self.stats.kills_missed += 1;
            }
        }
        self.note_duration(op, &outcome);
        self.note_slow(round, replica, op, &outcome);
        if outcome.killed {
            return Ok(outcome);
        }
        if outcome.ok() {
            if outcome.elapsed > SLOW {
                self.remedy_scan(round, replica, op);
            }
            return Ok(outcome);
        }
        let remedied = self.remedy(round, replica, op, &outcome.stderr)
            || (outcome.elapsed > SLOW && self.remedy_scan(round, replica, op));
        if remedied {
            let retry = self.runner.larder(&dir, args, None)?;
            self.note_duration(op, &retry);
            self.note_slow(round, replica, op, &retry);
            return Ok(retry);
        }
        Ok(outcome)
    }

    fn note_slow(&mut self, round: u64, replica: usize, op: Op, outcome: &Outcome) {
        if !outcome.killed && self.stats.slowest.is_none_or(|(d, _)| outcome.elapsed > d) {
            self.stats.slowest = Some((outcome.elapsed, op));
        }
        if outcome.elapsed > SLOW {
            eprintln!(
                "soak: round {round}: {} on replica {replica} took {:.1?} ({})",
                op.name(),
                outcome.elapsed,
                outcome.describe()
            );
            self.slow.push(Slow {
                round,
                replica,
                op,
                elapsed: outcome.elapsed,
                ok: outcome.ok(),
            });
        }
    }

    fn append(&mut self, round: u64, replica: usize, kill: bool) -> Result<(), String> {
        let data = format!("{{\"r\":{replica},\"n\":{round}}}");
        let outcome = self.op(
            round,
            replica,
            Op::Append,
            &["append", "--log", LOG, "--data", &data],
            kill,
        )?;
        let key = (replica as u64, round);
        if outcome.ok() {
            self.acked.insert(key);
        } else {
            self.unacked.insert(key);
            if !outcome.killed {
                self.fail(round, replica, Op::Append, outcome.describe());
            }
        }
        Ok(())
    }

    fn exchange(&mut self, round: u64, replica: usize, op: Op, kill: bool) -> Result<(), String> {
        let remote = self.remote.display().to_string();
        let outcome = self.op(
            round,
            replica,
            op,
            &[op.name(), "--log", LOG, "--remote", &remote],
            kill,
        )?;
        if outcome.code == Some(4) {
            self.stats.quarantined += 1;
        }
        if !outcome.ok() && !outcome.killed {
            self.fail(round, replica, op, outcome.describe());
        }
        Ok(())
    }

    fn fail(&mut self, round: u64, replica: usize, op: Op, what: String) {
        eprintln!(
            "soak: round {round}: {} on replica {replica} failed: {what}",
            op.name()
        );
        self.failures.push(Failure {
            round,
            replica,
            op,
            what,
        });
    }

    /// The documented remedy for a leftover ref lock: when the error names
    /// `… stays locked by <path>: …`, delete that file; when it only says
    /// `reference <name> is locked by another writer`, delete `<name>.lock`
    /// in the replica's or the remote's git dir. Returns whether a file was
    /// deleted.
    fn remedy(&mut self, round: u64, replica: usize, op: Op, stderr: &str) -> bool {
        let mut found: Vec<(PathBuf, Trigger)> = Vec::new();
        if let Some(path) = between(stderr, " stays locked by ", ": ") {
            found.push((PathBuf::from(path), Trigger::NamedByError));
        }
        if let Some(name) = between(stderr, "reference ", " is locked by another writer") {
            for dir in self.git_dirs(replica) {
                found.push((dir.join(format!("{name}.lock")), Trigger::RefNamed));
            }
        }
        let mut applied = false;
        for (path, trigger) in found {
            applied |= self.delete_lock(round, replica, op, path, trigger);
        }
        applied
    }

    /// After a silent slow success: any `refs/**.lock` left in the replica
    /// or the remote is debris (no other process runs), so delete it.
    fn remedy_scan(&mut self, round: u64, replica: usize, op: Op) -> bool {
        let mut applied = false;
        for dir in self.git_dirs(replica) {
            let Ok(found) = debris(&dir.join("refs")) else {
                continue;
            };
            for path in found {
                applied |= self.delete_lock(round, replica, op, path, Trigger::SlowScan);
            }
        }
        applied
    }

    /// The replica's and the remote's git dirs.
    fn git_dirs(&self, replica: usize) -> [PathBuf; 2] {
        [self.replicas[replica].join(".git"), self.remote.clone()]
    }

    fn delete_lock(
        &mut self,
        round: u64,
        replica: usize,
        op: Op,
        path: PathBuf,
        trigger: Trigger,
    ) -> bool {
        if path.extension().is_none_or(|e| e != "lock") || !path.is_file() {
            return false;
        }
        if let Err(e) = std::fs::remove_file(&path) {
            eprintln!("soak: cannot delete {}: {e}", path.display());
            return false;
        }
        eprintln!(
            "soak: round {round}: {} on replica {replica}: deleted leftover {} ({})",
            op.name(),
            path.display(),
            trigger.name()
        );
        self.remedies.push(Remedy {
            round,
            op,
            path,
            trigger,
        });
        true
    }

    /// Syncs until quiescent, then runs every check.
    fn finish(&mut self) -> Result<Report, String> {
        let mut report = Report::default();
        let final_round = self.opts.rounds;
        let mut previous: Option<Vec<String>> = None;
        for pass in 1..=MAX_FINAL_PASSES {
            for replica in 0..self.replicas.len() {
                self.exchange(final_round, replica, Op::Sync, false)?;
            }
            let logs = self.read_logs()?;
            report.passes = pass;
            let same = logs.windows(2).all(|w| w[0] == w[1]);
            if same && previous.as_ref() == logs.first() {
                report.quiescent = true;
                report.logs = logs;
                break;
            }
            previous = if same { logs.first().cloned() } else { None };
            report.logs = logs;
        }
        self.check(&mut report)?;
        Ok(report)
    }

    /// Every replica's `larder --json log --log soak`, as lines.
    fn read_logs(&self) -> Result<Vec<Vec<String>>, String> {
        self.replicas.iter().map(|r| self.read_log(r)).collect()
    }

    fn read_log(&self, dir: &Path) -> Result<Vec<String>, String> {
        let out = self
            .runner
            .larder(dir, &["--json", "log", "--log", LOG], None)?;
        if !out.ok() {
            return Err(format!(
                "log of {} failed: {}",
                dir.display(),
                out.describe()
            ));
        }
        Ok(out.stdout.lines().map(str::to_owned).collect())
    }

    fn check(&mut self, report: &mut Report) -> Result<(), String> {
        report.check(
            "quiescent",
            report.quiescent,
            format!(
                "{} final sync pass(es); identical logs on two passes in a row",
                report.passes
            ),
        );
        self.check_events(report)?;
        self.check_order(report)?;
        self.check_heads(report)?;
        self.check_verify(report)?;
        self.check_fsck(report)?;
        self.check_fresh(report)?;
        self.check_remote_objects(report)?;
        self.check_ops(report);
        Ok(())
    }

    /// Acknowledged events exactly once on every replica, unacknowledged at
    /// most once, nothing the soak never appended.
    fn check_events(&self, report: &mut Report) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut landed_unacked = BTreeSet::new();
        for (i, lines) in report.logs.iter().enumerate() {
            let counts = count_keys(lines).map_err(|e| format!("replica {i}: {e}"))?;
            report.events_per_replica.push(lines.len());
            for key in &self.acked {
                let n = counts.get(key).copied().unwrap_or(0);
                if n != 1 {
                    problems.push(format!("replica {i}: acknowledged {key:?} found {n} times"));
                }
            }
            for (key, n) in &counts {
                if self.unacked.contains(key) {
                    if *n > 1 {
                        problems.push(format!("replica {i}: unacknowledged {key:?} {n} times"));
                    }
                    landed_unacked.insert(*key);
                } else if !self.acked.contains(key) {
                    problems.push(format!("replica {i}: {key:?} was never appended"));
                }
            }
        }
        report.unacked_landed = landed_unacked.len();
        let detail = format!(
            "{} acknowledged, each once on all {} replicas; {} unacknowledged, {} of them landed (at most once)",
            self.acked.len(),
            self.replicas.len(),
            self.unacked.len(),
            landed_unacked.len()
        );
        report.check_problems("events exactly once", detail, problems);
        Ok(())
    }

    /// The same ids in the same order everywhere; the same lines = same state.
    fn check_order(&self, report: &mut Report) -> Result<(), String> {
        let mut problems = Vec::new();
        let first = report.logs.first().cloned().unwrap_or_default();
        let first_ids = ids(&first)?;
        for (i, lines) in report.logs.iter().enumerate().skip(1) {
            if ids(lines)? != first_ids {
                problems.push(format!("replica {i}: event order differs from replica 0"));
            } else if *lines != first {
                problems.push(format!("replica {i}: same ids, different lines"));
            }
        }
        report.state_hash = fnv1a(first.join("\n").as_bytes());
        let detail = format!(
            "{} events, state hash {:016x} (FNV-1a of the JSON lines)",
            first.len(),
            report.state_hash
        );
        report.check_problems("same order and state", detail, problems);
        Ok(())
    }

    /// Every replica's WAL ref names the same commit.
    fn check_heads(&self, report: &mut Report) -> Result<(), String> {
        let wal_ref = format!("refs/larder/{LOG}/wal");
        let mut heads = BTreeSet::new();
        for r in &self.replicas {
            let out = self.runner.git(r, &["rev-parse", &wal_ref])?;
            heads.insert(out.stdout.trim().to_owned());
        }
        let detail = heads.iter().cloned().collect::<Vec<_>>().join(", ");
        report.check("identical heads", heads.len() == 1, detail);
        Ok(())
    }

    /// `larder verify` on every replica.
    fn check_verify(&self, report: &mut Report) -> Result<(), String> {
        let mut problems = Vec::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let out = self.runner.larder(r, &["verify", "--log", LOG], None)?;
            if !out.ok() {
                problems.push(format!("replica {i}: {}", out.describe()));
            }
        }
        report.check_problems("larder verify", "every replica".into(), problems);
        Ok(())
    }

    /// `git fsck --full --strict` everywhere, and the debris left by kills.
    fn check_fsck(&self, report: &mut Report) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut dangling = 0;
        let mut repos: Vec<(String, PathBuf, PathBuf)> =
            vec![("remote".into(), self.remote.clone(), self.remote.clone())];
        for (i, r) in self.replicas.iter().enumerate() {
            repos.push((format!("replica {i}"), r.clone(), r.join(".git")));
        }
        for (name, dir, git_dir) in &repos {
            let out = self.runner.git(dir, &["fsck", "--full", "--strict"])?;
            let text = format!("{}{}", out.stdout, out.stderr);
            dangling += text.lines().filter(|l| l.starts_with("dangling")).count();
            let bad: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("dangling") && !l.starts_with("Checking"))
                .filter(|l| l.contains("error") || l.contains("warning") || l.contains("missing"))
                .collect();
            if !out.ok() || !bad.is_empty() {
                problems.push(format!("{name}: {} {}", out.describe(), bad.join("; ")));
            }
            for path in debris(git_dir)? {
                report.debris.push(format!("{name}: {}", path.display()));
            }
        }
        let detail = format!(
            "remote and {} replicas; {dangling} dangling object(s) (killed writes), {} debris file(s)",
            self.replicas.len(),
            report.debris.len()
        );
        report.check_problems("git fsck --full --strict", detail, problems);
        Ok(())
    }

    /// A new replica pulls everything in the same order.
    fn check_fresh(&self, report: &mut Report) -> Result<(), String> {
        let fresh = self
            .remote
            .parent()
            .map(|p| p.join("fresh"))
            .ok_or("the remote has no parent directory")?;
        init(&self.runner, &fresh, false)?;
        let remote = self.remote.display().to_string();
        let out = self
            .runner
            .larder(&fresh, &["pull", "--log", LOG, "--remote", &remote], None)?;
        if !out.ok() {
            report.check("fresh replica", false, format!("pull: {}", out.describe()));
            return Ok(());
        }
        let lines = self.read_log(&fresh)?;
        let expected = report.logs.first().cloned().unwrap_or_default();
        let same = lines == expected;
        report.check(
            "fresh replica",
            same,
            format!(
                "pulled {} events{}",
                lines.len(),
                if same {
                    ", same order"
                } else {
                    ", DIFFERENT from the replicas"
                }
            ),
        );
        Ok(())
    }

    /// `git count-objects -v` on the remote: bounded packs, no loose objects.
    fn check_remote_objects(&self, report: &mut Report) -> Result<(), String> {
        let out = self.runner.git(&self.remote, &["count-objects", "-v"])?;
        if !out.ok() {
            return Err(format!(
                "git count-objects on the remote: {}",
                out.describe()
            ));
        }
        let counts: BTreeMap<String, u64> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k.to_owned(), v)))
            .collect();
        let get = |k: &str| counts.get(k).copied().unwrap_or(0);
        report.remote_objects = ["count", "size", "in-pack", "packs", "size-pack"]
            .iter()
            .map(|k| format!("{k} {}", get(k)))
            .collect::<Vec<_>>()
            .join(", ");
        report.remote_packs = get("packs");
        report.remote_loose = get("count");
        report.check(
            "remote packs bounded",
            get("packs") <= MAX_REMOTE_PACKS,
            format!("{} packs (limit {MAX_REMOTE_PACKS})", get("packs")),
        );
        report.check(
            "remote has no loose objects",
            get("count") == 0,
            format!("{} loose objects, {} KiB", get("count"), get("size")),
        );
        Ok(())
    }

    /// Every operation that was not killed succeeded (after any remedy).
    fn check_ops(&self, report: &mut Report) {
        let problems: Vec<String> = self
            .failures
            .iter()
            .map(|f| {
                format!(
                    "round {} replica {} {}: {}",
                    f.round,
                    f.replica,
                    f.op.name(),
                    f.what
                )
            })
            .collect();
        report.check_problems(
            "operations not killed succeeded",
            format!("{} quarantine exit(s) (code 4)", self.stats.quarantined),
            problems,
        );
    }
}

fn init(runner: &Runner, dir: &Path, bare: bool) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let args: &[&str] = if bare { &["init", "--bare"] } else { &["init"] };
    let out = runner.larder(dir, args, None)?;
    if out.ok() {
        Ok(())
    } else {
        Err(format!(
            "larder init in {}: {}",
            dir.display(),
            out.describe()
        ))
    }
}

/// The text between `start` and the next `end` in `text`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = &text[from..];
    rest.find(end).map(|to| &rest[..to])
}

/// `(r, n)` of every line's data, counted.
fn count_keys(lines: &[String]) -> Result<BTreeMap<(u64, u64), usize>, String> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("bad log line {line:?}: {e}"))?;
        let field = |k: &str| value["data"][k].as_u64();
        let (Some(r), Some(n)) = (field("r"), field("n")) else {
            return Err(format!("log line without data.r/data.n: {line}"));
        };
        *counts.entry((r, n)).or_default() += 1;
    }
    Ok(counts)
}

fn ids(lines: &[String]) -> Result<Vec<String>, String> {
    lines
        .iter()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("bad log line {line:?}: {e}"))?;
            value["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("log line without id: {line}"))
        })
        .collect()
}

/// Leftover `*.lock` files and temporary pack files under a git dir.
/// `larder/packs.lock` is excluded: it is an `flock` target that stays.
fn debris(git_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let mut stack = vec![git_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if path.is_dir() {
                stack.push(path);
            } else if path.ends_with("larder/packs.lock") {
                continue;
            } else if name.ends_with(".lock") || name.starts_with("tmp_") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The outcome of every check, and the numbers for the summary.
#[derive(Default)]
struct Report {
    passes: usize,
    quiescent: bool,
    logs: Vec<Vec<String>>,
    events_per_replica: Vec<usize>,
    unacked_landed: usize,
    state_hash: u64,
    debris: Vec<String>,
    remote_packs: u64,
    remote_loose: u64,
    remote_objects: String,
    /// (check, passed, detail, problems)
    checks: Vec<(String, bool, String, Vec<String>)>,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: String) {
        self.checks.push((name.into(), ok, detail, Vec::new()));
    }

    fn check_problems(&mut self, name: &str, detail: String, problems: Vec<String>) {
        self.checks
            .push((name.into(), problems.is_empty(), detail, problems));
    }

    fn print(&self, soak: &Soak, rounds_time: Duration, total: Duration) {
        print!("{}", self.summary(soak, rounds_time, total));
        Self::print_events(soak, &self.debris);
        self.print_checks();
    }

    /// The summary table: what the rounds did and what the remote holds.
    fn summary(&self, soak: &Soak, rounds_time: Duration, total: Duration) -> String {
        let s = &soak.stats;
        let ops = s
            .ops
            .iter()
            .map(|(op, n)| format!("{} {n}", op.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let kills = s
            .kills_delivered
            .iter()
            .map(|(op, n)| format!("{} {n}", op.name()))
            .collect::<Vec<_>>()
            .join(", ");
        let by = |t: Trigger| soak.remedies.iter().filter(|r| r.trigger == t).count();
        let mut out = String::new();
        let _ = writeln!(out, "\n| soak | |\n|---|---|");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(out, "| {k} | {v} |");
        };
        row("seed", soak.opts.seed.to_string());
        row(
            "rounds / replicas",
            format!("{} / {}", soak.opts.rounds, soak.replicas.len()),
        );
        row("operations", ops);
        row(
            "kills (SIGKILL mid-flight)",
            format!(
                "{} delivered ({kills}); {} scheduled, {} found the process already exited",
                s.kills_delivered.values().sum::<u64>(),
                s.kills_scheduled,
                s.kills_missed
            ),
        );
        row("acknowledged events", soak.acked.len().to_string());
        row(
            "unacknowledged appends (landed)",
            format!("{} ({})", soak.unacked.len(), self.unacked_landed),
        );
        row(
            "events per replica",
            self.events_per_replica
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
        row("state hash", format!("{:016x}", self.state_hash));
        row(
            "time",
            format!("{:.1?} rounds, {:.1?} total", rounds_time, total),
        );
        row(
            "remote packs / loose objects",
            format!("{} / {}", self.remote_packs, self.remote_loose),
        );
        row("remote count-objects", self.remote_objects.clone());
        row(
            "remedies applied (stale .lock deleted)",
            format!(
                "{} ({} named by the error, {} from a ref name, {} after a slow operation, by scanning refs/)",
                soak.remedies.len(),
                by(Trigger::NamedByError),
                by(Trigger::RefNamed),
                by(Trigger::SlowScan)
            ),
        );
        let slowest = s.slowest.map_or_else(String::new, |(d, op)| {
            format!("; slowest {d:.1?} ({})", op.name())
        });
        row(
            "operations slower than 2 s",
            format!(
                "{} ({} of them exited 0){slowest}",
                soak.slow.len(),
                soak.slow.iter().filter(|s| s.ok).count()
            ),
        );
        row(
            "debris files left (*.lock, tmp_*)",
            self.debris.len().to_string(),
        );
        out
    }

    /// Each remedy, slow operation and debris file, one line each.
    fn print_events(soak: &Soak, debris: &[String]) {
        for r in &soak.remedies {
            println!(
                "  remedy: round {} {}: deleted {} ({})",
                r.round,
                r.op.name(),
                r.path.display(),
                r.trigger.name()
            );
        }
        for s in &soak.slow {
            println!(
                "  slow: round {} replica {} {}: {:.1?}{}",
                s.round,
                s.replica,
                s.op.name(),
                s.elapsed,
                if s.ok { ", exit 0" } else { ", failed" }
            );
        }
        for d in debris {
            println!("  debris: {d}");
        }
    }

    /// The checks table, then up to 20 problems per failed check.
    fn print_checks(&self) {
        println!("\n| check | result | detail |\n|---|---|---|");
        for (name, ok, detail, _) in &self.checks {
            println!(
                "| {name} | {} | {detail} |",
                if *ok { "ok" } else { "FAILED" }
            );
        }
        for (name, _, _, problems) in &self.checks {
            for p in problems.iter().take(20) {
                println!("  {name}: {p}");
            }
            if problems.len() > 20 {
                println!("  {name}: … {} more", problems.len() - 20);
            }
        }
    }

    fn verdict(&self, seed: u64) -> Result<(), String> {
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.1)
            .map(|c| c.0.as_str())
            .collect();
        if failed.is_empty() {
            println!("soak: all checks passed (seed {seed})");
            Ok(())
        } else {
            Err(format!(
                "soak with seed {seed}: {} check(s) failed: {}",
                failed.len(),
                failed.join(", ")
            ))
        }
    }
}
