//! Hand-made histories whose verdict is known, one per kind of anomaly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use larder_linearize::{
    Counterexample, History, HistoryError, KvInput, KvModel, KvOutput, Model, Operation,
    Partitioned, Recorder, Verdict, check, check_with_budget,
};

type Op = Operation<KvInput<&'static str, u32>, KvOutput<u32>>;
type Hist = History<KvInput<&'static str, u32>, KvOutput<u32>>;

fn get(client: u64, key: &'static str, value: Option<u32>, call: u64, ret: u64) -> Op {
    Operation::completed(client, KvInput::Get(key), KvOutput::Value(value), call, ret)
}

fn set(client: u64, key: &'static str, value: u32, call: u64, ret: u64) -> Op {
    Operation::completed(client, KvInput::Set(key, value), KvOutput::Ok, call, ret)
}

fn delete(client: u64, key: &'static str, call: u64, ret: u64) -> Op {
    Operation::completed(client, KvInput::Delete(key), KvOutput::Ok, call, ret)
}

fn cas(
    client: u64,
    key: &'static str,
    expected: Option<u32>,
    new: u32,
    wrote: bool,
    call: u64,
    ret: u64,
) -> Op {
    Operation::completed(
        client,
        KvInput::Cas { key, expected, new },
        KvOutput::CasResult(wrote),
        call,
        ret,
    )
}

fn crashed_set(client: u64, key: &'static str, value: u32, call: u64) -> Op {
    Operation::pending(client, KvInput::Set(key, value), call)
}

fn verdict(ops: Vec<Op>) -> Verdict<&'static str> {
    let history: Hist = ops.into();
    let verdict = check(&KvModel::new(), &history).expect("well-formed history");
    println!("{}", verdict.explain(&history));
    verdict
}

fn assert_linearizable(ops: Vec<Op>) {
    assert_eq!(verdict(ops), Verdict::Linearizable);
}

/// The counterexample, after checking it names `key`.
fn assert_not_linearizable(ops: Vec<Op>, key: &str) -> Counterexample<&'static str> {
    match verdict(ops) {
        Verdict::NotLinearizable(c) => {
            assert_eq!(c.key, key);
            c
        }
        other => panic!("expected NotLinearizable on {key}, got {other:?}"),
    }
}

#[test]
fn sequential_history_is_linearizable() {
    assert_linearizable(vec![
        set(0, "x", 1, 0, 1),
        get(0, "x", Some(1), 2, 3),
        cas(0, "x", Some(1), 2, true, 4, 5),
        cas(0, "x", Some(1), 3, false, 6, 7),
        get(0, "x", Some(2), 8, 9),
        delete(0, "x", 10, 11),
        get(0, "x", None, 12, 13),
        cas(0, "x", None, 3, true, 14, 15),
        get(0, "x", Some(3), 16, 17),
    ]);
}

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(vec![]);
}

#[test]
fn overlapping_writes_may_be_read_in_either_order() {
    for last in [1, 2] {
        assert_linearizable(vec![
            set(0, "x", 1, 0, 10),
            set(1, "x", 2, 1, 11),
            // A read overlapping both writes sees either, or neither.
            get(2, "x", None, 2, 3),
            get(3, "x", Some(3 - last), 4, 12),
            get(2, "x", Some(last), 13, 14),
            get(3, "x", Some(last), 15, 16),
        ]);
    }
}

#[test]
fn a_read_overlapping_a_write_sees_old_or_new() {
    for seen in [None, Some(1)] {
        assert_linearizable(vec![set(0, "x", 1, 0, 10), get(1, "x", seen, 5, 6)]);
    }
}

#[test]
fn crashed_write_observed_by_a_later_read() {
    assert_linearizable(vec![
        crashed_set(0, "x", 1, 0),
        get(1, "x", Some(1), 5, 6),
        get(1, "x", Some(1), 7, 8),
    ]);
    // It may take effect long after its call, even after reads saw nothing.
    assert_linearizable(vec![
        crashed_set(0, "x", 1, 0),
        get(1, "x", None, 5, 6),
        get(1, "x", Some(1), 100, 101),
    ]);
}

