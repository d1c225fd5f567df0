//! `larder hooks install` writes git hooks that keep branch-aware logs
//! (`git config larder.branchLogs true`) with their branches;
//! `larder hooks run <HOOK> [ARGS]` is what those hooks call:
//!
//! - `post-checkout` (git passes old head, new head, and 1 for a branch
//!   checkout): a branch just created starts with the logs of the branch
//!   it was created from (`Larder::fork_branch_logs`).
//! - `post-merge`: the logs of every local branch git just merged (its tip
//!   is the new HEAD — a fast-forward — or one of the merge commit's other
//!   parents) are merged into the current branch's (`Larder::merge_branch_logs`).
//!
//! An existing hook that larder did not write is left alone: install
//! fails naming it.

use std::path::Path;
use std::process::{Command, ExitCode};

use serde_json::json;

use super::{CmdResult, Ctx};
use crate::output::CliError;

/// The line that marks a hook as larder's.
const MARK: &str = "# written by `larder hooks install`";

/// The hooks installed.
const HOOKS: &[&str] = &["post-checkout", "post-merge"];

/// Runs `hooks install`.
pub fn install(ctx: &Ctx) -> CmdResult {
    let larder = ctx.open()?;
    let dir = larder.repo().git_dir().join("hooks");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("cannot find the larder binary: {e}")))?;
    for hook in HOOKS {
        let path = dir.join(hook);
        if let Ok(existing) = std::fs::read_to_string(&path)
            && !existing.contains(MARK)
        {
            return Err(CliError::Failed(format!(
                "{} exists and was not written by larder; add `{} hooks run {hook} \"$@\"` to it yourself",
                path.display(),
                exe.display()
            )));
        }
        let script = format!(
            "#!/bin/sh\n{MARK}\nexec '{}' hooks run {hook} \"$@\"\n",
            exe.display().to_string().replace('\'', "'\\''")
        );
        write_executable(&path, &script)?;
    }
    if !larder.branch_logs() {
        ctx.out.warn(&format!(
            "hooks installed, but branch-aware logs are off: `git config {} true` turns them on",
            larder::BRANCH_LOGS_CONFIG
        ));
    }
    ctx.out.emit(json!({ "installed": HOOKS }), || {
        format!("installed {} in {}", HOOKS.join(", "), dir.display())
    });
    Ok(ExitCode::SUCCESS)
}

fn write_executable(path: &Path, script: &str) -> Result<(), CliError> {
    let failed =
        |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", path.display()));
    std::fs::write(path, script).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(failed)?;
    }
    Ok(())
}

/// Runs `hooks run <hook> [args]`.
pub fn run(ctx: &Ctx, hook: &str, args: &[String]) -> CmdResult {
    let larder = ctx.open()?;
    if !larder.branch_logs() {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(current) = larder.current_branch() else {
        return Ok(ExitCode::SUCCESS);
    };
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(larder.repo().git_dir())
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match hook {
        "post-checkout" => {
            // Only branch checkouts; the previous branch is @{-1}.
            if args.get(2).map(String::as_str) != Some("1") {
                return Ok(ExitCode::SUCCESS);
            }
            let Some(previous) = git(&["rev-parse", "--abbrev-ref", "@{-1}"]) else {
                return Ok(ExitCode::SUCCESS);
            };
            if previous.is_empty() || previous == current || previous == "HEAD" {
                return Ok(ExitCode::SUCCESS);
            }
            for log in larder.fork_branch_logs(&previous, &current)? {
                ctx.out
                    .emit(json!({ "forked": log, "from": previous }), || {
                        format!("larder: {log} starts from {previous}'s log")
                    });
            }
        }
        "post-merge" => {
            let mut tips: Vec<String> = Vec::new();
            if let Some(head) = git(&["rev-parse", "HEAD"]) {
                tips.push(head);
            }
            if let Some(parents) = git(&["rev-list", "--parents", "-n", "1", "HEAD"]) {
                // `<head> <first parent> <other parents…>`
                tips.extend(parents.split_whitespace().skip(2).map(str::to_owned));
            }
            let branches = git(&[
                "for-each-ref",
                "--format=%(objectname) %(refname:short)",
                "refs/heads/",
            ])
            .unwrap_or_default();
            for line in branches.lines() {
                let Some((tip, branch)) = line.split_once(' ') else {
                    continue;
                };
                if branch == current || !tips.iter().any(|t| t == tip) {
                    continue;
                }
                for (log, outcome) in larder.merge_branch_logs(branch, &current)? {
                    let (what, _) = super::merge_log::describe(&outcome);
                    ctx.out.emit(
                        json!({ "merged": branch, "into": log, "outcome": what }),
                        || format!("larder: merged {branch}'s log into {log} ({what})"),
                    );
                }
            }
        }
        other => {
            return Err(CliError::usage(format!(
                "unknown hook {other:?}; larder runs post-checkout and post-merge"
            )));
        }
    }
    Ok(ExitCode::SUCCESS)
}
