//! `larder whoami`: the actor id this replica writes as, on one line.

use std::process::ExitCode;

use larder::{ActorSource, LarderError};
use serde_json::json;

use super::Ctx;

/// Runs `whoami` (creates the replica's actor id if it has none yet).
pub fn run(ctx: &Ctx) -> Result<ExitCode, LarderError> {
    let larder = ctx.open()?;
    let actor = larder.actor()?;
    let source = match larder.actor_source()? {
        ActorSource::Explicit => "--actor",
        ActorSource::Environment => larder::ACTOR_ENV,
        ActorSource::GitConfig => "git config larder.actor",
        ActorSource::File => "actor file",
    };
    ctx.out
        .emit(json!({ "actor": actor.as_str(), "source": source }), || {
            actor.to_string()
        });
    super::ok()
}
