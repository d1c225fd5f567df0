//! `larder stats --log L`: commits, events, actors, chunk bytes, snapshot
//! coverage.

use serde_json::json;

use super::Ctx;

/// Runs `stats`.
pub fn run(ctx: &Ctx, log: &str) -> super::CmdResult {
    let larder = ctx.open()?;
    let handle = ctx.existing_log(&larder, log)?;
    let mut commits = 0u64;
    let mut events = 0u64;
    let mut actors = std::collections::BTreeSet::new();
    let mut bytes = 0u64;
    let walk = handle.wal().commits_since(None)?;
    let progress = ctx.out.progress(
        &format!("reading {log}"),
        Some(walk.remaining() as u64),
        "commits",
    );
    for c in walk {
        let c = c?;
        progress.inc(1);
        commits += 1;
        events += c.events.len() as u64;
        for e in &c.events {
            actors.insert(e.actor().to_string());
        }
        bytes += c.chunk_bytes;
    }
    progress.finish();
    let covered = larder
        .snapshots(log)?
        .latest()?
        .map(|s| s.meta.event_count)
        .unwrap_or(0);
    // The object store under the log: packs and any that are damaged.
    let packs = handle.wal().repo().check_packs()?;
    let damaged: Vec<String> = packs.damaged.iter().map(ToString::to_string).collect();
    ctx.out.emit(
        json!({ "commits": commits, "events": events, "actors": actors.len(), "chunk_bytes": bytes,
                "snapshot_events": covered, "packs": packs.packs, "damaged_packs": damaged }),
        || {
            let mut text = format!(
                "{commits} commits, {events} events from {} actors, {bytes} chunk bytes; latest snapshot covers {covered} events; {} packs",
                actors.len(),
                packs.packs
            );
            for d in &damaged {
                text.push_str(&format!("\ndamaged: {d}"));
            }
            text
        },
    );
    if damaged.is_empty() {
        super::ok()
    } else {
        Ok(std::process::ExitCode::from(crate::output::EXIT_FAILURE))
    }
}
