//! `larder lock acquire | renew | release | list`: lease locks with fencing
//! tokens, decided by this repository or by `--remote`. Exit 3 when held.

use std::process::ExitCode;

use larder::LarderError;
use larder::lock::{LockError, LockManager};
use serde_json::json;

use super::Ctx;
use crate::cli::LockAction;
use crate::output::EXIT_HELD;

/// Runs a `lock` subcommand.
pub fn run(ctx: &Ctx, action: &LockAction) -> Result<ExitCode, LarderError> {
    let larder = ctx.open()?;
    let manager = |remote: &Option<String>| match remote {
        Some(r) => larder.locks_on(r),
        None => larder.locks(),
    };
    match action {
        LockAction::Acquire {
            resource,
            ttl,
            remote,
        } => return acquire(ctx, &manager(remote)?, resource, *ttl),
        LockAction::Renew {
            resource,
            token,
            ttl,
            remote,
        } => {
            let m = manager(remote)?;
            let token = token_or_current(&m, resource, *token)?;
            let renewed = m.renew_token(resource, token, *ttl)?;
            ctx.out.emit(
                json!({ "token": renewed.token, "resource": renewed.resource, "expires_ms": renewed.expires_ms }),
                || format!("renewed {} (token {})", renewed.resource, renewed.token),
            );
        }
        LockAction::Release {
            resource,
            token,
            remote,
        } => {
            let m = manager(remote)?;
            let token = token_or_current(&m, resource, *token)?;
            m.release_token(resource, token)?;
            ctx.out.emit(
                json!({ "released": true, "resource": resource, "token": token }),
                || format!("released {resource} (token {token})"),
            );
        }
        LockAction::List { remote } => {
            for entry in manager(remote)?.list()? {
                match entry {
                    Ok(i) => ctx.out.emit(
                        json!({ "resource": i.resource, "holder": i.holder, "token": i.token, "live": i.live, "expires_ms": i.expires_ms }),
                        || {
                            format!(
                                "{} {} token {}{}",
                                i.resource,
                                i.holder.as_deref().unwrap_or("(free)"),
                                i.token,
                                if i.live { "" } else { " (not live)" }
                            )
                        },
                    ),
                    Err(e) => ctx.out.bad_entry(&e),
                }
            }
        }
    }
    super::ok()
}

fn acquire(ctx: &Ctx, m: &LockManager, resource: &str, ttl: u64) -> Result<ExitCode, LarderError> {
    match m.acquire(resource, ttl) {
        Ok(lease) => {
            ctx.out.emit(
                json!({ "token": lease.token, "resource": lease.resource, "holder": lease.holder.as_str(), "holder_id": lease.holder_id, "expires_ms": lease.expires_ms }),
                || {
                    format!(
                        "acquired {} with fencing token {} (renew or release it with --token {})",
                        lease.resource, lease.token, lease.token
                    )
                },
            );
            super::ok()
        }
        Err(LockError::Held {
            resource,
            holder,
            holder_id,
            expires_in_ms,
            token,
        }) => {
            if ctx.out.json() {
                println!(
                    "{}",
                    json!({ "held": true, "resource": resource, "holder": holder, "holder_id": holder_id, "token": token, "expires_in_ms": expires_in_ms })
                );
            } else {
                ctx.out.warn(&format!(
                    "{resource} is held by {holder} (token {token}) for another {expires_in_ms} ms"
                ));
            }
            Ok(ExitCode::from(EXIT_HELD))
        }
        Err(
            e @ LockError::OwnLeaseInSkewMargin {
                token, retry_in_ms, ..
            },
        ) => {
            if ctx.out.json() {
                println!(
                    "{}",
                    json!({ "held": true, "own_expired": true, "resource": resource, "token": token, "expires_in_ms": retry_in_ms })
                );
            } else {
                ctx.out.warn(&e.to_string());
            }
            Ok(ExitCode::from(EXIT_HELD))
        }
        Err(e) => Err(e.into()),
    }
}

/// The token given, else the current one if this replica holds it.
fn token_or_current(
    m: &LockManager,
    resource: &str,
    token: Option<u64>,
) -> Result<u64, LarderError> {
    if let Some(t) = token {
        return Ok(t);
    }
    Ok(m.check(resource)?
        .filter(|i| i.holder.as_deref() == Some(m.actor().as_str()))
        .map_or(0, |i| i.token))
}
