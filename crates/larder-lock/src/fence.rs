//! [`FencedStore`]: the downstream half of fencing.
//!
//! A lease alone cannot stop a holder that was paused past its expiry
//! (GC pause, suspended VM) from waking up and writing as if it still held
//! the lock. The protected system stops it instead: every write carries the
//! writer's fencing token, the system remembers the highest token it has
//! accepted, and refuses any write with a lower one. Tokens strictly
//! increase per resource, so once a newer holder has written, every older
//! holder is fenced out.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{LockError, Result};

/// A value guarded by fencing tokens: a write is applied only if its token
/// is at least the highest seen so far, and the check, the bookkeeping and
/// the write happen under one mutex, so no lower-token write can slip in
/// between. Equal tokens are accepted (one holder writes many times).
///
/// Keep one per protected resource inside the downstream system (or persist
/// [`FencedStore::highest_token`] with the data and restore it with
/// [`FencedStore::with_highest_token`]).
#[derive(Debug, Default)]
pub struct FencedStore<T> {
    inner: Mutex<Fenced<T>>,
}

#[derive(Debug, Default)]
struct Fenced<T> {
    highest: u64,
    value: T,
}

impl<T> FencedStore<T> {
    /// A store holding `value`, which has seen no token yet.
    pub fn new(value: T) -> Self {
        Self::with_highest_token(value, 0)
    }

    /// A store holding `value` that already accepted writes up to `highest`
    /// (restored from where the system persisted it).
    pub fn with_highest_token(value: T, highest: u64) -> Self {
        Self {
            inner: Mutex::new(Fenced { highest, value }),
        }
    }

    /// Applies `write` to the value if `token` is not lower than any token
    /// seen before, and remembers `token`; otherwise returns
    /// [`LockError::Fenced`] and leaves the value untouched.
    pub fn write<R>(&self, token: u64, write: impl FnOnce(&mut T) -> R) -> Result<R> {
        let mut guard = self.lock();
        if token < guard.highest {
            return Err(LockError::Fenced {
                token,
                highest: guard.highest,
            });
        }
        guard.highest = token;
        Ok(write(&mut guard.value))
    }

    /// Reads the value.
    pub fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        read(&self.lock().value)
    }

    /// The highest token accepted so far (0 if none).
    pub fn highest_token(&self) -> u64 {
        self.lock().highest
    }

    /// The guarded state. A panic inside a caller's closure poisons the
    /// mutex but cannot break the token bookkeeping (it is updated before
    /// the closure runs), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Fenced<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
