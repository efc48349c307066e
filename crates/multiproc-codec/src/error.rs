use crate::human_size;

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message is larger than the limit.
    #[error("message of {} exceeds the {} limit set by `max_message_size`", human_size(*size), human_size(*limit))]
    TooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The value's `Serialize` implementation failed (or it holds a handle outside of
    /// [`crate::encode_with_fds`]).
    #[error("cannot encode message: {0}")]
    Serialize(String),
}

/// Why bytes could not be decoded into a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message is larger than the limit; it was not read.
    #[error("message of {} exceeds the {} limit set by `max_message_size`", human_size(*size), human_size(*limit))]
    TooLarge {
        /// Message size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The bytes are not a valid encoding of the expected type (garbage, truncated, a
    /// different type, or a length that claims more data than arrived).
    #[error("invalid message for the expected type: {0}")]
    Invalid(String),
    /// A valid value was followed by bytes that belong to nothing.
    #[error("message has {0} trailing bytes after a complete value")]
    TrailingBytes(usize),
    /// The message refers to a file descriptor that did not arrive with it.
    #[error("message refers to file descriptor #{index} but only {received} arrived with it")]
    MissingFd {
        /// Index the message refers to.
        index: u32,
        /// Descriptors that arrived.
        received: usize,
    },
}
