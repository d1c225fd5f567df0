//! `larder completions <shell>` and the hidden `larder __man <dir>` that
//! `cargo xtask man` runs: both generated from the clap definitions, so
//! they never drift from the command line.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::CmdResult;
use crate::cli::Cli;
use crate::output::CliError;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> CmdResult {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "larder", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes `larder.1` and one page per command (`larder-log.1`, …) into
/// `dir`, creating it.
pub fn man(dir: &Path) -> CmdResult {
    let fail = |e: std::io::Error| {
        CliError::Failed(format!(
            "cannot write man pages into {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(fail)?;
    crate::output::out_line(&dir.join("larder.1").display());
    Ok(ExitCode::SUCCESS)
}
