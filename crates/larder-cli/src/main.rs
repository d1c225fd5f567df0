//! The `larder` command.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use larder::codec::Payload;
use larder::{Larder, LarderError};
use serde_json::json;

mod demo;

/// An event-sourced log inside a git repository.
#[derive(Parser)]
#[command(name = "larder", version)]
struct Cli {
    /// Run as if started in this directory (like `git -C`).
    #[arg(short = 'C', global = true, default_value = ".")]
    dir: PathBuf,
    /// Machine-readable output: one JSON object (per line, for listings).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository (or use the existing one) for larder logs.
    Init {
        /// Create a bare repository.
        #[arg(long)]
        bare: bool,
    },
    /// Append events to a log as one batch.
    Append {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// The event kind.
        #[arg(long, default_value = "event")]
        kind: String,
        /// The event's data as JSON.
        #[arg(long, conflicts_with = "stdin", required_unless_present = "stdin")]
        data: Option<String>,
        /// Read one JSON event per line from standard input.
        #[arg(long)]
        stdin: bool,
    },
    /// Print a log's events in the total order.
    Log {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// Only events appended after this WAL commit.
        #[arg(long)]
        since: Option<String>,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Check every object of a log; exit 1 and list the bad ones if any.
    Verify {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Pull from the remote, merge, and push (the default remote is `origin`).
    Sync {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// Remote name from git config, path or URL.
        #[arg(long, default_value = "origin")]
        remote: String,
    },
    /// Fetch, verify and merge every replica's head.
    Pull {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// Remote name from git config, path or URL.
        #[arg(long, default_value = "origin")]
        remote: String,
    },
    /// Publish this replica's head.
    Push {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// Remote name from git config, path or URL.
        #[arg(long, default_value = "origin")]
        remote: String,
    },
    /// Create, list or garbage-collect snapshots.
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
    /// Lease locks with fencing tokens.
    Lock {
        #[command(subcommand)]
        action: LockAction,
    },
    /// Counts for a log: commits, events, actors, chunk bytes, snapshot coverage.
    Stats {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Pack loose objects and merge packs, in any repository (bare too):
    /// what a remote that only receives pushes needs now and then.
    Compact {
        /// Wait for this log's background pack merges first (compaction
        /// itself covers the whole repository).
        #[arg(long)]
        log: Option<String>,
    },
    /// Show larder end to end in a temporary directory.
    Demo,
}

#[derive(Subcommand)]
enum SnapshotAction {
    /// Snapshot every event of the log, with the key-value state.
    Create {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// List snapshots, newest first.
    List {
        /// The log's name.
        #[arg(long)]
        log: String,
    },
    /// Delete all but the newest N snapshots.
    Gc {
        /// The log's name.
        #[arg(long)]
        log: String,
        /// How many to keep.
        #[arg(long)]
        keep: usize,
    },
}

#[derive(Subcommand)]
enum LockAction {
    /// Acquire a lease; exit code 3 if another holder has it.
    // Every acquisition is its own holder, even from this clone: a second
    // `acquire` while the lease is live is refused (exit code 3). It prints
    // the fencing token that later `renew`/`release --token` calls name.
    Acquire {
        /// The resource.
        resource: String,
        /// Lease length, e.g. 30s, 5m, 1500ms.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: u64,
        /// Authority: a remote (path or URL); the local repository if absent.
        #[arg(long)]
        remote: Option<String>,
    },
    /// Extend a lease you hold.
    Renew {
        /// The resource.
        resource: String,
        /// The lease's fencing token, as `acquire` printed it (default: the
        /// current one, if this replica holds it — whichever process took it).
        #[arg(long)]
        token: Option<u64>,
        /// New lease length from now.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: u64,
        /// Authority remote.
        #[arg(long)]
        remote: Option<String>,
    },
    /// Release a lease you hold (from any process acting as this replica).
    Release {
        /// The resource.
        resource: String,
        /// The lease's fencing token, as `acquire` printed it (default: the
        /// current one, if this replica holds it — whichever process took it).
        #[arg(long)]
        token: Option<u64>,
        /// Authority remote.
        #[arg(long)]
        remote: Option<String>,
    },
    /// List every lock.
    List {
        /// Authority remote.
        #[arg(long)]
        remote: Option<String>,
    },
}

/// Parses `30s`, `5m`, `2h`, `1500ms` or plain milliseconds.
fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 5m, 1500ms"))?;
    let factor = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?} (use ms, s, m, h)"
            ));
        }
    };
    Ok(n.saturating_mul(factor))
}

