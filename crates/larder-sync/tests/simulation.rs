//! Deterministic simulation: a seeded RNG drives N actors (2–8), each with
//! its own repository and a skewed clock on one simulated time, through
//! random appends, pulls, pushes and syncs against one shared bare remote.
//! Then every actor syncs until quiescent, and the test asserts that every
//! appended event is present exactly once on every replica, that all
//! replicas hold the same ordered event list and projection state hash,
//! and that they end on one identical head.
//!
//! A failing seed prints itself; rerun one with `LARDER_SIM_SEED=<seed>`.

mod common;

use std::collections::HashMap;

use common::{Replica, bare_remote};
use larder_codec::{Envelope, EventId};
use larder_crdt::{Hlc, ManualClock, SkewedClock};

/// splitmix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Actor {
    replica: Replica,
    hlc: Hlc<SkewedClock<ManualClock>>,
}

impl Actor {
    /// Moves the clock past every event the last pull brought in.
    fn observe_since(&mut self, before: Option<larder_git::ObjectId>) {
        let events = match before {
            Some(b) => self.replica.wal().read_since(b).unwrap(),
            None => self.replica.wal().read_all().unwrap(),
        };
        for e in events {
            self.hlc.observe(e.timestamp(), e.actor().as_str()).unwrap();
        }
    }

    fn pull(&mut self) {
        let before = self.replica.wal().head().unwrap();
        self.replica.sync.pull().unwrap();
        self.observe_since(before);
    }
}

fn run(seed: u64) {
    let mut rng = seed;
    let n = 2 + (next(&mut rng) % 7) as usize;
    let remote = bare_remote();
    let truth = ManualClock::new(1_700_000_000_000);
    let mut actors: Vec<Actor> = (0..n)
        .map(|i| {
            let skew = (next(&mut rng) % 10_001) as i64 - 5_000;
            Actor {
                replica: Replica::new(&format!("sim-{i}"), remote.path()),
                hlc: Hlc::with_max_drift(SkewedClock::new(truth.clone(), skew), 60_000),
            }
        })
        .collect();
    let mut appended: Vec<EventId> = Vec::new();
    let steps = 3 * n + (next(&mut rng) % 12) as usize;
    for _ in 0..steps {
        let i = (next(&mut rng) % n as u64) as usize;
        let actor = &mut actors[i];
        match next(&mut rng) % 6 {
            0 | 1 => {
                let len = 1 + next(&mut rng) % 3;
                let batch: Vec<Envelope> = (0..len)
                    .map(|_| {
                        let key = format!("k{}", next(&mut rng) % 5);
                        let ts = actor.hlc.now().unwrap();
                        actor.replica.set(&key, next(&mut rng) % 100, ts)
                    })
                    .collect();
                actor.replica.wal().append(&batch).unwrap();
                appended.extend(batch.iter().map(Envelope::id));
            }
            2 => actor.pull(),
            3 => {
                actor.replica.sync.push().unwrap();
            }
            4 => {
                actor.pull();
                actor.replica.sync.push().unwrap();
            }
            _ => truth.advance(next(&mut rng) % 50),
        }
    }
    // Everyone syncs until a whole round changes nothing.
    let mut quiet = false;
    for _ in 0..6 {
        let mut changed = false;
        for actor in &mut actors {
            let before = actor.replica.wal().head().unwrap();
            actor.pull();
            changed |= actor.replica.sync.push().unwrap().pushed;
            changed |= actor.replica.wal().head().unwrap() != before;
        }
        if !changed {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "{n} actors did not become quiescent in 6 rounds");

    let reference = actors[0].replica.ordered();
    let mut expected: Vec<EventId> = appended.clone();
    expected.sort();
    for (i, actor) in actors.iter().enumerate() {
        let events = actor.replica.wal().read_all().unwrap();
        let mut counts: HashMap<EventId, usize> = HashMap::new();
        for e in &events {
            *counts.entry(e.id()).or_default() += 1;
        }
        assert!(
            counts.values().all(|&c| c == 1),
            "replica {i} holds an event twice"
        );
        let mut ids: Vec<EventId> = counts.into_keys().collect();
        ids.sort();
        assert_eq!(
            ids, expected,
            "replica {i} does not hold exactly the appended events"
        );
        assert_eq!(
            actor.replica.ordered(),
            reference,
            "replica {i} orders differently"
        );
        assert_eq!(
            actor.replica.state_hash(),
            actors[0].replica.state_hash(),
            "replica {i} state differs"
        );
        assert_eq!(
            actor.replica.wal().head().unwrap(),
            actors[0].replica.wal().head().unwrap(),
            "replica {i} head differs"
        );
    }
}

fn run_seeds(seeds: std::ops::Range<u64>) {
    if let Some(only) = std::env::var("LARDER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        // Run it in the test that owns it (seeds past 199 in the first).
        if seeds.contains(&only) || (seeds.start == 0 && only >= 200) {
            run(only);
        }
        return;
    }
    for seed in seeds {
        if let Err(panic) = std::panic::catch_unwind(|| run(seed)) {
            eprintln!("simulation failed for seed {seed}: rerun with LARDER_SIM_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn simulation_seeds_0_to_49() {
    run_seeds(0..50);
}

#[test]
fn simulation_seeds_50_to_99() {
    run_seeds(50..100);
}

#[test]
fn simulation_seeds_100_to_149() {
    run_seeds(100..150);
}

#[test]
fn simulation_seeds_150_to_199() {
    run_seeds(150..200);
}
