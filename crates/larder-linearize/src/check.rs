//! The Wing–Gong search with Lowe's memoisation, run per partition, and the
//! explanation of a failure.

use std::collections::{HashMap, HashSet};
use std::fmt::{Debug, Write as _};

use crate::{History, HistoryError, Model, Operation};

/// The model steps [`check`] allows each partition: plenty for thousands of
/// operations per key with moderate concurrency, and a bound on pathological
/// histories (linearizability checking is NP-complete).
pub const DEFAULT_BUDGET: u64 = 20_000_000;

/// The step budget of each attempt while shrinking a counterexample; an
/// attempt that exceeds it keeps the operation in the explanation.
const SHRINK_BUDGET: u64 = 1_000_000;

/// The total step budget for shrinking a counterexample (see [`Shrink`]).
const SHRINK_TOTAL_BUDGET: u64 = 10_000_000;

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Verdict<K> {
    /// Every partition has an order consistent with real time that explains
    /// every output.
    Linearizable,
    /// A partition has none.
    NotLinearizable(Counterexample<K>),
    /// No partition was found non-linearizable, but the search of `key`
    /// ran out of its budget of `steps` model steps: nothing is proven.
    Unknown {
        /// The first partition (in order of first appearance) whose search
        /// ran out.
        key: K,
        /// The budget it exhausted.
        steps: u64,
    },
}

impl<K> Verdict<K> {
    /// Whether the history was proven linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Self::Linearizable)
    }

    /// A human-readable account, naming operations from `history` (the one
    /// that was checked).
    pub fn explain<I: Debug, O: Debug>(&self, history: &History<I, O>) -> String
    where
        K: Debug,
    {
        match self {
            Self::Linearizable => "linearizable".to_owned(),
            Self::Unknown { key, steps } => {
                format!("unknown: the search of key {key:?} exceeded its budget of {steps} steps")
            }
            Self::NotLinearizable(counterexample) => counterexample.explain(history),
        }
    }
}

/// Why a partition is not linearizable. Operations are indices into
/// [`History::operations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample<K> {
    /// The partition (for [`crate::KvModel`]: the key).
    pub key: K,
    /// The completed operation whose return first makes the partition's
    /// history non-linearizable: up to just before it, some order explains
    /// every output.
    pub culprit: usize,
    /// The shortest failing prefix: the partition's operations called no
    /// later than the culprit's return, in order of call. Those returning
    /// after it are treated as pending there.
    pub prefix: Vec<usize>,
    /// Completed operations of the prefix, in order of call, whose outputs
    /// and real-time order cannot be reconciled however the prefix's other
    /// operations behaved, in the sense [`Counterexample::shrink`] says.
    pub involved: Vec<usize>,
    /// How far the other operations were relaxed.
    pub shrink: Shrink,
}

/// How far a [`Counterexample`] was shrunk. Pending operations make the
/// search branch, so on a long prefix proving a small conflict can cost far
/// more than the check did: shrinking has a total budget, and settles for a
/// weaker explanation when it runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shrink {
    /// Every operation not involved was let take effect at any point after
    /// its call, or never: the involved operations alone form a
    /// non-linearizable history, and relaxing any one of them that way
    /// removes the conflict.
    Complete,
    /// With every other operation's output ignored but each still taking
    /// effect within its interval, the involved operations whose outputs are
    /// checked conflict; the other involved operations are those whose
    /// timing alone matters: if just one of them could have taken effect
    /// later, or never, the conflict would go (as far as a second budget
    /// allowed trying, nearest the failure first).
    Timing,
    /// The budget ran out while ignoring outputs: the involved operations
    /// include every one not yet tried.
    Unshrunk,
}
impl<K> Counterexample<K> {
    /// A human-readable account, naming operations from `history`.
    pub fn explain<I: Debug, O: Debug>(&self, history: &History<I, O>) -> String
    where
        K: Debug,
    {
        let ops = history.operations();
        let describe = |index: usize| match ops.get(index) {
            Some(op) => match (&op.output, op.ret) {
                (Some(output), Some(ret)) => format!(
                    "#{index} client {} [{}, {ret}] {:?} -> {output:?}",
                    op.client, op.call, op.input
                ),
                _ => format!(
                    "#{index} client {} [{}, pending] {:?}",
                    op.client, op.call, op.input
                ),
            },
            None => format!("#{index} (not in this history)"),
        };
        let others = match self.shrink {
            Shrink::Complete => {
                ", even if every other operation took effect at any point after its call, or never"
            }
            Shrink::Timing => {
                ", whatever the other operations returned, each taking effect within its interval \
                 (the shrink budget ran out: some of these only matter for their timing — each, \
                 had it taken effect later or never, would remove the conflict)"
            }
            Shrink::Unshrunk => " (the shrink budget ran out before every operation was tried)",
        };
        let mut text = format!(
            "key {:?} is not linearizable; its history first fails when {} returns.\n\
             These completed operations cannot be ordered consistently with their outputs and real time\
             {others}:\n",
            self.key,
            describe(self.culprit)
        );
        // A long list is shown by its end, nearest the failure.
        const SHOWN: usize = 20;
        let hidden = self.involved.len().saturating_sub(SHOWN);
        if hidden > 0 {
            let _ = writeln!(text, "  ... {hidden} earlier ones, then");
        }
        for &index in &self.involved[hidden..] {
            let _ = writeln!(text, "  {}", describe(index));
        }
        let _ = writeln!(
            text,
            "The shortest failing prefix has {} operations of this key.",
            self.prefix.len()
        );
        text
    }
}

