//! The authoritative remote of the linearizable mode: where the chain ref
//! lives, and the three things the protocol asks of it — fetch the chain
//! (learning its head), and compare-and-swap it.
//!
//! Two transports implement [`Authority`]: [`FileAuthority`] for a
//! repository on this machine (a path or `file://` URL: objects copied as
//! one pack, the ref moved by gix's lock-file compare-and-swap) and
//! [`NetworkAuthority`] for ssh, `git://` and http(s) URLs (gix's client
//! to fetch; `git push --force-with-lease=<ref>:<exact old id>` to swap,
//! never a `+` refspec). Tests put faults between the protocol and a real
//! authority by implementing the trait over one of these.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use larder_git::{
    ConsolidationPolicy, Expected, GitError, GitRepo, ObjectId, PushOutcome, RemoteLocation,
    ResolvedRemote,
};

use crate::{KvError, Result};

/// What a compare-and-swap of the chain ref did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swap {
    /// The chain ref moved from the expected id to the new commit.
    Done,
    /// The chain ref did not hold the expected id (another writer won);
    /// nothing changed. `current` is what it held, when the authority said.
    Lost {
        /// The chain's head as the failed swap found it, if known.
        current: Option<ObjectId>,
    },
}

/// An authoritative remote holding a key-value store's chain ref.
///
/// Errors say whether the swap may have happened: a transport failure
/// during [`Authority::swap`] leaves the outcome unknown
/// ([`KvError::Authority`] with `outcome_unknown`).
pub trait Authority: Send + Debug {
    /// How errors name this authority (its URL or path).
    fn name(&self) -> &str;

    /// Makes every object reachable from the chain's head present in
    /// `local` and returns that head (`None`: no chain yet). The head is
    /// the chain ref's value at some instant during the call — what a
    /// linearizable read is ordered by.
    fn fetch(&self, local: &GitRepo, chain: &str) -> Result<Option<ObjectId>>;

    /// Copies what `new` needs to the authority, then moves `chain` from
    /// `old` (`None`: the ref must not exist) to `new` if and only if it
    /// still holds `old`.
    fn swap(
        &self,
        local: &GitRepo,
        chain: &str,
        old: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<Swap>;
}

/// How many times a held `<chain>.lock` on the authority is waited for
/// before [`KvError::AuthorityLocked`] (gix waits ~0.1 s each time for a
/// file authority; the network transport pauses 50–800 ms between pushes).
pub const LOCK_WAITS: u32 = 5;

/// An authority in a repository on this machine (path or `file://`).
///
/// Every swap copies one pack; every [`ConsolidationPolicy::fan_in`]-th
/// swap merges the authority's small packs on a background thread (as the
/// WAL does for its own appends), so lookups there stay fast. Dropping the
/// authority waits for a running merge.
#[derive(Debug)]
pub struct FileAuthority {
    name: String,
    repo: GitRepo,
    /// Whether what a swap writes is flushed to disk before it counts
    /// (`Durability::Fsync` of the store using it).
    fsync: bool,
    policy: Option<ConsolidationPolicy>,
    swaps: AtomicU64,
    upkeep: Mutex<Option<JoinHandle<()>>>,
}

impl FileAuthority {
    /// An authority over the repository `repo`, named `name` in errors,
    /// merging its packs with the default policy.
    pub fn new(name: impl Into<String>, repo: GitRepo) -> Self {
        Self::with_policy(name, repo, Some(ConsolidationPolicy::default()))
    }

    /// [`FileAuthority::new`] with another pack policy (`None`: leave packs
    /// to `git gc` or `larder compact`).
    pub fn with_policy(
        name: impl Into<String>,
        repo: GitRepo,
        policy: Option<ConsolidationPolicy>,
    ) -> Self {
        Self {
            name: name.into(),
            repo,
            fsync: false,
            policy,
            swaps: AtomicU64::new(0),
            upkeep: Mutex::new(None),
        }
    }

