//! The replica's actor id.
//!
//! Where it comes from, first match wins:
//! 1. an explicit id ([`crate::Larder::with_actor`]; the CLI's `--actor`);
//! 2. the `LARDER_ACTOR` environment variable;
//! 3. `git config larder.actor` (the repository's own config);
//! 4. the file `<git dir>/larder/actor`, created on the first write (never
//!    by opening a repository to read it), written atomically so concurrent
//!    first uses agree on one id and never read a half-written file.
//!
//! The file records the git dir it was made for (`made-for <path>`). A
//! copied clone (`cp -r`) carries the file along: its path no longer
//! matches, so the copy gets a fresh actor on its first write — two
//! replicas must never share an actor id — and [`Identity::copied_from`]
//! lets callers warn about it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::codec::{self, ActorId};
use crate::{LarderError, Result};

/// The environment variable naming the actor.
pub const ACTOR_ENV: &str = "LARDER_ACTOR";
/// The git config key naming the actor.
pub const ACTOR_CONFIG: &str = "larder.actor";

/// Where a replica's actor id came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActorSource {
    /// Given explicitly ([`crate::Larder::with_actor`], `--actor`).
    Explicit,
    /// The `LARDER_ACTOR` environment variable.
    Environment,
    /// `git config larder.actor`.
    GitConfig,
    /// The actor file under the git dir (existing or just created).
    File,
}

/// The actor of one repository, resolved on first use and then cached for
/// the handle's lifetime (shared by a `Larder` and its logs).
#[derive(Debug)]
pub(crate) struct Identity {
    path: PathBuf,
    git_dir: PathBuf,
    configured: Option<String>,
    explicit: Option<ActorId>,
    actor: OnceLock<(ActorId, ActorSource)>,
}

impl Identity {
    /// The identity of the repository at `git_dir`, whose `git config
    /// larder.actor` is `configured`; nothing is read or written yet.
    pub(crate) fn new(git_dir: &Path, configured: Option<String>) -> Self {
        Self {
            path: git_dir.join("larder").join("actor"),
            git_dir: canonical(git_dir),
            configured,
            explicit: None,
            actor: OnceLock::new(),
        }
    }

    /// The same identity, with `actor` given explicitly.
    pub(crate) fn with_explicit(mut self, actor: ActorId) -> Self {
        self.explicit = Some(actor);
        self.actor = OnceLock::new();
        self
    }

    /// The actor id and where it came from; creates the actor file if no
    /// other source names one and there is none (or it belongs to the
    /// repository this one was copied from).
    pub(crate) fn get(&self) -> Result<&ActorId> {
        Ok(&self.resolved()?.0)
    }

    /// Where the actor id comes from (resolving it, as [`Identity::get`]).
    pub(crate) fn source(&self) -> Result<ActorSource> {
        Ok(self.resolved()?.1.clone())
    }

    fn resolved(&self) -> Result<&(ActorId, ActorSource)> {
        if let Some(found) = self.actor.get() {
            return Ok(found);
        }
        let found = match self.named()? {
            Some(found) => found,
            None => (self.load_or_create()?, ActorSource::File),
        };
        Ok(self.actor.get_or_init(|| found))
    }

    /// The actor named by an explicit id, the environment or git config.
    fn named(&self) -> Result<Option<(ActorId, ActorSource)>> {
        if let Some(actor) = &self.explicit {
            return Ok(Some((actor.clone(), ActorSource::Explicit)));
        }
        let parse = |text: &str, what: &str| {
            ActorId::new(text.trim()).map_err(|e| LarderError::Identity {
                path: what.into(),
                reason: format!("invalid actor id {text:?}: {e}"),
            })
        };
        if let Ok(text) = std::env::var(ACTOR_ENV)
            && !text.trim().is_empty()
        {
            return Ok(Some((parse(&text, ACTOR_ENV)?, ActorSource::Environment)));
        }
        if let Some(text) = &self.configured {
            return Ok(Some((
                parse(text, &format!("git config {ACTOR_CONFIG}"))?,
                ActorSource::GitConfig,
            )));
        }
        Ok(None)
    }

