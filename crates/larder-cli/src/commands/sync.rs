//! `larder sync | pull | push --log L [--remote R]`: exchange a log with a
//! remote. Quarantined remote heads are named on stderr and give exit 4.
//!
//! A log that exists neither here nor on the remote is an error (exit 2)
//! with a "did you mean"; a log only the remote has is simply fetched.

use std::process::ExitCode;

use larder::git::Expected;
use larder::sync::{SyncManager, SyncReport, Transport};
use serde_json::json;

use super::{CmdResult, Ctx, check_log_name, no_such_log};
use crate::output::{CliError, EXIT_QUARANTINED};

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
pub fn run(ctx: &Ctx, log: &str, remote: &str, direction: Direction) -> CmdResult {
    let larder = ctx.open()?;
    check_log_name(&larder, log)?;
    let existed = larder.log(log)?.wal().head()?.is_some();
    if matches!(direction, Direction::Push) && !existed {
        return Err(match no_such_log(&larder, log, None) {
            CliError::Usage(m) => CliError::usage(format!("nothing to push: {m}")),
            other => other,
        });
    }
    let sync = larder.sync(log, remote)?;
    // Pulls count the incoming commits as they are verified.
    let progress = ctx.out.progress(
        &format!("syncing {log} with {remote}"),
        None,
        "commits verified",
    );
    let step = |n| progress.inc(n);
    let report = counted(&sync, || match direction {
        Direction::Both => sync.sync_with(&step),
        Direction::Pull => sync.pull_with(&step),
        Direction::Push => sync.push(),
    });
    progress.finish();
    let report = report?;
    if !existed && report.new_head.is_none() && report.heads_seen == 0 && report.rejected.is_empty()
    {
        return Err(no_such_log(&larder, log, Some(remote)));
    }
    let head = report.new_head.map(|h| h.to_string()).unwrap_or_default();
    if !ctx.out.json() {
        for r in &report.rejected {
            ctx.out.warn(&format!("rejected remote head {r}"));
        }
    }
    for stale in &report.stale_refs {
        ctx.out.warn(&stale.to_string());
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
        Ok(ExitCode::SUCCESS)
    } else {
        // Everything else was merged (and pushed): a distinct code so
        // scripts can tell "partly quarantined" from failure.
        Ok(ExitCode::from(EXIT_QUARANTINED))
    }
}

/// Runs `op` (a sync, pull or push) so that its counts say what was sent.
/// The file transport counts itself; a network push (the `git` binary)
/// reports none, so the count is the commits after our head as the remote
/// last showed it: the staging ref of our own head. A pull refreshes it
/// (in a sync, before the push, which leaves it alone), and after a
/// successful push this function moves it to the pushed head — the
/// remote's ref is then exactly that — so a later `push` alone counts from
/// there too. Without a staging ref the whole log counts as sent.
fn counted(
    sync: &SyncManager,
    op: impl FnOnce() -> Result<SyncReport, larder::sync::SyncError>,
) -> Result<SyncReport, CliError> {
    let mut report = op()?;
    let Transport::Network(_) = sync.transport() else {
        return Ok(report);
    };
    let (true, Some(head)) = (report.pushed, report.new_head) else {
        return Ok(report);
    };
    let Some(actor) = sync.head_ref().rsplit('/').next().map(str::to_owned) else {
        return Ok(report);
    };
    let staged = format!("{}{actor}", sync.staging_prefix());
    let repo = sync.wal().repo();
    let base = repo.ref_target(&staged)?;
    if report.commits_sent == 0 {
        let known = base.filter(|b| sync.wal().is_ancestor(*b, head).unwrap_or(false));
        let (commits, events) = sync.wal().count_between(head, known)?;
        report.commits_sent = commits;
        report.events_sent = events;
    }
    // A lost race (a pull moving it meanwhile) leaves it to the pull.
    let expected = base.map_or(Expected::MustNotExist, Expected::MustBe);
    let _ = repo.update_ref(&staged, expected, head, "larder: pushed");
    Ok(report)
}
