//! `larder lock acquire | renew | release | list`: lease locks with fencing
//! tokens, decided by this repository or by `--remote`. Exit 3 when held.

use std::process::ExitCode;

use larder::LarderError;
use larder::lock::{LockError, LockInfo, LockManager};
use serde_json::json;

use super::{CmdResult, Ctx};
use crate::cli::LockAction;
use crate::commands::log::rfc3339;
use crate::output::{EXIT_FAILURE, EXIT_HELD};

/// Runs a `lock` subcommand.
pub fn run(ctx: &Ctx, action: &LockAction) -> CmdResult {
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
        LockAction::Check { resource, remote } => match manager(remote)?.check(resource)? {
            Some(i) => emit_info(ctx, &i),
            None => ctx.out.emit(
                json!({ "resource": resource, "holder": null, "token": 0, "live": false }),
                || format!("{resource} free (never taken)"),
            ),
        },
        LockAction::Gc { remote } => {
            let trimmed = manager(remote)?.gc()?;
            ctx.out.emit(json!({ "trimmed": trimmed }), || {
                format!(
                    "trimmed {trimmed} free or expired lock(s) to one commit each (tokens kept)"
                )
            });
        }
        LockAction::List { remote } => {
            let mut bad = 0;
            for entry in manager(remote)?.list()? {
                match entry {
                    Ok(i) => emit_info(ctx, &i),
                    Err(e) => {
                        bad += 1;
                        ctx.out.bad_entry(&e);
                    }
                }
            }
            if bad > 0 {
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
        }
    }
    super::ok()
}

/// One lock's state, as `list` and `check` print it.
fn emit_info(ctx: &Ctx, i: &LockInfo) {
    ctx.out.emit(
        json!({ "resource": i.resource, "holder": i.holder, "holder_id": i.holder_id, "token": i.token, "live": i.live, "expires_ms": i.expires_ms }),
        || {
            format!(
                "{} {} token {}{}",
                i.resource,
                i.holder.as_deref().unwrap_or("(free)"),
                i.token,
                match (i.live, i.holder.is_some()) {
                    (true, _) => format!(" until {}", rfc3339(i.expires_ms)),
                    (false, true) => format!(" (expired {})", rfc3339(i.expires_ms)),
                    (false, false) => String::new(),
                }
            )
        },
    );
}

fn acquire(ctx: &Ctx, m: &LockManager, resource: &str, ttl: u64) -> CmdResult {
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
                crate::output::out_line(
                    &json!({ "held": true, "resource": resource, "holder": holder, "holder_id": holder_id, "token": token, "expires_in_ms": expires_in_ms }),
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
                crate::output::out_line(
                    &json!({ "held": true, "own_expired": true, "resource": resource, "token": token, "expires_in_ms": retry_in_ms }),
                );
            } else {
                ctx.out.warn(&e.to_string());
            }
            Ok(ExitCode::from(EXIT_HELD))
        }
        Err(e) => Err(LarderError::from(e).into()),
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
