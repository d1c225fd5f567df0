//! Fencing a stale holder.
//!
//! Alice takes the lease on `orders` and writes to a store that is
//! protected by fencing tokens. She is then paused (a GC pause, a suspended
//! VM) for longer than her lease; Bob takes it over and writes. When Alice
//! wakes up she still believes she holds the lease, but:
//!
//! - the lock authority says her token is no longer current
//!   ([`LockManager::is_current`]), and
//! - the store, which has seen Bob's higher token, refuses her write
//!   ([`FencedStore::write`]).
//!
//! Run it with `cargo run -p larder-lock --example fencing`. Time is a
//! manual clock, so the "pause" is instant and the run deterministic.

use std::sync::Arc;

use larder_codec::ActorId;
use larder_crdt::ManualClock;
use larder_git::GitRepo;
use larder_lock::{Authority, FencedStore, LockError, LockManager, LockOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let authority = Authority::Local(GitRepo::init(dir.path())?);
    let clock = ManualClock::new(1_700_000_000_000);
    let manager = |actor: &str| -> Result<LockManager, Box<dyn std::error::Error>> {
        Ok(LockManager::with_clock(
            authority.clone(),
            ActorId::new(actor)?,
            Arc::new(clock.clone()),
            LockOptions::default(),
        ))
    };
    let (alice, bob) = (manager("alice")?, manager("bob")?);

    // The downstream system: an append-only list guarded by tokens.
    let store = FencedStore::new(Vec::<String>::new());

    let a = alice.acquire("orders", 10_000)?;
    store.write(a.token, |log| log.push("alice: order 1".into()))?;
    println!("alice acquired orders with token {} and wrote", a.token);

    // Alice is paused for longer than her lease plus the skew margin.
    clock.advance(10_000 + LockOptions::default().max_skew_ms + 1);
    let b = bob.acquire("orders", 10_000)?;
    store.write(b.token, |log| log.push("bob: order 2".into()))?;
    println!("bob took over with token {} and wrote", b.token);

    // Alice wakes up and, unaware, tries to write with her old token.
    let current = alice.is_current("orders", a.token)?;
    println!(
        "the authority says alice's token {} is current: {current}",
        a.token
    );
    if current {
        return Err("a taken-over token was reported current".into());
    }
    match store.write(a.token, |log| log.push("alice: order 3".into())) {
        Err(e @ LockError::Fenced { .. }) => println!("alice's stale write was refused: {e}"),
        Err(e) => return Err(e.into()),
        Ok(()) => return Err("the stale write was accepted".into()),
    }
    if !bob.is_current("orders", b.token)? {
        return Err("bob's live lease was not reported current".into());
    }
    let log = store.read(|log| log.clone());
    println!(
        "the store holds {log:?} (highest token {})",
        store.highest_token()
    );
    if log != ["alice: order 1", "bob: order 2"] {
        return Err("the store holds a stale write".into());
    }
    bob.release(&b)?;
    Ok(())
}
