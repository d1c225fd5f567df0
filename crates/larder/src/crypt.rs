//! Encrypted logs (docs/encryption.md): a log key, payloads sealed with
//! XChaCha20-Poly1305, and the key's storage.
//!
//! An encrypted event is an ordinary event whose payload is a canonical
//! CBOR map of four entries:
//!
//! ```text
//! {"c": ciphertext, "k": key id (8 bytes), "n": nonce (24 bytes), "larder.enc": 1}
//! ```
//!
//! so everything below the facade — the WAL, sync, merge, snapshots of
//! events, `verify` — handles it without the key: the event id, actor,
//! clock and kind stay clear and the id hashes the *sealed* payload. The
//! ciphertext is bound to its event by the associated data (the log's
//! name, actor, timestamp, kind and key id), so moving it to another event
//! or log fails authentication.
//!
//! The nonce is derived, not drawn: the first 24 bytes of a keyed
//! BLAKE2b-256 of the associated data and the plaintext (the SIV
//! construction). Two different messages never share a nonce — every
//! event's actor and timestamp differ — and the same event sealed twice
//! (an import re-run) gets the same ciphertext and so the same event id.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::codec::{self, ActorId, Envelope, Payload, Timestamp, Value, blake2b256};
use crate::{LarderError, Result};

/// The environment variable holding log keys: one or more key lines
/// (`larder-key-v1:<log>:<64 hex>`) separated by white space. A line
/// naming a log takes precedence over that log's key file.
pub const KEY_ENV: &str = "LARDER_LOG_KEY";

/// The first field of a key line: the key-line format and its version.
pub const KEY_LINE_PREFIX: &str = "larder-key-v1";

/// The map key that marks a payload as sealed, with the format version
/// (1) as its value.
pub const SEALED_MARKER: &str = "larder.enc";

/// The sealed-payload format this build writes and reads.
pub const SEALED_VERSION: u64 = 1;

/// Bytes of a key id.
pub const KEY_ID_LEN: usize = 8;

/// Bytes of a nonce (XChaCha20).
const NONCE_LEN: usize = 24;

/// A log's 32-byte symmetric key. Its `Debug` shows only the key id.
#[derive(Clone, PartialEq, Eq)]
pub struct LogKey([u8; 32]);

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogKey(id {})", self.id())
    }
}

/// The public name of a key: the first 8 bytes of a hash of it, stored in
/// every sealed payload so that a reader holding another key says "wrong
/// key" instead of "corrupt".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&codec::to_hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl LogKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| LarderError::KeyFile {
            path: "the operating system's random source".into(),
            reason: e.to_string(),
        })?;
        Ok(Self(bytes))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        let h = blake2b256(&[b"larder.enc/1 key id\0", &self.0]);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&h[..KEY_ID_LEN]);
        KeyId(id)
    }

    /// The key as one line of text for log `log`:
    /// `larder-key-v1:<log>:<64 lowercase hex digits>`.
    pub fn to_line(&self, log: &str) -> String {
        format!("{KEY_LINE_PREFIX}:{log}:{}", codec::to_hex(&self.0))
    }

    /// Parses one key line into the log it is for and the key. `source`
    /// names where the text came from (a file, the environment) for the
    /// error, which says what is wrong with it.
    pub fn parse_line(text: &str, source: &str) -> Result<(String, Self)> {
        let bad = |reason: String| LarderError::KeyMalformed {
            origin: source.to_owned(),
            reason,
        };
        let text = text.trim();
        let mut parts = text.split(':');
        let (Some(prefix), Some(log), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(format!(
                "expected one line `{KEY_LINE_PREFIX}:<log>:<64 hex digits>`"
            )));
        };
        if prefix != KEY_LINE_PREFIX {
            return Err(bad(format!(
                "starts with {prefix:?}, expected {KEY_LINE_PREFIX:?}"
            )));
        }
        if log.is_empty() {
            return Err(bad("names no log".into()));
        }
        if hex.len() != 64 {
            return Err(bad(format!(
                "the key has {} characters, expected 64 hex digits (32 bytes)",
                hex.len()
            )));
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => bytes[i] = (hi * 16 + lo) as u8,
                _ => {
                    return Err(bad(format!(
                        "the key has a non-hex character near position {}",
                        i * 2
                    )));
                }
            }
        }
        Ok((log.to_owned(), Self(bytes)))
    }

    /// The subkey for one purpose, so the cipher key and the nonce key are
    /// independent.
    fn subkey(&self, purpose: &[u8]) -> [u8; 32] {
        blake2b256(&[b"larder.enc/1 subkey\0", purpose, b"\0", &self.0])
    }
}

