//! Branch-aware logs (opt-in: `git config larder.branchLogs true`): a log
//! name resolves to a per-branch log `<name>@<branch>`, so events written
//! on a feature branch stay with it, and when git merges the branch its
//! logs merge too ([`Larder::merge_branch_logs`], run by the `post-merge`
//! hook `larder hooks install` writes); a new branch starts from the logs
//! of the branch it was created from ([`Larder::fork_branch_logs`], run by
//! the `post-checkout` hook).

use crate::git::Expected;
use crate::sync::merge_log;
use crate::wal::MergeOutcome;
use crate::{Larder, LarderError, Result};

/// The git config key that turns branch-aware logs on.
pub const BRANCH_LOGS_CONFIG: &str = "larder.branchLogs";

/// A branch name as the part of a log name after `@`: `/` becomes `.`,
/// anything else a log name cannot hold becomes `_`
/// (`feature/login` → `feature.login`).
pub fn branch_suffix(branch: &str) -> String {
    branch
        .chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') => c,
            _ => '_',
        })
        .collect()
}

impl Larder {
    /// Whether branch-aware logs are on (`git config larder.branchLogs`).
    pub fn branch_logs(&self) -> bool {
        self.repo
            .gix()
            .config_snapshot()
            .boolean(BRANCH_LOGS_CONFIG)
            .unwrap_or(false)
    }

    /// The branch HEAD is on (`None`: detached, or a bare repository
    /// without one).
    pub fn current_branch(&self) -> Option<String> {
        let head = self.repo.gix().head_name().ok()??;
        head.as_bstr()
            .to_string()
            .strip_prefix("refs/heads/")
            .map(str::to_owned)
    }

    /// The log `name` resolves to: `<name>@<branch>` when branch-aware
    /// logs are on, HEAD is on a branch and `name` names no branch itself
    /// (has no `@`); else `name`.
    pub fn resolve_log_name(&self, name: &str) -> String {
        if name.contains('@') || !self.branch_logs() {
            return name.to_owned();
        }
        match self.current_branch() {
            Some(branch) => format!("{name}@{}", branch_suffix(&branch)),
            None => name.to_owned(),
        }
    }

    /// Merges log `from` into log `into` (both full names, e.g.
    /// `issues@feature` into `issues@main`): every commit of `from` is
    /// verified, then `into` fast-forwards or gets one merge commit.
    pub fn merge_log(&self, from: &str, into: &str) -> Result<MergeOutcome> {
        let from = self.wal_named(from)?;
        let into = self.wal_named(into)?;
        Ok(merge_log(&from, &into)?)
    }

    /// The base names of the logs of `branch` (`issues` for `issues@<branch>`).
    fn logs_of_branch(&self, branch: &str) -> Result<Vec<String>> {
        let suffix = format!("@{}", branch_suffix(branch));
        Ok(self
            .logs()?
            .into_iter()
            .filter_map(|l| l.strip_suffix(&suffix).map(str::to_owned))
            .collect())
    }

    /// After git merged branch `from` into `into`: merges every log
    /// `<name>@<from>` into `<name>@<into>`. Returns the merged names and
    /// what each merge did.
    pub fn merge_branch_logs(&self, from: &str, into: &str) -> Result<Vec<(String, MergeOutcome)>> {
        let mut done = Vec::new();
        for name in self.logs_of_branch(from)? {
            let target = format!("{name}@{}", branch_suffix(into));
            let outcome = self.merge_log(&format!("{name}@{}", branch_suffix(from)), &target)?;
            done.push((target, outcome));
        }
        Ok(done)
    }

    /// After git created branch `to` from `from`: every log
    /// `<name>@<from>` that `to` lacks starts as a copy of it (the ref
    /// points at the same commit; nothing is copied). Returns the new
    /// logs' names.
    pub fn fork_branch_logs(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let mut forked = Vec::new();
        for name in self.logs_of_branch(from)? {
            let source = self.wal_named(&format!("{name}@{}", branch_suffix(from)))?;
            let target_name = format!("{name}@{}", branch_suffix(to));
            let target = self.wal_named(&target_name)?;
            let Some(head) = source.head()? else { continue };
            if target.head()?.is_some() {
                continue;
            }
            match self.repo.update_ref(
                target.ref_name(),
                Expected::MustNotExist,
                head,
                "larder: fork branch log",
            ) {
                Ok(()) => forked.push(target_name),
                // Someone created it meanwhile: it is theirs now.
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(LarderError::Git(e)),
            }
        }
        Ok(forked)
    }
}
