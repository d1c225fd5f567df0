//! `larder verify --log L`: check every object; exit 1 and list the bad
//! ones if any.

use std::process::ExitCode;

use serde_json::json;

use super::Ctx;
use crate::output::EXIT_FAILURE;

/// Runs `verify`.
pub fn run(ctx: &Ctx, log: &str) -> super::CmdResult {
    let larder = ctx.open()?;
    let handle = ctx.existing_log(&larder, log)?;
    // Counted as the walk goes (no walk up front: a damaged history must
    // still be listed, not fail before verification starts).
    let progress = ctx
        .out
        .progress(&format!("verifying {log}"), None, "commits");
    let report = handle.wal().verify_with(&|n| progress.inc(n));
    progress.finish();
    let report = report?;
    // Packs too: a damaged one may hold objects no walk reached yet.
    let packs = handle.wal().repo().check_packs()?;
    let problems: Vec<String> = report
        .problems
        .iter()
        .map(ToString::to_string)
        .chain(packs.damaged.iter().map(ToString::to_string))
        .collect();
    ctx.out.emit(
        json!({ "commits": report.commits, "events": report.events, "problems": problems }),
        || {
            let mut text = format!(
                "{} commits, {} events verified",
                report.commits, report.events
            );
            for p in &problems {
                text.push_str(&format!("\nbad: {p}"));
            }
            text
        },
    );
    if problems.is_empty() {
        super::ok()
    } else {
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}