#[test]
fn crashed_write_never_observed() {
    assert_linearizable(vec![
        set(1, "x", 7, 0, 1),
        crashed_set(0, "x", 1, 2),
        get(1, "x", Some(7), 5, 6),
        get(1, "x", Some(7), 100, 101),
    ]);
}

#[test]
fn a_crashed_write_still_cannot_precede_its_call() {
    let c = assert_not_linearizable(
        vec![get(1, "x", Some(1), 0, 1), crashed_set(0, "x", 1, 2)],
        "x",
    );
    assert_eq!(c.involved, vec![0]);
}

#[test]
fn stale_read_after_a_completed_write() {
    let c = assert_not_linearizable(
        vec![
            set(0, "y", 5, 0, 1),
            get(1, "y", Some(5), 2, 3),
            set(0, "x", 1, 0, 1),
            set(0, "x", 2, 2, 3),
            get(1, "x", Some(1), 4, 5),
        ],
        "x",
    );
    assert_eq!(c.culprit, 4, "the read's return is where it fails");
    assert_eq!(
        c.involved,
        vec![2, 3, 4],
        "both writes and the read conflict"
    );
    assert_eq!(c.prefix, vec![2, 3, 4]);
}

#[test]
fn stale_read_after_a_delete() {
    assert_not_linearizable(
        vec![
            set(0, "x", 1, 0, 1),
            delete(0, "x", 2, 3),
            get(1, "x", Some(1), 4, 5),
        ],
        "x",
    );
}

#[test]
fn two_readers_observe_writes_in_opposite_orders() {
    let c = assert_not_linearizable(
        vec![
            set(0, "x", 1, 0, 10),
            set(1, "x", 2, 0, 10),
            get(2, "x", Some(1), 1, 2),
            get(2, "x", Some(2), 3, 4),
            get(3, "x", Some(2), 1, 2),
            get(3, "x", Some(1), 3, 4),
        ],
        "x",
    );
    // The writes' "Ok" says nothing: the four reads alone conflict.
    assert_eq!(c.involved, vec![2, 4, 3, 5]);
}

#[test]
fn compare_and_swap_succeeding_twice_on_one_expected_value() {
    let c = assert_not_linearizable(
        vec![
            set(0, "x", 1, 0, 1),
            cas(1, "x", Some(1), 2, true, 2, 6),
            cas(2, "x", Some(1), 3, true, 3, 5),
        ],
        "x",
    );
    // Even if the set could happen again later, the swaps conflict only
    // through it: it can take effect once.
    assert_eq!(c.involved, vec![1, 2]);
}

#[test]
fn read_of_a_value_never_written() {
    let c = assert_not_linearizable(vec![set(0, "x", 1, 0, 1), get(1, "x", Some(7), 2, 3)], "x");
    assert_eq!(c.involved, vec![1]);
}

#[test]
fn the_failing_key_is_named_among_many() {
    let mut ops = Vec::new();
    for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let t = 10 * i as u64;
        ops.push(set(0, key, 1, t, t + 1));
        ops.push(get(1, key, Some(1), t + 2, t + 3));
    }
    ops.push(get(1, "c", None, 100, 101));
    let c = assert_not_linearizable(ops, "c");
    assert_eq!(c.culprit, 8);
    assert!(
        c.explain(&verdict_history())
            .contains("not in this history")
    );
}

fn verdict_history() -> Hist {
    History::new()
}

#[test]
fn explanation_names_key_and_operations() {
    let history: Hist = vec![set(0, "x", 1, 0, 1), get(1, "x", None, 2, 3)].into();
    let verdict = check(&KvModel::new(), &history).unwrap();
    let text = verdict.explain(&history);
    assert!(text.contains("key \"x\" is not linearizable"), "{text}");
    assert!(
        text.contains("#1 client 1 [2, 3] Get(\"x\") -> Value(None)"),
        "{text}"
    );
}

