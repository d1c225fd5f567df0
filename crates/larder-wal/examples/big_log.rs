//! Builds or reads a large log, for measuring peak memory outside CI:
//!
//! ```text
//! cargo run --release -p larder-wal --example big_log -- build DIR EVENTS PER_COMMIT [THREADS]
//! /usr/bin/time -v target/release/examples/big_log read DIR
//! /usr/bin/time -v target/release/examples/big_log verify DIR
//! ```
//!
//! `build` appends EVENTS events, PER_COMMIT per append, from THREADS
//! threads (default 1; more use group commit), then compacts. `read`
//! streams every event (`events_since(None)`) without keeping them;
//! `verify` runs `WalManager::verify`. Both print counts and rates.

use std::time::Instant;

use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_git::GitRepo;
use larder_wal::{WalManager, WalOptions};

fn event(actor: &ActorId, n: u64) -> Envelope {
    let body = format!("{n:08}-{}", "x".repeat(88));
    Envelope::new(
        actor.clone(),
        Timestamp::new(1_700_000_000_000 + n, 0),
        "big",
        Payload::from_serde(&body).expect("a string payload"),
    )
    .expect("a valid event")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: big_log build DIR EVENTS PER_COMMIT [THREADS] | read DIR | verify DIR";
    let (Some(mode), Some(dir)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let start = Instant::now();
    match mode.as_str() {
        "build" => {
            let events: u64 = args.get(2).ok_or(usage)?.parse()?;
            let per_commit: u64 = args.get(3).ok_or(usage)?.parse()?;
            let threads: u64 = args.get(4).map_or(Ok(1), |t| t.parse())?;
            // BIG_LOG_RAW=1: no consolidation and no compaction, so the
            // packs left show how appends were grouped (one pack per group).
            let raw = std::env::var_os("BIG_LOG_RAW").is_some();
            let options = WalOptions {
                consolidation: if raw {
                    None
                } else {
                    WalOptions::default().consolidation
                },
                ..WalOptions::default()
            };
            let wal = WalManager::with_options(GitRepo::init_bare(dir)?, "big", options)?;
            let commits = events / per_commit / threads;
            std::thread::scope(|s| {
                for t in 0..threads {
                    let wal = wal.clone();
                    s.spawn(move || {
                        let actor = ActorId::new(format!("actor-{t}")).expect("actor");
                        for c in 0..commits {
                            let base = c * per_commit;
                            let batch: Vec<Envelope> = (base..base + per_commit)
                                .map(|n| event(&actor, n))
                                .collect();
                            wal.append(&batch).expect("append");
                        }
                    });
                }
            });
            let secs = start.elapsed().as_secs_f64();
            let packs = wal.repo().pack_count()?;
            let report = if raw { None } else { Some(wal.compact()?) };
            println!(
                "built {} events in {} commits in {secs:.1} s ({packs} packs before compaction); {report:?}",
                commits * per_commit * threads,
                commits * threads,
            );
        }
        "read" => {
            let wal = WalManager::new(GitRepo::open(dir)?, "big")?;
            let mut n = 0u64;
            for event in wal.events_since(None)? {
                event?;
                n += 1;
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "read {n} events in {secs:.2} s: {:.0} events/s",
                n as f64 / secs
            );
        }
        "verify" => {
            let wal = WalManager::new(GitRepo::open(dir)?, "big")?;
            let report = wal.verify()?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "verified {} commits, {} events in {secs:.2} s, {} problems",
                report.commits,
                report.events,
                report.problems.len()
            );
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
