//! Property tests: lattice laws of every primitive, and convergence of the
//! total order and projections under permutation and duplication.

use larder_codec::{ActorId, Envelope, Payload, Timestamp};
use larder_crdt::{
    Crdt, EventKey, KvProjection, LwwMap, LwwRegister, MvRegister, OrSet, PnCounter, Projection,
    Projector, compare_events, merge_sorted, sort_events,
};
use proptest::prelude::*;

fn actor(i: u8) -> ActorId {
    ActorId::new(format!("r{i}")).unwrap()
}

fn key(millis: u64, a: u8, n: u64) -> EventKey {
    let e = Envelope::new(
        actor(a),
        Timestamp::new(millis, 0),
        "k",
        Payload::from_serde(&n).unwrap(),
    )
    .unwrap();
    EventKey::of(&e)
}

/// One operation on one of three replicas.
#[derive(Clone, Debug)]
enum Op {
    Add(u8, u8),
    Remove(u8, u8),
    Inc(u8, u64),
    Dec(u8, u64),
    Set(u8, u8, u64),
    Del(u8, u8, u64),
    Merge(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8, 0..5u8).prop_map(|(r, v)| Op::Add(r, v)),
        (0..3u8, 0..5u8).prop_map(|(r, v)| Op::Remove(r, v)),
        (0..3u8, 0..10u64).prop_map(|(r, n)| Op::Inc(r, n)),
        (0..3u8, 0..10u64).prop_map(|(r, n)| Op::Dec(r, n)),
        (0..3u8, 0..5u8, 0..1000u64).prop_map(|(r, k, t)| Op::Set(r, k, t)),
        (0..3u8, 0..5u8, 0..1000u64).prop_map(|(r, k, t)| Op::Del(r, k, t)),
        (0..3u8, 0..3u8).prop_map(|(a, b)| Op::Merge(a, b)),
    ]
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Replica {
    set: OrSet<u8>,
    counter: PnCounter,
    map: LwwMap<u8, u64>,
    reg: LwwRegister<u64>,
    mv: MvRegister<u64>,
}

impl Crdt for Replica {
    fn merge(&mut self, o: &Self) {
        self.set.merge(&o.set);
        self.counter.merge(&o.counter);
        self.map.merge(&o.map);
        self.reg.merge(&o.reg);
        self.mv.merge(&o.mv);
    }
}

/// Runs ops on three replicas (with occasional merges between them).
fn run(ops: &[Op]) -> Vec<Replica> {
    let mut rs = vec![Replica::default(), Replica::default(), Replica::default()];
    for (n, op) in ops.iter().enumerate() {
        let n = n as u64;
        match *op {
            Op::Add(r, v) => {
                rs[r as usize].set.add(&actor(r), v);
            }
            Op::Remove(r, v) => {
                rs[r as usize].set.remove(&v);
            }
            Op::Inc(r, x) => {
                rs[r as usize].counter.increment(&actor(r), x);
            }
            Op::Dec(r, x) => {
                rs[r as usize].counter.decrement(&actor(r), x);
            }
            Op::Set(r, k, t) => {
                rs[r as usize].map.set(k, n, key(t, r, n));
                rs[r as usize].reg.set(n, key(t, r, n));
                rs[r as usize].mv.write(&actor(r), n);
            }
            Op::Del(r, k, t) => {
                rs[r as usize].map.delete(k, key(t, r, n));
            }
            Op::Merge(a, b) => {
                let other = rs[b as usize].clone();
                rs[a as usize].merge(&other);
            }
        }
    }
    rs
}

