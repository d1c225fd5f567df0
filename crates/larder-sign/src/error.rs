//! The signing layer's single error type.

/// What went wrong with a key, a key file or the trust policy. Errors about
/// a file name the file and, for its contents, the line (1-based).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// A signing key file that does not hold one well-formed key.
    #[error("signing key {path}:{line}: {reason}")]
    MalformedKey {
        /// The key file.
        path: String,
        /// The line (1-based; the last line when the key is missing).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A signing key file that others than its owner may read or write:
    /// refused, as ssh refuses an unprotected private key.
    #[error(
        "signing key {path} has mode {mode:o}: others than its owner may read it; run `chmod 600 {path}`"
    )]
    KeyPermissions {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A line of the trust policy file that is not `<actor> <public key>`.
    #[error("trust policy {path}:{line}: {reason}")]
    BadPolicyLine {
        /// The policy file.
        path: String,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A public key (given on the command line or to the API) that is not
    /// `ed25519:<64 hex digits>` of a valid curve point.
    #[error("invalid public key {text:?}: {reason}")]
    BadPublicKey {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// An actor id that larder cannot use (see `larder_codec::ActorId`).
    #[error("invalid actor {actor:?}: {reason}")]
    BadActor {
        /// The text given.
        actor: String,
        /// What is wrong.
        reason: String,
    },
    /// A new key would overwrite an existing key file: refused, so a key
    /// is never lost by accident.
    #[error("{path} already holds a signing key; move it away first if you mean to replace it")]
    KeyExists {
        /// The existing file.
        path: String,
    },
    /// Reading or writing a key or policy file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("cannot draw a random key: {0}")]
    Random(String),
}

/// Shorthand for results whose error is [`SignError`].
pub type Result<T, E = SignError> = std::result::Result<T, E>;

/// An I/O error about `path`.
pub(crate) fn io(path: &std::path::Path, e: &dyn std::fmt::Display) -> SignError {
    SignError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}
