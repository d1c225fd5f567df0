//! State-based CRDT primitives. Each has a `merge` (a join: commutative,
//! associative, idempotent — proved by property tests) and operations that
//! return the delta they applied, so an operation can travel as a tiny
//! state and be applied with the same `merge`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use larder_codec::ActorId;
use serde::{Deserialize, Serialize};

use crate::order::EventKey;

/// A state-based CRDT: any two states merge into their least upper bound.
pub trait Crdt {
    /// Merges `other` into `self`.
    fn merge(&mut self, other: &Self);
}

// ---- version vectors and dots ----------------------------------------------

/// One actor's n-th operation: a unique tag for an add or a write.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// Who made the operation.
    pub actor: ActorId,
    /// Its sequence number among that actor's operations, from 1.
    pub counter: u64,
}

/// How many operations of each actor a state has seen.
///
/// Rule: merge takes the pointwise maximum. Assumes each actor's operations
/// are delivered in order (true of larder logs: an actor's history arrives
/// as a prefix of its chain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<ActorId, u64>);

impl VersionVector {
    /// The number of `actor`'s operations seen.
    pub fn get(&self, actor: &ActorId) -> u64 {
        self.0.get(actor).copied().unwrap_or(0)
    }

    /// Records the next operation of `actor` and returns its dot.
    pub fn next_dot(&mut self, actor: &ActorId) -> Dot {
        let counter = self.0.entry(actor.clone()).or_insert(0);
        *counter += 1;
        Dot {
            actor: actor.clone(),
            counter: *counter,
        }
    }

    /// Whether `dot` has been seen.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.get(&dot.actor) >= dot.counter
    }

    /// Records `dot` as seen.
    pub fn add(&mut self, dot: &Dot) {
        let c = self.0.entry(dot.actor.clone()).or_insert(0);
        *c = (*c).max(dot.counter);
    }

    /// Whether every operation seen by `other` is seen by `self`.
    pub fn dominates(&self, other: &Self) -> bool {
        other.0.iter().all(|(a, c)| self.get(a) >= *c)
    }
}

impl Crdt for VersionVector {
    fn merge(&mut self, other: &Self) {
        for (a, c) in &other.0 {
            let mine = self.0.entry(a.clone()).or_insert(0);
            *mine = (*mine).max(*c);
        }
    }
}

// ---- last-writer-wins register ---------------------------------------------

/// A register whose latest write wins.
///
/// Rule: the write with the greater [`EventKey`] (timestamp, actor, event
/// id) wins; merge keeps the greater of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LwwRegister<T> {
    value: Option<(EventKey, T)>,
}

impl<T> Default for LwwRegister<T> {
    fn default() -> Self {
        Self { value: None }
    }
}

impl<T: Clone> LwwRegister<T> {
    /// Writes `value` stamped `key`; ignored if a later write is present.
    /// Returns whether it took effect.
    pub fn set(&mut self, value: T, key: EventKey) -> bool {
        match &self.value {
            Some((current, _)) if *current >= key => false,
            _ => {
                self.value = Some((key, value));
                true
            }
        }
    }

    /// The current value.
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    /// The stamp of the current value.
    pub fn stamp(&self) -> Option<&EventKey> {
        self.value.as_ref().map(|(k, _)| k)
    }
}

impl<T: Clone> Crdt for LwwRegister<T> {
    fn merge(&mut self, other: &Self) {
        if let Some((key, value)) = &other.value {
            self.set(value.clone(), key.clone());
        }
    }
}

// ---- multi-value register --------------------------------------------------

/// A register that keeps every concurrent write.
///
/// Rule: a write replaces the values its writer had seen; merge keeps each
/// value whose dot the other side either also holds or has never seen, so
/// concurrent writes all survive until a later write supersedes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MvRegister<T: Ord> {
    values: BTreeMap<Dot, T>,
    seen: VersionVector,
}

impl<T: Ord> Default for MvRegister<T> {
    fn default() -> Self {
        Self {
            values: BTreeMap::new(),
            seen: VersionVector::default(),
        }
    }
}