/// What an event of a log holds, as far as this replica can read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// The payload: stored in the clear, or decrypted with the log key.
    Plain(Payload),
    /// Sealed with a key this replica does not hold.
    Encrypted {
        /// The id of the key it was sealed with.
        key_id: KeyId,
    },
}

/// One event of a log with its data as this replica reads it
/// ([`crate::Log::read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    /// The event as stored (for a sealed event, the payload is the sealed
    /// map; id, actor, timestamp and kind are the event's own).
    pub envelope: Envelope,
    /// Its data: plaintext, or a marker that it is encrypted.
    pub data: Data,
}

impl LogEvent {
    /// The plaintext payload, if this replica can read it.
    pub fn payload(&self) -> Option<&Payload> {
        match &self.data {
            Data::Plain(p) => Some(p),
            Data::Encrypted { .. } => None,
        }
    }

    /// Whether the data is sealed with a key this replica lacks.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.data, Data::Encrypted { .. })
    }
}

/// The parts of a sealed payload.
struct Sealed {
    version: u64,
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// Whether `payload` has the shape of a sealed payload (a map holding the
/// [`SEALED_MARKER`] key). Cheap: a byte-prefix test before any decoding.
pub fn is_sealed(payload: &Payload) -> bool {
    sealed_parts(payload).is_some()
}

/// The four-entry map with the marker, or `None` for any other payload.
fn sealed_parts(payload: &Payload) -> Option<Sealed> {
    // Canonical order puts the one-letter keys first: a4 61 63 = map(4), "c".
    if !payload.as_bytes().starts_with(&[0xa4, 0x61, 0x63]) {
        return None;
    }
    let Ok(Value::Map(entries)) = payload.to_value() else {
        return None;
    };
    let mut version = None;
    let mut key_id = None;
    let mut nonce = None;
    let mut ciphertext = None;
    for (k, v) in entries {
        match (k.as_text()?, v) {
            ("c", Value::Bytes(b)) => ciphertext = Some(b),
            ("k", Value::Bytes(b)) => key_id = Some(<[u8; KEY_ID_LEN]>::try_from(b).ok()?),
            ("n", Value::Bytes(b)) => nonce = Some(<[u8; NONCE_LEN]>::try_from(b).ok()?),
            (SEALED_MARKER, Value::Integer(i)) => version = Some(u64::try_from(i).ok()?),
            _ => return None,
        }
    }
    Some(Sealed {
        version: version?,
        key_id: KeyId(key_id?),
        nonce: nonce?,
        ciphertext: ciphertext?,
    })
}

/// The associated data of one sealed payload: canonical CBOR
/// `["larder.enc", 1, log, actor, [millis, counter], kind, key id]`.
fn associated_data(
    log: &str,
    actor: &ActorId,
    ts: Timestamp,
    kind: &str,
    key_id: KeyId,
) -> Result<Vec<u8>> {
    let value = Value::Array(vec![
        Value::Text(SEALED_MARKER.into()),
        Value::Integer(SEALED_VERSION.into()),
        Value::Text(log.into()),
        Value::Text(actor.as_str().into()),
        Value::Array(vec![
            Value::Integer(ts.millis.into()),
            Value::Integer(ts.counter.into()),
        ]),
        Value::Text(kind.into()),
        Value::Bytes(key_id.0.to_vec()),
    ]);
    Ok(Payload::from_value(value)?.as_bytes().to_vec())
}

/// Seals `plaintext` for the event (`log`, `actor`, `ts`, `kind`).
pub(crate) fn seal(
    key: &LogKey,
    log: &str,
    actor: &ActorId,
    ts: Timestamp,
    kind: &str,
    plaintext: &Payload,
) -> Result<Payload> {
    let key_id = key.id();
    let ad = associated_data(log, actor, ts, kind, key_id)?;
    let nonce_key = key.subkey(b"nonce");
    let derived = blake2b256(&[&nonce_key, &ad, plaintext.as_bytes()]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&derived[..NONCE_LEN]);
    let cipher = XChaCha20Poly1305::new(&key.subkey(b"cipher").into());
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            AeadPayload {
                msg: plaintext.as_bytes(),
                aad: &ad,
            },
        )
        .map_err(|_| LarderError::Encrypt {
            log: log.to_owned(),
            reason: "the cipher refused the payload (too long)".into(),
        })?;
    let map = Value::Map(vec![
        (Value::Text("c".into()), Value::Bytes(ciphertext)),
        (Value::Text("k".into()), Value::Bytes(key_id.0.to_vec())),
        (Value::Text("n".into()), Value::Bytes(nonce.to_vec())),
        (
            Value::Text(SEALED_MARKER.into()),
            Value::Integer(SEALED_VERSION.into()),
        ),
    ]);
    Ok(Payload::from_value(map)?)
}