fn merged(a: &Replica, b: &Replica) -> Replica {
    let mut x = a.clone();
    x.merge(b);
    x
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn merge_is_commutative_associative_idempotent(ops in proptest::collection::vec(op(), 0..60)) {
        let rs = run(&ops);
        let (a, b, c) = (&rs[0], &rs[1], &rs[2]);
        prop_assert_eq!(merged(a, b), merged(b, a));
        prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)));
        prop_assert_eq!(merged(a, a), a.clone());
        // Merging in a state already included changes nothing.
        let ab = merged(a, b);
        prop_assert_eq!(merged(&ab, b), ab);
    }

    #[test]
    fn the_total_order_ignores_arrival_order_and_duplicates(
        specs in proptest::collection::vec((0..4u8, 0..50u64, 0..3u32, 0..1000u64), 1..80),
        seed in any::<u64>(),
    ) {
        let events: Vec<Envelope> = specs
            .iter()
            .map(|&(a, ms, c, v)| Envelope::new(actor(a), Timestamp::new(ms, c), "x", Payload::from_serde(&v).unwrap()).unwrap())
            .collect();
        let mut reference = events.clone();
        sort_events(&mut reference);
        // Shuffle deterministically and duplicate a third of the events.
        let mut shuffled = events.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        shuffled.extend(events.iter().step_by(3).cloned());
        let mut again = shuffled.clone();
        sort_events(&mut again);
        prop_assert_eq!(&again, &reference);
        prop_assert!(reference.windows(2).all(|w| compare_events(&w[0], &w[1]).is_lt()), "strict");
        // A k-way merge of sorted parts (with overlaps) gives the same list.
        let mut parts: Vec<Vec<Envelope>> = vec![Vec::new(); 3];
        for (i, e) in shuffled.into_iter().enumerate() {
            parts[i % 3].push(e);
        }
        for p in &mut parts {
            sort_events(p);
        }
        let merged: Vec<Envelope> = merge_sorted(parts.into_iter().map(Vec::into_iter)).collect();
        prop_assert_eq!(merged, reference);
    }

    #[test]
    fn kv_projection_converges_incrementally_and_on_rebuild(
        specs in proptest::collection::vec((0..3u8, 0..40u64, 0..6u8, prop::bool::ANY, 0..100u64), 1..100),
        cuts in proptest::collection::vec(0..100usize, 0..6),
        seed in any::<u64>(),
    ) {
        let events: Vec<Envelope> = specs
            .iter()
            .map(|&(a, ms, k, del, v)| {
                let key = format!("k{k}");
                let (kind, payload) = if del {
                    ("kv.delete", KvProjection::delete_payload(&key).unwrap())
                } else {
                    ("kv.set", KvProjection::set_payload(&key, &v).unwrap())
                };
                Envelope::new(actor(a), Timestamp::new(ms, 0), kind, payload).unwrap()
            })
            .collect();
        // Rebuild: everything, sorted, once.
        let mut sorted = events.clone();
        sort_events(&mut sorted);
        let mut rebuild = Projector::<KvProjection>::default();
        rebuild.apply_all(&sorted).unwrap();
        let expected = rebuild.state().state_hash();

        // Incremental: arbitrary batches in arrival order, each batch sorted,
        // with some events delivered twice.
        let mut arrival = events.clone();
        let mut s = seed | 1;
        for i in (1..arrival.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            arrival.swap(i, (s % (i as u64 + 1)) as usize);
        }
        arrival.extend(events.iter().step_by(4).cloned());
        let mut incremental = Projector::<KvProjection>::default();
        let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c % (arrival.len() + 1)).collect();
        bounds.push(0);
        bounds.push(arrival.len());
        bounds.sort_unstable();
        for w in bounds.windows(2) {
            let mut batch = arrival[w[0]..w[1]].to_vec();
            sort_events(&mut batch);
            incremental.apply_all(&batch).unwrap();
        }
        prop_assert_eq!(incremental.state().state_hash(), expected);
        // The encoded state round-trips.
        let restored = KvProjection::decode_state(&rebuild.state().encode_state()).unwrap();
        prop_assert_eq!(restored.state_hash(), expected);
    }
}

#[test]
fn or_set_add_wins_over_a_concurrent_remove() {
    let (a, b) = (actor(0), actor(1));
    let mut left = OrSet::default();
    left.add(&a, "x");
    let mut right = left.clone();
    right.remove(&"x"); // observed the add, removes it
    left.add(&a, "x"); // concurrently re-added
    left.merge(&right);
    assert!(left.contains(&"x"));
    // A remove that observed every add wins.
    let mut later = left.clone();
    later.remove(&"x");
    left.merge(&later);
    assert!(!left.contains(&"x"));
    let _ = b;
}

#[test]
fn mv_register_keeps_concurrent_writes_until_superseded() {
    let (a, b) = (actor(0), actor(1));
    let mut left = MvRegister::default();
    let mut right = MvRegister::default();
    left.write(&a, 1);
    right.write(&b, 2);
    left.merge(&right);
    assert_eq!(left.values(), vec![&1, &2]);
    let delta = left.write(&a, 3);
    right.merge(&delta);
    assert_eq!(right.values(), vec![&3]);
}

#[test]
fn lww_map_delete_is_not_resurrected_by_an_older_set() {
    let mut m = LwwMap::default();
    m.set("k", 1, key(10, 0, 1));
    m.delete("k", key(20, 1, 2));
    m.set("k", 3, key(15, 2, 3));
    assert_eq!(m.get(&"k"), None);
    assert_eq!(m.tombstones(), 1);
    m.set("k", 4, key(30, 0, 4));
    assert_eq!(m.get(&"k"), Some(&4));
}

#[test]
fn pn_counter_sums_per_actor_maxima() {
    let mut x = PnCounter::default();
    let mut y = PnCounter::default();
    x.increment(&actor(0), 5);
    y.increment(&actor(1), 3);
    y.decrement(&actor(1), 10);
    x.merge(&y);
    x.merge(&y);
    assert_eq!(x.value(), -2);
}