    /// The actor id if one is named or the file exists (and was made for
    /// this repository), without creating anything.
    pub(crate) fn existing(&self) -> Result<Option<ActorId>> {
        if let Some((actor, _)) = self.actor.get() {
            return Ok(Some(actor.clone()));
        }
        if let Some((actor, _)) = self.named()? {
            return Ok(Some(actor));
        }
        Ok(self
            .read_file()?
            .filter(|f| f.made_for.as_deref().is_none_or(|p| p == self.git_dir))
            .map(|f| f.actor))
    }

    /// The git dir the actor file was made for, when it is another one:
    /// this repository is a copy of that one, and will get a fresh actor on
    /// its first write.
    pub(crate) fn copied_from(&self) -> Result<Option<PathBuf>> {
        Ok(self
            .read_file()?
            .and_then(|f| f.made_for)
            .filter(|p| *p != self.git_dir))
    }

    fn error(&self, reason: String) -> LarderError {
        LarderError::Identity {
            path: self.path.display().to_string(),
            reason,
        }
    }

    fn read_file(&self) -> Result<Option<ActorFile>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => self.parse_file(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    /// `<actor id>\n[made-for <git dir>\n]`; files of earlier versions hold
    /// the first line only.
    fn parse_file(&self, text: &str) -> Result<ActorFile> {
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        let actor = ActorId::new(first.trim())
            .map_err(|e| self.error(format!("invalid actor id {first:?}: {e}")))?;
        let made_for = lines
            .find_map(|l| l.strip_prefix("made-for "))
            .map(PathBuf::from);
        Ok(ActorFile { actor, made_for })
    }

    fn load_or_create(&self) -> Result<ActorId> {
        if let Some(file) = self.read_file()? {
            match &file.made_for {
                Some(p) if *p != self.git_dir => {
                    tracing::warn!(
                        copied_from = %p.display(), git_dir = %self.git_dir.display(),
                        "this repository is a copy: creating a fresh actor"
                    );
                    // Move the copied file aside; of several processes doing
                    // this at once exactly one succeeds, and all then meet
                    // in the create-if-absent below.
                    let aside = self
                        .path
                        .with_file_name(format!("actor.copied-{}", std::process::id()));
                    match std::fs::rename(&self.path, &aside) {
                        Ok(()) => {
                            // What was moved may be a fresh file another
                            // process made for this repository meanwhile:
                            // put that one back (never over a newer one).
                            let moved = std::fs::read_to_string(&aside)
                                .ok()
                                .and_then(|t| self.parse_file(&t).ok());
                            if moved
                                .as_ref()
                                .is_some_and(|m| m.made_for.as_deref() == Some(&*self.git_dir))
                            {
                                let _ = std::fs::hard_link(&aside, &self.path);
                            }
                            let _ = std::fs::remove_file(&aside);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(self.error(e.to_string())),
                    }
                    if let Some(file) = self.read_file()?
                        && file.made_for.as_deref() == Some(&*self.git_dir)
                    {
                        return Ok(file.actor);
                    }
                }
                _ => return Ok(file.actor),
            }
        }
        let actor = fresh_actor(&self.path)?;
        let dir = self
            .path
            .parent()
            .ok_or_else(|| self.error("no parent directory".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| self.error(e.to_string()))?;
        // Write a complete file under a temporary name, then link it into
        // place only if no file is there yet: a concurrent first use either
        // wins (and everyone reads its id) or sees a complete file.
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).map_err(|e| self.error(e.to_string()))?;
        write!(tmp, "{actor}\nmade-for {}\n", self.git_dir.display())
            .map_err(|e| self.error(e.to_string()))?;
        match tmp.persist_noclobber(&self.path) {
            Ok(_) => Ok(actor),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                match self.read_file()? {
                    Some(file) => Ok(file.actor),
                    None => Err(self.error("the actor file vanished while being created".into())),
                }
            }
            Err(e) => Err(self.error(e.error.to_string())),
        }
    }
}

/// The actor file's contents.
struct ActorFile {
    actor: ActorId,
    made_for: Option<PathBuf>,
}

/// `path` with symlinks and `..` resolved, so one repository has one name.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `actor-<16 hex>` from the process, the time and the place: unique per
/// first use.
fn fresh_actor(path: &Path) -> Result<ActorId> {
    let seed = format!(
        "{}:{}:{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        path
    );
    let hash = codec::blake2b256(&[seed.as_bytes()]);
    Ok(ActorId::new(format!(
        "actor-{}",
        codec::to_hex(&hash[..8])
    ))?)
}
