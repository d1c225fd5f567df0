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

/// What every command needs: where to run and how to print.
pub struct Ctx {
    /// The `-C` directory.
    pub dir: PathBuf,
    /// Text or JSON output.
    pub out: Output,
}

impl Ctx {
    /// The repository at the `-C` directory.
    pub fn open(&self) -> Result<Larder, LarderError> {
        Larder::open(&self.dir)
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
