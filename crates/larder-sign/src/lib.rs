//! Event signatures for larder: ed25519 keys, signing and verifying events,
//! and the trust policy that says which keys speak for which actor.
//!
//! An event's signature covers its event id, which is the BLAKE2b-256 of
//! its actor, timestamp, kind and payload, so signing the 32-byte id (after
//! a domain-separation prefix, [`SIGNING_DOMAIN`]) binds all of them. The
//! signature sits in the envelope's signature slot, which the event id does
//! not cover (a signed and an unsigned copy are one event) but the chunk id
//! does (a flipped byte is caught on read).
//!
//! The slot holds [`SIGNATURE_LEN`] bytes: a scheme byte
//! ([`SIGNATURE_SCHEME`]), the first 8 bytes of the signer's public key
//! (its key id: the verifier picks the key without trying each), and the
//! 64-byte ed25519 signature. See `docs/signatures.md`.
#![deny(missing_docs)]

mod error;
mod key;
mod policy;
mod signature;

pub use error::{Result, SignError};
pub use key::{KEY_FILE_PREFIX, PUBLIC_KEY_PREFIX, PublicKey, SigningKey};
pub use policy::{TrustEntry, TrustPolicy};
pub use signature::{
    KEY_ID_LEN, SIGNATURE_LEN, SIGNATURE_SCHEME, SIGNING_DOMAIN, SignatureProblem,
    decode_signature, signed_message,
};

/// The actor id `text`, or [`SignError::BadActor`].
pub fn actor(text: &str) -> Result<larder_codec::ActorId> {
    larder_codec::ActorId::new(text).map_err(|e| SignError::BadActor {
        actor: text.into(),
        reason: e.to_string(),
    })
}
