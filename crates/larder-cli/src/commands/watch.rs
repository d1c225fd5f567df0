//! `larder watch [LOG | --log LOG] [--json] [--from POSITION] [--remote R
//! --every DURATION] [--count N]`: streams a log's events as they land,
//! one line each (JSON lines with `--json`, each with the `position` to
//! resume from), until interrupted. With `--remote`, pulls every
//! `DURATION` (default 10s) so other replicas' events arrive too.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use larder::git::ObjectId;
use serde_json::json;

use super::log::rfc3339;
use super::{CmdResult, Ctx};
use crate::output::CliError;

/// What `watch` was asked for.
pub struct WatchArgs<'a> {
    /// The log's name.
    pub log: &'a str,
    /// `--from`: a position printed by an earlier watch (`start`: the
    /// log's beginning); none: only new events.
    pub from: Option<&'a str>,
    /// `--remote`.
    pub remote: Option<&'a str>,
    /// `--every`, in milliseconds.
    pub every_ms: u64,
    /// `--count`: stop after N events.
    pub count: Option<u64>,
}

/// Runs `watch`.
pub fn run(ctx: &Ctx, args: &WatchArgs<'_>) -> CmdResult {
    let larder = ctx.open()?;
    super::check_log_name(&larder, args.log)?;
    let log = larder.log(args.log)?;
    let mut watch = match args.from {
        None => log.watch()?,
        Some("start") => log.watch_from(None)?,
        Some(hex) => {
            let id = ObjectId::from_hex(hex.as_bytes()).map_err(|_| {
                CliError::usage(format!(
                    "--from {hex:?} is not a position (a 40-digit commit id printed by watch, or `start`)"
                ))
            })?;
            log.watch_from(Some(id))?
        }
    };
    let every = Duration::from_millis(args.every_ms.max(1));
    let mut next_pull = Instant::now();
    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        if let Some(remote) = args.remote
            && Instant::now() >= next_pull
        {
            // A failed pull (remote down for a moment) is a warning: the
            // stream goes on and the next interval tries again.
            if let Err(e) = larder
                .sync(args.log, remote)
                .and_then(|s| s.pull().map_err(Into::into))
            {
                ctx.out.warn(&format!(
                    "pull from {remote} failed (retrying every {every:?}): {e}"
                ));
            }
            next_pull = Instant::now() + every;
        }
        let wait = match args.remote {
            Some(_) => next_pull.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        let Some(w) = watch.next_timeout(wait)? else {
            continue;
        };
        seen += 1;
        let e = &w.event;
        let data = e
            .payload()
            .to_value()
            .map(|v| serde_json::to_value(v).unwrap_or_default())
            .unwrap_or_default();
        let time = rfc3339(e.timestamp().millis);
        let position = w
            .position
            .map_or_else(|| "start".to_owned(), |p| p.to_string());
        ctx.out.emit(
            json!({ "id": e.id().to_hex(), "time": time, "actor": e.actor().as_str(), "hlc": e.timestamp().to_string(), "kind": e.kind(), "data": data, "position": position }),
            || format!("{time} {} {} {data}", e.actor(), e.kind()),
        );
    }
    Ok(ExitCode::SUCCESS)
}
