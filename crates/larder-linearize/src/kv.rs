//! A ready-made model of a key-value map with compare-and-swap.

use std::hash::Hash;
use std::marker::PhantomData;

use crate::Model;

/// An operation on a key-value map.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvInput<K, V> {
    /// Read a key; answered by [`KvOutput::Value`].
    Get(K),
    /// Write a value; answered by [`KvOutput::Ok`].
    Set(K, V),
    /// Remove a key; answered by [`KvOutput::Ok`].
    Delete(K),
    /// Write `new` if the key's value is `expected` (`None`: the key is
    /// absent); answered by [`KvOutput::CasResult`].
    Cas {
        /// The key.
        key: K,
        /// The value the key must hold, or `None` for "absent".
        expected: Option<V>,
        /// The value written on success.
        new: V,
    },
}

impl<K, V> KvInput<K, V> {
    /// The key the operation touches.
    pub fn key(&self) -> &K {
        match self {
            Self::Get(key) | Self::Set(key, _) | Self::Delete(key) => key,
            Self::Cas { key, .. } => key,
        }
    }
}

/// What a key-value map answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput<V> {
    /// A read's result: the value, or `None` if the key is absent.
    Value(Option<V>),
    /// A write or delete completed.
    Ok,
    /// Whether a compare-and-swap wrote.
    CasResult(bool),
}

/// A map of independent registers, partitioned by key: one key's state is
/// its value, `None` when absent. Every key starts absent.
#[derive(Debug)]
pub struct KvModel<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> KvModel<K, V> {
    /// The model.
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<K, V> Default for KvModel<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Clone for KvModel<K, V> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<K, V> Model for KvModel<K, V>
where
    K: Clone + Eq + Hash,
    V: Clone + Eq + Hash,
{
    type State = Option<V>;
    type Input = KvInput<K, V>;
    type Output = KvOutput<V>;
    type Key = K;

    fn init(&self) -> Option<V> {
        None
    }

    fn step(&self, state: &Option<V>, input: &KvInput<K, V>) -> (Option<V>, KvOutput<V>) {
        match input {
            KvInput::Get(_) => (state.clone(), KvOutput::Value(state.clone())),
            KvInput::Set(_, value) => (Some(value.clone()), KvOutput::Ok),
            KvInput::Delete(_) => (None, KvOutput::Ok),
            KvInput::Cas { expected, new, .. } => {
                if state == expected {
                    (Some(new.clone()), KvOutput::CasResult(true))
                } else {
                    (state.clone(), KvOutput::CasResult(false))
                }
            }
        }
    }

    fn partition(&self, input: &KvInput<K, V>) -> K {
        input.key().clone()
    }
}
