//! `larder init [--bare]`: create a repository for larder logs, or use the
//! existing one.

use std::process::ExitCode;

use larder::{Larder, LarderError};
use serde_json::json;

use super::Ctx;

/// Runs `init`.
pub fn run(ctx: &Ctx, bare: bool) -> Result<ExitCode, LarderError> {
    let larder = ctx.identify(if bare {
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
