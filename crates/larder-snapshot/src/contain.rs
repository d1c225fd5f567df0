//! Containing panics raised inside redb — for this crate's view and for
//! any other redb cache of the WAL (larder-kv's view uses it too).
//!
//! The view is a cache of the WAL: a corrupt `view.redb` must lead to a
//! rebuild, never to a panic that takes the caller down. redb reads its file
//! with internal assertions (debug builds assert much more than release
//! builds), so every call into it that touches file contents runs inside
//! [`contain`], which turns a panic into its message.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`contain`]: its panics are expected
    /// and reported as values, so the panic hook stays quiet for them.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Installs (once per process) a panic hook that stays silent for panics
/// raised inside [`contain`] on the current thread and hands every other
/// panic to the hook that was installed before. A hook set later by the
/// application replaces it; redb's contained panics are then printed by that
/// hook but still contained.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, returning its value, or the panic's message if it panicked.
///
/// The caller must discard whatever `f` touched when it panicked (the redb
/// `Database` is dropped and its file recreated), which is why asserting
/// unwind safety is sound here.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-text payload".to_owned()
        }
    })
}
