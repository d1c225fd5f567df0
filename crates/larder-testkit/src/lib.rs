//! Test support shared by larder's crates, as a dev-dependency only.
//!
//! What every crate's tests kept writing again: a seeded generator whose
//! failing seed is printed and replayable ([`Rng`], [`run_seeds`]); test
//! binaries that re-execute themselves as child processes ([`harness`]);
//! the `git` binary as the interoperability oracle ([`git`]); and temporary
//! repositories ([`fixtures`]); real network remotes on loopback — `git
//! daemon` ([`daemon`]), `git http-backend` behind a small HTTP server
//! ([`http`]) and a stand-in `ssh` ([`daemon::fake_ssh`]). It depends on no larder crate, so every
//! layer — `larder-git` included — can use it without a second copy of
//! its own types.
#![deny(missing_docs)]

pub mod daemon;
pub mod fixtures;
pub mod git;
pub mod harness;
pub mod http;
mod rng;

pub use git::{git, git_output, git_with_stdin};
pub use rng::{Rng, run_seeds, seed_from_env};
