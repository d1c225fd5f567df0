//! Signed logs: this replica's signing key, the trust policy, and the
//! per-event check a pull runs (`docs/signatures.md`).
//!
//! - The signing key of actor `A` is the file `<git dir>/larder/keys/A`
//!   (mode 0600, written by [`Larder::generate_signing_key`] /
//!   `larder key generate`), or the file `git config larder.signingKey`
//!   names (absolute, `~/…`, or relative to the git dir). When the actor
//!   has a key, every [`crate::Log`] append signs its events.
//! - The trust policy is `<git dir>/larder/trust` (one `<actor> <public
//!   key>` per line; see [`sign::TrustPolicy`]), plus `git config
//!   larder.requireSignatures`. A pull checks every incoming event under
//!   it and quarantines a head carrying an event the policy refuses.
//!   Neither file travels with pushes: each replica decides whom it trusts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use larder_sign as sign;

use crate::codec::{ActorId, EventId};
use crate::git::ObjectId;
use crate::{Larder, LarderError, Result, wal};

/// The git config key naming the signing key file.
pub const SIGNING_KEY_CONFIG: &str = "larder.signingKey";
/// The git config key that makes every pulled event need a trusted
/// signature (a git boolean: true/false, yes/no, on/off, 1/0).
pub const REQUIRE_SIGNATURES_CONFIG: &str = "larder.requireSignatures";

/// Where signing keys are found, with the loaded key cached per actor.
#[derive(Debug)]
pub(crate) struct Keys {
    git_dir: PathBuf,
    configured: Option<String>,
    cache: Mutex<Option<(ActorId, Arc<sign::SigningKey>)>>,
}

impl Keys {
    pub(crate) fn new(git_dir: &Path, configured: Option<String>) -> Self {
        Self {
            git_dir: git_dir.to_path_buf(),
            configured,
            cache: Mutex::new(None),
        }
    }

    /// The key file of `actor`: `git config larder.signingKey`, else
    /// `<git dir>/larder/keys/<actor>`.
    pub(crate) fn path_for(&self, actor: &ActorId) -> PathBuf {
        match &self.configured {
            Some(p) => {
                let p = p.trim();
                match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
                    (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
                    _ => self.git_dir.join(p),
                }
            }
            None => self
                .git_dir
                .join("larder")
                .join("keys")
                .join(actor.as_str()),
        }
    }

    /// `actor`'s signing key, if it has one. A file `larder.signingKey`
    /// names must exist; a malformed or unprotected key file is an error
    /// (an append then fails rather than writing unsigned events).
    pub(crate) fn for_actor(&self, actor: &ActorId) -> Result<Option<Arc<sign::SigningKey>>> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((a, key)) = &*cache
            && a == actor
        {
            return Ok(Some(key.clone()));
        }
        let path = self.path_for(actor);
        if self.configured.is_none() && !path.exists() {
            return Ok(None);
        }
        let key = Arc::new(sign::SigningKey::load(&path)?);
        *cache = Some((actor.clone(), key.clone()));
        Ok(Some(key))
    }
}

/// What [`Larder::verify_signatures`] found in a log.
#[derive(Clone, Debug, Default)]
pub struct SignatureReport {
    /// Events read.
    pub events: u64,
    /// Events whose signature verified under a trusted key.
    pub verified: u64,
    /// Events without a signature.
    pub unsigned: u64,
    /// Whether the policy requires signatures (then every unsigned or
    /// untrusted event is a problem).
    pub required: bool,
    /// Events the policy refuses: the commit holding each, its id, and why.
    pub problems: Vec<SignatureIssue>,
}

/// One event a trust policy refuses.
#[derive(Clone, Debug)]
pub struct SignatureIssue {
    /// The WAL commit holding the event.
    pub commit: ObjectId,
    /// The event.
    pub event: EventId,
    /// What is wrong.
    pub problem: sign::SignatureProblem,
}

impl std::fmt::Display for SignatureIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "commit {}: event {}: {}",
            self.commit, self.event, self.problem
        )
    }
}

/// A git boolean, as `git config --type=bool` reads it.
fn git_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" | "" => Ok(false),
        other => Err(LarderError::Config {
            key: key.into(),
            reason: format!("{other:?} is not a boolean (true or false)"),
        }),
    }
}

