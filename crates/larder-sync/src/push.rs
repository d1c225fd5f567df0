//! Pushing: publishing the local head at this replica's own head ref on the
//! remote (never forced), and the remote's pack upkeep afterwards.

use larder_git::{Expected, GitError, GitRepo, ObjectId, PushOutcome};

use crate::sync::{SyncManager, SyncReport, Transport, Upkeep};
use crate::{Result, SyncError};

impl SyncManager {
    /// Publishes the local log's head at our own head ref on the remote,
    /// copying what the remote lacks first. Never forced: if the remote ref
    /// is not in our history, [`SyncError::Diverged`].
    pub fn push(&self) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let Some(head) = self.wal.head()? else {
            return Ok(report);
        };
        report.new_head = Some(head);
        let name = self.head_ref();
        match &self.transport {
            Transport::File(remote) => {
                self.push_file(remote, head, &name, &mut report)?;
                if report.pushed {
                    report.upkeep.extend(self.upkeep(remote));
                }
                Ok(report)
            }
            Transport::Network(url) => {
                // A ref lock on the remote is waited out a few times, with
                // growing pauses (git itself does not wait for it).
                let waits = self.wal.options().max_lock_waits.min(5);
                let mut tries = 0;
                let outcome = loop {
                    match self.local().push_with_git(url, head, &name, None) {
                        Ok(outcome) => break outcome,
                        Err(GitError::RemoteRefLocked { lock_path, .. }) => {
                            if tries >= waits {
                                return Err(SyncError::RemoteLocked {
                                    remote: self.remote.clone(),
                                    head_ref: name,
                                    lock_path,
                                });
                            }
                            std::thread::sleep(std::time::Duration::from_millis(
                                (50u64 << tries).min(800),
                            ));
                            tries += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
                match outcome {
                    PushOutcome::Updated => {
                        report.pushed = true;
                        Ok(report)
                    }
                    PushOutcome::UpToDate => Ok(report),
                    PushOutcome::Lost(reason) => Err(SyncError::Remote {
                        remote: self.remote.clone(),
                        reason: format!("push of {name} rejected ({reason}); pull first"),
                    }),
                }
            }
        }
    }

    /// File transport push: copies what the remote lacks (one pack), then
    /// moves our head ref there by compare-and-swap. A lost swap is retried
    /// up to `max_attempts` times; a ref whose `<ref>.lock` stays through
    /// the WAL's `max_lock_waits` waits (gix waits ~0.1 s each) is
    /// [`SyncError::RemoteLocked`], naming the file.
    fn push_file(
        &self,
        remote: &GitRepo,
        head: ObjectId,
        name: &str,
        report: &mut SyncReport,
    ) -> Result<()> {
        let max_lock_waits = self.wal.options().max_lock_waits;
        let (mut lost, mut lock_waits) = (0u32, 0u32);
        // What the remote holds, learned once for this push and its
        // retries: a retry after a lost swap sends nothing again.
        let mut haves = remote.haves();
        loop {
            let current = remote.ref_target(name)?;
            if current == Some(head) {
                return Ok(());
            }
            if let Some(c) = current
                // `read_commit` confirms a miss on a freshly opened store
                // (a shared one can miss a pack a concurrent merge just
                // wrote): only a commit truly absent, or not in our
                // history, is a divergence.
                && (self.local().read_commit(c).is_err() || !self.wal.is_ancestor(c, head)?)
            {
                return Err(SyncError::Diverged {
                    remote: self.remote.clone(),
                    head_ref: name.into(),
                    remote_head: c,
                });
            }
            let (commits, events) = self.wal.count_between(head, current)?;
            report.commits_sent = commits;
            report.events_sent = events;
            report.objects_sent += haves.copy_from(self.local(), &[head])? as u64;
            let expected = current.map_or(Expected::MustNotExist, Expected::MustBe);
            match remote.update_ref(name, expected, head, "larder: push") {
                Ok(()) => {
                    report.pushed = true;
                    report.retries = lost + lock_waits;
                    return Ok(());
                }
                Err(e) if e.is_retryable() => {
                    lock_waits += 1;
                    if lock_waits > max_lock_waits {
                        return Err(SyncError::RemoteLocked {
                            remote: self.remote.clone(),
                            head_ref: name.into(),
                            lock_path: remote
                                .git_dir()
                                .join(format!("{name}.lock"))
                                .display()
                                .to_string(),
                        });
                    }
                }
                Err(e) if e.is_conflict() => {
                    lost += 1;
                    if lost >= self.max_attempts {
                        return Err(SyncError::Remote {
                            remote: self.remote.clone(),
                            reason: format!("{name} kept changing"),
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Pack upkeep of `repo` after a transfer into it (see [`Upkeep`]);
    /// `None` when the WAL's consolidation is switched off.
    pub(crate) fn upkeep(&self, repo: &GitRepo) -> Option<Upkeep> {
        let policy = self.wal.options().consolidation?;
        let mut upkeep = Upkeep {
            repository: repo.git_dir().display().to_string(),
            ..Upkeep::default()
        };
        match repo.maintain(&policy) {
            Ok(done) => {
                upkeep.loose_objects = done.loose_objects;
                upkeep.packs_merged = done.packs_merged;
                upkeep.busy = done.busy;
                upkeep.damaged = done.damaged;
            }
            Err(e) => upkeep.error = Some(e.to_string()),
        }
        Some(upkeep)
    }
}