#[test]
fn an_exhausted_budget_is_unknown_never_linearizable() {
    let history: Hist = vec![
        set(0, "x", 1, 0, 10),
        set(1, "x", 2, 0, 10),
        get(2, "x", Some(2), 11, 12),
    ]
    .into();
    let verdict = check_with_budget(&KvModel::new(), &history, 1).unwrap();
    assert_eq!(verdict, Verdict::Unknown { key: "x", steps: 1 });
    assert!(!verdict.is_linearizable());
}

#[test]
fn malformed_histories_are_errors() {
    let history: Hist = vec![set(0, "x", 1, 5, 4)].into();
    assert_eq!(
        check(&KvModel::new(), &history),
        Err(HistoryError::ReturnBeforeCall {
            index: 0,
            call: 5,
            ret: 4
        })
    );
    let mut op = set(0, "x", 1, 0, 1);
    op.ret = None;
    let history: Hist = vec![op].into();
    assert!(matches!(
        check(&KvModel::new(), &history),
        Err(HistoryError::OutputMismatch {
            index: 0,
            has_output: true,
            has_ret: false
        })
    ));
}

/// The whole map as one state, with no partitions of its own: the
/// sequential specification a reader would write first.
struct WholeMap;

impl Model for WholeMap {
    type State = BTreeMap<&'static str, u32>;
    type Input = KvInput<&'static str, u32>;
    type Output = KvOutput<u32>;
    type Key = ();

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn step(&self, map: &Self::State, input: &Self::Input) -> (Self::State, Self::Output) {
        let key = *input.key();
        let (register, output) = KvModel::new().step(&map.get(key).copied(), input);
        let mut map = map.clone();
        match register {
            Some(value) => map.insert(key, value),
            None => map.remove(key),
        };
        (map, output)
    }

    fn partition(&self, _: &Self::Input) {}
}