impl<T: Ord + Clone> MvRegister<T> {
    /// Writes `value` as `actor`, superseding everything currently held.
    /// Returns the delta (mergeable into any replica).
    pub fn write(&mut self, actor: &ActorId, value: T) -> Self {
        let dot = self.seen.next_dot(actor);
        let mut delta_seen = VersionVector::default();
        for d in self.values.keys() {
            delta_seen.add(d);
        }
        delta_seen.add(&dot);
        self.values.clear();
        self.values.insert(dot.clone(), value.clone());
        Self {
            values: BTreeMap::from([(dot, value)]),
            seen: delta_seen,
        }
    }

    /// The current values (several after concurrent writes), in dot order.
    pub fn values(&self) -> Vec<&T> {
        self.values.values().collect()
    }
}

impl<T: Ord + Clone> Crdt for MvRegister<T> {
    fn merge(&mut self, other: &Self) {
        let mut merged = BTreeMap::new();
        for (dot, v) in &self.values {
            if other.values.contains_key(dot) || !other.seen.contains(dot) {
                merged.insert(dot.clone(), v.clone());
            }
        }
        for (dot, v) in &other.values {
            if !self.seen.contains(dot) {
                merged.insert(dot.clone(), v.clone());
            }
        }
        self.values = merged;
        self.seen.merge(&other.seen);
    }
}

// ---- observed-remove set (add-wins) ----------------------------------------

/// A set where an add concurrent with a remove wins.
///
/// Rule: each add is tagged with a fresh dot; a remove deletes the dots it
/// has observed. Merge keeps a dot that both sides hold or that the other
/// side has never seen. Removed elements leave no tombstones: the version
/// vector alone remembers which dots were seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSet<T: Ord> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    seen: VersionVector,
}

impl<T: Ord> Default for OrSet<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            seen: VersionVector::default(),
        }
    }
}

impl<T: Ord + Clone> OrSet<T> {
    /// Adds `value` as `actor`; returns the delta.
    pub fn add(&mut self, actor: &ActorId, value: T) -> Self {
        let dot = self.seen.next_dot(actor);
        let mut delta_seen = VersionVector::default();
        if let Some(old) = self.entries.get(&value) {
            for d in old {
                delta_seen.add(d);
            }
        }
        delta_seen.add(&dot);
        self.entries
            .insert(value.clone(), BTreeSet::from([dot.clone()]));
        Self {
            entries: BTreeMap::from([(value, BTreeSet::from([dot]))]),
            seen: delta_seen,
        }
    }

    /// Removes `value` (the adds observed so far); returns the delta.
    pub fn remove(&mut self, value: &T) -> Self {
        let mut delta_seen = VersionVector::default();
        if let Some(dots) = self.entries.remove(value) {
            for d in &dots {
                delta_seen.add(d);
            }
        }
        Self {
            entries: BTreeMap::new(),
            seen: delta_seen,
        }
    }

    /// Whether `value` is in the set.
    pub fn contains(&self, value: &T) -> bool {
        self.entries.contains_key(value)
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.keys()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<T: Ord + Clone> Crdt for OrSet<T> {
    fn merge(&mut self, other: &Self) {
        let keys: BTreeSet<T> = self
            .entries
            .keys()
            .chain(other.entries.keys())
            .cloned()
            .collect();
        let empty = BTreeSet::new();
        let mut merged = BTreeMap::new();
        for k in keys {
            let mine = self.entries.get(&k).unwrap_or(&empty);
            let theirs = other.entries.get(&k).unwrap_or(&empty);
            let dots: BTreeSet<Dot> = mine
                .iter()
                .filter(|d| theirs.contains(*d) || !other.seen.contains(d))
                .chain(theirs.iter().filter(|d| !self.seen.contains(d)))
                .cloned()
                .collect();
            if !dots.is_empty() {
                merged.insert(k, dots);
            }
        }
        self.entries = merged;
        self.seen.merge(&other.seen);
    }
}

// ---- PN-counter ------------------------------------------------------------

/// A counter that goes up and down.
///
/// Rule: each actor keeps its own running totals of increments and
/// decrements; merge takes each actor's maximum; the value is the sum of
/// increments minus the sum of decrements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    up: BTreeMap<ActorId, u64>,
    down: BTreeMap<ActorId, u64>,
}

impl PnCounter {
    /// Adds `n` as `actor` (saturating); returns the delta.
    pub fn increment(&mut self, actor: &ActorId, n: u64) -> Self {
        let total = self.up.entry(actor.clone()).or_insert(0);
        *total = total.saturating_add(n);
        Self {
            up: BTreeMap::from([(actor.clone(), *total)]),
            down: BTreeMap::new(),
        }
    }

