//! `larder compact [--log L] [--prune WHEN]`: pack loose objects and merge
//! packs in any repository, bare included.

use std::process::ExitCode;

use serde_json::json;

use super::Ctx;
use crate::cli::Prune;
use crate::output::EXIT_FAILURE;

/// Runs `compact`: packs every loose object and merges every pack up to the
/// default consolidation size into one, each object once; objects no ref
/// or reflog reaches are dropped once older than `prune` (two weeks by
/// default) and kept until then in a cruft pack (docs/wal.md, compaction);
/// packs git keeps (`.keep`, named
/// by a `multi-pack-index`) stay. Damaged packs are skipped, listed, and
/// make the exit code 1.
pub fn run(ctx: &Ctx, log: Option<&str>, prune: Prune) -> super::CmdResult {
    let repo = match log {
        Some(log) => {
            let larder = ctx.open()?;
            let handle = ctx.existing_log(&larder, log)?;
            handle.wal().finish_maintenance();
            handle.wal().repo().clone()
        }
        None => larder::git::GitRepo::open(&ctx.dir).map_err(larder::LarderError::from)?,
    };
    let packs_before = repo.pack_count()?;
    let options = larder::git::CompactOptions {
        max_size: larder::git::ConsolidationPolicy::default().max_size,
        unreachable: match prune {
            Prune::Never => larder::git::Unreachable::Keep,
            Prune::OlderThanMs(ms) => {
                larder::git::Unreachable::DropOlderThan(std::time::Duration::from_millis(ms))
            }
        },
    };
    let progress = ctx.out.progress(
        &format!("compacting {}", repo.git_dir().display()),
        Some(packs_before as u64 + 1),
        "packs",
    );
    let done = repo.compact_opts(&options, &|n| progress.inc(n));
    progress.finish();
    let done = done?;
    let packs_after = repo.pack_count()?;
    let damaged: Vec<String> = done.damaged.iter().map(ToString::to_string).collect();
    ctx.out.emit(
        json!({
            "loose_objects_packed": done.loose_objects,
            "packs_before": packs_before,
            "packs_merged": done.packs_merged,
            "packs_after": packs_after,
            "objects_in_merged_pack": done.objects,
            "unreachable_dropped": done.unreachable_dropped,
            "unreachable_kept": done.unreachable_kept,
            "duplicates_dropped": done.duplicates_dropped,
            "prune_skipped": done.prune_skipped,
            "damaged_packs": damaged,
        }),
        || {
            let mut text = format!(
                "packed {} loose objects; merged {} packs ({} objects); {packs_after} packs now, {packs_before} before",
                done.loose_objects, done.packs_merged, done.objects
            );
            if done.unreachable_dropped + done.unreachable_kept + done.duplicates_dropped > 0 {
                text.push_str(&format!(
                    "\nunreachable objects: {} dropped ({}), {} kept; {} duplicate copies dropped",
                    done.unreachable_dropped,
                    match prune {
                        Prune::Never => "--prune never".to_string(),
                        Prune::OlderThanMs(0) => "--prune now".to_string(),
                        Prune::OlderThanMs(ms) => format!("older than {}", age(ms)),
                    },
                    done.unreachable_kept,
                    done.duplicates_dropped
                ));
            }
            if let Some(reason) = &done.prune_skipped {
                text.push_str(&format!(
                    "\nunreachable objects all kept: {reason}"
                ));
            }
            for d in &damaged {
                text.push_str(&format!("\ndamaged: {d}"));
            }
            text
        },
    );
    if damaged.is_empty() {
        super::ok()
    } else {
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}

/// `ms` in the largest unit that divides it: `14d`, `12h`, `30m`, `90s`,
/// `1500ms`.
fn age(ms: u64) -> String {
    [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ]
    .into_iter()
    .find(|(unit, _)| ms.is_multiple_of(*unit))
    .map_or_else(
        || format!("{ms}ms"),
        |(unit, name)| format!("{}{name}", ms / unit),
    )
}
