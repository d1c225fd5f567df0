//! `larder snapshot create | list | gc --log L`.

use std::process::ExitCode;

use larder::LarderError;
use serde_json::json;

use super::Ctx;
use crate::cli::SnapshotAction;

/// Runs a `snapshot` subcommand.
pub fn run(ctx: &Ctx, action: &SnapshotAction) -> Result<ExitCode, LarderError> {
    let larder = ctx.open()?;
    match action {
        SnapshotAction::Create { log } => {
            let s = larder
                .snapshots(log)?
                .create_with::<larder::crdt::KvProjection>()?;
            ctx.out.emit(
                json!({ "name": s.name, "commit": s.commit.to_string(), "events": s.meta.event_count }),
                || format!("snapshot {} covering {} events", s.name, s.meta.event_count),
            );
        }
        SnapshotAction::List { log } => {
            for entry in larder.snapshots(log)?.list()? {
                match entry {
                    Ok(s) => ctx.out.emit(
                        json!({ "name": s.name, "events": s.meta.event_count, "created_ms": s.meta.created_ms, "wal_head": s.meta.wal_head }),
                        || {
                            format!(
                                "{} {} events (wal {})",
                                s.name,
                                s.meta.event_count,
                                s.meta.wal_head.get(..12).unwrap_or(&s.meta.wal_head)
                            )
                        },
                    ),
                    Err(e) => ctx.out.bad_entry(&e),
                }
            }
        }
        SnapshotAction::Gc { log, keep } => {
            let deleted = larder.snapshots(log)?.gc(*keep)?;
            ctx.out
                .emit(json!({ "deleted": deleted, "kept": keep }), || {
                    format!("deleted {deleted} snapshot(s), kept the newest {keep}")
                });
        }
    }
    super::ok()
}