    /// The same authority flushing every swap to disk (its pack, index,
    /// directory and the chain ref) before the swap counts as done — for
    /// stores with `Durability::Fsync`. Without it a swap survives a killed
    /// process, not a power loss (the WAL's `Buffered`).
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// Starts a background pack merge on every `fan_in`-th swap, unless
    /// one is still running. Failures are warnings: the swap succeeded.
    fn upkeep_after_swap(&self) {
        let Some(policy) = self.policy else {
            return;
        };
        let n = self.swaps.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(policy.fan_in.max(2) as u64) {
            return;
        }
        let mut slot = self.upkeep.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Some(done) = slot.take() {
            let _ = done.join();
        }
        let repo = self.repo.clone();
        let name = self.name.clone();
        *slot = Some(std::thread::spawn(move || {
            // Its own store: the merge must not race this authority's
            // lookups on a shared one (see `GitRepo::reopen`).
            let merged = repo.reopen().and_then(|own| own.consolidate_packs(&policy));
            if let Err(e) = merged {
                tracing::warn!(authority = %name, error = %e, "pack consolidation failed");
            }
        }));
    }

    /// The authority's repository.
    pub fn repo(&self) -> &GitRepo {
        &self.repo
    }

    fn failed(&self, e: GitError, outcome_unknown: bool) -> KvError {
        KvError::Authority {
            authority: self.name.clone(),
            reason: e.to_string(),
            outcome_unknown,
        }
    }

    /// Fails unless the repository is still there: gix creates missing
    /// directories when it writes a pack or a ref, so a write to an
    /// authority whose directory was moved or unmounted would otherwise
    /// build a new, empty authority in its place.
    fn present(&self) -> Result<()> {
        let git_dir = self.repo.git_dir();
        if git_dir.join("objects").is_dir() && git_dir.join("refs").is_dir() {
            return Ok(());
        }
        Err(KvError::Authority {
            authority: self.name.clone(),
            reason: format!("{} is no longer a git repository", git_dir.display()),
            outcome_unknown: false,
        })
    }
}

impl Authority for FileAuthority {
    fn name(&self) -> &str {
        &self.name
    }

    fn fetch(&self, local: &GitRepo, chain: &str) -> Result<Option<ObjectId>> {
        self.present()?;
        let head = self
            .repo
            .ref_target(chain)
            .map_err(|e| self.failed(e, false))?;
        if let Some(head) = head
            && !local.has_object(head)
        {
            local
                .copy_reachable_from(&self.repo, &[head])
                .map_err(|e| self.failed(e, false))?;
        }
        Ok(head)
    }

