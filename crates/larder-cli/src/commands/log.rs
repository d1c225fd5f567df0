//! `larder log [LOG | --log LOG] [-n N] [--reverse] [--since REV|DATE]
//! [--until REV|DATE | --at REV|DATE] [--kind K]`: events in the total
//! order, newest first, each with the WAL commit that holds it and its
//! time (RFC 3339). `--at` is the log as of a point (`Log::at`): a time
//! before its first event is an error, not an empty listing.

use std::process::{Command, ExitCode};

use larder::codec::Envelope;
use larder::git::ObjectId;
use larder::{Larder, Log};
use serde_json::json;

use super::{CmdResult, Ctx};
use crate::output::CliError;

/// What `log` was asked for.
pub struct LogArgs<'a> {
    /// The log's name.
    pub log: &'a str,
    /// `--since`.
    pub since: Option<&'a str>,
    /// `--until`.
    pub until: Option<&'a str>,
    /// `--at`: `--until` that refuses a point before the log began.
    pub at: Option<&'a str>,
    /// `--kind`.
    pub kind: Option<&'a str>,
    /// `-n` / `--limit`.
    pub limit: Option<usize>,
    /// `--reverse`: oldest first.
    pub reverse: bool,
}

/// A `--since`/`--until` bound: a commit of the log or a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    Commit(ObjectId),
    /// Milliseconds since the epoch.
    Time(i128),
}

