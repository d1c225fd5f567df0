//! Bytes on disk of a replicated log (issue #17): a seeded run of N
//! replicas syncing one log through a bare remote, then compaction, then
//! where the bytes are on one replica and on the remote, next to what
//! `git gc` makes of a copy of the same repository.
//!
//! ```text
//! CARGO_TARGET_DIR=… cargo run --release -p larder-sync --example replicas -- \
//!     [--seed S] [--events 5000] [--syncs 2000] [--replicas 8] [--dir DIR] [--keep]
//! ```
//!
//! Every step picks a replica at random and either appends one small JSON
//! event (60–120 bytes of payload, single-event appends: the common case
//! and the worst for bytes per event) or syncs it (pull, merge, push),
//! with syncs spread evenly among the appends. A final round syncs every
//! replica twice so that all converge (counted in the syncs). Then
//! `WalManager::compact_with` runs on every replica (after
//! `finish_maintenance`) and `GitRepo::compact_opts` on the remote, as
//! `larder compact` would — with the default grace period for unreachable
//! objects (two weeks: in a run this short nothing unreachable is old
//! enough to drop), or `--prune now` (drop every unreachable object, what
//! compaction does once they are two weeks old), or `--prune keep`. For replica 0 and for the remote it prints:
//!
//! - the bytes of `objects/` by kind of file (packs, indexes, `.keep`,
//!   `.rev`, `.bitmap`, temporary files, loose objects, other), and the
//!   blocks the file system allocated for them;
//! - objects reachable from all refs (`git rev-list --objects --all`),
//!   objects stored (every index's count plus loose files) and distinct
//!   objects stored, so duplicates and unreachable objects show;
//! - a breakdown by object type (count, uncompressed bytes, bytes in the
//!   pack) for reachable objects, duplicate copies and unreachable ones
//!   (`git verify-pack -v` of each pack);
//! - refs by namespace;
//! - `objects/` of a copy after `git gc --prune=now` and after `git gc
//!   --aggressive --prune=now`, and the ratio to the latter.
//!
//! With `--concurrent`, every replica runs two threads with handles of
//! their own, as two processes would: one appends the replica's share of
//! the events, the other syncs when the appender asks it to (after about
//! one append in 2.5), while the next appends go on. So appends race
//! merges for the log's ref, and pushes from different replicas overlap
//! on the remote. The interleaving is then up to the scheduler; the seed
//! still fixes every replica's events and when it asks for syncs.
//!
//! The directory is removed afterwards unless `--dir` or `--keep` is given.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use larder_codec::{ActorId, Envelope, Payload, Timestamp, Value};
use larder_git::{CompactOptions, ConsolidationPolicy, DEFAULT_PRUNE_GRACE, GitRepo, Unreachable};
use larder_sync::SyncManager;
use larder_testkit::{Rng, git_output};
use larder_wal::WalManager;

type Error = Box<dyn std::error::Error>;

struct Args {
    seed: u64,
    events: u64,
    syncs: u64,
    replicas: usize,
    dir: Option<PathBuf>,
    keep: bool,
    concurrent: bool,
    snapshot_every: Option<u64>,
    snapshot_keep: usize,
    unreachable: Unreachable,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        seed: 17,
        events: 5_000,
        syncs: 2_000,
        replicas: 8,
        dir: None,
        keep: false,
        concurrent: false,
        snapshot_every: None,
        snapshot_keep: 2,
        unreachable: Unreachable::DropOlderThan(DEFAULT_PRUNE_GRACE),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seed" => args.seed = value()?.parse()?,
            "--events" => args.events = value()?.parse()?,
            "--syncs" => args.syncs = value()?.parse()?,
            "--replicas" => args.replicas = value()?.parse()?,
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--keep" => args.keep = true,
            "--concurrent" => args.concurrent = true,
            "--snapshot-every" => args.snapshot_every = Some(value()?.parse()?),
            "--snapshot-keep" => args.snapshot_keep = value()?.parse()?,
            "--prune" => {
                args.unreachable = match value()?.as_str() {
                    "now" => Unreachable::DropOlderThan(Duration::ZERO),
                    "keep" => Unreachable::Keep,
                    "default" => Unreachable::DropOlderThan(DEFAULT_PRUNE_GRACE),
                    other => return Err(format!("--prune now|default|keep, not {other}").into()),
                }
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: replicas [--seed S] [--events N] [--syncs N] [--replicas N] [--dir DIR] [--keep] [--concurrent] [--snapshot-every N [--snapshot-keep K]] [--prune now|default|keep]"
                )
                .into());
            }
        }
    }
    if args.replicas == 0 {
        return Err("--replicas must be at least 1".into());
    }
    Ok(args)
}

