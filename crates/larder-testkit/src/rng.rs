//! A seeded generator and a seed runner that says how to replay a failure.

use std::ops::Range;

/// splitmix64: tiny, fast, and the same sequence for the same seed on every
/// machine — so a failing seed is a reproducible bug.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seed in environment variable `var` if set (to replay a failure),
/// else `default`; printed either way, so every run's output names it.
pub fn seed_from_env(var: &str, default: u64) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    println!("seed {seed} (set {var}={seed} to replay)");
    seed
}

/// Runs `case` for every seed in `seeds` — or only for the one in `var`,
/// when set and in range — and on a failure prints `rerun with
/// <var>=<seed>` before passing the panic on.
pub fn run_seeds(var: &str, seeds: Range<u64>, case: impl Fn(u64)) {
    if let Some(only) = std::env::var(var).ok().and_then(|s| s.parse::<u64>().ok()) {
        if seeds.contains(&only) {
            case(only);
        }
        return;
    }
    for seed in seeds {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(seed))) {
            eprintln!("failed for seed {seed}: rerun with {var}={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}
