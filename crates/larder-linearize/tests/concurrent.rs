//! A history recorded from a real concurrent map — 8 threads, 10 keys, 200
//! operations each, a `Mutex<HashMap>` that is linearizable by construction
//! — checks as linearizable; the same history with one read made stale does
//! not, and the checker names that read's key and the read itself.

use std::collections::HashMap;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use larder_linearize::{History, KvInput, KvModel, KvOutput, Recorder, Verdict, check};
use larder_testkit::{Rng, seed_from_env};

const THREADS: u64 = 8;
const OPS: u64 = 200;
const KEYS: u64 = 10;

type Input = KvInput<u64, u64>;
type Output = KvOutput<u64>;

/// Runs the workload. Every written value is unique (thread, sequence), so
/// a read names exactly one write.
fn record(seed: u64) -> History<Input, Output> {
    let map: Mutex<HashMap<u64, u64>> = Mutex::new(HashMap::new());
    let recorder: Recorder<Input, Output> = Recorder::new();
    let start = Barrier::new(THREADS as usize);
    std::thread::scope(|scope| {
        for client in 0..THREADS {
            let (map, recorder, start) = (&map, &recorder, &start);
            scope.spawn(move || {
                start.wait();
                let mut rng = Rng::new(seed ^ (client + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let mut last_seen: HashMap<u64, Option<u64>> = HashMap::new();
                for seq in 0..OPS {
                    let key = rng.below(KEYS);
                    let value = (client << 32) | seq;
                    let input = match rng.below(100) {
                        0..40 => KvInput::Get(key),
                        40..65 => KvInput::Set(key, value),
                        65..75 => KvInput::Delete(key),
                        _ => KvInput::Cas {
                            key,
                            expected: last_seen.get(&key).copied().flatten(),
                            new: value,
                        },
                    };
                    let token = recorder.call(client, input.clone());
                    // Yield inside the interval, so that operations overlap
                    // as requests in flight do.
                    std::thread::yield_now();
                    let output = {
                        let mut map = map.lock().unwrap();
                        match input {
                            KvInput::Get(key) => KvOutput::Value(map.get(&key).copied()),
                            KvInput::Set(key, value) => {
                                map.insert(key, value);
                                KvOutput::Ok
                            }
                            KvInput::Delete(key) => {
                                map.remove(&key);
                                KvOutput::Ok
                            }
                            KvInput::Cas { key, expected, new } => {
                                let wrote = map.get(&key).copied() == expected;
                                if wrote {
                                    map.insert(key, new);
                                }
                                KvOutput::CasResult(wrote)
                            }
                        }
                    };
                    if let KvOutput::Value(seen) = output {
                        last_seen.insert(key, seen);
                    }
                    std::thread::yield_now();
                    recorder.ret(token, output);
                }
            });
        }
    });
    recorder.into_history()
}

/// How many operations overlap another operation on their key: a history
/// without overlap would test little.
fn overlapping(history: &History<Input, Output>) -> usize {
    let ops = history.operations();
    let overlaps = |a: usize, b: usize| {
        let (x, y) = (&ops[a], &ops[b]);
        x.input.key() == y.input.key()
            && x.call <= y.ret.unwrap_or(u64::MAX)
            && y.call <= x.ret.unwrap_or(u64::MAX)
    };
    (0..ops.len())
        .filter(|&a| (0..ops.len()).any(|b| a != b && overlaps(a, b)))
        .count()
}

fn timed_check(history: &History<Input, Output>) -> (Verdict<u64>, Duration) {
    let start = Instant::now();
    let verdict = check(&KvModel::new(), history).expect("recorder histories are well-formed");
    (verdict, start.elapsed())
}

/// A read of key `k` and an earlier value of `k` that it can no longer see:
/// set w1 returned before set w2 was called, and w2 returned before the read
/// was called. Values are unique, so nothing wrote w1's value again.
fn stale_read(history: &History<Input, Output>) -> Option<(usize, u64)> {
    let ops = history.operations();
    let sets: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].input, KvInput::Set(..)))
        .collect();
    // The last such read: the longest prefix to search.
    for (read, op) in ops.iter().enumerate().rev() {
        let KvInput::Get(key) = op.input else {
            continue;
        };
        let before = |i: usize, j: usize| ops[i].ret.is_some_and(|ret| ret < ops[j].call);
        for &w2 in &sets {
            if *ops[w2].input.key() != key || !before(w2, read) {
                continue;
            }
            for &w1 in &sets {
                if *ops[w1].input.key() == key
                    && before(w1, w2)
                    && let KvInput::Set(_, old) = ops[w1].input
                {
                    return Some((read, old));
                }
            }
        }
    }
    None
}

#[test]
fn recorded_concurrent_map_is_linearizable_and_a_stale_read_is_caught() {
    let seed = seed_from_env("LARDER_LINEARIZE_SEED", 0x1ea5_e5ee_d000_0001);
    let history = record(seed);
    assert_eq!(history.len() as u64, THREADS * OPS);

    let (verdict, took) = timed_check(&history);
    let overlap = overlapping(&history);
    println!(
        "{} ops over {KEYS} keys ({overlap} overlapping another on their key) checked in {took:?}: {verdict:?}",
        history.len()
    );
    assert_eq!(
        verdict,
        Verdict::Linearizable,
        "{}",
        verdict.explain(&history)
    );
    assert!(took < Duration::from_secs(30), "checking took {took:?}");

    let (read, stale) = stale_read(&history).expect("the workload has a read after two sets");
    let mut corrupted = history.clone();
    corrupted.operations_mut()[read].output = Some(KvOutput::Value(Some(stale)));
    let (verdict, took) = timed_check(&corrupted);
    println!(
        "corrupted read #{read} checked in {took:?}:\n{}",
        verdict.explain(&corrupted)
    );
    let Verdict::NotLinearizable(c) = verdict else {
        panic!("corrupted history passed: {verdict:?}");
    };
    assert_eq!(&c.key, history.operations()[read].input.key());
    assert_eq!(
        c.culprit, read,
        "the history fails exactly when the stale read returns"
    );
    assert!(c.involved.contains(&read));
    let write = history
        .operations()
        .iter()
        .position(|op| matches!(op.input, KvInput::Set(_, v) if v == stale))
        .expect("the stale value was written");
    assert!(
        c.involved.contains(&write),
        "the write of the stale value is named"
    );
    assert!(
        c.involved.len() < 10,
        "the conflict is the read and a few writes: {:?}",
        c.involved
    );
    assert!(took < Duration::from_secs(30), "checking took {took:?}");
}