const LOG: &str = "orders";
const WORDS: &[&str] = &[
    "apple", "pear", "plum", "fig", "kiwi", "lime", "date", "melon", "grape", "peach",
];
const KINDS: &[&str] = &[
    "order.created",
    "order.paid",
    "order.shipped",
    "item.added",
    "item.removed",
];

/// One small JSON-like event: a CBOR map of a few fields, 60–120 bytes.
fn event(rng: &mut Rng, actor: &ActorId, n: u64, millis: u64) -> Result<Envelope, Error> {
    let note_words = 1 + rng.below(6) as usize;
    let note: Vec<&str> = (0..note_words)
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect();
    let map = vec![
        (
            Value::from("order"),
            Value::from(format!("ord-{:06}", rng.below(100_000))),
        ),
        (
            Value::from("customer"),
            Value::from(format!("cust-{:04}", rng.below(5_000))),
        ),
        (
            Value::from("sku"),
            Value::from(format!("SKU-{:05}", rng.below(20_000))),
        ),
        (Value::from("qty"), Value::from(1 + rng.below(9))),
        (Value::from("cents"), Value::from(rng.below(100_000))),
        (Value::from("seq"), Value::from(n)),
        (Value::from("note"), Value::from(note.join(" "))),
    ];
    let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
    Ok(Envelope::new(
        actor.clone(),
        Timestamp::new(millis, 0),
        kind,
        Payload::from_value(Value::Map(map))?,
    )?)
}

/// What the run did.
#[derive(Default)]
struct Totals {
    appended: u64,
    synced: u64,
    payload_bytes: u64,
    append_time: Duration,
    sync_time: Duration,
    snapshots: u64,
}

/// Takes a snapshot of every event (no projection state) once `every`
/// events arrived since the latest one, then keeps only the newest `keep`
/// (as an application with a snapshot policy and `gc` would). Returns
/// how many snapshots were taken.
fn maybe_snapshot(wal: &WalManager, every: u64, keep: usize) -> Result<u64, Error> {
    let snapshots = larder_snapshot::SnapshotManager::new(wal.clone());
    let Some(head) = wal.head()? else {
        return Ok(0);
    };
    let base = match snapshots.latest()? {
        Some(s) => Some(s.wal_head()?),
        None => None,
    };
    if base == Some(head) || wal.count_between(head, base)?.1 < every {
        return Ok(0);
    }
    snapshots.create()?;
    snapshots.gc(keep)?;
    Ok(1)
}

/// One thread: a seeded random interleaving of appends and syncs over all
/// replicas.
fn run_sequential(args: &Args, replicas: &[Replica], final_syncs: u64) -> Result<Totals, Error> {
    let mut t = Totals::default();
    let mut rng = Rng::new(args.seed);
    let (mut events_left, mut syncs_left) = (args.events, args.syncs.saturating_sub(final_syncs));
    // A simulated clock: ~40 s between steps, so the log spans a few days
    // (and the WAL's date directories change).
    let mut millis = 1_700_000_000_000u64;
    while events_left + syncs_left > 0 {
        millis += 20_000 + rng.below(40_000);
        let replica = &replicas[rng.below(replicas.len() as u64) as usize];
        if rng.below(events_left + syncs_left) < syncs_left {
            let started = Instant::now();
            replica.sync.sync()?;
            t.sync_time += started.elapsed();
            syncs_left -= 1;
            t.synced += 1;
        } else {
            let e = event(&mut rng, &replica.actor, t.appended, millis)?;
            t.payload_bytes += e.payload().as_bytes().len() as u64;
            let started = Instant::now();
            replica.sync.wal().append(&[e])?;
            t.append_time += started.elapsed();
            events_left -= 1;
            t.appended += 1;
        }
        if let Some(every) = args.snapshot_every {
            t.snapshots += maybe_snapshot(replica.sync.wal(), every, args.snapshot_keep)?;
        }
    }
    Ok(t)
}