/// Checks `history` against `model` with [`DEFAULT_BUDGET`] steps per
/// partition. Fails only on a malformed history.
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
) -> Result<Verdict<M::Key>, HistoryError> {
    check_with_budget(model, history, DEFAULT_BUDGET)
}

/// Checks `history` against `model`, allowing each partition's search
/// `steps_per_partition` model steps. Partitions are searched in order of
/// their first operation; a non-linearizable one ends the check, one that
/// runs out of budget makes the verdict at best [`Verdict::Unknown`].
pub fn check_with_budget<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    steps_per_partition: u64,
) -> Result<Verdict<M::Key>, HistoryError> {
    history.validate()?;
    let ops = history.operations();
    let mut slot: HashMap<M::Key, usize> = HashMap::new();
    let mut partitions: Vec<(M::Key, Vec<usize>)> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let key = model.partition(&op.input);
        let at = *slot.entry(key.clone()).or_insert_with(|| {
            partitions.push((key, Vec::new()));
            partitions.len() - 1
        });
        if let Some((_, members)) = partitions.get_mut(at) {
            members.push(index);
        }
    }
    let mut unknown = None;
    for (key, members) in partitions {
        let view: Vec<View<'_, M>> = members.iter().map(|&i| View::of(&ops[i])).collect();
        let mut budget = steps_per_partition;
        match search(model, &view, &mut budget) {
            Outcome::Linearizable => {}
            Outcome::OutOfBudget => {
                if unknown.is_none() {
                    unknown = Some(key);
                }
            }
            Outcome::NotLinearizable => {
                return Ok(Verdict::NotLinearizable(counterexample(
                    model,
                    ops,
                    key,
                    &members,
                    steps_per_partition,
                )));
            }
        }
    }
    Ok(match unknown {
        Some(key) => Verdict::Unknown {
            key,
            steps: steps_per_partition,
        },
        None => Verdict::Linearizable,
    })
}

