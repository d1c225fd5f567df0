//! One module per command; each takes the shared [`Ctx`] and its own
//! arguments and returns the exit code (or an error, which `main` renders).

use std::path::PathBuf;
use std::process::ExitCode;

use larder::{Larder, LarderError};

use crate::output::Output;

pub mod append;
pub mod compact;
pub mod demo;
pub mod init;
pub mod lock;
pub mod log;
pub mod snapshot;
pub mod stats;
pub mod sync;
pub mod verify;
pub mod whoami;

/// What every command needs: where to run and how to print.
pub struct Ctx {
    /// The `-C` directory.
    pub dir: PathBuf,
    /// `--actor`, if given.
    pub actor: Option<String>,
    /// Text or JSON output.
    pub out: Output,
}

impl Ctx {
    /// The repository at the `-C` directory.
    pub fn open(&self) -> Result<Larder, LarderError> {
        self.identify(Larder::open(&self.dir)?)
    }

    /// Applies `--actor`, and warns when the repository is a copy of
    /// another (it will get a fresh actor on its first write).
    pub fn identify(&self, larder: Larder) -> Result<Larder, LarderError> {
        let larder = match &self.actor {
            Some(id) => larder.with_actor(larder::codec::ActorId::new(id.as_str())?),
            None => larder,
        };
        if let Some(original) = larder.copied_from()? {
            self.out.warn(&format!(
                "this repository is a copy of {}: it gets a fresh actor id on its first write",
                original.display()
            ));
        }
        Ok(larder)
    }

    /// The log `name`, which must exist: reading a misspelt log should say so.
    pub fn existing_log(&self, larder: &Larder, name: &str) -> Result<larder::Log, LarderError> {
        larder.existing_log(name)
    }
}

/// Success.
pub fn ok() -> Result<ExitCode, LarderError> {
    Ok(ExitCode::SUCCESS)
}