/// Two threads per replica, each with its own handles (see the module
/// documentation).
fn run_concurrent(
    args: &Args,
    replicas: &[Replica],
    remote_dir: &Path,
    final_syncs: u64,
) -> Result<Totals, Error> {
    let n = replicas.len() as u64;
    let syncs = args.syncs.saturating_sub(final_syncs);
    let results = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (r, replica) in replicas.iter().enumerate() {
            let r = r as u64;
            let events = args.events / n + u64::from(r < args.events % n);
            let syncs = syncs / n + u64::from(r < syncs % n);
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let dir = replica.dir.clone();
            let actor = replica.actor.clone();
            let seed = args.seed.wrapping_add(r);
            let appender = scope.spawn(move || -> Result<Totals, String> {
                let wal = WalManager::new(GitRepo::open(&dir).map_err(|e| e.to_string())?, LOG)
                    .map_err(|e| e.to_string())?;
                let mut rng = Rng::new(seed);
                let mut t = Totals::default();
                let mut millis = 1_700_000_000_000u64;
                let mut asked = 0;
                for i in 0..events {
                    millis += 20_000 + rng.below(40_000) * n;
                    let e = event(&mut rng, &actor, r * 1_000_000 + i, millis)
                        .map_err(|e| e.to_string())?;
                    t.payload_bytes += e.payload().as_bytes().len() as u64;
                    let started = Instant::now();
                    wal.append(&[e]).map_err(|e| e.to_string())?;
                    t.append_time += started.elapsed();
                    t.appended += 1;
                    // Ask for this replica's share of syncs, evenly spread.
                    while asked < syncs && asked * events < (i + 1) * syncs {
                        asked += 1;
                        let _ = tx.send(());
                    }
                }
                for _ in asked..syncs {
                    let _ = tx.send(());
                }
                wal.finish_maintenance();
                Ok(t)
            });
            let dir = replica.dir.clone();
            let actor = replica.actor.clone();
            let remote = remote_dir.display().to_string();
            let (snapshot_every, snapshot_keep) = (args.snapshot_every, args.snapshot_keep);
            let syncer = scope.spawn(move || -> Result<Totals, String> {
                let wal = WalManager::new(GitRepo::open(&dir).map_err(|e| e.to_string())?, LOG)
                    .map_err(|e| e.to_string())?;
                let sync = SyncManager::new(wal, actor, &remote).map_err(|e| e.to_string())?;
                let mut t = Totals::default();
                while rx.recv().is_ok() {
                    let started = Instant::now();
                    sync.sync().map_err(|e| e.to_string())?;
                    t.sync_time += started.elapsed();
                    t.synced += 1;
                    if let Some(every) = snapshot_every {
                        t.snapshots += maybe_snapshot(sync.wal(), every, snapshot_keep)
                            .map_err(|e| e.to_string())?;
                    }
                }
                sync.wal().finish_maintenance();
                Ok(t)
            });
            handles.push(appender);
            handles.push(syncer);
        }
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a thread panicked".to_string())?)
            .collect::<Result<Vec<Totals>, String>>()
    })?;
    Ok(results.into_iter().fold(Totals::default(), |a, b| Totals {
        appended: a.appended + b.appended,
        synced: a.synced + b.synced,
        payload_bytes: a.payload_bytes + b.payload_bytes,
        append_time: a.append_time + b.append_time,
        sync_time: a.sync_time + b.sync_time,
        snapshots: a.snapshots + b.snapshots,
    }))
}

/// One line per repository: objects/ bytes, files, objects stored,
/// distinct and reachable.
fn summary(label: &str, git_dir: &Path) -> Result<(), Error> {
    let files = objects_files(&git_dir.join("objects"))?;
    let (n, bytes, _) = files.total();
    let reachable = git_lines(git_dir, &["rev-list", "--objects", "--all"])?
        .lines()
        .count();
    let distinct = git_lines(
        git_dir,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname)",
        ],
    )?
    .lines()
    .count();
    let counts = git_lines(git_dir, &["count-objects", "-v"])?;
    let field = |name: &str| {
        counts
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    println!(
        "  {label}: objects/ {bytes} bytes in {n} files ({} packs, {} loose); objects stored {}, distinct {distinct}, reachable {reachable}",
        field("packs:"),
        field("count:"),
        field("in-pack:") + field("count:")
    );
    Ok(())
}