/// Finds the shortest failing prefix of a partition known to fail, and
/// shrinks it to the completed operations involved.
fn counterexample<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    key: M::Key,
    members: &[usize],
    budget: u64,
) -> Counterexample<M::Key> {
    // The history cut at time `t`: operations called by `t`, those that
    // returned later made pending. Non-linearizability is monotone in `t`,
    // so the first failing return time is found by bisection.
    let cut = |t: u64| -> Vec<usize> {
        let mut cut: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| ops[i].call <= t)
            .collect();
        cut.sort_by_key(|&i| (ops[i].call, i));
        cut
    };
    let view_at = |t: u64, indices: &[usize]| -> Vec<View<'_, M>> {
        indices
            .iter()
            .map(|&i| {
                let op = &ops[i];
                match op.ret {
                    Some(ret) if ret <= t => View::of(op),
                    _ => View::pending(op),
                }
            })
            .collect()
    };
    let fails = |t: u64, indices: &[usize], budget: u64| -> bool {
        let mut budget = budget;
        matches!(
            search(model, &view_at(t, indices), &mut budget),
            Outcome::NotLinearizable
        )
    };

    let mut returns: Vec<u64> = members.iter().filter_map(|&i| ops[i].ret).collect();
    returns.sort_unstable();
    returns.dedup();
    // The whole partition fails, which is the cut at its last return.
    let (mut lo, mut hi) = (0, returns.len().saturating_sub(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(returns[mid], &cut(returns[mid]), budget) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let t = returns.get(hi).copied().unwrap_or(u64::MAX);
    let prefix = cut(t);
    let culprit = members
        .iter()
        .copied()
        .find(|&i| ops[i].ret == Some(t))
        .or_else(|| prefix.first().copied())
        .unwrap_or(0);

    // Relax the prefix's completed operations one at a time, keeping each
    // relaxation that leaves it failing; what stays constrained is a
    // conflict among completed operations alone. First ignore outputs,
    // keeping every interval: each attempt is as cheap as the check itself.
    let mut relax: HashMap<usize, Relax> = prefix
        .iter()
        .map(|&i| {
            let completed = ops[i].ret.is_some_and(|ret| ret <= t);
            (
                i,
                if completed {
                    Relax::Keep
                } else {
                    Relax::Pending
                },
            )
        })
        .collect();
    let view = |relax: &HashMap<usize, Relax>| -> Vec<View<'_, M>> {
        prefix
            .iter()
            .map(|&i| match relax.get(&i) {
                Some(Relax::Keep) => View::of(&ops[i]),
                Some(Relax::Output) => View::output_free(&ops[i]),
                _ => View::pending(&ops[i]),
            })
            .collect()
    };
    let completed: Vec<usize> = prefix
        .iter()
        .copied()
        .filter(|i| relax.get(i) == Some(&Relax::Keep))
        .collect();
    let mut total = budget.min(SHRINK_TOTAL_BUDGET);
    // One relaxation attempt: kept if the prefix still fails. `None` once
    // the total budget is spent.
    let mut attempt = |relax: &mut HashMap<usize, Relax>, candidate: usize, to: Relax| {
        let before = relax.insert(candidate, to).unwrap_or(Relax::Keep);
        let allowed = SHRINK_BUDGET.min(total);
        let mut left = allowed;
        let outcome = search(model, &view(relax), &mut left);
        total -= allowed - left;
        if !matches!(outcome, Outcome::NotLinearizable) {
            relax.insert(candidate, before);
        }
        (total > 0).then_some(())
    };
    // Stage one: ignore outputs, nearest the failure first.
    if completed
        .iter()
        .rev()
        .try_for_each(|&c| attempt(&mut relax, c, Relax::Output))
        .is_none()
    {
        let involved = completed
            .iter()
            .copied()
            .filter(|i| relax.get(i) == Some(&Relax::Keep))
            .collect();
        return Counterexample {
            key,
            culprit,
            prefix,
            involved,
            shrink: Shrink::Unshrunk,
        };
    }
    let outputs_only = relax.clone();
    // Stage two: let operations be pending, for the strong explanation.
    if completed
        .iter()
        .try_for_each(|&c| attempt(&mut relax, c, Relax::Pending))
        .is_some()
    {
        let involved = completed
            .iter()
            .copied()
            .filter(|i| relax.get(i) != Some(&Relax::Pending))
            .collect();
        return Counterexample {
            key,
            culprit,
            prefix,
            involved,
            shrink: Shrink::Complete,
        };
    }
    // Out of budget: pending operations make the search branch. Settle for
    // the outputs that conflict, plus each operation whose timing alone
    // matters: made pending by itself (a cheap search), the conflict goes.
    // Nearest the failure first, within a total budget again.
    let mut relax = outputs_only;
    let mut involved = Vec::new();
    let mut total = budget.min(SHRINK_TOTAL_BUDGET);
    for &c in completed.iter().rev() {
        let stage = relax.get(&c).copied().unwrap_or(Relax::Keep);
        if stage == Relax::Keep {
            involved.push(c);
            continue;
        }
        if total == 0 {
            continue;
        }
        relax.insert(c, Relax::Pending);
        let allowed = SHRINK_BUDGET.min(total);
        let mut left = allowed;
        if matches!(
            search(model, &view(&relax), &mut left),
            Outcome::Linearizable
        ) {
            involved.push(c);
        }
        total -= allowed - left;
        relax.insert(c, stage);
    }
    involved.reverse();
    Counterexample {
        key,
        culprit,
        prefix,
        involved,
        shrink: Shrink::Timing,
    }
}

/// How far an operation of a failing prefix is relaxed while shrinking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Relax {
    /// As recorded.
    Keep,
    /// Output ignored; still takes effect within its interval.
    Output,
    /// Takes effect any time after its call, or never.
    Pending,
}

/// One operation as a search sees it: borrowed, possibly made pending.
struct View<'a, M: Model> {
    input: &'a M::Input,
    output: Option<&'a M::Output>,
    call: u64,
    ret: Option<u64>,
}

impl<'a, M: Model> View<'a, M> {
    fn of(op: &'a Operation<M::Input, M::Output>) -> Self {
        Self {
            input: &op.input,
            output: op.output.as_ref(),
            call: op.call,
            ret: op.ret,
        }
    }

    fn output_free(op: &'a Operation<M::Input, M::Output>) -> Self {
        Self {
            input: &op.input,
            output: None,
            call: op.call,
            ret: op.ret,
        }
    }

