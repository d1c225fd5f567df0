//! `larder merge-log <FROM> <INTO>`: merges log FROM into log INTO in this
//! repository (e.g. `issues@feature` into `issues@main`), verified, as a
//! fast-forward or one merge commit — what the `post-merge` hook runs for
//! branch-aware logs.

use std::process::ExitCode;

use larder::wal::MergeOutcome;
use serde_json::json;

use super::{CmdResult, Ctx, check_log_name};

/// Runs `merge-log`.
pub fn run(ctx: &Ctx, from: &str, into: &str) -> CmdResult {
    let larder = ctx.open()?;
    check_log_name(&larder, from)?;
    check_log_name(&larder, into)?;
    // Names are taken literally (no branch resolution): FROM must exist.
    let known = larder.logs()?;
    if !known.iter().any(|l| l == from) {
        return Err(larder::LarderError::NoSuchLog {
            log: from.to_owned(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        }
        .into());
    }
    let outcome = larder.merge_log(from, into)?;
    let (what, commit) = describe(&outcome);
    ctx.out.emit(
        json!({ "from": from, "into": into, "outcome": what, "commit": commit }),
        || match &commit {
            Some(c) => format!("merged {from} into {into}: {what} {c}"),
            None => format!("{into} already holds {from}"),
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// A merge outcome as a word and the commit it produced, if any.
pub fn describe(outcome: &MergeOutcome) -> (&'static str, Option<String>) {
    match outcome {
        MergeOutcome::UpToDate => ("up-to-date", None),
        MergeOutcome::FastForward(c) => ("fast-forward", Some(c.to_string())),
        MergeOutcome::Merged(c) => ("merge", Some(c.to_string())),
    }
}
