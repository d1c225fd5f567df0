//! The sequential specification a history is checked against.

use std::hash::Hash;

/// A sequential specification: what one partition of an object does when
/// operations are applied one at a time.
///
/// `State` describes a single partition (for a map partitioned by key: one
/// key's value), because the checker runs each partition's sub-history from
/// [`Model::init`] on its own. `State` is hashed so the search can remember
/// the (linearized operations, state) pairs it has already explored.
pub trait Model {
    /// One partition's state.
    type State: Clone + Eq + Hash;
    /// What a client asked for.
    type Input;
    /// What the client was told; compared with what the model answers.
    type Output: Eq;
    /// Which partition an input touches. Use `()` for an object that cannot
    /// be split; [`Partitioned`] adds a partition function to such a model.
    type Key: Clone + Eq + Hash;

    /// The state of a partition before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`: the next state and the output a correct
    /// object returns. Must be deterministic and total.
    fn step(&self, state: &Self::State, input: &Self::Input) -> (Self::State, Self::Output);

    /// The partition `input` belongs to. Operations of different partitions
    /// must never affect each other's outputs: that is what makes checking
    /// each partition on its own sound.
    fn partition(&self, input: &Self::Input) -> Self::Key;
}

/// A model whose partition function is a closure: `Partitioned::new(model,
/// |input| key)` splits any model's histories by the key the closure
/// returns, ignoring the wrapped model's own [`Model::partition`].
#[derive(Clone, Debug)]
pub struct Partitioned<M, F> {
    model: M,
    key: F,
}

impl<M, F> Partitioned<M, F> {
    /// Wraps `model`, partitioning its inputs with `key`.
    pub fn new(model: M, key: F) -> Self {
        Self { model, key }
    }
}

impl<M, F, K> Model for Partitioned<M, F>
where
    M: Model,
    F: Fn(&M::Input) -> K,
    K: Clone + Eq + Hash,
{
    type State = M::State;
    type Input = M::Input;
    type Output = M::Output;
    type Key = K;

    fn init(&self) -> Self::State {
        self.model.init()
    }

    fn step(&self, state: &Self::State, input: &Self::Input) -> (Self::State, Self::Output) {
        self.model.step(state, input)
    }

    fn partition(&self, input: &Self::Input) -> K {
        (self.key)(input)
    }
}
