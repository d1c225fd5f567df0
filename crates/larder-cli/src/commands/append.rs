//! `larder append --log L [--kind K] (--data JSON | --stdin)`: one batch.

use std::io::BufRead;
use std::process::ExitCode;

use larder::LarderError;
use larder::codec::{CodecError, Payload};
use serde_json::json;

use super::Ctx;

/// Runs `append`: `data`, or one JSON value per line of stdin, as one batch.
pub fn run(
    ctx: &Ctx,
    log: &str,
    kind: &str,
    data: Option<&str>,
    stdin: bool,
) -> Result<ExitCode, LarderError> {
    let larder = ctx.open()?;
    let mut payloads = Vec::new();
    if stdin {
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            let line = line.map_err(|e| CodecError::PayloadEncode(e.to_string()))?;
            if !line.trim().is_empty() {
                payloads.push(parse(&line, i + 1)?);
            }
        }
    } else if let Some(d) = data {
        payloads.push(parse(d, 1)?);
    }
    let batch: Vec<(&str, Payload)> = payloads.into_iter().map(|p| (kind, p)).collect();
    let commit = larder.log(log)?.append_batch(&batch)?;
    ctx.out.emit(
        json!({ "commit": commit.to_string(), "count": batch.len() }),
        || format!("appended {} event(s) to {log}: {commit}", batch.len()),
    );
    super::ok()
}

fn parse(text: &str, line: usize) -> Result<Payload, LarderError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| CodecError::PayloadEncode(format!("line {line}: invalid JSON: {e}")))?;
    Ok(Payload::from_serde(&value)?)
}
