//! larder's merge layer: what makes every replica agree. No git in here.
//!
//! - [`clock`]: hybrid logical clocks with an injectable wall clock and a
//!   drift guard.
//! - [`order`]: the strict total order `(timestamp, actor, event id)` and a
//!   k-way merge of sorted streams.
//! - [`primitives`]: state-based CRDTs — LWW register, multi-value register,
//!   observed-remove set, PN-counter, LWW map.
//! - [`projection`]: the [`Projection`] trait (a deterministic fold with a
//!   stable state hash) and the key-value projection.
//!
//! Why replicas converge is explained in `docs/crdt.md`.
#![deny(missing_docs)]

pub mod clock;
mod error;
pub mod order;
pub mod primitives;
pub mod projection;

pub use clock::{Clock, Hlc, ManualClock, SkewedClock, SystemClock};
pub use error::{CrdtError, Result};
pub use order::{EventKey, MergeSorted, compare_events, merge_sorted, sort_events};
pub use primitives::{Crdt, Dot, LwwMap, LwwRegister, MvRegister, OrSet, PnCounter, VersionVector};
pub use projection::{Applied, KV_DELETE, KV_SET, KvProjection, Projection, Projector, StateHash};
