//! [`Watch`]: the changes a [`Kv`] sees, from local writes, other
//! processes and syncs, filtered by key prefix.

use std::marker::PhantomData;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::record::RawChange;
use crate::types::{Change, change_of};
use crate::{Kv, Result};

/// A stream of writes that took effect (see [`Kv::watch`]). As an
/// iterator it blocks until the next change; [`Watch::next_timeout`]
/// bounds the wait.
pub struct Watch<V> {
    pub(crate) kv: Kv,
    pub(crate) rx: Receiver<RawChange>,
    pub(crate) _value: PhantomData<fn() -> V>,
}

impl<V: DeserializeOwned> Watch<V> {
    /// The next change, or `None` after `timeout` without one.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Change<V>>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(raw) = self.rx.try_recv() {
                return change_of(raw.key, raw.record).map(Some);
            }
            self.kv.refresh()?;
            if let Ok(raw) = self.rx.try_recv() {
                return change_of(raw.key, raw.record).map(Some);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = self.kv.core.options.poll_interval.min(deadline - now);
            if let Ok(raw) = self.rx.recv_timeout(wait) {
                return change_of(raw.key, raw.record).map(Some);
            }
        }
    }
}

impl<V: DeserializeOwned> Iterator for Watch<V> {
    type Item = Result<Change<V>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(c)) => return Some(Ok(c)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
