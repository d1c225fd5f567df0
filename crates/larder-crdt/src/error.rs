//! The merge layer's single error type.

use larder_codec::Timestamp;

/// What can go wrong in clocks, primitives and projections.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CrdtError {
    /// A received timestamp is further ahead of the local wall clock than
    /// the configured drift bound; it was not adopted.
    #[error(
        "timestamp {received} from {from} is {ahead_ms} ms ahead of the local clock (bound: {max_drift_ms} ms); not adopted"
    )]
    ClockDrift {
        /// The offending timestamp.
        received: Timestamp,
        /// Who sent it (actor id, or `?` when unknown).
        from: String,
        /// How far ahead of local wall time it is.
        ahead_ms: u64,
        /// The configured bound.
        max_drift_ms: u64,
    },
    /// The clock cannot advance any further (wall clock and counter at their maxima).
    #[error("hybrid logical clock exhausted at {at}")]
    ClockExhausted {
        /// The last timestamp issued.
        at: Timestamp,
    },
    /// An event's payload does not have the shape a projection expects.
    #[error("event {event} ({kind}): {reason}")]
    BadEvent {
        /// The event id (hex).
        event: String,
        /// The event kind.
        kind: String,
        /// What was wrong.
        reason: String,
    },
    /// Encoded projection state could not be decoded.
    #[error("cannot decode {projection} state: {reason}")]
    StateDecode {
        /// The projection's name.
        projection: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Shorthand for results whose error is [`CrdtError`].
pub type Result<T, E = CrdtError> = std::result::Result<T, E>;
