//! `larder trust add | remove | list`: the trust policy
//! (`<git dir>/larder/trust`, docs/signatures.md).

use larder::sign::PublicKey;
use serde_json::json;

use super::{CmdResult, Ctx};
use crate::cli::TrustAction;

/// Runs a `trust` subcommand.
pub fn run(ctx: &Ctx, action: &TrustAction) -> CmdResult {
    let larder = ctx.open()?;
    match action {
        TrustAction::Add { actor, pubkey } => {
            let actor = larder::sign::actor(actor)?;
            let key: PublicKey = pubkey.parse()?;
            let added = larder.trust(&actor, &key)?;
            ctx.out.emit(
                json!({ "actor": actor.as_str(), "public_key": key.to_string(), "added": added }),
                || {
                    if added {
                        format!("trusted {actor} {key}")
                    } else {
                        format!("already trusted: {actor} {key}")
                    }
                },
            );
        }
        TrustAction::Remove { actor, pubkey } => {
            let actor = larder::sign::actor(actor)?;
            let key: Option<PublicKey> = pubkey.as_deref().map(str::parse).transpose()?;
            let removed = larder.untrust(&actor, key.as_ref())?;
            ctx.out.emit(
                json!({ "actor": actor.as_str(), "removed": removed }),
                || {
                    format!(
                        "removed {removed} key(s) of {actor}; later pulls no longer accept them"
                    )
                },
            );
        }
        TrustAction::List => {
            let policy = larder.trust_policy()?;
            if ctx.out.json() {
                for e in policy.entries() {
                    ctx.out.emit(
                        json!({ "actor": e.actor.as_str(), "public_key": e.key.to_string(), "line": e.line }),
                        String::new,
                    );
                }
                ctx.out
                    .emit(json!({ "required": policy.required() }), String::new);
            } else {
                for e in policy.entries() {
                    ctx.out.emit(json!({}), || format!("{} {}", e.actor, e.key));
                }
                ctx.out.warn(&format!(
                    "signatures {} (git config larder.requireSignatures); policy file {}",
                    if policy.required() {
                        "required"
                    } else {
                        "not required"
                    },
                    larder.trust_file().display()
                ));
            }
        }
    }
    super::ok()
}