struct Replica {
    sync: SyncManager,
    actor: ActorId,
    dir: PathBuf,
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    println!(
        "seed {} (--seed {} replays it); {} events, ~{} syncs, {} replicas",
        args.seed, args.seed, args.events, args.syncs, args.replicas
    );
    let temp = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            None
        }
        None => Some(
            tempfile::Builder::new()
                .prefix("larder-replicas-")
                .tempdir()?,
        ),
    };
    let root = match (&args.dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_path_buf(),
        (None, None) => return Err("no directory".into()),
    };
    let remote_dir = root.join("remote.git");
    GitRepo::init_bare(&remote_dir)?;
    let mut replicas = Vec::new();
    for r in 0..args.replicas {
        let dir = root.join(format!("replica-{r}"));
        let actor = ActorId::new(format!("replica-{r}"))?;
        let wal = WalManager::new(GitRepo::init(&dir)?, LOG)?;
        let sync = SyncManager::new(wal, actor.clone(), &remote_dir.display().to_string())?;
        replicas.push(Replica { sync, actor, dir });
    }

    let start = Instant::now();
    let final_syncs = 2 * args.replicas as u64;
    let mut totals = if args.concurrent {
        run_concurrent(&args, &replicas, &remote_dir, final_syncs)?
    } else {
        run_sequential(&args, &replicas, final_syncs)?
    };
    for _ in 0..2 {
        for replica in &replicas {
            let t = Instant::now();
            replica.sync.sync()?;
            totals.sync_time += t.elapsed();
            totals.synced += 1;
        }
    }
    let Totals {
        appended,
        synced,
        payload_bytes,
        append_time,
        sync_time,
        snapshots,
    } = totals;
    if snapshots > 0 {
        println!(
            "{snapshots} snapshots taken (each replica keeps its newest {})",
            args.snapshot_keep
        );
    }
    println!("\nbefore compaction:");
    summary("replica 0", replicas[0].sync.wal().repo().git_dir())?;
    summary("remote", &remote_dir)?;
    let simulated = start.elapsed();
    let compact_start = Instant::now();
    let mut reports = Vec::new();
    for replica in &replicas {
        replica.sync.wal().finish_maintenance();
        reports.push(replica.sync.wal().compact_with(args.unreachable)?);
    }
    let remote = GitRepo::open(&remote_dir)?;
    let options = CompactOptions {
        max_size: ConsolidationPolicy::default().max_size,
        unreachable: args.unreachable,
    };
    let remote_report = remote.compact_opts(&options, &|_| {})?;
    let compacted = compact_start.elapsed();
    println!("\ncompaction ({:?}):", args.unreachable);
    println!("  replica 0: {:?}", reports[0]);
    println!(
        "  remote: {} packs merged, {} objects written, {} unreachable dropped, {} unreachable kept, {} duplicates dropped, {} recompressed{}",
        remote_report.packs_merged,
        remote_report.objects,
        remote_report.unreachable_dropped,
        remote_report.unreachable_kept,
        remote_report.duplicates_dropped,
        remote_report.recompressed,
        remote_report
            .prune_skipped
            .as_deref()
            .map(|r| format!("; pruning skipped: {r}"))
            .unwrap_or_default()
    );
    println!(
        "{appended} events ({payload_bytes} payload bytes, {:.0} on average), {synced} syncs in {:.1} s; compaction of {} replicas and the remote {:.2} s",
        payload_bytes as f64 / appended.max(1) as f64,
        simulated.as_secs_f64(),
        replicas.len(),
        compacted.as_secs_f64()
    );
    let mut counts = HashSet::new();
    for replica in &replicas {
        counts.insert(replica.sync.wal().read_all()?.len());
    }
    println!(
        "time in appends {:.1} s, in syncs {:.1} s",
        append_time.as_secs_f64(),
        sync_time.as_secs_f64()
    );
    println!("events read back per replica: {counts:?}");

    let first = &replicas[0];
    report(
        &format!("replica 0 ({})", first.dir.display()),
        first.sync.wal().repo().git_dir(),
        &root,
    )?;
    report(
        &format!("remote ({})", remote_dir.display()),
        &remote_dir,
        &root,
    )?;
    if let (Some(temp), true) = (temp, args.keep) {
        println!("kept {}", temp.keep().display());
    }
    Ok(())
}