    /// Subtracts `n` as `actor` (saturating); returns the delta.
    pub fn decrement(&mut self, actor: &ActorId, n: u64) -> Self {
        let total = self.down.entry(actor.clone()).or_insert(0);
        *total = total.saturating_add(n);
        Self {
            up: BTreeMap::new(),
            down: BTreeMap::from([(actor.clone(), *total)]),
        }
    }

    /// The current value.
    pub fn value(&self) -> i128 {
        let up: i128 = self.up.values().map(|&v| i128::from(v)).sum();
        let down: i128 = self.down.values().map(|&v| i128::from(v)).sum();
        up - down
    }
}

impl Crdt for PnCounter {
    fn merge(&mut self, other: &Self) {
        for (side, theirs) in [(&mut self.up, &other.up), (&mut self.down, &other.down)] {
            for (a, v) in theirs {
                let mine = side.entry(a.clone()).or_insert(0);
                *mine = (*mine).max(*v);
            }
        }
    }
}

// ---- last-writer-wins map --------------------------------------------------

/// A map whose every key is a last-writer-wins register; the base of the
/// replicated key-value store.
///
/// Rule: per key, the write (set or delete) with the greater [`EventKey`]
/// wins; a delete is a write of "absent" (a per-key tombstone, so a late
/// older set cannot resurrect the key). Merge is per-key LWW merge.
///
/// Stored in a hash map for O(1) writes; iteration and the serialised form
/// are in key order, so equal maps encode to equal bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LwwMap<K: Hash + Eq, V> {
    entries: HashMap<K, LwwRegister<Option<V>>>,
}

impl<K: Hash + Eq, V> Default for LwwMap<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone, V: Clone> LwwMap<K, V> {
    /// Sets `key` to `value` at `stamp`; returns whether it took effect.
    pub fn set(&mut self, key: K, value: V, stamp: EventKey) -> bool {
        self.entries.entry(key).or_default().set(Some(value), stamp)
    }

    /// Like [`LwwMap::set`], but looks the key up by reference first, so an
    /// existing key costs no allocation.
    pub fn set_by_ref<Q>(&mut self, key: &Q, value: V, stamp: EventKey) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.entries.get_mut(key) {
            Some(register) => register.set(Some(value), stamp),
            None => self.set(key.to_owned(), value, stamp),
        }
    }

    /// Deletes `key` at `stamp`; returns whether it took effect.
    pub fn delete(&mut self, key: K, stamp: EventKey) -> bool {
        self.entries.entry(key).or_default().set(None, stamp)
    }

    /// The value of `key`, if set.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries
            .get(key)
            .and_then(|r| r.get())
            .and_then(Option::as_ref)
    }

    /// Live entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let mut live: Vec<(&K, &V)> = self
            .entries
            .iter()
            .filter_map(|(k, r)| r.get().and_then(Option::as_ref).map(|v| (k, v)))
            .collect();
        live.sort_unstable_by(|a, b| a.0.cmp(b.0));
        live.into_iter()
    }

    /// The number of live keys.
    pub fn len(&self) -> usize {
        self.entries
            .values()
            .filter(|r| matches!(r.get(), Some(Some(_))))
            .count()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of deleted keys still remembered (tombstones).
    pub fn tombstones(&self) -> usize {
        self.entries
            .values()
            .filter(|r| matches!(r.get(), Some(None)))
            .count()
    }
}

impl<K: Ord + Hash + Clone, V: Clone> Crdt for LwwMap<K, V> {
    fn merge(&mut self, other: &Self) {
        for (k, r) in &other.entries {
            self.entries.entry(k.clone()).or_default().merge(r);
        }
    }
}

impl<K: Ord + Hash + Eq + Serialize, V: Serialize> Serialize for LwwMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sorted: BTreeMap<&K, &LwwRegister<Option<V>>> = self.entries.iter().collect();
        sorted.serialize(s)
    }
}

impl<'de, K, V> Deserialize<'de> for LwwMap<K, V>
where
    K: Hash + Eq + Deserialize<'de>,
    V: Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            entries: HashMap::deserialize(d)?,
        })
    }
}
