//! `larder key generate | show`: this replica's signing key
//! (docs/signatures.md).

use serde_json::json;

use super::{CmdResult, Ctx};
use crate::cli::KeyAction;
use crate::output::CliError;

/// Runs a `key` subcommand.
pub fn run(ctx: &Ctx, action: &KeyAction) -> CmdResult {
    let larder = ctx.open()?;
    let actor = larder.actor()?.clone();
    match action {
        KeyAction::Generate => {
            let (path, public) = larder.generate_signing_key()?;
            ctx.out.emit(
                json!({ "actor": actor.as_str(), "path": path.display().to_string(), "public_key": public.to_string() }),
                || {
                    format!(
                        "{public}\nsigning key for {actor} written to {}; on other replicas: larder trust add {actor} {public}",
                        path.display()
                    )
                },
            );
        }
        KeyAction::Show => {
            let Some(key) = larder.signing_key()? else {
                return Err(CliError::Failed(format!(
                    "no signing key for {actor} at {}; create one with `larder key generate`",
                    larder.signing_key_path()?.display()
                )));
            };
            let public = key.public_key();
            ctx.out.emit(
                json!({ "actor": actor.as_str(), "public_key": public.to_string() }),
                || public.to_string(),
            );
        }
    }
    super::ok()
}
