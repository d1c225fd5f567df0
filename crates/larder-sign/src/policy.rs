//! The trust policy: which public keys speak for which actor, and whether
//! every event must be signed — larder's counterpart of git's
//! `gpg.ssh.allowedSignersFile`.
//!
//! File format, one entry per line:
//!
//! ```text
//! # comments and blank lines are ignored
//! alice ed25519:3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c
//! alice ed25519:<a second key: both are accepted (rotation)>
//! ```
//!
//! An actor may have several keys; an entry's order does not matter.
//! Anything else on a line is an error naming the file and line.

use std::io::Write;
use std::path::{Path, PathBuf};

use larder_codec::{ActorId, Envelope};

use crate::error::io;
use crate::signature::{decode_signature, key_id_hex};
use crate::{PublicKey, Result, SignError, SignatureProblem};

/// One trusted (actor, key) pair, with the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustEntry {
    /// The actor.
    pub actor: ActorId,
    /// A key trusted to sign its events.
    pub key: PublicKey,
    /// The policy file's line (1-based; 0 for an entry added in memory).
    pub line: usize,
}

/// Trusted keys per actor, and whether signatures are required.
///
/// [`TrustPolicy::check`] decides on one event:
///
/// | event | required | not required |
/// |---|---|---|
/// | unsigned | refused | accepted |
/// | slot not a larder signature | refused | accepted |
/// | signed, no key trusted for the actor | refused | accepted |
/// | signed by a key not trusted for the actor | refused | accepted |
/// | signed under a trusted key, does not verify | refused | refused |
/// | signed under a trusted key, verifies | accepted | accepted |
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    path: Option<PathBuf>,
    entries: Vec<TrustEntry>,
    required: bool,
}

