//! `larder sync | pull | push --log L [--remote R]`: exchange a log with a
//! remote. Quarantined remote heads are named on stderr and give exit 4.

use std::process::ExitCode;

use larder::LarderError;
use serde_json::json;

use super::Ctx;
use crate::output::EXIT_QUARANTINED;

/// Which half of a sync to run.
#[derive(Clone, Copy, Debug)]
pub enum Direction {
    /// Pull, then push.
    Both,
    /// Fetch, verify, merge.
    Pull,
    /// Publish our head.
    Push,
}

/// Runs `sync`, `pull` or `push`.
pub fn run(
    ctx: &Ctx,
    log: &str,
    remote: &str,
    direction: Direction,
) -> Result<ExitCode, LarderError> {
    let larder = ctx.open()?;
    let sync = larder.sync(log, remote)?;
    let report = ctx.out.with_progress(
        &format!("syncing {log} with {remote}"),
        || match direction {
            Direction::Both => sync.sync(),
            Direction::Pull => sync.pull(),
            Direction::Push => sync.push(),
        },
    )?;
    let head = report.new_head.map(|h| h.to_string()).unwrap_or_default();
    if !ctx.out.json() {
        for r in &report.rejected {
            ctx.out.warn(&format!("rejected remote head {r}"));
        }
    }
    let rejected: Vec<_> = report
        .rejected
        .iter()
        .map(|r| {
            json!({ "head_ref": r.head_ref, "actor": r.actor, "head": r.head.to_string(),
                    "commit": r.commit.map(|c| c.to_string()), "path": r.path,
                    "reason": r.reason })
        })
        .collect();
    ctx.out.emit(
        json!({ "commits_received": report.commits_received, "events_received": report.events_received,
                "commits_sent": report.commits_sent, "events_sent": report.events_sent,
                "pushed": report.pushed, "head": head, "retries": report.retries,
                "rejected": rejected }),
        || {
            format!(
                "received {} commits ({} events), sent {} commits ({} events){}; head {head}",
                report.commits_received,
                report.events_received,
                report.commits_sent,
                report.events_sent,
                if report.pushed { ", pushed" } else { "" }
            )
        },
    );
    if report.rejected.is_empty() {
        super::ok()
    } else {
        // Everything else was merged (and pushed): a distinct code so
        // scripts can tell "partly quarantined" from failure.
        Ok(ExitCode::from(EXIT_QUARANTINED))
    }
}
