//! `larder import --log L [FILE]`: moves an existing history into a log —
//! one JSON object per line (`-` or no FILE: standard input):
//!
//! ```text
//! {"time": "2021-03-04T05:06:07Z", "author": "ada", "kind": "issue.opened", "data": {...}, "key": "GH-12"}
//! ```
//!
//! `time` is RFC 3339 or milliseconds since the epoch; `key` is optional.
//! Every line is checked before anything is written (a bad one is exit 2
//! naming the file and line); events keep their time and author, and a
//! re-run skips what is already there (`Log::import`).

use std::io::BufRead;
use std::process::ExitCode;

use larder::Imported;
use larder::codec::Payload;
use serde_json::{Value, json};

use super::append::strict_json;
use super::{CmdResult, Ctx, check_log_name};
use crate::output::CliError;

/// Runs `import`.
pub fn run(ctx: &Ctx, log: &str, file: Option<&str>) -> CmdResult {
    let larder = ctx.open()?;
    check_log_name(&larder, log)?;
    let (name, reader): (String, Box<dyn BufRead>) = match file {
        None | Some("-") => ("standard input".into(), Box::new(std::io::stdin().lock())),
        Some(path) => {
            let f = std::fs::File::open(path)
                .map_err(|e| CliError::usage(format!("cannot open {path}: {e}")))?;
            (path.to_owned(), Box::new(std::io::BufReader::new(f)))
        }
    };
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| CliError::usage(format!("cannot read {name}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |reason: String| CliError::usage(format!("{name}:{}: {reason}", i + 1));
        events.push(parse(&line).map_err(at)?);
        lines.push(i + 1);
    }
    let report = match larder.log(log)?.import(events) {
        Err(larder::LarderError::Import { index, reason }) => {
            let line = lines.get(index).copied().unwrap_or(0);
            return Err(CliError::usage(format!("{name}:{line}: {reason}")));
        }
        other => other?,
    };
    ctx.out.emit(
        json!({ "imported": report.imported, "skipped": report.skipped, "commits": report.commits }),
        || {
            format!(
                "imported {} event(s) into {log} in {} commit(s); {} already there",
                report.imported, report.commits, report.skipped
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// One line as an event to import.
fn parse(line: &str) -> Result<Imported, String> {
    let value = strict_json(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("expected a JSON object with time, author, kind and data".into());
    };
    let text = |field: &str| -> Result<String, String> {
        match map.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{field} must be a string")),
            None => Err(format!("missing {field}")),
        }
    };
    let time_ms = match map.get("time") {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("time {n} is not milliseconds since the epoch"))?,
        Some(Value::String(s)) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("time {s:?} is not RFC 3339: {e}"))?;
            u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| format!("time {s:?} is before 1970"))?
        }
        Some(_) => return Err("time must be RFC 3339 text or milliseconds".into()),
        None => return Err("missing time".into()),
    };
    let data = map.get("data").ok_or("missing data")?;
    let key = match map.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("key must be a string".into()),
    };
    if let Some(extra) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "time" | "author" | "kind" | "data" | "key"))
    {
        return Err(format!("unknown field {extra:?}"));
    }
    Ok(Imported {
        time_ms,
        author: text("author")?,
        kind: text("kind")?,
        payload: Payload::from_serde(data).map_err(|e| e.to_string())?,
        key,
    })
}
