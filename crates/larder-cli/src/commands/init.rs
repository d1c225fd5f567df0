//! `larder init [--bare]`: set up the repository the `-C` directory belongs
//! to (a subdirectory of a work tree uses that work tree's repository, never
//! a nested one; `GIT_DIR` names it when set), or create one there.

use std::process::ExitCode;

use larder::{Larder, LarderError};
use serde_json::json;

use super::Ctx;

/// Runs `init`.
pub fn run(ctx: &Ctx, bare: bool) -> Result<ExitCode, LarderError> {
    // GIT_DIR names the repository (as for every other command); inside
    // an existing work tree, that work tree's repository is set up — never
    // a nested one; elsewhere a new repository is created at -C.
    let git_dir_set = std::env::var_os("GIT_DIR").is_some_and(|v| !v.is_empty());
    let larder = ctx.identify(if git_dir_set {
        Larder::open_from_env(&ctx.dir)?
    } else if bare {
        Larder::init_bare(&ctx.dir)?
    } else {
        Larder::init(&ctx.dir)?
    })?;
    let dir = larder.repo().git_dir().display().to_string();
    let actor = larder.actor()?;
    ctx.out
        .emit(json!({ "git_dir": dir, "actor": actor.as_str() }), || {
            format!("larder repository at {dir}, actor {actor}")
        });
    super::ok()
}