    fn swap(
        &self,
        local: &GitRepo,
        chain: &str,
        old: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<Swap> {
        self.present()?;
        // Objects first: a ref never names what the authority lacks. A
        // failure here changes no ref, so the outcome is known. On an
        // existing chain the new commit's parent is `old`, the authority's
        // head (or the swap fails): only the commit and its own tree are
        // new, sent without asking what the authority holds.
        let copied = match old {
            Some(_) => self.repo.copy_commit_from(local, new, self.fsync),
            None => self.repo.copy_reachable_from(local, &[new]),
        };
        copied.map_err(|e| self.failed(e, false))?;
        let expected = old.map_or(Expected::MustNotExist, Expected::MustBe);
        let mut waits = 0;
        loop {
            match self
                .repo
                .update_ref(chain, expected, new, "larder-kv: linearizable write")
            {
                Ok(()) => {
                    // The swap happened: a failed flush is a warning.
                    if self.fsync
                        && let Err(e) = self.repo.sync_ref(chain)
                    {
                        tracing::warn!(authority = %self.name, error = %e,
                            "chain ref moved; flushing it to disk failed");
                    }
                    self.upkeep_after_swap();
                    return Ok(Swap::Done);
                }
                Err(e) if e.is_conflict() => {
                    return Ok(Swap::Lost {
                        current: self.repo.ref_target(chain).ok().flatten(),
                    });
                }
                Err(e) if e.is_retryable() => {
                    waits += 1;
                    if waits > LOCK_WAITS {
                        return Err(KvError::AuthorityLocked {
                            authority: self.name.clone(),
                            chain: chain.into(),
                            lock_path: self
                                .repo
                                .git_dir()
                                .join(format!("{chain}.lock"))
                                .display()
                                .to_string(),
                        });
                    }
                }
                // A failed lock-file write or rename leaves the ref as it
                // was (gix renames the lock over the ref last).
                Err(e) => return Err(self.failed(e, false)),
            }
        }
    }
}

impl Drop for FileAuthority {
    fn drop(&mut self) {
        let handle = self
            .upkeep
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// An authority reached over the network (ssh, `git://`, http(s)).
#[derive(Debug)]
pub struct NetworkAuthority {
    url: String,
    /// Where fetched chain heads are staged locally.
    staging: String,
}

impl NetworkAuthority {
    /// An authority at `url`; fetched heads are staged under
    /// `refs/remotes/<remote_name>/…`.
    pub fn new(url: impl Into<String>, remote_name: &str) -> Self {
        Self {
            url: url.into(),
            staging: format!("refs/remotes/{remote_name}/"),
        }
    }

    fn failed(&self, e: GitError, outcome_unknown: bool) -> KvError {
        KvError::Authority {
            authority: self.url.clone(),
            reason: e.to_string(),
            outcome_unknown,
        }
    }
}

impl Authority for NetworkAuthority {
    fn name(&self) -> &str {
        &self.url
    }

    fn fetch(&self, local: &GitRepo, chain: &str) -> Result<Option<ObjectId>> {
        let staged = format!(
            "{}{}",
            self.staging,
            chain.strip_prefix("refs/").unwrap_or(chain)
        );
        // A pattern, so that an authority without the chain yet answers
        // with no ref rather than an error; only the exact ref counts.
        let spec = format!("+{chain}*:{staged}*");
        let refs = local
            .fetch_with_gix(&self.url, &[&spec])
            .map_err(|e| self.failed(e, false))?;
        Ok(refs
            .into_iter()
            .find(|(name, _)| name == chain)
            .map(|(_, id)| id))
    }

    fn swap(
        &self,
        local: &GitRepo,
        chain: &str,
        old: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<Swap> {
        let mut waits = 0;
        loop {
            // Never a `+` refspec: the lease names the exact old id.
            match local.push_with_git(&self.url, new, chain, Some(old)) {
                Ok(PushOutcome::Updated | PushOutcome::UpToDate) => return Ok(Swap::Done),
                Ok(PushOutcome::Lost(_)) => return Ok(Swap::Lost { current: None }),
                Err(GitError::RemoteRefLocked { lock_path, .. }) => {
                    if waits >= LOCK_WAITS {
                        return Err(KvError::AuthorityLocked {
                            authority: self.url.clone(),
                            chain: chain.into(),
                            lock_path,
                        });
                    }
                    std::thread::sleep(Duration::from_millis((50u64 << waits).min(800)));
                    waits += 1;
                }
                // Refused before anything was sent: nothing changed.
                Err(e @ GitError::RemoteUnreachable { .. }) => return Err(self.failed(e, false)),
                // The connection may have died after the remote updated.
                Err(e) => return Err(self.failed(e, true)),
            }
        }
    }
}

/// Opens the authority `remote` names (git-config remote name, path or
/// URL, resolved by git's rules like every larder remote) for `local`.
///
/// `fsync`: a file authority flushes each swap to disk before it counts
/// (for `Durability::Fsync`); a network authority's disk is its own.
pub fn open_authority(local: &GitRepo, remote: &str, fsync: bool) -> Result<Box<dyn Authority>> {
    let resolved: ResolvedRemote = local.resolve_remote(remote)?;
    match &resolved.location {
        RemoteLocation::Local(_) => {
            let repo = resolved.open_local(&local.configured_remotes())?;
            Ok(Box::new(FileAuthority::new(remote, repo).with_fsync(fsync)))
        }
        RemoteLocation::Network { url, scheme } => {
            if scheme.needs_http_client() && !larder_git::HTTP_FETCH {
                return Err(GitError::UnsupportedRemote {
                    remote: remote.into(),
                    reason: format!(
                        "{url}: http(s) authorities need larder built with the `https` feature"
                    ),
                }
                .into());
            }
            let name = match &resolved.name {
                Some(name) => name.clone(),
                None => format!(
                    "url-{}",
                    larder_codec::to_hex(
                        &larder_codec::blake2b256(&[resolved.key().as_bytes()])[..8]
                    )
                ),
            };
            Ok(Box::new(NetworkAuthority::new(url.clone(), &name)))
        }
    }
}