#[test]
fn whole_map_and_per_key_checks_agree() {
    let by_key = Partitioned::new(WholeMap, |input: &KvInput<&'static str, u32>| *input.key());
    let good: Hist = vec![
        set(0, "x", 1, 0, 10),
        set(1, "y", 2, 0, 10),
        get(2, "x", Some(1), 11, 12),
        get(2, "y", Some(2), 13, 14),
    ]
    .into();
    assert_eq!(check(&WholeMap, &good).unwrap(), Verdict::Linearizable);
    assert_eq!(check(&by_key, &good).unwrap(), Verdict::Linearizable);

    let bad: Hist = vec![
        set(0, "x", 1, 0, 1),
        set(1, "y", 2, 0, 1),
        get(2, "y", None, 2, 3),
    ]
    .into();
    match check(&WholeMap, &bad).unwrap() {
        Verdict::NotLinearizable(c) => {
            assert_eq!(c.key, ());
            assert_eq!(c.involved, vec![1, 2]);
        }
        other => panic!("{other:?}"),
    }
    match check(&by_key, &bad).unwrap() {
        Verdict::NotLinearizable(c) => {
            assert_eq!(c.key, "y");
            assert_eq!(c.involved, vec![1, 2]);
        }
        other => panic!("{other:?}"),
    }
}

/// A model that is not a map: a counter whose increments return the new
/// value. Shows the trait is not tied to the KV model.
struct Counter;

impl Model for Counter {
    type State = u64;
    type Input = ();
    type Output = u64;
    type Key = ();

    fn init(&self) -> u64 {
        0
    }

    fn step(&self, state: &u64, _: &()) -> (u64, u64) {
        (state + 1, state + 1)
    }

    fn partition(&self, _: &()) {}
}

#[test]
fn a_custom_model() {
    let ok: History<(), u64> = vec![
        Operation::completed(0, (), 2, 0, 10),
        Operation::completed(1, (), 1, 1, 11),
        Operation::completed(2, (), 3, 12, 13),
    ]
    .into();
    assert!(check(&Counter, &ok).unwrap().is_linearizable());
    let bad: History<(), u64> = vec![
        Operation::completed(0, (), 1, 0, 1),
        Operation::completed(1, (), 1, 2, 3),
    ]
    .into();
    assert!(matches!(
        check(&Counter, &bad).unwrap(),
        Verdict::NotLinearizable(_)
    ));
}

#[test]
fn recorders_in_two_processes_merge_through_the_line_format() {
    // Two "processes" sharing one clock, each with its own recorder.
    let clock = Arc::new(AtomicU64::new(0));
    let tick = |clock: &Arc<AtomicU64>| {
        let clock = Arc::clone(clock);
        move || clock.fetch_add(1, Ordering::SeqCst)
    };
    let a = Recorder::with_clock(tick(&clock));
    let b = Recorder::with_clock(tick(&clock));
    let t = a.call(1, KvInput::Set("x".to_owned(), 1u32));
    a.ret(t, KvOutput::Ok);
    let t = b.call(2, KvInput::Get("x".to_owned()));
    b.ret(t, KvOutput::Value(Some(1)));
    let crashed = b.call(2, KvInput::Set("x".to_owned(), 9));
    drop(crashed);

    let show_in = |i: &KvInput<String, u32>| format!("{i:?}");
    let show_out = |o: &KvOutput<u32>| format!("{o:?}");
    let text_a = a.history().to_lines(show_in, show_out).unwrap();
    let text_b = b.into_history().to_lines(show_in, show_out).unwrap();
    assert_eq!(text_a, "1\t0\t1\tSet(\"x\", 1)\tOk\n");
    assert_eq!(
        text_b,
        "2\t2\t3\tGet(\"x\")\tValue(Some(1))\n2\t4\t-\tSet(\"x\", 9)\t-\n"
    );

    // A toy parser for the Debug rendering above.
    let parse_in = |s: &str| -> Option<KvInput<String, u32>> {
        if let Some(rest) = s.strip_prefix("Get(\"") {
            return Some(KvInput::Get(rest.strip_suffix("\")")?.to_owned()));
        }
        let rest = s.strip_prefix("Set(\"")?.strip_suffix(')')?;
        let (key, value) = rest.split_once("\", ")?;
        Some(KvInput::Set(key.to_owned(), value.parse().ok()?))
    };
    let parse_out = |s: &str| -> Option<KvOutput<u32>> {
        match s {
            "Ok" => Some(KvOutput::Ok),
            "Value(None)" => Some(KvOutput::Value(None)),
            _ => {
                let v = s.strip_prefix("Value(Some(")?.strip_suffix("))")?;
                Some(KvOutput::Value(Some(v.parse().ok()?)))
            }
        }
    };
    let mut merged = History::from_lines(&text_a, parse_in, parse_out).unwrap();
    merged.merge(History::from_lines(&text_b, parse_in, parse_out).unwrap());
    assert_eq!(merged.len(), 3);
    assert_eq!(
        merged.operations()[2],
        Operation::pending(2, KvInput::Set("x".to_owned(), 9), 4)
    );
    assert!(check(&KvModel::new(), &merged).unwrap().is_linearizable());

    assert!(matches!(
        History::from_lines("1\t0\tx\tOk\tOk\n", parse_in, parse_out),
        Err(HistoryError::Parse { line: 1, .. })
    ));
    let tabbed: History<KvInput<String, u32>, KvOutput<u32>> =
        vec![Operation::pending(0, KvInput::Get("a\tb".to_owned()), 0)].into();
    let raw_in = |i: &KvInput<String, u32>| i.key().clone();
    assert_eq!(
        tabbed.to_lines(raw_in, show_out),
        Err(HistoryError::Unencodable {
            index: 0,
            field: "input"
        })
    );
}
