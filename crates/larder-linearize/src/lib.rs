//! A linearizability checker for recorded histories, for tests only.
//!
//! larder-kv promises that every operation takes effect at one instant
//! between its call and its return (DESIGN.md, semantics 10). A test proves
//! that by recording what clients saw — each operation's input, output, and
//! call and return times — and asking [`check`] whether some order of those
//! operations, consistent with real time, explains every output under a
//! sequential [`Model`].
//!
//! - [`Model`] is the sequential specification; [`KvModel`] is a ready-made
//!   one for a map with get, set, delete and compare-and-swap.
//! - A model names each input's partition ([`Model::partition`]): a history
//!   is linearizable if and only if each partition's sub-history is
//!   (P-compositionality), so a map is checked key by key, which turns an
//!   exponential search over the whole history into many small ones.
//!   [`Partitioned`] adds a partition function to a model that has none.
//! - [`History`] holds [`Operation`]s; [`Recorder`] stamps them from one
//!   clock for any number of threads; histories from several processes
//!   [`merge`](History::merge), and travel as text lines
//!   ([`History::to_lines`], [`History::from_lines`]).
//! - An operation with no return (a crash or a timeout) may have taken
//!   effect at any point after its call, or never; the checker allows both.
//! - The search is bounded: a partition that exhausts its step budget makes
//!   the verdict [`Verdict::Unknown`], never [`Verdict::Linearizable`]. A
//!   failure names the key, the operation whose return first made the key's
//!   history non-linearizable, that shortest failing prefix, and a small set
//!   of completed operations that cannot be ordered however the others
//!   behaved ([`Counterexample`]; how strong that claim is depends on how
//!   far a budgeted shrink got, [`Shrink`]).
//!
//! ```
//! use larder_linearize::{KvInput, KvModel, KvOutput, Recorder, Verdict, check};
//!
//! let recorder = Recorder::new();
//! // In each client thread: stamp the call, issue it, stamp the answer.
//! let token = recorder.call(1, KvInput::Set("k".to_owned(), "v".to_owned()));
//! recorder.ret(token, KvOutput::Ok);
//! let token = recorder.call(2, KvInput::Get("k".to_owned()));
//! recorder.ret(token, KvOutput::Value(Some("v".to_owned())));
//! // A request that timed out: dropping its token leaves it pending.
//! drop(recorder.call(3, KvInput::Delete("k".to_owned())));
//!
//! let history = recorder.into_history();
//! let verdict = check(&KvModel::new(), &history).expect("well-formed");
//! assert_eq!(verdict, Verdict::Linearizable, "{}", verdict.explain(&history));
//! ```
//!
//! The algorithm is Wing & Gong's search with Lowe's memoisation of
//! (set of linearized operations, model state) pairs, as in Lowe,
//! "Testing for linearizability" (2017) and Horn & Kroening, "Faster
//! linearizability checking via P-compositionality" (2015).
#![deny(missing_docs)]

mod check;
mod history;
mod kv;
mod model;

pub use check::{Counterexample, DEFAULT_BUDGET, Shrink, Verdict, check, check_with_budget};
pub use history::{History, HistoryError, Operation, Recorder, Token, wall_clock_nanos};
pub use kv::{KvInput, KvModel, KvOutput};
pub use model::{Model, Partitioned};
