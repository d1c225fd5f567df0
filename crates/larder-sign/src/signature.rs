//! The signature slot's encoding and what can be wrong with an event's
//! signature.

use std::fmt;

use larder_codec::{EventId, to_hex};

use crate::PublicKey;

/// What an ed25519 signature signs: this prefix, then the 32-byte event
/// id. The prefix keeps a larder signature from ever being valid for some
/// other protocol's message that happens to be 32 bytes (and vice versa).
pub const SIGNING_DOMAIN: &[u8] = b"larder-sig-v1\0";
/// The first byte of the signature slot: scheme 1 is ed25519 over
/// [`SIGNING_DOMAIN`] and the event id.
pub const SIGNATURE_SCHEME: u8 = 1;
/// Bytes of the signer's public key carried as its key id.
pub const KEY_ID_LEN: usize = 8;
/// The signature slot's length: scheme byte, key id, 64-byte signature.
pub const SIGNATURE_LEN: usize = 1 + KEY_ID_LEN + 64;

/// The message signed for event `id`: [`SIGNING_DOMAIN`] then the id.
pub fn signed_message(id: EventId) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_DOMAIN.len() + 32);
    msg.extend_from_slice(SIGNING_DOMAIN);
    msg.extend_from_slice(&id.0);
    msg
}

/// Splits a signature slot into (key id, signature), or says why it is not
/// a larder signature.
pub fn decode_signature(bytes: &[u8]) -> Result<([u8; KEY_ID_LEN], [u8; 64]), String> {
    if bytes.len() != SIGNATURE_LEN {
        return Err(format!(
            "{} bytes, a larder signature has {SIGNATURE_LEN}",
            bytes.len()
        ));
    }
    if bytes[0] != SIGNATURE_SCHEME {
        return Err(format!(
            "unknown signature scheme {} (this build knows {SIGNATURE_SCHEME}, ed25519)",
            bytes[0]
        ));
    }
    let mut id = [0; KEY_ID_LEN];
    id.copy_from_slice(&bytes[1..1 + KEY_ID_LEN]);
    let mut sig = [0; 64];
    sig.copy_from_slice(&bytes[1 + KEY_ID_LEN..]);
    Ok((id, sig))
}

/// Why an event's signature is not acceptable under a trust policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureProblem {
    /// No signature, and the policy requires one.
    Unsigned {
        /// The event's actor.
        actor: String,
    },
    /// The slot holds bytes that are not a larder signature (the policy
    /// requires one).
    Malformed {
        /// The event's actor.
        actor: String,
        /// What is wrong with the bytes.
        reason: String,
    },
    /// Signed, but the policy trusts no key for the event's actor.
    UntrustedActor {
        /// The event's actor.
        actor: String,
    },
    /// Signed by a key the policy does not list for the event's actor.
    UntrustedKey {
        /// The event's actor.
        actor: String,
        /// The key id the signature names (hex).
        key_id: String,
    },
    /// Signed under a key the policy trusts for the actor, but the
    /// signature does not verify: forged, or altered after signing.
    BadSignature {
        /// The event's actor.
        actor: String,
        /// The trusted key it claims (boxed: the problem stays small).
        key: Box<PublicKey>,
    },
}

impl SignatureProblem {
    /// A short name of the kind of problem: `unsigned`, `malformed`,
    /// `untrusted-actor`, `untrusted-key` or `bad-signature`.
    pub fn kind(&self) -> &'static str {
        match self {
            SignatureProblem::Unsigned { .. } => "unsigned",
            SignatureProblem::Malformed { .. } => "malformed",
            SignatureProblem::UntrustedActor { .. } => "untrusted-actor",
            SignatureProblem::UntrustedKey { .. } => "untrusted-key",
            SignatureProblem::BadSignature { .. } => "bad-signature",
        }
    }
}

impl fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureProblem::Unsigned { actor } => write!(
                f,
                "unsigned event by {actor}, and this replica requires signatures (larder.requireSignatures)"
            ),
            SignatureProblem::Malformed { actor, reason } => {
                write!(f, "event by {actor} has a malformed signature: {reason}")
            }
            SignatureProblem::UntrustedActor { actor } => write!(
                f,
                "event by {actor} is signed, but no key is trusted for {actor} (larder trust add {actor} <KEY>)"
            ),
            SignatureProblem::UntrustedKey { actor, key_id } => write!(
                f,
                "event by {actor} is signed by key {key_id}…, which is not trusted for {actor}"
            ),
            SignatureProblem::BadSignature { actor, key } => write!(
                f,
                "bad signature: event by {actor} does not verify with its trusted key {key}"
            ),
        }
    }
}

/// Hex of a key id, for messages.
pub(crate) fn key_id_hex(id: &[u8; KEY_ID_LEN]) -> String {
    to_hex(id)
}