impl Larder {
    /// The file holding this replica's signing key (it may not exist yet):
    /// `git config larder.signingKey`, else `<git dir>/larder/keys/<actor>`.
    pub fn signing_key_path(&self) -> Result<PathBuf> {
        Ok(self.keys.path_for(self.actor()?))
    }

    /// This replica's signing key, if it has one (see [`Larder::signing_key_path`]).
    pub fn signing_key(&self) -> Result<Option<Arc<sign::SigningKey>>> {
        self.keys.for_actor(self.actor()?)
    }

    /// Creates a signing key for this replica's actor in a new 0600 file
    /// (never overwriting one: [`sign::SignError::KeyExists`]) and returns
    /// where it is and its public key, to be trusted by other replicas
    /// (`larder trust add <actor> <public key>`). Appends sign from now on.
    pub fn generate_signing_key(&self) -> Result<(PathBuf, sign::PublicKey)> {
        let path = self.signing_key_path()?;
        let key = sign::SigningKey::generate()?;
        key.save_new(&path)?;
        Ok((path, key.public_key()))
    }

    /// The trust policy file: `<git dir>/larder/trust`.
    pub fn trust_file(&self) -> PathBuf {
        self.repo.git_dir().join("larder").join("trust")
    }

    /// The trust policy: the trust file (none: no key trusted) and `git
    /// config larder.requireSignatures` (as it was when this handle was
    /// opened).
    pub fn trust_policy(&self) -> Result<sign::TrustPolicy> {
        let required = match self
            .repo
            .gix()
            .config_snapshot()
            .string(REQUIRE_SIGNATURES_CONFIG)
        {
            Some(v) => git_bool(REQUIRE_SIGNATURES_CONFIG, &v.to_string())?,
            None => false,
        };
        Ok(sign::TrustPolicy::load(&self.trust_file())?.require_signatures(required))
    }

    /// Trusts `key` to sign `actor`'s events (a line added to the trust
    /// file). Several keys per actor are fine: each is accepted (rotation).
    /// Returns false if it was already trusted.
    pub fn trust(&self, actor: &ActorId, key: &sign::PublicKey) -> Result<bool> {
        Ok(sign::TrustPolicy::add_to_file(
            &self.trust_file(),
            actor,
            key,
        )?)
    }

    /// Stops trusting `key` (every key, with `None`) for `actor`. Only
    /// later pulls are affected: events already merged stay in the log
    /// ([`Larder::verify_signatures`] reports them). Returns how many
    /// entries were removed.
    pub fn untrust(&self, actor: &ActorId, key: Option<&sign::PublicKey>) -> Result<usize> {
        Ok(sign::TrustPolicy::remove_from_file(
            &self.trust_file(),
            actor,
            key,
        )?)
    }

    /// Checks every event of log `name` under the trust policy.
    pub fn verify_signatures(&self, name: &str) -> Result<SignatureReport> {
        let policy = self.trust_policy()?;
        let wal = self.log(name)?.wal;
        let mut report = SignatureReport {
            required: policy.required(),
            ..SignatureReport::default()
        };
        for commit in wal.commits_since(None)? {
            let commit = commit?;
            for event in &commit.events {
                report.events += 1;
                if event.signature().is_none() {
                    report.unsigned += 1;
                }
                match policy.check(event) {
                    Ok(Some(_)) => report.verified += 1,
                    Ok(None) => {}
                    Err(problem) => report.problems.push(SignatureIssue {
                        commit: commit.id,
                        event: event.id(),
                        problem,
                    }),
                }
            }
        }
        Ok(report)
    }

    /// A sync manager for `wal` as this replica, checking every pulled
    /// event under the trust policy when it can refuse anything.
    pub(crate) fn sync_manager(
        &self,
        wal: wal::WalManager,
        remote: &str,
    ) -> Result<crate::sync::SyncManager> {
        let manager = crate::sync::SyncManager::new(wal, self.actor()?.clone(), remote)?;
        let policy = self.trust_policy()?;
        if !policy.is_active() {
            return Ok(manager);
        }
        let policy = Arc::new(policy);
        Ok(manager.with_event_check(Arc::new(move |event| {
            policy
                .check(event)
                .map(|_| ())
                .map_err(|problem| problem.to_string())
        })))
    }
}