/// Exit code of `sync`/`pull` when some remote heads were quarantined
/// (everything else was merged). Documented in docs/sync.md.
const EXIT_QUARANTINED: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            if cli.json {
                println!("{}", json!({ "error": e.to_string() }));
            } else {
                eprintln!("larder: error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, LarderError> {
    match &cli.command {
        Command::Init { bare } => {
            let larder = if *bare {
                Larder::init_bare(&cli.dir)?
            } else {
                Larder::init(&cli.dir)?
            };
            let dir = larder.repo().git_dir().display().to_string();
            if cli.json {
                println!(
                    "{}",
                    json!({ "git_dir": dir, "actor": larder.actor()?.as_str() })
                );
            } else {
                println!("larder repository at {dir}, actor {}", larder.actor()?);
            }
        }
        Command::Append {
            log,
            kind,
            data,
            stdin,
        } => {
            let larder = open(&cli.dir)?;
            let mut payloads = Vec::new();
            let parse = |text: &str, line: usize| -> Result<Payload, LarderError> {
                let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                    LarderError::Codec(larder::codec::CodecError::PayloadEncode(format!(
                        "line {line}: invalid JSON: {e}"
                    )))
                })?;
                Ok(Payload::from_serde(&value)?)
            };
            if *stdin {
                for (i, line) in std::io::stdin().lock().lines().enumerate() {
                    let line = line.map_err(|e| {
                        LarderError::Codec(larder::codec::CodecError::PayloadEncode(e.to_string()))
                    })?;
                    if !line.trim().is_empty() {
                        payloads.push(parse(&line, i + 1)?);
                    }
                }
            } else if let Some(d) = data {
                payloads.push(parse(d, 1)?);
            }
            let batch: Vec<(&str, Payload)> =
                payloads.into_iter().map(|p| (kind.as_str(), p)).collect();
            let commit = larder.log(log)?.append_batch(&batch)?;
            if cli.json {
                println!(
                    "{}",
                    json!({ "commit": commit.to_string(), "count": batch.len() })
                );
            } else {
                println!("appended {} event(s) to {log}: {commit}", batch.len());
            }
        }
        Command::Log { log, since, limit } => {
            let larder = open(&cli.dir)?;
            let log = existing_log(&larder, log)?;
            let mut events = match since {
                Some(s) => {
                    let id = larder::git::ObjectId::from_hex(s.as_bytes()).map_err(|_| {
                        LarderError::Codec(larder::codec::CodecError::InvalidHexId {
                            text: s.clone(),
                        })
                    })?;
                    log.wal().read_since(id)?
                }
                None => log.wal().read_all()?,
            };
            larder::crdt::sort_events(&mut events);
            for e in events.iter().take(limit.unwrap_or(usize::MAX)) {
                let data = e
                    .payload()
                    .to_value()
                    .map(|v| serde_json::to_value(v).unwrap_or_default())
                    .unwrap_or_default();
                if cli.json {
                    println!(
                        "{}",
                        json!({ "id": e.id().to_hex(), "actor": e.actor().as_str(), "hlc": e.timestamp().to_string(), "kind": e.kind(), "data": data })
                    );
                } else {
                    println!(
                        "{} {} {} {} {}",
                        e.timestamp(),
                        e.actor(),
                        e.kind(),
                        data,
                        &e.id().to_hex()[..12]
                    );
                }
            }
        }
        Command::Verify { log } => {
            let larder = open(&cli.dir)?;
            let handle = existing_log(&larder, log)?;
            let report = with_progress(cli.json, &format!("verifying {log}"), || {
                handle.wal().verify()
            })?;
            if cli.json {
                let problems: Vec<String> =
                    report.problems.iter().map(ToString::to_string).collect();
                println!(
                    "{}",
                    json!({ "commits": report.commits, "events": report.events, "problems": problems })
                );
            } else {
                println!(
                    "{} commits, {} events verified",
                    report.commits, report.events
                );
                for p in &report.problems {
                    println!("bad: {p}");
                }
            }
            if !report.is_ok() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Sync { log, remote }
        | Command::Pull { log, remote }
        | Command::Push { log, remote } => {
            let larder = open(&cli.dir)?;
            let sync = larder.sync(log, remote)?;
            let report =
                with_progress(
                    cli.json,
                    &format!("syncing {log} with {remote}"),
                    || match &cli.command {
                        Command::Sync { .. } => sync.sync(),
                        Command::Pull { .. } => sync.pull(),
                        _ => sync.push(),
                    },
                )?;
            let head = report.new_head.map(|h| h.to_string()).unwrap_or_default();
            if cli.json {
                let rejected: Vec<_> = report
                    .rejected
                    .iter()
                    .map(|r| {
                        json!({ "head_ref": r.head_ref, "actor": r.actor, "head": r.head.to_string(),
                                "commit": r.commit.map(|c| c.to_string()), "path": r.path,
                                "reason": r.reason })
                    })
                    .collect();
                println!(
                    "{}",
                    json!({ "commits_received": report.commits_received, "events_received": report.events_received,
                            "commits_sent": report.commits_sent, "events_sent": report.events_sent,
                            "pushed": report.pushed, "head": head, "retries": report.retries,
                            "rejected": rejected })
                );
            } else {
                for r in &report.rejected {
                    eprintln!("larder: rejected remote head {r}");
                }
                println!(
                    "received {} commits ({} events), sent {} commits ({} events){}; head {head}",
                    report.commits_received,
                    report.events_received,
                    report.commits_sent,
                    report.events_sent,
                    if report.pushed { ", pushed" } else { "" }
                );
            }
            if !report.rejected.is_empty() {
                // Everything else was merged (and pushed): a distinct code
                // so scripts can tell "partly quarantined" from failure.
                return Ok(ExitCode::from(EXIT_QUARANTINED));
            }
        }
        Command::Snapshot { action } => {
            let larder = open(&cli.dir)?;
            match action {
                SnapshotAction::Create { log } => {
                    let s = larder
                        .snapshots(log)?
                        .create_with::<larder::crdt::KvProjection>()?;
                    if cli.json {
                        println!(
                            "{}",
                            json!({ "name": s.name, "commit": s.commit.to_string(), "events": s.meta.event_count })
                        );
                    } else {
                        println!("snapshot {} covering {} events", s.name, s.meta.event_count);
                    }
                }
                SnapshotAction::List { log } => {
                    for entry in larder.snapshots(log)?.list()? {
                        match entry {
                            Ok(s) if cli.json => println!(
                                "{}",
                                json!({ "name": s.name, "events": s.meta.event_count, "created_ms": s.meta.created_ms, "wal_head": s.meta.wal_head })
                            ),
                            Ok(s) => println!(
                                "{} {} events (wal {})",
                                s.name,
                                s.meta.event_count,
                                s.meta.wal_head.get(..12).unwrap_or(&s.meta.wal_head)
                            ),
                            Err(e) if cli.json => println!("{}", json!({ "error": e.to_string() })),
                            Err(e) => println!("bad: {e}"),
                        }
                    }
                }
                SnapshotAction::Gc { log, keep } => {
                    let deleted = larder.snapshots(log)?.gc(*keep)?;
                    if cli.json {
                        println!("{}", json!({ "deleted": deleted, "kept": keep }));
                    } else {
                        println!("deleted {deleted} snapshot(s), kept the newest {keep}");
                    }
                }
            }
        }
        Command::Lock { action } => return lock(cli, action),
        Command::Compact { log } => return compact(cli, log.as_deref()),
        Command::Stats { log } => {
            let larder = open(&cli.dir)?;
            let log_handle = existing_log(&larder, log)?;
            let mut commits = 0u64;
            let mut events = 0u64;
            let mut actors = std::collections::BTreeSet::new();
            let mut bytes = 0u64;
            for c in log_handle.wal().commits_since(None)? {
                let c = c?;
                commits += 1;
                events += c.events.len() as u64;
                for e in &c.events {
                    actors.insert(e.actor().to_string());
                }
                bytes += c.chunk_bytes;
            }
            let covered = larder
                .snapshots(log)?
                .latest()?
                .map(|s| s.meta.event_count)
                .unwrap_or(0);
            if cli.json {
                println!(
                    "{}",
                    json!({ "commits": commits, "events": events, "actors": actors.len(), "chunk_bytes": bytes, "snapshot_events": covered })
                );
            } else {
                println!(
                    "{commits} commits, {events} events from {} actors, {bytes} chunk bytes; latest snapshot covers {covered} events",
                    actors.len()
                );
            }
        }
        Command::Demo => demo::run(cli.json)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn lock(cli: &Cli, action: &LockAction) -> Result<ExitCode, LarderError> {
    use larder::lock::LockError;
    let larder = open(&cli.dir)?;
    let manager = |remote: &Option<String>| match remote {
        Some(r) => larder.locks_on(r),
        None => larder.locks(),
    };
    // The token given, else the current one if this replica holds it.
    let token_or_current = |m: &larder::lock::LockManager,
                            resource: &str,
                            token: &Option<u64>|
     -> Result<u64, LarderError> {
        if let Some(t) = token {
            return Ok(*t);
        }
        Ok(m.check(resource)?
            .filter(|i| i.holder.as_deref() == Some(m.actor().as_str()))
            .map_or(0, |i| i.token))
    };
    match action {
        LockAction::Acquire {
            resource,
            ttl,
            remote,
        } => match manager(remote)?.acquire(resource, *ttl) {
            Ok(lease) => {
                if cli.json {
                    println!(
                        "{}",
                        json!({ "token": lease.token, "resource": lease.resource, "holder": lease.holder.as_str(), "holder_id": lease.holder_id, "expires_ms": lease.expires_ms })
                    );
                } else {
                    println!(
                        "acquired {} with fencing token {} (renew or release it with --token {})",
                        lease.resource, lease.token, lease.token
                    );
                }
            }
            Err(LockError::Held {
                resource,
                holder,
                holder_id,
                expires_in_ms,
                token,
            }) => {
                if cli.json {
                    println!(
                        "{}",
                        json!({ "held": true, "resource": resource, "holder": holder, "holder_id": holder_id, "token": token, "expires_in_ms": expires_in_ms })
                    );
                } else {
                    eprintln!(
                        "larder: {resource} is held by {holder} (token {token}) for another {expires_in_ms} ms"
                    );
                }
                return Ok(ExitCode::from(3));
            }
            Err(
                e @ LockError::OwnLeaseInSkewMargin {
                    token, retry_in_ms, ..
                },
            ) => {
                if cli.json {
                    println!(
                        "{}",
                        json!({ "held": true, "own_expired": true, "resource": resource, "token": token, "expires_in_ms": retry_in_ms })
                    );
                } else {
                    eprintln!("larder: {e}");
                }
                return Ok(ExitCode::from(3));
            }
            Err(e) => return Err(e.into()),
        },
        LockAction::Renew {
            resource,
            token,
            ttl,
            remote,
        } => {
            let m = manager(remote)?;
            let token = token_or_current(&m, resource, token)?;
            let renewed = m.renew_token(resource, token, *ttl)?;
            if cli.json {
                println!(
                    "{}",
                    json!({ "token": renewed.token, "resource": renewed.resource, "expires_ms": renewed.expires_ms })
                );
            } else {
                println!("renewed {} (token {})", renewed.resource, renewed.token);
            }
        }
        LockAction::Release {
            resource,
            token,
            remote,
        } => {
            let m = manager(remote)?;
            let token = token_or_current(&m, resource, token)?;
            m.release_token(resource, token)?;
            if cli.json {
                println!(
                    "{}",
                    json!({ "released": true, "resource": resource, "token": token })
                );
            } else {
                println!("released {resource} (token {token})");
            }
        }
        LockAction::List { remote } => {
            for entry in manager(remote)?.list()? {
                match entry {
                    Ok(i) if cli.json => println!(
                        "{}",
                        json!({ "resource": i.resource, "holder": i.holder, "token": i.token, "live": i.live, "expires_ms": i.expires_ms })
                    ),
                    Ok(i) => println!(
                        "{} {} token {}{}",
                        i.resource,
                        i.holder.as_deref().unwrap_or("(free)"),
                        i.token,
                        if i.live { "" } else { " (not live)" }
                    ),
                    Err(e) if cli.json => println!("{}", json!({ "error": e.to_string() })),
                    Err(e) => println!("bad: {e}"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` with a spinner on a terminal; silently otherwise (pipes,
/// `--json`), so scripts never see progress output.
fn with_progress<T>(json_mode: bool, message: &str, work: impl FnOnce() -> T) -> T {
    use std::io::IsTerminal;
    if json_mode || !std::io::stderr().is_terminal() {
        return work();
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(message.to_owned());
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let result = work();
    spinner.finish_and_clear();
    result
}

/// `larder compact`: packs every loose object and merges every pack up to
/// the default consolidation size into one; packs git keeps (`.keep`, named
/// by a `multi-pack-index`) stay. Damaged packs are skipped, listed, and
/// make the exit code 1.
fn compact(cli: &Cli, log: Option<&str>) -> Result<ExitCode, LarderError> {
    let repo = match log {
        Some(log) => {
            let larder = open(&cli.dir)?;
            let handle = existing_log(&larder, log)?;
            handle.wal().finish_maintenance();
            handle.wal().repo().clone()
        }
        None => larder::git::GitRepo::open(&cli.dir)?,
    };
    let packs_before = repo.pack_count()?;
    let max_size = larder::git::ConsolidationPolicy::default().max_size;
    let done = repo.compact(max_size)?;
    let packs_after = repo.pack_count()?;
    let damaged: Vec<String> = done.damaged.iter().map(ToString::to_string).collect();
    if cli.json {
        println!(
            "{}",
            json!({
                "loose_objects_packed": done.loose_objects,
                "packs_before": packs_before,
                "packs_merged": done.packs_merged,
                "packs_after": packs_after,
                "objects_in_merged_pack": done.objects,
                "damaged_packs": damaged,
            })
        );
    } else {
        println!(
            "packed {} loose objects; merged {} packs ({} objects); {packs_after} packs now, {packs_before} before",
            done.loose_objects, done.packs_merged, done.objects
        );
        for d in &damaged {
            println!("damaged: {d}");
        }
    }
    Ok(if damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn open(dir: &std::path::Path) -> Result<Larder, LarderError> {
    Larder::open(dir)
}

/// The log `name`, which must exist: reading a misspelt log should say so.
fn existing_log(larder: &Larder, name: &str) -> Result<larder::Log, LarderError> {
    larder.existing_log(name)
}
