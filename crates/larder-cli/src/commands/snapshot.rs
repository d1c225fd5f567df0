//! `larder snapshot create | list | show | gc --log L`. The log must exist
//! (a misspelt name is an error, not an empty listing); `list` exits 1
//! after the whole listing when some snapshots are malformed.

use std::process::ExitCode;

use larder::snapshot::SnapshotInfo;
use serde_json::json;

use super::{CmdResult, Ctx};
use crate::cli::SnapshotAction;
use crate::commands::log::rfc3339;
use crate::output::{CliError, EXIT_FAILURE};

/// Runs a `snapshot` subcommand.
pub fn run(ctx: &Ctx, action: &SnapshotAction) -> CmdResult {
    let larder = ctx.open()?;
    match action {
        SnapshotAction::Create { log } => {
            let handle = ctx.existing_log(&larder, log)?;
            let commits = handle.wal().commits_since(None)?.remaining() as u64;
            let progress =
                ctx.out
                    .progress(&format!("snapshotting {log}"), Some(commits), "commits");
            let s = larder
                .snapshots(log)?
                .create_with_progress::<larder::crdt::KvProjection>(&|_, _| progress.inc(1));
            progress.finish();
            let s = s?;
            ctx.out.emit(
                json!({ "name": s.name, "commit": s.commit.to_string(), "events": s.meta.event_count }),
                || format!("snapshot {} covering {} events", s.name, s.meta.event_count),
            );
        }
        SnapshotAction::List { log } => {
            ctx.existing_log(&larder, log)?;
            let mut bad = 0;
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
        SnapshotAction::Show { log, name } => {
            ctx.existing_log(&larder, log)?;
            let manager = larder.snapshots(log)?;
            let mut names = Vec::new();
            let mut found: Option<SnapshotInfo> = None;
            for entry in manager.list()? {
                match entry {
                    Ok(s) if s.name == *name => found = Some(s),
                    Ok(s) => names.push(s.name),
                    Err(e) if e.to_string().contains(name.as_str()) => return Err(e.into()),
                    Err(_) => {}
                }
            }
            let Some(s) = found else {
                let hint = super::suggest(name, names.iter().map(String::as_str))
                    .map(|s| format!("did you mean {s:?}?"))
                    .unwrap_or_else(|| "`larder snapshot list` names them".into());
                return Err(CliError::usage(format!(
                    "no snapshot named {name:?} in log {log}; {hint}"
                )));
            };
            show(ctx, &s);
        }
        SnapshotAction::Gc { log, keep } => {
            ctx.existing_log(&larder, log)?;
            let deleted = larder.snapshots(log)?.gc(*keep)?;
            ctx.out
                .emit(json!({ "deleted": deleted, "kept": keep }), || {
                    format!("deleted {deleted} snapshot(s), kept the newest {keep}")
                });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one snapshot's metadata.
fn show(ctx: &Ctx, s: &SnapshotInfo) {
    let m = &s.meta;
    let chunk_events: u64 = m.chunks.iter().map(|c| c.events).sum();
    let state = m.projection.as_ref();
    ctx.out.emit(
        json!({
            "name": s.name, "reference": s.reference, "commit": s.commit.to_string(),
            "log": m.log, "format": m.format, "wal_head": m.wal_head,
            "events": m.event_count, "created_ms": m.created_ms, "created": rfc3339(m.created_ms),
            "chunks": m.chunks.len(), "chunk_events": chunk_events,
            "projection": state.map(|p| json!({ "name": p.name, "version": p.version, "path": p.path, "state_id": p.state_id })),
        }),
        || {
            let mut text = format!(
                "snapshot {}\ncommit   {}\nlog      {}\ncreated  {}\ncovers   {} events up to wal {}\nchunks   {} ({} events)",
                s.name,
                s.commit,
                m.log,
                rfc3339(m.created_ms),
                m.event_count,
                m.wal_head,
                m.chunks.len(),
                chunk_events
            );
            match state {
                Some(p) => text.push_str(&format!(
                    "\nstate    {} v{} ({})",
                    p.name, p.version, p.state_id
                )),
                None => text.push_str("\nstate    none"),
            }
            text
        },
    );
}