/// Bytes of the files under `objects/`, by kind.
#[derive(Default)]
struct Files {
    /// kind -> (files, bytes, allocated bytes)
    kinds: BTreeMap<&'static str, (u64, u64, u64)>,
}

impl Files {
    fn total(&self) -> (u64, u64, u64) {
        self.kinds
            .values()
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    }
}

fn objects_files(objects: &Path) -> Result<Files, Error> {
    let mut files = Files::default();
    let mut stack = vec![objects.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let parent = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            let kind = if parent.as_deref() == Some("pack") {
                if name.starts_with("tmp_") || name.starts_with(".tmp") {
                    "tmp"
                } else {
                    match name.rsplit('.').next() {
                        Some("pack") => "pack",
                        Some("idx") => "idx",
                        Some("keep") => "keep",
                        Some("rev") => "rev",
                        Some("bitmap") => "bitmap",
                        Some("mtimes") => "mtimes",
                        _ => "other",
                    }
                }
            } else if parent
                .as_deref()
                .is_some_and(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                if name.starts_with("tmp_") {
                    "tmp"
                } else {
                    "loose"
                }
            } else {
                "other"
            };
            let slot = files.kinds.entry(kind).or_default();
            slot.0 += 1;
            slot.1 += meta.len();
            slot.2 += meta.blocks() * 512;
        }
    }
    Ok(files)
}

