//! Verifying a whole log: every commit, tree, record, chunk and
//! generation number, collecting every problem instead of stopping at the
//! first.

use std::collections::HashSet;

use larder_git::ObjectId;

use crate::read::{load_commit, object_error};
use crate::wal::WalManager;
use crate::{Result, WalError};

/// The result of [`WalManager::verify`]: what was read and every problem.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Commits examined.
    pub commits: u64,
    /// Events that decoded and verified.
    pub events: u64,
    /// Every bad object found, each naming its commit and path.
    pub problems: Vec<WalError>,
}

impl VerifyReport {
    /// Whether nothing was wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl WalManager {
    /// Reads and verifies the whole log, collecting every problem (missing
    /// objects, wrong hashes, bad records, undecodable chunks, unexpected
    /// tree entries) instead of stopping at the first.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(&|_| {})
    }

    /// [`WalManager::verify`], calling `progress(n)` as each `n` more
    /// commits have been examined (for a progress display; the total is
    /// not known up front, as the walk discovers it).
    pub fn verify_with(&self, progress: &dyn Fn(u64)) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        // The log's ref, or in a hub every published head.
        let mut queue = self.tips()?;
        let mut seen: HashSet<ObjectId> = queue.iter().copied().collect();
        let mut generations: std::collections::HashMap<ObjectId, (u64, Vec<ObjectId>)> =
            std::collections::HashMap::new();
        while let Some(id) = queue.pop() {
            report.commits += 1;
            progress(1);
            let info = match self.repo.read_commit(id) {
                Ok(info) => info,
                Err(e) => {
                    report.problems.push(object_error(id, "<commit>", id, e));
                    continue;
                }
            };
            for p in &info.parents {
                if seen.insert(*p) {
                    queue.push(*p);
                }
            }
            match crate::walk::parse_generation(id, &info.message) {
                Ok(g) => {
                    generations.insert(id, (g, info.parents.clone()));
                }
                Err(e) => report.problems.push(e),
            }
            let loaded = crate::trailers::format_of(id, &info.message)
                .and_then(|format| load_commit(&self.repo, id, info.tree, &info.parents, format));
            match loaded {
                Ok(commit) => report.events += commit.events.len() as u64,
                Err(e) => report.problems.push(e),
            }
        }
        for (id, (g, parents)) in &generations {
            let parent_gens: Option<Vec<u64>> = parents
                .iter()
                .map(|p| generations.get(p).map(|x| x.0))
                .collect();
            if let Some(pg) = parent_gens {
                let max = pg.into_iter().max().unwrap_or(0);
                if Some(*g) != max.checked_add(1) {
                    report.problems.push(WalError::BadMeta {
                        commit: *id,
                        reason: format!("generation {g}, but its parents' largest is {max}"),
                    });
                }
            }
        }
        Ok(report)
    }
}
