//! The `larder` command: parses the command line and dispatches to one
//! module per command (`commands/`); `output.rs` renders results and errors.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;

use cli::{Cli, Command, HooksAction};
use commands::Ctx;
use commands::sync::Direction;
use output::{CliError, Output};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return output::argument_error(&e),
    };
    let ctx = Ctx {
        dir: cli.dir(),
        actor: cli.actor.clone(),
        fsync: cli.fsync,
        out: Output::new(cli.json),
    };
    let result = match &cli.command {
        Command::Init { bare } => commands::init::run(&ctx, *bare).map_err(CliError::from),
        Command::Append {
            log,
            kind,
            data,
            stdin,
        } => commands::append::run(&ctx, log, kind, data.as_deref(), *stdin),
        Command::Watch {
            name,
            log,
            from,
            remote,
            every,
            count,
        } => commands::watch::run(
            &ctx,
            &commands::watch::WatchArgs {
                log: name.as_deref().or(log.as_deref()).unwrap_or_default(),
                from: from.as_deref(),
                remote: remote.as_deref(),
                every_ms: *every,
                count: *count,
            },
        ),
        Command::MergeLog { from, into } => commands::merge_log::run(&ctx, from, into),
        Command::Hooks { action } => match action {
            HooksAction::Install => commands::hooks::install(&ctx),
            HooksAction::Run { hook, args } => commands::hooks::run(&ctx, hook, args),
        },
        Command::Import { log, file } => commands::import::run(&ctx, log, file.as_deref()),
        Command::Log {
            name,
            log,
            since,
            until,
            at,
            kind,
            limit,
            reverse,
        } => commands::log::run(
            &ctx,
            &commands::log::LogArgs {
                log: name.as_deref().or(log.as_deref()).unwrap_or_default(),
                since: since.as_deref(),
                until: until.as_deref(),
                at: at.as_deref(),
                kind: kind.as_deref(),
                limit: *limit,
                reverse: *reverse,
            },
        ),
        Command::Verify { log } => commands::verify::run(&ctx, log),
        Command::Sync { log, remote } => commands::sync::run(&ctx, log, remote, Direction::Both),
        Command::Pull { log, remote } => commands::sync::run(&ctx, log, remote, Direction::Pull),
        Command::Push { log, remote } => commands::sync::run(&ctx, log, remote, Direction::Push),
        Command::Snapshot { action } => commands::snapshot::run(&ctx, action),
        Command::Lock { action } => commands::lock::run(&ctx, action),
        Command::Crypt { action } => commands::crypt::run(&ctx, action),
        Command::Kv {
            log,
            remote,
            linearizable,
            action,
        } => commands::kv::run(&ctx, log, remote.as_deref(), *linearizable, action),
        Command::Stats { log } => commands::stats::run(&ctx, log),
        Command::Compact { log, prune } => commands::compact::run(&ctx, log.as_deref(), *prune),
        Command::Status => commands::status::run(&ctx),
        Command::Completions { shell } => commands::man::completions(*shell),
        Command::Man { dir } => commands::man::man(dir),
        Command::Whoami => commands::whoami::run(&ctx).map_err(CliError::from),
        Command::Key { action } => commands::key::run(&ctx, action),
        Command::Trust { action } => commands::trust::run(&ctx, action),
        Command::Demo { keep } => {
            commands::demo::run(ctx.out.json(), keep.as_deref()).map(|()| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|e| ctx.out.error(&e))
}