fn git_lines(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let out = git_output(dir, args, None);
    if !out.status.success() {
        return Err(format!(
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Objects by type: (count, uncompressed bytes, bytes in the pack).
type ByType = BTreeMap<String, (u64, u64, u64)>;

fn add(map: &mut ByType, kind: &str, size: u64, stored: u64) {
    let slot = map.entry(kind.to_owned()).or_default();
    slot.0 += 1;
    slot.1 += size;
    slot.2 += stored;
}

fn print_types(title: &str, map: &ByType) {
    if map.is_empty() {
        return;
    }
    let total = map
        .values()
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    println!(
        "  {title:<28} {:>8} objects {:>11} bytes {:>11} stored",
        total.0, total.1, total.2
    );
    for (kind, (n, size, stored)) in map {
        println!("    {kind:<26} {n:>8} objects {size:>11} bytes {stored:>11} stored");
    }
}

fn report(label: &str, git_dir: &Path, root: &Path) -> Result<(), Error> {
    println!("\n== {label}");
    let objects = git_dir.join("objects");
    let files = objects_files(&objects)?;
    let (n, bytes, alloc) = files.total();
    println!("objects/: {bytes} bytes in {n} files ({alloc} allocated)");
    for (kind, (n, bytes, alloc)) in &files.kinds {
        println!("  {kind:<8} {n:>7} files {bytes:>11} bytes {alloc:>11} allocated");
    }

    // Each reachable object with the first path it was reached by.
    let listed = git_lines(git_dir, &["rev-list", "--objects", "--all"])?;
    let paths: HashMap<String, String> = listed
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(2, ' ');
            let id = parts.next()?.to_owned();
            Some((id, parts.next().unwrap_or("").to_owned()))
        })
        .collect();
    let reachable: HashSet<String> = paths.keys().cloned().collect();
    let mut stored_of: HashMap<String, (String, u64, u64)> = HashMap::new();
    // Every entry of every pack (duplicates included), and loose objects.
    let mut copies: HashMap<String, u32> = HashMap::new();
    let (mut reach, mut dup, mut unreach) = (ByType::new(), ByType::new(), ByType::new());
    let mut packs = 0;
    let pack_dir = objects.join("pack");
    let mut idx_files: Vec<PathBuf> = std::fs::read_dir(&pack_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    idx_files.retain(|p| p.extension().is_some_and(|e| e == "idx"));
    idx_files.sort();
    for idx in &idx_files {
        packs += 1;
        let listing = git_lines(git_dir, &["verify-pack", "-v", &idx.display().to_string()])?;
        for line in listing.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 || f[0].len() != 40 {
                continue;
            }
            let (id, kind) = (f[0], f[1]);
            let size: u64 = f[2].parse().unwrap_or(0);
            let stored: u64 = f[3].parse().unwrap_or(0);
            let seen = copies.entry(id.to_owned()).or_default();
            *seen += 1;
            if *seen == 1 {
                stored_of.insert(id.to_owned(), (kind.to_owned(), size, stored));
            }
            let map = if *seen > 1 {
                &mut dup
            } else if reachable.contains(id) {
                &mut reach
            } else {
                &mut unreach
            };
            add(map, kind, size, stored);
        }
    }
    let mut loose = 0;
    let check = git_lines(
        git_dir,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname) %(objecttype) %(objectsize) %(objectsize:disk)",
        ],
    )?;
    let distinct = check.lines().count();
    let idx_entries: u32 = copies.values().sum();
    for line in check.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || copies.contains_key(f[0]) {
            continue;
        }
        // Not in any pack: a loose object.
        loose += 1;
        let size: u64 = f[2].parse().unwrap_or(0);
        let stored: u64 = f[3].parse().unwrap_or(0);
        let map = if reachable.contains(f[0]) {
            &mut reach
        } else {
            &mut unreach
        };
        add(map, &format!("{} (loose)", f[1]), size, stored);
    }
    println!(
        "objects: {} reachable from all refs; {} stored ({} in {packs} pack indexes + {loose} loose), {} distinct",
        reachable.len(),
        u64::from(idx_entries) + loose,
        idx_entries,
        distinct
    );
    println!("  (\"stored\" = bytes of the entry in its pack: header + zlib stream or delta)");
    print_types("reachable (first copy)", &reach);
    print_types("duplicate copies", &dup);
    print_types("unreachable", &unreach);
    print_roles(git_dir, &paths, &stored_of)?;

    let refs = git_lines(git_dir, &["for-each-ref", "--format=%(refname)"])?;
    let mut namespaces: BTreeMap<String, u64> = BTreeMap::new();
    for name in refs.lines() {
        let parts: Vec<&str> = name.split('/').collect();
        let ns = match parts.as_slice() {
            ["refs", "remotes", remote, .., kind, _] => {
                format!("refs/remotes/{remote}/…/{kind}/* (staging)")
            }
            ["refs", ns, "locks", ..] => format!("refs/{ns}/locks/* (locks)"),
            ["refs", ns, _log, "wal"] => format!("refs/{ns}/<log>/wal (logs)"),
            ["refs", ns, _log, kind, ..] => format!("refs/{ns}/<log>/{kind}/*"),
            _ => name.to_owned(),
        };
        *namespaces.entry(ns).or_default() += 1;
    }
    println!("refs: {}", refs.lines().count());
    for (ns, n) in &namespaces {
        println!("  {n:>5} {ns}");
    }
    let lock_files = count_files(&git_dir.join("refs"), ".lock");
    if lock_files > 0 {
        println!("  {lock_files:>5} leftover .lock files under refs/");
    }

    let mut gc = Vec::new();
    for (name, args) in [
        ("git gc --prune=now", &["gc", "--prune=now", "-q"][..]),
        (
            "git gc --aggressive --prune=now",
            &["gc", "--aggressive", "--prune=now", "-q"][..],
        ),
    ] {
        let copy = tempfile::Builder::new()
            .prefix("gc-copy-")
            .tempdir_in(root)?;
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg(git_dir)
            .arg(copy.path().join("repo.git"))
            .output()?;
        if !out.status.success() {
            return Err(format!("cp -a: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let copied = copy.path().join("repo.git");
        let started = Instant::now();
        git_lines(&copied, args)?;
        let took = started.elapsed();
        let after = objects_files(&copied.join("objects"))?;
        let (n, bytes, _) = after.total();
        println!(
            "{name} on a copy: objects/ {bytes} bytes in {n} files ({:.1} s)",
            took.as_secs_f64()
        );
        let packed = |f: &Files| {
            ["pack", "idx"]
                .iter()
                .filter_map(|k| f.kinds.get(k))
                .map(|(_, b, _)| b)
                .sum::<u64>()
        };
        gc.push((bytes, packed(&after)));
    }
    let ours_packed: u64 = ["pack", "idx"]
        .iter()
        .filter_map(|k| files.kinds.get(k))
        .map(|(_, b, _)| b)
        .sum();
    if let (Some(plain), Some(aggressive)) = (gc.first(), gc.last()) {
        println!(
            "ratio objects/ : aggressive gc's objects/ {:.2}x (plain gc {:.2}x); packs and indexes only (git's .rev, .bitmap, commit-graph left out): {:.2}x ({:.2}x)",
            bytes as f64 / aggressive.0 as f64,
            bytes as f64 / plain.0 as f64,
            ours_packed as f64 / aggressive.1 as f64,
            ours_packed as f64 / plain.1 as f64,
        );
    }
    Ok(())
}

/// Reachable objects by what they are in the log: append and merge
/// commits, each level of the WAL's tree, `meta.json`, chunks, and
/// snapshot objects (reached from `snapshots/` refs) — with their bytes
/// in the pack and the index's 28 bytes each, per append where it helps.
fn print_roles(
    git_dir: &Path,
    paths: &HashMap<String, String>,
    stored_of: &HashMap<String, (String, u64, u64)>,
) -> Result<(), Error> {
    let merges: HashSet<String> = git_lines(git_dir, &["rev-list", "--all", "--min-parents=2"])?
        .lines()
        .map(str::to_owned)
        .collect();
    let snapshot_refs = git_lines(
        git_dir,
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/*/*/snapshots/*",
        ],
    )?;
    let mut snapshot_objects: HashSet<String> = HashSet::new();
    if !snapshot_refs.trim().is_empty() {
        let mut args = vec!["rev-list", "--objects", "--no-walk"];
        args.extend(snapshot_refs.lines());
        for line in git_lines(git_dir, &args)?.lines() {
            if let Some(id) = line.split_whitespace().next() {
                snapshot_objects.insert(id.to_owned());
            }
        }
    }
    // role -> (count, bytes, stored)
    let mut roles: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for (id, path) in paths {
        let Some((kind, size, stored)) = stored_of.get(id) else {
            continue;
        };
        let depth = path.split('/').count();
        let role = match kind.as_str() {
            "commit" if merges.contains(id) => "commit (merge)",
            "commit" if snapshot_objects.contains(id) => "snapshot: commit",
            "commit" => "commit (append)",
            _ if snapshot_objects.contains(id) => match kind.as_str() {
                "tree" => "snapshot: trees",
                _ if path.ends_with(".json") => "snapshot: snapshot.json",
                _ if path.starts_with("state/") => "snapshot: state",
                _ => "snapshot: event chunks",
            },
            "tree" if path.is_empty() => "tree: root",
            "tree" if path == "events" => "tree: events/",
            "tree" if depth == 2 => "tree: events/YYYY/",
            "tree" if depth == 3 => "tree: events/YYYY/MM/",
            "tree" if depth == 4 => "tree: events/YYYY/MM/DD/",
            "tree" => "tree: other",
            "blob" if path == "meta.json" => "blob: meta.json",
            "blob" if path.ends_with(".bin") => "blob: chunk",
            _ => "other",
        };
        let slot = roles.entry(role).or_default();
        slot.0 += 1;
        slot.1 += size;
        slot.2 += stored;
    }
    let appends = roles.get("commit (append)").map_or(0, |r| r.0).max(1);
    println!(
        "  reachable objects by role ({appends} appends; \"+idx\" adds the index's 28 bytes per object):"
    );
    println!(
        "    {:<26} {:>8} {:>11} {:>11} {:>11} {:>13}",
        "role", "objects", "bytes", "stored", "+idx", "per append"
    );
    let mut total = (0, 0, 0);
    for (role, (n, size, stored)) in &roles {
        let with_idx = stored + 28 * n;
        total = (total.0 + n, total.1 + size, total.2 + with_idx);
        println!(
            "    {role:<26} {n:>8} {size:>11} {stored:>11} {with_idx:>11} {:>13.1}",
            with_idx as f64 / appends as f64
        );
    }
    println!(
        "    {:<26} {:>8} {:>11} {:>11} {:>11} {:>13.1}",
        "total",
        total.0,
        total.1,
        "",
        total.2,
        total.2 as f64 / appends as f64
    );
    Ok(())
}

fn count_files(dir: &Path, suffix: &str) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry.file_name().to_string_lossy().ends_with(suffix) {
                n += 1;
            }
        }
    }
    n
}