    fn pending(op: &'a Operation<M::Input, M::Output>) -> Self {
        Self {
            input: &op.input,
            output: None,
            call: op.call,
            ret: None,
        }
    }
}

enum Outcome {
    Linearizable,
    NotLinearizable,
    OutOfBudget,
}

/// A set of operations of one partition, as bits.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        if let Some(word) = self.0.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }

    fn clear(&mut self, i: usize) {
        if let Some(word) = self.0.get_mut(i / 64) {
            *word &= !(1 << (i % 64));
        }
    }
}

const NIL: usize = usize::MAX;

/// The call and return events of a partition in time order, as a doubly
/// linked list from which a linearized operation's two events are lifted
/// and into which they are put back on backtracking (dancing links).
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per node (node 0 is the head): the operation, and whether the node
    /// is its call.
    node: Vec<(usize, bool)>,
    /// Per operation: its call node and its return node.
    nodes_of: Vec<(usize, usize)>,
}

impl Events {
    fn new<M: Model>(ops: &[View<'_, M>]) -> Self {
        // Sort key: (after every real time?, time, return after call, op).
        // A call and a return at the same time count as overlapping, so the
        // call comes first; a pending return lies after everything.
        let mut events: Vec<(bool, u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            events.push((false, op.call, false, i));
            events.push(match op.ret {
                Some(ret) => (false, ret, true, i),
                None => (true, 0, true, i),
            });
        }
        events.sort_unstable();
        let len = events.len() + 1;
        let mut list = Self {
            next: vec![NIL; len],
            prev: vec![NIL; len],
            node: vec![(NIL, false); len],
            nodes_of: vec![(NIL, NIL); ops.len()],
        };
        for (k, &(_, _, is_return, op)) in events.iter().enumerate() {
            let node = k + 1;
            list.prev[node] = k;
            list.next[k] = node;
            list.node[node] = (op, !is_return);
            if is_return {
                list.nodes_of[op].1 = node;
            } else {
                list.nodes_of[op].0 = node;
            }
        }
        list
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }

    fn lift(&mut self, op: usize) {
        let (call, ret) = self.nodes_of[op];
        self.unlink(call);
        self.unlink(ret);
    }

    fn unlift(&mut self, op: usize) {
        let (call, ret) = self.nodes_of[op];
        self.relink(ret);
        self.relink(call);
    }
}

/// Whether some order of `ops`, consistent with real time, explains every
/// completed operation's output. Depth-first: linearize the earliest
/// operation that may go next and whose output the model reproduces; when
/// an unlinearized operation's return is reached, undo the last choice. A
/// (linearized set, state) pair already explored is never explored again:
/// what can follow depends on nothing else.
fn search<M: Model>(model: &M, ops: &[View<'_, M>], budget: &mut u64) -> Outcome {
    let mut remaining = ops.iter().filter(|op| op.ret.is_some()).count();
    if remaining == 0 {
        return Outcome::Linearizable;
    }
    let mut events = Events::new(ops);
    let mut state = model.init();
    let mut linearized = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut cursor = events.next[0];
    loop {
        // Pending operations left over may take effect never.
        if remaining == 0 {
            return Outcome::Linearizable;
        }
        let at_call = cursor != NIL && events.node[cursor].1;
        if at_call {
            let i = events.node[cursor].0;
            if *budget == 0 {
                return Outcome::OutOfBudget;
            }
            *budget -= 1;
            let (next_state, output) = model.step(&state, ops[i].input);
            // A completed operation must reproduce its output (if it is
            // still checked); a pending one is only worth placing here if it
            // changes the state (else "never" is just as good).
            let fits = match (ops[i].output, ops[i].ret) {
                (Some(expected), _) => *expected == output,
                (None, Some(_)) => true,
                (None, None) => next_state != state,
            };
            if fits {
                linearized.set(i);
                if seen.insert((linearized.clone(), next_state.clone())) {
                    stack.push((i, std::mem::replace(&mut state, next_state)));
                    events.lift(i);
                    if ops[i].ret.is_some() {
                        remaining -= 1;
                    }
                    cursor = events.next[0];
                    continue;
                }
                linearized.clear(i);
            }
            cursor = events.next[cursor];
        } else {
            // An unlinearized operation returned: undo the last choice and
            // try the operation after it.
            let Some((j, previous)) = stack.pop() else {
                return Outcome::NotLinearizable;
            };
            linearized.clear(j);
            state = previous;
            events.unlift(j);
            if ops[j].ret.is_some() {
                remaining += 1;
            }
            cursor = events.next[events.nodes_of[j].0];
        }
    }
}