/// Reads one event of `log`: a clear payload as is, a sealed one opened
/// with `key` — or, without a key, marked [`Data::Encrypted`].
///
/// With a key, a payload sealed under another key is
/// [`LarderError::WrongKey`] and one that fails authentication (tampered,
/// or moved from another event or log) is [`LarderError::Decrypt`], both
/// naming the event.
pub(crate) fn open(key: Option<&LogKey>, log: &str, event: &Envelope) -> Result<Data> {
    let Some(sealed) = sealed_parts(event.payload()) else {
        return Ok(Data::Plain(event.payload().clone()));
    };
    let Some(key) = key else {
        return Ok(Data::Encrypted {
            key_id: sealed.key_id,
        });
    };
    let failed = |reason: &str| LarderError::Decrypt {
        log: log.to_owned(),
        event: event.id().to_hex(),
        reason: reason.to_owned(),
    };
    if sealed.version != SEALED_VERSION {
        return Err(failed(&format!(
            "sealed with format version {}, this build reads version {SEALED_VERSION}",
            sealed.version
        )));
    }
    if sealed.key_id != key.id() {
        return Err(LarderError::WrongKey {
            log: log.to_owned(),
            event: event.id().to_hex(),
            sealed_with: sealed.key_id.to_string(),
            have: key.id().to_string(),
        });
    }
    let ad = associated_data(
        log,
        event.actor(),
        event.timestamp(),
        event.kind(),
        sealed.key_id,
    )?;
    let cipher = XChaCha20Poly1305::new(&key.subkey(b"cipher").into());
    let plaintext = cipher
        .decrypt(
            &XNonce::from(sealed.nonce),
            AeadPayload {
                msg: &sealed.ciphertext,
                aad: &ad,
            },
        )
        .map_err(|_| {
            failed("authentication failed: the ciphertext was changed or belongs to another event or log")
        })?;
    let payload = Payload::from_canonical_bytes(plaintext)
        .map_err(|e| failed(&format!("the decrypted payload is not canonical CBOR: {e}")))?;
    Ok(Data::Plain(payload))
}

/// Reads a log's events with the key this replica has for it (if any);
/// from [`crate::Log::decryptor`].
#[derive(Debug, Clone)]
pub struct Decryptor {
    pub(crate) log: String,
    pub(crate) key: Option<LogKey>,
}

impl Decryptor {
    /// The event's data: see [`Data`]. Never an error without a key; with
    /// one, a wrong key or a failed authentication is a typed error naming
    /// the event.
    pub fn open(&self, event: &Envelope) -> Result<Data> {
        open(self.key.as_ref(), &self.log, event)
    }

    /// The event as a projection should see it: decrypted (an
    /// [`Envelope::opened`] view keeping the stored id) when this replica
    /// holds the key, else as stored.
    pub fn view(&self, event: &Envelope) -> Result<Envelope> {
        match self.open(event)? {
            Data::Plain(p) if is_sealed(event.payload()) => Ok(event.opened(p)),
            _ => Ok(event.clone()),
        }
    }

    /// Whether this replica holds the log's key.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }
}

/// Where one log's key and encryption marker live:
/// `<git dir>/larder/keys/<log>.key` (mode 0600) and
/// `<git dir>/larder/keys/<log>.encrypted`.
#[derive(Debug, Clone)]
pub(crate) struct KeyStore {
    dir: PathBuf,
    log: String,
}

impl KeyStore {
    pub(crate) fn new(git_dir: &Path, log: &str) -> Self {
        Self {
            dir: git_dir.join("larder").join("keys"),
            log: log.to_owned(),
        }
    }

