//! `meta.json`: the small JSON record at the root of every WAL commit.

use larder_git::ObjectId;
use serde::{Deserialize, Serialize};

use crate::{Result, WalError};

/// The largest `meta.json` a reader inflates: 4 MiB. An append's is a few
/// hundred bytes; a merge's lists every parent (~45 bytes each), so this
/// admits merges of ~90,000 heads at once — and a merge that would be
/// larger is refused when written, so writer and reader agree.
pub const MAX_META_LEN: u64 = 4 << 20;

/// The newest WAL commit format, which this build writes by default; it
/// reads every format up to this one ([`WalFormat`]).
pub const WAL_FORMAT_VERSION: u32 = 2;

/// The commit format a [`WalManager`](crate::WalManager) writes. Every
/// build reads both; a build older than format 2 refuses format-2 commits
/// (as a bad tree), so a log shared with older builds keeps writing
/// [`WalFormat::V1`] until every replica is upgraded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WalFormat {
    /// Format 1: the record in a `meta.json` blob and the chunk at
    /// `events/YYYY/MM/DD/<chunk-id>.bin` — eight objects per append.
    V1,
    /// Format 2: the record in the commit message's trailers and the chunk
    /// at `<chunk-id>.bin` — three objects per append; a merge's tree is
    /// empty (see `trailers.rs` and docs/format.md).
    #[default]
    V2,
}

impl WalFormat {
    /// The newest format this build reads and writes.
    pub const NEWEST: WalFormat = WalFormat::V2;

    /// The format's version number.
    pub fn version(self) -> u32 {
        match self {
            WalFormat::V1 => 1,
            WalFormat::V2 => 2,
        }
    }

    /// The format numbered `version`, if this build knows it.
    pub fn from_version(version: u32) -> Option<Self> {
        match version {
            1 => Some(WalFormat::V1),
            2 => Some(WalFormat::V2),
            _ => None,
        }
    }
}

/// Whether a WAL commit adds a chunk or joins histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitKind {
    /// Adds one chunk of events.
    Append,
    /// Joins two or more heads; adds no events (the union is the merge).
    Merge,
}

/// A WAL commit's record: in format 1 the contents of `meta.json` (field
/// order is fixed, so equal records serialise to equal bytes); in format 2
/// read from the commit's trailers, parents and tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The commit's WAL format version (1 or 2).
    pub format: u32,
    /// Append or merge.
    pub kind: CommitKind,
    /// The actor that wrote the commit.
    pub actor: String,
    /// Chunk id (hex) of an append; absent for merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<String>,
    /// Number of events in the chunk; absent for merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// The previous WAL commit (the first parent), or null for the first.
    pub previous: Option<String>,
    /// The other parents of a merge, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
}

impl Meta {
    /// Serialises to the exact bytes stored in `meta.json`.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses `meta.json` of `commit`, checking the format version first so
    /// a future format is reported as such rather than as garbage.
    pub fn parse(commit: ObjectId, bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| WalError::BadMeta { commit, reason };
        // Fast path: a record of this format parses straight into `Meta`
        // (going through a `serde_json::Value` first cost a map per commit).
        if let Ok(meta) = serde_json::from_slice::<Meta>(bytes)
            && meta.format == 1
        {
            return Ok(meta);
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let format = value
            .get("format")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad("no numeric \"format\" field".into()))?;
        if format == 2 {
            return Err(bad(
                "format 2 keeps its record in trailers, not meta.json".into()
            ));
        }
        if format != 1 {
            return Err(WalError::UnsupportedFormat {
                commit,
                found: u32::try_from(format).unwrap_or(u32::MAX),
                supported: WAL_FORMAT_VERSION,
            });
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }

    /// Checks that the record agrees with the commit's actual parents.
    pub fn check_parents(&self, commit: ObjectId, parents: &[ObjectId]) -> Result<()> {
        let expected_previous = parents.first().map(ToString::to_string);
        let merged: Vec<String> = parents.iter().skip(1).map(ToString::to_string).collect();
        if self.previous != expected_previous || self.merged != merged {
            return Err(WalError::BadMeta {
                commit,
                reason: "previous/merged do not match the commit's parents".into(),
            });
        }
        match (self.kind, self.chunk.is_some(), parents.len()) {
            (CommitKind::Append, true, 0 | 1) => Ok(()),
            // A merge adds no events: a claimed count would mislead every
            // count read from meta.json (reports, snapshot policies).
            (CommitKind::Merge, false, 2..) if self.events.unwrap_or(0) != 0 => {
                Err(WalError::BadMeta {
                    commit,
                    reason: format!(
                        "a merge commit claims {} events; merges carry none",
                        self.events.unwrap_or(0)
                    ),
                })
            }
            (CommitKind::Merge, false, 2..) => Ok(()),
            _ => Err(WalError::BadMeta {
                commit,
                reason: "an append has one chunk and at most one parent; a merge has no chunk and several parents".into(),
            }),
        }
    }
}
