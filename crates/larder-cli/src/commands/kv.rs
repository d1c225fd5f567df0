//! `larder kv …`: the key-value store over one log (docs/kv.md).
//!
//! Values are JSON on the command line and CBOR in the log (the same
//! `kv.set` / `kv.delete` events the library writes). Exit codes: 0 done;
//! 1 a missing key for `get`, or a failure (an unreachable authority, a
//! stale chain lock, a foreign chain commit); 2 bad input (bad JSON, a bad
//! key); 3 `cas` found another value.
//!
//! Eventual (default): writes commit locally and, with `--remote`, are
//! pushed; reads pull first. `--linearizable --remote <R>`: every command
//! goes through the authority `R` — writes are acknowledged at its chain
//! ref's compare-and-swap, reads fetch its head first.

use std::process::ExitCode;
use std::time::Duration;

use larder::kv::{Consistency, Entry, Expect, Kv, KvError, KvOptions, Version};
use serde_json::{Value, json};

use super::{CmdResult, Ctx};
use crate::cli::KvAction;
use crate::output::{CliError, EXIT_HELD};

/// Exit code of `kv cas` when the key does not hold the expected value.
const EXIT_MISMATCH: u8 = EXIT_HELD;

/// Runs `larder kv <action>` on log `log`.
pub fn run(
    ctx: &Ctx,
    log: &str,
    remote: Option<&str>,
    linearizable: bool,
    action: &KvAction,
) -> CmdResult {
    let larder = ctx.open()?;
    super::check_log_name(&larder, log)?;
    let kv = match (linearizable, remote) {
        (true, Some(authority)) => larder.kv_with(
            log,
            KvOptions {
                consistency: Consistency::Linearizable {
                    authority: authority.to_owned(),
                },
                ..KvOptions::default()
            },
        )?,
        (true, None) => {
            return Err(CliError::usage(
                "--linearizable needs --remote <REMOTE>: the authority every command goes through",
            ));
        }
        (false, _) => larder.kv(log)?,
    };
    // Linearizable: the authority is the only remote, and every operation
    // already goes through it.
    let pull = |kv: &Kv| -> Result<(), CliError> {
        if let Some(r) = remote
            && !linearizable
        {
            kv.pull(r).map_err(kv_error)?;
        }
        Ok(())
    };
    let push = |kv: &Kv| -> Result<(), CliError> {
        if let Some(r) = remote
            && !linearizable
        {
            kv.push(r).map_err(kv_error)?;
        }
        Ok(())
    };
    let out = &ctx.out;
    match action {
        KvAction::Set { key, value } => {
            let value = parse_json(value)?;
            let version = kv.set(key, &value).map_err(kv_error)?;
            push(&kv)?;
            out.emit(
                json!({ "key": key, "version": version_json(&version) }),
                || version_text(&version),
            );
        }
        KvAction::Get { key } => {
            pull(&kv)?;
            match kv.get::<Value>(key).map_err(kv_error)? {
                Some(e) => out.emit(entry_json(&e), || e.value.to_string()),
                None => {
                    if out.json() {
                        println!("null");
                    }
                    return Err(CliError::Failed(format!("no key {key:?} in log {log}")));
                }
            }
        }
        KvAction::Del { key } => {
            let version = kv.delete(key).map_err(kv_error)?;
            push(&kv)?;
            out.emit(
                json!({ "key": key, "version": version_json(&version), "deleted": true }),
                || version_text(&version),
            );
        }
        KvAction::Scan { prefix } => {
            pull(&kv)?;
            for e in kv.scan::<Value>(prefix).map_err(kv_error)? {
                out.emit(entry_json(&e), || format!("{}\t{}", e.key, e.value));
            }
        }
        KvAction::Cas { key, expect, value } => {
            let expect = if expect == "absent" {
                Expect::Absent
            } else {
                Expect::Value(parse_json(expect)?)
            };
            let value = parse_json(value)?;
            pull(&kv)?;
            let cas = kv.compare_and_set(key, expect, &value).map_err(kv_error)?;
            let current = cas.current.as_ref();
            if cas.swapped {
                push(&kv)?;
            }
            out.emit(
                json!({
                    "key": key,
                    "swapped": cas.swapped,
                    "current": current.map(|e| e.value.clone()),
                    "version": current.map(|e| version_json(&e.version)),
                }),
                || match (cas.swapped, current) {
                    (true, Some(e)) => version_text(&e.version),
                    (_, Some(e)) => format!("not swapped: {key} holds {}", e.value),
                    (_, None) => format!("not swapped: {key} is absent"),
                },
            );
            if !cas.swapped {
                return Ok(ExitCode::from(EXIT_MISMATCH));
            }
        }
        KvAction::History { key } => {
            pull(&kv)?;
            for c in kv.history::<Value>(key).map_err(kv_error)? {
                out.emit(
                    json!({
                        "key": c.key,
                        "value": c.value,
                        "deleted": c.value.is_none(),
                        "version": version_json(&c.version),
                    }),
                    || {
                        let v = c
                            .value
                            .as_ref()
                            .map_or("(deleted)".to_owned(), Value::to_string);
                        format!("{}\t{v}", version_text(&c.version))
                    },
                );
            }
        }
        KvAction::Watch { prefix, count } => {
            let mut watch = kv.watch::<Value>(prefix).map_err(kv_error)?;
            let mut seen = 0u64;
            while count.is_none_or(|n| seen < n) {
                match watch
                    .next_timeout(Duration::from_secs(1))
                    .map_err(kv_error)?
                {
                    Some(c) => {
                        seen += 1;
                        out.emit(
                            json!({
                                "key": c.key,
                                "value": c.value,
                                "deleted": c.value.is_none(),
                                "version": version_json(&c.version),
                            }),
                            || {
                                let v = c
                                    .value
                                    .as_ref()
                                    .map_or("(deleted)".to_owned(), Value::to_string);
                                format!("{}\t{v}", c.key)
                            },
                        );
                    }
                    None => pull(&kv)?,
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON argument, or a one-line usage error.
fn parse_json(text: &str) -> Result<Value, CliError> {
    serde_json::from_str(text).map_err(|e| {
        CliError::usage(format!(
            "not valid JSON: {text:?} ({e}); quote strings as JSON, e.g. '\"text\"'"
        ))
    })
}

/// Bad keys and values are bad input (exit 2); the rest are failures.
fn kv_error(e: KvError) -> CliError {
    match e {
        KvError::InvalidKey { .. } | KvError::Encode { .. } | KvError::Mode(_) => {
            CliError::usage(e.to_string())
        }
        other => CliError::Larder(other.into()),
    }
}

/// `millis.counter@actor/event-id-prefix`: sortable by eye, unique.
fn version_text(v: &Version) -> String {
    format!("{}@{}/{}", v.timestamp, v.actor, &v.id.to_hex()[..16])
}

fn version_json(v: &Version) -> Value {
    json!({
        "millis": v.timestamp.millis,
        "counter": v.timestamp.counter,
        "actor": v.actor.as_str(),
        "event": v.id.to_hex(),
    })
}

fn entry_json(e: &Entry<Value>) -> Value {
    json!({ "key": e.key, "value": e.value, "version": version_json(&e.version) })
}