    pub(crate) fn key_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key", self.log))
    }

    fn marker_path(&self) -> PathBuf {
        self.dir.join(format!("{}.encrypted", self.log))
    }

    /// The key from [`KEY_ENV`] (a line naming this log), else from the
    /// key file; `None` if neither has one. A malformed entry of either is
    /// [`LarderError::KeyMalformed`] naming it.
    pub(crate) fn load(&self) -> Result<Option<LogKey>> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            for (i, line) in text.split_whitespace().enumerate() {
                let (log, key) = LogKey::parse_line(line, &format!("{KEY_ENV} (entry {i})"))?;
                if log == self.log {
                    return Ok(Some(key));
                }
            }
        }
        self.load_file()
    }

    /// The key file's key, if the file exists.
    fn load_file(&self) -> Result<Option<LogKey>> {
        let path = self.key_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(LarderError::KeyFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        let source = path.display().to_string();
        let (log, key) = LogKey::parse_line(&text, &source)?;
        if log != self.log {
            return Err(LarderError::KeyMalformed {
                origin: source,
                reason: format!("it holds the key of log {log:?}, not of {:?}", self.log),
            });
        }
        Ok(Some(key))
    }

    /// Whether this replica knows the log is encrypted (marker file).
    pub(crate) fn marked(&self) -> bool {
        self.marker_path().exists()
    }

    /// Records that the log is encrypted, so this replica never appends
    /// plaintext to it again.
    pub(crate) fn mark(&self) -> Result<()> {
        self.write_file(
            &self.marker_path(),
            b"this log is encrypted (docs/encryption.md)\n",
        )
    }

    /// Stores `key` as the log's key file (0600), atomically. An existing
    /// file with the same key is fine; with another key it is
    /// [`LarderError::KeyExists`] — replacing it would make the events
    /// sealed with it unreadable here.
    pub(crate) fn install(&self, key: &LogKey) -> Result<()> {
        let path = self.key_path();
        if path.exists() {
            return match self.load_file()? {
                Some(existing) if existing == *key => self.mark(),
                _ => Err(LarderError::KeyExists {
                    log: self.log.clone(),
                    path: path.display().to_string(),
                }),
            };
        }
        self.write_file(&path, format!("{}\n", key.to_line(&self.log)).as_bytes())?;
        self.mark()
    }

    /// Writes `bytes` to `path` atomically, owner-only (0600 on unix; the
    /// directory 0700).
    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let fail = |e: std::io::Error| LarderError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(fail)?;
        }
        // tempfile creates its files 0600 on unix.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(fail)?;
        tmp.write_all(bytes).map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        tmp.persist(path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> LogKey {
        LogKey::from_bytes([b; 32])
    }

    #[test]
    fn key_lines_round_trip_and_bad_ones_are_named() {
        let k = key(7);
        let line = k.to_line("notes");
        assert_eq!(
            LogKey::parse_line(&line, "x").ok(),
            Some(("notes".to_owned(), k))
        );
        for bad in [
            "",
            "larder-key-v1:notes",
            "larder-key-v2:notes:00",
            "larder-key-v1::0000000000000000000000000000000000000000000000000000000000000000",
            "larder-key-v1:notes:00",
            "larder-key-v1:notes:zz00000000000000000000000000000000000000000000000000000000000000",
        ] {
            match LogKey::parse_line(bad, "the file f") {
                Err(LarderError::KeyMalformed { origin, .. }) => assert_eq!(origin, "the file f"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn seal_then_open_and_the_binding_holds() -> Result<()> {
        let actor = ActorId::new("alice")?;
        let ts = Timestamp::new(1_700_000_000_000, 0);
        let plain = Payload::from_serde(&"secret")?;
        let sealed = seal(&key(1), "notes", &actor, ts, "note", &plain)?;
        assert!(is_sealed(&sealed));
        // Deterministic: the same event seals to the same bytes.
        assert_eq!(sealed, seal(&key(1), "notes", &actor, ts, "note", &plain)?);
        let event = Envelope::new(actor.clone(), ts, "note", sealed.clone())?;
        assert_eq!(open(Some(&key(1)), "notes", &event)?, Data::Plain(plain));
        assert!(matches!(
            open(None, "notes", &event)?,
            Data::Encrypted { key_id } if key_id == key(1).id()
        ));
        assert!(matches!(
            open(Some(&key(2)), "notes", &event),
            Err(LarderError::WrongKey { .. })
        ));
        // Moved to another log, or to another kind: authentication fails.
        assert!(matches!(
            open(Some(&key(1)), "other", &event),
            Err(LarderError::Decrypt { .. })
        ));
        let moved = Envelope::new(actor, ts, "other.kind", sealed)?;
        assert!(matches!(
            open(Some(&key(1)), "notes", &moved),
            Err(LarderError::Decrypt { .. })
        ));
        Ok(())
    }

    #[test]
    fn opened_envelopes_cannot_be_encoded() -> Result<()> {
        let actor = ActorId::new("alice")?;
        let ts = Timestamp::new(1, 0);
        let sealed = seal(&key(1), "l", &actor, ts, "k", &Payload::from_serde(&1)?)?;
        let event = Envelope::new(actor, ts, "k", sealed)?;
        let d = Decryptor {
            log: "l".into(),
            key: Some(key(1)),
        };
        let view = d.view(&event)?;
        assert_eq!(view.id(), event.id());
        assert!(view.is_opened());
        assert!(matches!(
            codec::encode_chunk(&[view]),
            Err(codec::CodecError::OpenedEnvelope { index: 0 })
        ));
        Ok(())
    }
}