impl TrustPolicy {
    /// No keys trusted, signatures not required: checks nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the policy file at `path`; a file that does not exist is an
    /// empty policy. Signatures are not required until
    /// [`TrustPolicy::require_signatures`] says so.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                path: Some(path.to_path_buf()),
                ..Self::default()
            }),
            Err(e) => Err(io(path, &e)),
        }
    }

    /// Parses a policy file's text; `path` names it in errors
    /// ([`SignError::BadPolicyLine`] with the line number).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut entries = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            if let Some(entry) = parse_line(raw, n + 1, path)? {
                entries.push(entry);
            }
        }
        Ok(Self {
            path: Some(path.to_path_buf()),
            entries,
            required: false,
        })
    }

    /// The same policy, requiring (or not) every event to be signed by a
    /// key trusted for its actor.
    pub fn require_signatures(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// Whether every event must be signed by a trusted key.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The file the policy was read from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every trusted (actor, key) pair, in file order.
    pub fn entries(&self) -> &[TrustEntry] {
        &self.entries
    }

    /// Trusts `key` for `actor` in this in-memory policy (no file is
    /// written; see [`TrustPolicy::add_to_file`]). Returns false if it was
    /// already trusted.
    pub fn trust(&mut self, actor: ActorId, key: PublicKey) -> bool {
        if self.trusts(&actor, &key) {
            return false;
        }
        self.entries.push(TrustEntry {
            actor,
            key,
            line: 0,
        });
        true
    }

    /// Whether `key` is trusted for `actor`.
    pub fn trusts(&self, actor: &ActorId, key: &PublicKey) -> bool {
        self.entries
            .iter()
            .any(|e| &e.actor == actor && &e.key == key)
    }

    /// The keys trusted for `actor`.
    pub fn keys_for<'a>(&'a self, actor: &'a str) -> impl Iterator<Item = &'a PublicKey> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.actor.as_str() == actor)
            .map(|e| &e.key)
    }

    /// Whether checking events under this policy can refuse anything: it
    /// requires signatures or trusts at least one key. A pull with an
    /// inactive policy checks nothing.
    pub fn is_active(&self) -> bool {
        self.required || !self.entries.is_empty()
    }

    /// Decides on one event (see the table on [`TrustPolicy`]): the key
    /// that verified it (`None` for an event accepted without one), or the
    /// problem.
    pub fn check(
        &self,
        event: &Envelope,
    ) -> std::result::Result<Option<PublicKey>, SignatureProblem> {
        let actor = event.actor().as_str();
        let Some(bytes) = event.signature() else {
            return if self.required {
                Err(SignatureProblem::Unsigned {
                    actor: actor.into(),
                })
            } else {
                Ok(None)
            };
        };
        let (key_id, sig) = match decode_signature(bytes) {
            Ok(parts) => parts,
            Err(reason) if self.required => {
                return Err(SignatureProblem::Malformed {
                    actor: actor.into(),
                    reason,
                });
            }
            Err(_) => return Ok(None),
        };
        let mut trusted = self.keys_for(actor).peekable();
        if trusted.peek().is_none() {
            return if self.required {
                Err(SignatureProblem::UntrustedActor {
                    actor: actor.into(),
                })
            } else {
                Ok(None)
            };
        }
        let mut claimed = None;
        for key in trusted.filter(|k| k.key_id() == key_id) {
            if key.verifies(event.id(), &sig) {
                return Ok(Some(*key));
            }
            claimed.get_or_insert(*key);
        }
        match claimed {
            Some(key) => Err(SignatureProblem::BadSignature {
                actor: actor.into(),
                key: Box::new(key),
            }),
            None if self.required => Err(SignatureProblem::UntrustedKey {
                actor: actor.into(),
                key_id: key_id_hex(&key_id),
            }),
            None => Ok(None),
        }
    }

    /// Adds `actor key` as a new last line of the policy file at `path`
    /// (created if missing), keeping every other line as it was. The
    /// existing file must parse (a bad line is reported, nothing written).
    /// Returns false, writing nothing, if the pair was already trusted.
    pub fn add_to_file(path: &Path, actor: &ActorId, key: &PublicKey) -> Result<bool> {
        let text = read_or_empty(path)?;
        if Self::parse(&text, path)?.trusts(actor, key) {
            return Ok(false);
        }
        let mut text = text;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{actor} {key}\n"));
        write_atomically(path, &text)?;
        Ok(true)
    }

    /// Removes `actor`'s entry for `key` (every entry of `actor` when `key`
    /// is `None`) from the policy file at `path`, keeping every other line
    /// as it was. Returns how many entries were removed. Events already in
    /// the log stay; only later pulls are affected.
    pub fn remove_from_file(
        path: &Path,
        actor: &ActorId,
        key: Option<&PublicKey>,
    ) -> Result<usize> {
        let text = read_or_empty(path)?;
        let mut kept = String::with_capacity(text.len());
        let mut removed = 0;
        for (n, raw) in text.lines().enumerate() {
            let drop = parse_line(raw, n + 1, path)?
                .is_some_and(|e| &e.actor == actor && key.is_none_or(|k| *k == e.key));
            if drop {
                removed += 1;
            } else {
                kept.push_str(raw);
                kept.push('\n');
            }
        }
        if removed > 0 {
            write_atomically(path, &kept)?;
        }
        Ok(removed)
    }
}

/// One line of a policy file: `None` for a blank line or a comment.
fn parse_line(raw: &str, line: usize, path: &Path) -> Result<Option<TrustEntry>> {
    let bad = |reason: String| SignError::BadPolicyLine {
        path: path.display().to_string(),
        line,
        reason,
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let [actor, key] = fields.as_slice() else {
        return Err(bad(format!(
            "expected `<actor> <public key>`, found {} fields",
            fields.len()
        )));
    };
    let actor = ActorId::new(*actor).map_err(|e| bad(e.to_string()))?;
    let key: PublicKey = key.parse().map_err(|e: SignError| bad(e.to_string()))?;
    Ok(Some(TrustEntry { actor, key, line }))
}

fn read_or_empty(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(io(path, &e)),
    }
}

/// Replaces `path` with `text` (temp file, fsync, rename): a reader sees
/// the old file or the new one, never half of it.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io(dir, &e))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io(tmp.path(), &e))?;
    tmp.persist(path).map_err(|e| io(path, &e.error))?;
    Ok(())
}
