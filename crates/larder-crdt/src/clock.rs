//! Hybrid logical clocks (Kulkarni et al., 2014) with an injectable wall clock.
//!
//! A timestamp is `(millis, counter)`: `millis` tracks the largest wall time
//! seen, `counter` orders events within one millisecond. `now()` is strictly
//! increasing on one replica; `update(received)` moves past any timestamp
//! received, so an event created after observing another sorts after it,
//! whatever the two wall clocks say. A received timestamp more than
//! `max_drift_ms` ahead of local wall time is refused rather than adopted,
//! so one replica with a wild clock cannot drag everyone into the future.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use larder_codec::Timestamp;

use crate::{CrdtError, Result};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// The current wall time.
    fn now_millis(&self) -> u64;
}

/// A shared clock is a clock: lets one injected `Arc<dyn Clock>` drive every
/// component of a replica (the facade's HLC, locks, snapshot policies).
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_millis(&self) -> u64 {
        (**self).now_millis()
    }
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told: for tests and simulations. Clones
/// share one time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `millis`.
    pub fn new(millis: u64) -> Self {
        Self(Arc::new(AtomicU64::new(millis)))
    }

    /// Sets the time (it may go backwards, as real clocks do).
    pub fn set(&self, millis: u64) {
        self.0.store(millis, Ordering::SeqCst);
    }

    /// Moves the time forward by `millis`.
    pub fn advance(&self, millis: u64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A clock that reads another with a fixed skew: a replica whose wall clock
/// is wrong by `skew_ms` (positive: ahead).
#[derive(Clone, Debug)]
pub struct SkewedClock<C> {
    inner: C,
    skew_ms: i64,
}

impl<C: Clock> SkewedClock<C> {
    /// `inner` shifted by `skew_ms`.
    pub fn new(inner: C, skew_ms: i64) -> Self {
        Self { inner, skew_ms }
    }
}

impl<C: Clock> Clock for SkewedClock<C> {
    fn now_millis(&self) -> u64 {
        self.inner.now_millis().saturating_add_signed(self.skew_ms)
    }
}

/// The default bound on how far ahead a received timestamp may be: one hour.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60 * 60 * 1000;

/// A hybrid logical clock over a wall clock `C`.
#[derive(Debug)]
pub struct Hlc<C = SystemClock> {
    clock: C,
    last: Timestamp,
    max_drift_ms: u64,
}

impl<C: Clock> Hlc<C> {
    /// A clock reading `clock`, refusing timestamps more than
    /// [`DEFAULT_MAX_DRIFT_MS`] ahead.
    pub fn new(clock: C) -> Self {
        Self::with_max_drift(clock, DEFAULT_MAX_DRIFT_MS)
    }

    /// A clock with a custom drift bound.
    pub fn with_max_drift(clock: C, max_drift_ms: u64) -> Self {
        Self {
            clock,
            last: Timestamp::default(),
            max_drift_ms,
        }
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// The wall clock underneath.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// A new timestamp, strictly greater than every one issued or observed.
    pub fn now(&mut self) -> Result<Timestamp> {
        let wall = self.clock.now_millis();
        let next = if wall > self.last.millis {
            Timestamp::new(wall, 0)
        } else {
            self.bump(self.last.millis, self.last.counter)?
        };
        self.last = next;
        Ok(next)
    }

    /// Observes a timestamp received from another replica (`from` names it
    /// in errors) and returns a new local timestamp greater than both.
    pub fn update(&mut self, received: Timestamp, from: &str) -> Result<Timestamp> {
        let wall = self.clock.now_millis();
        let ahead = received.millis.saturating_sub(wall);
        if ahead > self.max_drift_ms {
            return Err(CrdtError::ClockDrift {
                received,
                from: from.into(),
                ahead_ms: ahead,
                max_drift_ms: self.max_drift_ms,
            });
        }
        let millis = wall.max(self.last.millis).max(received.millis);
        let next = if millis == self.last.millis && millis == received.millis {
            self.bump(millis, self.last.counter.max(received.counter))?
        } else if millis == self.last.millis {
            self.bump(millis, self.last.counter)?
        } else if millis == received.millis {
            self.bump(millis, received.counter)?
        } else {
            Timestamp::new(millis, 0)
        };
        self.last = next;
        Ok(next)
    }

    /// Observes a received timestamp without issuing a new one.
    pub fn observe(&mut self, received: Timestamp, from: &str) -> Result<()> {
        self.update(received, from).map(|_| ())
    }

    /// `(millis, counter + 1)`, rolling into the next millisecond when the
    /// counter is exhausted (the logical part then runs ahead of the wall).
    fn bump(&self, millis: u64, counter: u32) -> Result<Timestamp> {
        match counter.checked_add(1) {
            Some(c) => Ok(Timestamp::new(millis, c)),
            None => match millis.checked_add(1) {
                Some(m) => Ok(Timestamp::new(m, 0)),
                None => Err(CrdtError::ClockExhausted {
                    at: Timestamp::new(millis, counter),
                }),
            },
        }
    }
}
