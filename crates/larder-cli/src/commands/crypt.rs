//! `larder crypt init|export|import --log LOG`: a log's encryption key
//! (docs/encryption.md). `init` creates the key, `export` prints it as one
//! line, `import` stores a line exported elsewhere. The key never goes to
//! a remote: it moves between replicas only through these lines (or the
//! `LARDER_LOG_KEY` variable).

use std::io::Read;
use std::process::ExitCode;

use serde_json::json;

use super::{CmdResult, Ctx, check_log_name};
use crate::cli::CryptAction;
use crate::output::CliError;

/// Runs `crypt`.
pub fn run(ctx: &Ctx, action: &CryptAction) -> CmdResult {
    let larder = ctx.open()?;
    match action {
        CryptAction::Init { log } => {
            check_log_name(&larder, log)?;
            let handle = larder.log(log)?;
            let key_id = handle.crypt_init()?;
            let path = handle.key_file().display().to_string();
            ctx.out.emit(
                json!({ "log": log, "key_id": key_id.to_string(), "key_file": path }),
                || format!("log {log} is encrypted with key {key_id} (key file {path}); move it to other replicas with `larder crypt export --log {log}`"),
            );
        }
        CryptAction::Export { log } => {
            check_log_name(&larder, log)?;
            let line = larder.log(log)?.export_key()?;
            ctx.out
                .emit(json!({ "log": log, "key": line }), || line.clone());
        }
        CryptAction::Import { log, keyline } => {
            check_log_name(&larder, log)?;
            let line = if keyline == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| {
                    CliError::Failed(format!("reading the key line from standard input: {e}"))
                })?;
                text
            } else {
                keyline.clone()
            };
            let handle = larder.log(log)?;
            let key_id = handle.import_key(&line)?;
            ctx.out.emit(
                json!({ "log": log, "key_id": key_id.to_string(), "key_file": handle.key_file().display().to_string() }),
                || format!("log {log}: key {key_id} imported"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
