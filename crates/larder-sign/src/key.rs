//! Keys: [`SigningKey`] (secret, kept in a 0600 file) and [`PublicKey`]
//! (the text form `ed25519:<64 hex digits>` that `larder key show` prints
//! and the trust policy lists).

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::Signer;
use larder_codec::{Envelope, EventId, to_hex};

use crate::error::io;
use crate::signature::{KEY_ID_LEN, SIGNATURE_SCHEME, signed_message};
use crate::{Result, SignError};

/// The prefix of a public key's text form.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";
/// The prefix of the key line in a signing key file.
pub const KEY_FILE_PREFIX: &str = "ed25519-secret:";

/// An ed25519 public key: what a trust policy lists for an actor.
///
/// Text form: `ed25519:` and 64 lowercase hex digits (the 32-byte
/// compressed point); parsing also takes the bare hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key id a signature carries: the key's first 8 bytes.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&self.0.as_bytes()[..KEY_ID_LEN]);
        id
    }

    /// Whether `signature` (64 bytes) signs event `id` under this key.
    /// Strict verification: small-order keys and non-canonical signatures
    /// are refused, so a signature has one valid encoding.
    pub fn verifies(&self, id: EventId, signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(&signed_message(id), &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_KEY_PREFIX}{}", to_hex(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = SignError;
    fn from_str(text: &str) -> Result<Self> {
        let bad = |reason: &str| SignError::BadPublicKey {
            text: text.into(),
            reason: reason.into(),
        };
        let hex = text.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(text);
        let bytes = parse_hex32(hex).ok_or_else(|| {
            bad("expected ed25519: and 64 hex digits, as `larder key show` prints")
        })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| bad("not a point on the ed25519 curve"))?;
        if key.is_weak() {
            return Err(bad("a weak (small-order) key, which anyone could sign for"));
        }
        Ok(Self(key))
    }
}

/// 64 hex digits (either case) as 32 bytes.
pub(crate) fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// An ed25519 secret key. Never printed (its `Debug` shows the public
/// key), wiped from memory on drop.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

impl SigningKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| SignError::Random(e.to_string()))?;
        let key = Self::from_seed(seed);
        seed.fill(0);
        Ok(key)
    }

    /// The key whose 32-byte secret seed is `seed` (tests use fixed seeds).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature-slot bytes for event `id`: scheme byte, key id, and
    /// the ed25519 signature of [`signed_message`]`(id)`.
    pub fn signature_for(&self, id: EventId) -> Vec<u8> {
        let sig = self.0.sign(&signed_message(id)).to_bytes();
        let mut out = Vec::with_capacity(crate::SIGNATURE_LEN);
        out.push(SIGNATURE_SCHEME);
        out.extend_from_slice(&self.public_key().key_id());
        out.extend_from_slice(&sig);
        out
    }

    /// `envelope`, signed (its event id is unchanged).
    pub fn sign(&self, envelope: Envelope) -> Envelope {
        let sig = self.signature_for(envelope.id());
        envelope.with_signature(sig)
    }

    /// Reads the key file at `path` (see [`SigningKey::parse`]). On Unix a
    /// file that its group or others may read or write is refused
    /// ([`SignError::KeyPermissions`]).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| io(path, &e))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(SignError::KeyPermissions {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        Self::parse(&text, path)
    }

    /// Parses a key file's text: blank lines and `#` comments, and exactly
    /// one line `ed25519-secret:<64 hex digits>` (the secret seed). `path`
    /// only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |line: usize, reason: String| SignError::MalformedKey {
            path: path.display().to_string(),
            line,
            reason,
        };
        let mut found = None;
        let mut last = 0;
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            last = line;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some(hex) = trimmed.strip_prefix(KEY_FILE_PREFIX) else {
                return Err(bad(
                    line,
                    format!("expected {KEY_FILE_PREFIX}<64 hex digits> (a larder signing key)"),
                ));
            };
            if found.is_some() {
                return Err(bad(line, "a second key: a key file holds one".into()));
            }
            let seed = parse_hex32(hex).ok_or_else(|| {
                bad(
                    line,
                    format!("the secret is {} characters, not 64 hex digits", hex.len()),
                )
            })?;
            found = Some(Self::from_seed(seed));
        }
        found.ok_or_else(|| bad(last.max(1), "no key in the file".into()))
    }

    /// The key file's text (secret!): a comment naming the public key,
    /// then the key line.
    pub fn to_file_text(&self) -> String {
        format!(
            "# larder signing key: keep this file secret (mode 0600)\n# public {}\n{KEY_FILE_PREFIX}{}\n",
            self.public_key(),
            to_hex(self.0.as_bytes())
        )
    }

    /// Writes the key to a new file at `path` (parent directories created),
    /// readable and writable by its owner only (0600 on Unix) from the
    /// moment it exists, and synced to disk. An existing file is never
    /// overwritten ([`SignError::KeyExists`]).
    pub fn save_new(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(".key-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o600));
        }
        let mut tmp = builder.tempfile_in(dir).map_err(|e| io(dir, &e))?;
        tmp.write_all(self.to_file_text().as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| io(tmp.path(), &e))?;
        match tmp.persist_noclobber(path) {
            Ok(_) => Ok(()),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(SignError::KeyExists {
                    path: path.display().to_string(),
                })
            }
            Err(e) => Err(io(path, &e.error)),
        }
    }
}
