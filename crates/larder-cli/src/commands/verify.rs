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
    // Signatures, under the trust policy, when it can refuse anything.
    let policy = larder.trust_policy()?;
    let signatures = if policy.is_active() && report.problems.is_empty() {
        Some(larder.verify_signatures(log)?)
    } else {
        None
    };
    let problems: Vec<String> = report
        .problems
        .iter()
        .map(ToString::to_string)
        .chain(packs.damaged.iter().map(ToString::to_string))
        .chain(
            signatures
                .iter()
                .flat_map(|s| s.problems.iter().map(ToString::to_string)),
        )
        .collect();
    let sig_json = signatures.as_ref().map(|s| {
        json!({ "required": s.required, "verified": s.verified, "unsigned": s.unsigned, "refused": s.problems.len() })
    });
    ctx.out.emit(
        json!({ "commits": report.commits, "events": report.events, "problems": problems, "signatures": sig_json }),
        || {
            let mut text = format!(
                "{} commits, {} events verified",
                report.commits, report.events
            );
            if let Some(s) = &signatures {
                text.push_str(&format!(
                    "
signatures ({}): {} verified, {} unsigned, {} refused",
                    if s.required { "required" } else { "not required" },
                    s.verified,
                    s.unsigned,
                    s.problems.len()
                ));
            }
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