/// Runs `log`.
pub fn run(ctx: &Ctx, args: &LogArgs<'_>) -> CmdResult {
    let larder = ctx.open()?;
    let log = ctx.existing_log(&larder, args.log)?;
    let since = args
        .since
        .map(|s| parse_bound(&larder, &log, s, "--since"))
        .transpose()?;
    let until = match (args.until, args.at) {
        (Some(u), _) => Some(parse_bound(&larder, &log, u, "--until")?),
        (None, Some(a)) => {
            let bound = parse_bound(&larder, &log, a, "--at")?;
            let point = match bound {
                Bound::Commit(c) => larder::At::Commit(c),
                Bound::Time(ms) => larder::At::Time(larder::codec::Timestamp::new(
                    u64::try_from(ms.max(0)).unwrap_or(u64::MAX),
                    u32::MAX,
                )),
            };
            // A point before the log's first event is an error naming it.
            log.at(point)?;
            Some(bound)
        }
        (None, None) => None,
    };
    let since_commit = match since {
        Some(Bound::Commit(c)) => Some(c),
        _ => None,
    };
    let commits = match until {
        // Like git's `A..B` with A not behind B: nothing in between.
        Some(Bound::Commit(u))
            if since_commit.is_some_and(|s| !log.wal().is_ancestor(s, u).unwrap_or(false)) =>
        {
            return Ok(ExitCode::SUCCESS);
        }
        Some(Bound::Commit(u)) => {
            larder::wal::commits_between(log.wal().repo(), u, since_commit, log.wal().ref_name())?
        }
        _ => log.wal().commits_since(since_commit)?,
    };
    let progress = ctx.out.progress(
        &format!("reading {}", args.log),
        Some(commits.remaining() as u64),
        "commits",
    );
    let (from_ms, to_ms) = (
        match since {
            Some(Bound::Time(t)) => Some(t),
            _ => None,
        },
        match until {
            Some(Bound::Time(t)) => Some(t),
            _ => None,
        },
    );
    let mut events: Vec<(ObjectId, Envelope)> = Vec::new();
    for commit in commits {
        let commit = commit?;
        progress.inc(1);
        for e in commit.events {
            let t = i128::from(e.timestamp().millis);
            if from_ms.is_some_and(|f| t < f) || to_ms.is_some_and(|u| t > u) {
                continue;
            }
            if args.kind.is_some_and(|k| e.kind() != k) {
                continue;
            }
            if ctx
                .actor
                .as_deref()
                .is_some_and(|a| e.actor().as_str() != a)
            {
                continue;
            }
            events.push((commit.id, e));
        }
    }
    progress.finish();
    events.sort_unstable_by(|a, b| larder::crdt::compare_events(&a.1, &b.1));
    events.dedup_by(|a, b| a.1.id() == b.1.id());
    if !args.reverse {
        events.reverse();
    }
    // Sealed payloads are shown decrypted with this replica's key, or as
    // "encrypted" without one; a wrong key is an error naming the event.
    let decryptor = log.decryptor()?;
    for (commit, e) in events.iter().take(args.limit.unwrap_or(usize::MAX)) {
        let (data, encrypted) = match decryptor.open(e)? {
            larder::Data::Plain(p) => (
                p.to_value()
                    .map(|v| serde_json::to_value(v).unwrap_or_default())
                    .unwrap_or_default(),
                larder::crypt::is_sealed(e.payload()),
            ),
            larder::Data::Encrypted { .. } => (json!("encrypted"), true),
        };
        let time = rfc3339(e.timestamp().millis);
        let commit = commit.to_string();
        ctx.out.emit(
            json!({ "id": e.id().to_hex(), "commit": commit, "time": time, "actor": e.actor().as_str(), "hlc": e.timestamp().to_string(), "kind": e.kind(), "data": data, "encrypted": encrypted }),
            || {
                format!(
                    "{} {time} {} {} {data}",
                    &commit[..12],
                    e.actor(),
                    e.kind()
                )
            },
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `millis` since the epoch as RFC 3339 in UTC, always with three
/// fraction digits (`2024-05-01T12:00:00.250Z`), so columns line up.
pub fn rfc3339(millis: u64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{millis}ms"))
}

/// What `--since`/`--until` accept, for error messages.
const BOUND_HELP: &str = "give a commit id of the log (full or abbreviated), a revspec such as \
refs/larder/<log>/wal~3, or a date: YYYY-MM-DD or RFC 3339 (2024-05-01T12:00:00Z)";

/// Parses a date (`YYYY-MM-DD`, midnight UTC, or RFC 3339) or resolves a
/// revision to a commit of `log`.
fn parse_bound(larder: &Larder, log: &Log, text: &str, flag: &str) -> Result<Bound, CliError> {
    if looks_like_date(text) {
        return parse_date(text).map(Bound::Time).ok_or_else(|| {
            CliError::usage(format!("{flag} {text:?} is not a valid date; {BOUND_HELP}"))
        });
    }
    let commit = resolve_rev(larder, log, text, flag)?;
    let in_log = log
        .wal()
        .tips()?
        .into_iter()
        .any(|tip| log.wal().is_ancestor(commit, tip).unwrap_or(false));
    if !in_log {
        return Err(CliError::usage(format!(
            "{flag} {text:?} is commit {commit}, which is not in log {}; {BOUND_HELP}",
            log.wal().log()
        )));
    }
    Ok(Bound::Commit(commit))
}

/// Whether `text` starts like a date (`NNNN-`), so that a bad one is
/// reported as a bad date rather than an unknown revision.
fn looks_like_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// Milliseconds since the epoch of `YYYY-MM-DD` (midnight UTC) or an RFC
/// 3339 time.
fn parse_date(text: &str) -> Option<i128> {
    let t = if text.len() == 10 {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(text, &format)
            .ok()?
            .midnight()
            .assume_utc()
    } else {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?
    };
    Some(t.unix_timestamp_nanos() / 1_000_000)
}

/// A commit id (full or abbreviated, among the log's commits) or any
/// revspec `git rev-parse` understands, peeled to a commit.
fn resolve_rev(larder: &Larder, log: &Log, text: &str, flag: &str) -> Result<ObjectId, CliError> {
    if text.len() == 40
        && let Ok(id) = ObjectId::from_hex(text.as_bytes())
    {
        return Ok(id);
    }
    if (4..40).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let prefix = text.to_ascii_lowercase();
        let mut found: Vec<ObjectId> = Vec::new();
        for c in log.wal().commits_since(None)? {
            let c = c?;
            if c.id.to_string().starts_with(&prefix) {
                found.push(c.id);
            }
        }
        return match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(CliError::usage(format!(
                "{flag} {text:?}: no commit of log {} starts with it; {BOUND_HELP}",
                log.wal().log()
            ))),
            many => Err(CliError::usage(format!(
                "{flag} {text:?} is ambiguous ({} commits of the log start with it); give more digits",
                many.len()
            ))),
        };
    }
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(larder.repo().git_dir())
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{text}^{{commit}}"))
        .output()
        .map_err(|e| {
            CliError::usage(format!(
                "{flag} {text:?}: resolving a revspec needs the git binary ({e}); give a commit id or a date instead"
            ))
        })?;
    let hex = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match (out.status.success(), ObjectId::from_hex(hex.as_bytes())) {
        (true, Ok(id)) => Ok(id),
        _ => Err(CliError::usage(format!(
            "{flag} {text:?} is not a revision of this repository; {BOUND_HELP}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_date("1970-01-01T00:00:01.5Z"), Some(1_500));
        assert_eq!(parse_date("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.500Z");
        assert!(looks_like_date("2024-01-01") && !looks_like_date("abcd-x"));
    }
}
