//! WAL format 2: a commit's record in its message trailers.
//!
//! Format 1 stored the record in a `meta.json` blob beside a date-sharded
//! `events/YYYY/MM/DD/<chunk>.bin` tree: eight objects for one append, of
//! which only the chunk carries events — on disk 1.1 kB per single-event
//! append, a fifth of it in the pack index alone (28 bytes per object).
//! Format 2 writes three: the chunk blob, a root tree naming it
//! `<chunk-id>.bin`, and the commit, whose message ends in trailers that
//! `git log` shows as they are:
//!
//! ```text
//! larder: append 1 event by alice
//!
//! Larder-Format: 2
//! Larder-Actor: alice
//! Larder-Events: 1
//! Larder-Generation: 17
//! ```
//!
//! A merge's tree is the empty tree, its trailers only `Larder-Format` and
//! `Larder-Generation`; its parents are the commit's own parent lines (format
//! 1 listed them a second time in `meta.json`). The previous commit is the
//! first parent and the chunk id the entry's name, so nothing is stored
//! twice. A commit without a `Larder-Format` trailer is format 1.

use larder_git::ObjectId;

use crate::meta::{CommitKind, Meta, WalFormat};
use crate::walk::GENERATION_TRAILER;
use crate::{Result, WalError};

/// The trailer naming a commit's format (2 and later; absent in format 1).
pub const FORMAT_TRAILER: &str = "Larder-Format";
/// The trailer naming the actor of an append (format 2).
pub const ACTOR_TRAILER: &str = "Larder-Actor";
/// The trailer counting the events of an append's chunk (format 2).
pub const EVENTS_TRAILER: &str = "Larder-Events";

/// The trailer paragraph of a message: the lines after its last blank line.
pub(crate) fn trailer_lines(message: &str) -> impl Iterator<Item = &str> {
    let body = message.trim_end_matches('\n');
    let last = body.rfind("\n\n").map_or(body, |at| &body[at + 2..]);
    last.lines()
}

/// The format of a commit, read from its message: the value of its
/// `Larder-Format` trailer, or 1 when it has none. A value this build does
/// not read is [`WalError::UnsupportedFormat`].
pub(crate) fn format_of(commit: ObjectId, message: &str) -> Result<WalFormat> {
    let prefix = format!("{FORMAT_TRAILER}: ");
    let Some(value) = trailer_lines(message).find_map(|l| l.strip_prefix(&prefix)) else {
        return Ok(WalFormat::V1);
    };
    let found = canonical_number(value).ok_or_else(|| WalError::BadMeta {
        commit,
        reason: format!("{FORMAT_TRAILER} {value:?} is not a number"),
    })?;
    match found {
        2 => Ok(WalFormat::V2),
        1 => Err(WalError::BadMeta {
            commit,
            reason: format!("format 1 carries no {FORMAT_TRAILER} trailer"),
        }),
        _ => Err(WalError::UnsupportedFormat {
            commit,
            found: u32::try_from(found).unwrap_or(u32::MAX),
            supported: WalFormat::NEWEST.version(),
        }),
    }
}

/// `value` as a number, if it is written as larder writes numbers: decimal
/// digits, no sign, no leading zero — one record has one spelling.
pub(crate) fn canonical_number(value: &str) -> Option<u64> {
    value.parse::<u64>().ok().filter(|n| n.to_string() == value)
}

/// The record of a format-2 commit, from its message and parents: every
/// trailer must be one larder writes, once, in larder's order, with a
/// valid value (the generation included, which the walk reads); an append
/// names its actor and event count and has at most one parent, a merge
/// names neither and has two or more. The chunk id is not in
/// the message — the caller fills it in from the tree.
pub(crate) fn parse(commit: ObjectId, message: &str, parents: &[ObjectId]) -> Result<Meta> {
    let bad = |reason: String| WalError::BadMeta { commit, reason };
    let mut format = None;
    let mut actor = None;
    let mut events = None;
    let mut generation = None;
    let mut order = Vec::with_capacity(4);
    for line in trailer_lines(message) {
        let (key, value) = line
            .split_once(": ")
            .ok_or_else(|| bad(format!("trailer line {line:?} is not `Key: value`")))?;
        order.push(key);
        let slot = match key {
            FORMAT_TRAILER => &mut format,
            ACTOR_TRAILER => &mut actor,
            EVENTS_TRAILER => &mut events,
            GENERATION_TRAILER => &mut generation,
            other => return Err(bad(format!("unknown trailer {other:?}"))),
        };
        if slot.replace(value).is_some() {
            return Err(bad(format!("trailer {key} appears twice")));
        }
    }
    if format != Some("2") {
        return Err(bad(format!(
            "{FORMAT_TRAILER} is {format:?}, expected \"2\""
        )));
    }
    let kind = match (actor, events) {
        (Some(_), Some(_)) => CommitKind::Append,
        (None, None) => CommitKind::Merge,
        _ => {
            return Err(bad(format!(
                "an append names both {ACTOR_TRAILER} and {EVENTS_TRAILER}, a merge neither"
            )));
        }
    };
    let expected: &[&str] = match kind {
        CommitKind::Append => &[
            FORMAT_TRAILER,
            ACTOR_TRAILER,
            EVENTS_TRAILER,
            GENERATION_TRAILER,
        ],
        CommitKind::Merge => &[FORMAT_TRAILER, GENERATION_TRAILER],
    };
    if order != expected {
        return Err(bad(format!(
            "trailers {order:?}, expected {expected:?} in that order"
        )));
    }
    if generation.and_then(canonical_number).is_none_or(|g| g == 0) {
        return Err(bad(format!(
            "{GENERATION_TRAILER} {generation:?} is not a generation"
        )));
    }
    match (kind, parents.len()) {
        (CommitKind::Append, 0 | 1) | (CommitKind::Merge, 2..) => {}
        (CommitKind::Append, n) => {
            return Err(bad(format!(
                "an append has at most one parent, this has {n}"
            )));
        }
        (CommitKind::Merge, n) => {
            return Err(bad(format!(
                "a merge has two parents or more, this has {n}"
            )));
        }
    }
    let events = events
        .map(|n| {
            canonical_number(n).ok_or_else(|| bad(format!("{EVENTS_TRAILER} {n:?} is not a count")))
        })
        .transpose()?;
    let meta = Meta {
        format: WalFormat::V2.version(),
        kind,
        actor: actor.unwrap_or(crate::wal::MERGE_ACTOR).to_string(),
        chunk: None,
        events,
        previous: parents.first().map(ToString::to_string),
        merged: parents.iter().skip(1).map(ToString::to_string).collect(),
    };
    Ok(meta)
}

/// The message of a format-2 append, up to (not including) its generation
/// trailer.
pub(crate) fn append_message(events: usize, actor: &str) -> String {
    format!(
        "larder: append {events} event{} by {actor}\n\n{FORMAT_TRAILER}: 2\n{ACTOR_TRAILER}: {actor}\n{EVENTS_TRAILER}: {events}\n",
        if events == 1 { "" } else { "s" },
    )
}

/// The message of a format-2 merge of `heads` heads, up to (not including)
/// its generation trailer.
pub(crate) fn merge_message(heads: usize) -> String {
    format!("larder: merge {heads} heads\n\n{FORMAT_TRAILER}: 2\n")
}

/// Appends the generation trailer to a format-2 message (its last trailer,
/// in the same paragraph).
pub(crate) fn with_generation(message: &str, generation: u64) -> String {
    format!("{message}{GENERATION_TRAILER}: {generation}\n")
}
