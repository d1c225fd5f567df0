//! The checker agrees with a brute-force one on small random histories.
//!
//! The brute force tries every order of the whole history (both keys at
//! once, so it also checks that splitting by key is sound) consistent with
//! real time, in which completed operations all appear and pending ones
//! appear or not, and accepts if one reproduces every completed output. Half
//! the histories come from an honest execution (linearizable by
//! construction) with a chance of one corrupted output, so both verdicts
//! are common.

use std::collections::HashMap;

use larder_linearize::{
    History, KvInput, KvModel, KvOutput, Model, Operation, Shrink, Verdict, check,
};
use proptest::prelude::*;

type Input = KvInput<u8, u8>;
type Output = KvOutput<u8>;
type Op = Operation<Input, Output>;

fn brute_force(ops: &[Op]) -> bool {
    fn go(ops: &[Op], placed: &mut Vec<bool>, state: &mut HashMap<u8, Option<u8>>) -> bool {
        let model = KvModel::<u8, u8>::new();
        if ops
            .iter()
            .zip(placed.iter())
            .all(|(op, &p)| p || op.ret.is_none())
        {
            return true;
        }
        for j in 0..ops.len() {
            if placed[j] {
                continue;
            }
            // j may go next unless an unplaced operation returned before j
            // was called.
            let blocked = (0..ops.len())
                .any(|i| i != j && !placed[i] && ops[i].ret.is_some_and(|ret| ret < ops[j].call));
            if blocked {
                continue;
            }
            let key = *ops[j].input.key();
            let before = state.get(&key).cloned().flatten();
            let (after, output) = model.step(&before, &ops[j].input);
            if ops[j]
                .output
                .as_ref()
                .is_some_and(|expected| *expected != output)
            {
                continue;
            }
            placed[j] = true;
            state.insert(key, after);
            if go(ops, placed, state) {
                return true;
            }
            state.insert(key, before);
            placed[j] = false;
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], &mut HashMap::new())
}

/// Raw material for one operation: key, kind, value, expected value,
/// call time, duration, pending?, linearization point (fraction of the
/// interval; 0 for a pending one means "never"), a random output.
type Raw = (u8, u8, u8, u8, u64, u64, bool, u8, u8);

fn raw() -> impl Strategy<Value = Raw> {
    (
        0..2u8,
        0..4u8,
        0..3u8,
        0..4u8,
        0..12u64,
        0..6u64,
        prop::bool::weighted(0.2),
        0..8u8,
        0..8u8,
    )
}

fn build(raws: &[Raw], honest: bool, corrupt: Option<usize>) -> Vec<Op> {
    let mut ops: Vec<Op> = raws
        .iter()
        .enumerate()
        .map(
            |(client, &(key, kind, value, expected, call, dur, pending, _, out))| {
                let input = match kind {
                    0 => KvInput::Get(key),
                    1 => KvInput::Set(key, value),
                    2 => KvInput::Delete(key),
                    _ => KvInput::Cas {
                        key,
                        expected: (expected < 3).then_some(expected),
                        new: value,
                    },
                };
                let output = match (kind, out) {
                    (0, 0..3) => KvOutput::Value(Some(out)),
                    (0, _) => KvOutput::Value(None),
                    (1 | 2, _) => KvOutput::Ok,
                    (_, _) => KvOutput::CasResult(out % 2 == 0),
                };
                if pending {
                    Operation::pending(client as u64, input, call)
                } else {
                    Operation::completed(client as u64, input, output, call, call + dur)
                }
            },
        )
        .collect();
    if honest {
        // Execute at a point inside each interval (pending: after the call,
        // or never), in order of those points, and record the outputs.
        let mut points: Vec<(u64, usize)> = Vec::new();
        for (i, raw) in raws.iter().enumerate() {
            let (call, dur, pending, frac) = (raw.4, raw.5, raw.6, raw.7);
            if pending && frac == 0 {
                continue;
            }
            let span = if pending { 8 } else { dur };
            // Scaled by 8 so points inside an interval never coincide with
            // the ends of other intervals in a misleading way.
            points.push((call * 8 + span * 8 * u64::from(frac) / 8, i));
        }
        points.sort_unstable();
        let model = KvModel::<u8, u8>::new();
        let mut state: HashMap<u8, Option<u8>> = HashMap::new();
        for (_, i) in points {
            let key = *ops[i].input.key();
            let before = state.get(&key).cloned().flatten();
            let (after, output) = model.step(&before, &ops[i].input);
            state.insert(key, after);
            if ops[i].ret.is_some() {
                ops[i].output = Some(output);
            }
        }
        if let Some(victim) = corrupt
            && let Some(op) = ops.get_mut(victim)
            && let Some(output) = &mut op.output
        {
            *output = match output {
                KvOutput::Value(Some(v)) => KvOutput::Value(Some((*v + 1) % 3)),
                KvOutput::Value(None) => KvOutput::Value(Some(0)),
                KvOutput::CasResult(b) => KvOutput::CasResult(!*b),
                KvOutput::Ok => KvOutput::Ok,
            };
        }
    }
    ops
}

fn case() -> impl Strategy<Value = (Vec<Op>, bool)> {
    (
        prop::collection::vec(raw(), 0..=6),
        any::<bool>(),
        prop::option::weighted(0.5, 0..6usize),
    )
        .prop_map(|(raws, honest, corrupt)| {
            let corrupted = honest && corrupt.is_some_and(|c| c < raws.len());
            (build(&raws, honest, corrupt), honest && !corrupted)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_brute_force((ops, known_good) in case()) {
        let expected = brute_force(&ops);
        if known_good {
            prop_assert!(expected, "an honest execution must be linearizable: {ops:?}");
        }
        let history: History<Input, Output> = ops.clone().into();
        let verdict = check(&KvModel::new(), &history).unwrap();
        match &verdict {
            Verdict::Linearizable => prop_assert!(expected, "checker accepted {ops:?}"),
            Verdict::Unknown { .. } => prop_assert!(false, "tiny history out of budget: {ops:?}"),
            Verdict::NotLinearizable(c) => {
                prop_assert!(!expected, "checker rejected {ops:?}: {}", verdict.explain(&history));
                // The explanation is itself a counterexample: its completed
                // operations alone cannot be linearized, all on the key.
                let involved: Vec<Op> = c.involved.iter().map(|&i| ops[i].clone()).collect();
                prop_assert_eq!(c.shrink, Shrink::Complete, "tiny history out of shrink budget");
                prop_assert!(!involved.is_empty());
                prop_assert!(involved.iter().all(|op| op.ret.is_some() && *op.input.key() == c.key));
                prop_assert!(!brute_force(&involved), "involved ops linearize: {involved:?}");
                prop_assert!(c.involved.iter().all(|i| c.prefix.contains(i)));
                prop_assert!(c.prefix.contains(&c.culprit));
                prop_assert!(c.prefix.iter().all(|&i| *ops[i].input.key() == c.key));
            }
        }
    }
}

/// How often each verdict comes up, so the property is not vacuous.
#[test]
fn the_generator_yields_both_verdicts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(Config::default().rng_algorithm),
    );
    let (mut good, mut bad) = (0, 0);
    for _ in 0..500 {
        let (ops, _) = case().new_tree(&mut runner).unwrap().current();
        if brute_force(&ops) {
            good += 1
        } else {
            bad += 1
        }
    }
    println!("{good} linearizable, {bad} not");
    assert!(good > 100 && bad > 100, "{good} linearizable, {bad} not");
}
