//! The replica's actor id: `<git dir>/larder/actor`, created on the first
//! write (never by opening a repository to read it), written atomically so
//! concurrent first uses agree on one id and never read a half-written file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::codec::{self, ActorId};
use crate::{LarderError, Result};

/// The actor of one repository, loaded or created on first use and then
/// cached for the handle's lifetime (shared by a `Larder` and its logs).
#[derive(Debug)]
pub(crate) struct Identity {
    path: PathBuf,
    actor: OnceLock<ActorId>,
}

impl Identity {
    /// The identity stored under `git_dir`; nothing is read or written yet.
    pub(crate) fn new(git_dir: &std::path::Path) -> Self {
        Self {
            path: git_dir.join("larder").join("actor"),
            actor: OnceLock::new(),
        }
    }

    /// The actor id, read from the file or — if there is none — created.
    pub(crate) fn get(&self) -> Result<&ActorId> {
        if let Some(actor) = self.actor.get() {
            return Ok(actor);
        }
        let actor = self.load_or_create()?;
        Ok(self.actor.get_or_init(|| actor))
    }

    /// The actor id if the file exists, without creating it.
    pub(crate) fn existing(&self) -> Result<Option<ActorId>> {
        if let Some(actor) = self.actor.get() {
            return Ok(Some(actor.clone()));
        }
        match std::fs::read_to_string(&self.path) {
            Ok(text) => self.parse(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e.to_string())),
        }
    }

    fn error(&self, reason: String) -> LarderError {
        LarderError::Identity {
            path: self.path.display().to_string(),
            reason,
        }
    }

    fn parse(&self, text: &str) -> Result<ActorId> {
        ActorId::new(text.trim()).map_err(|e| self.error(format!("invalid actor id: {e}")))
    }

    fn load_or_create(&self) -> Result<ActorId> {
        if let Some(actor) = self.existing()? {
            return Ok(actor);
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
        writeln!(tmp, "{actor}").map_err(|e| self.error(e.to_string()))?;
        match tmp.persist_noclobber(&self.path) {
            Ok(_) => Ok(actor),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                let text =
                    std::fs::read_to_string(&self.path).map_err(|e| self.error(e.to_string()))?;
                self.parse(&text)
            }
            Err(e) => Err(self.error(e.error.to_string())),
        }
    }
}

/// `actor-<16 hex>` from the process, the time and the place: unique per
/// first use.
fn fresh_actor(path: &std::path::Path) -> Result<ActorId> {
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
