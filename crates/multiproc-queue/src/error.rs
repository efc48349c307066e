//! Error types, one per operation family.
//!
//! Put errors hand the item back, so a failed put loses nothing. Get errors say whether
//! the queue was empty, closed, or held something that could not be turned into an item.

use std::fmt;
use std::io;

use multiproc_codec::{DecodeError, EncodeError};

/// Why a queue could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The ring capacity is outside the supported range.
    #[error("a queue's capacity must be between {min} and {max} bytes, not {requested}")]
    Capacity {
        /// What was asked for.
        requested: usize,
        /// Smallest supported capacity.
        min: usize,
        /// Largest supported capacity.
        max: usize,
    },
    /// `maxsize` is zero or too large.
    #[error(
        "maxsize must be between 1 and {max} messages, not {requested} (for no limit on the number of \
         messages use Queue::new())"
    )]
    Maxsize {
        /// What was asked for.
        requested: usize,
        /// Largest supported maxsize.
        max: usize,
    },
    /// `max_message_size` is zero.
    #[error("max_message_size must be at least 1 byte")]
    MaxMessageSize,
    /// The operating system refused the shared memory or descriptors (out of memory or
    /// of file descriptors).
    #[error("cannot create the queue's shared memory or descriptors: {0}")]
    Os(#[from] io::Error),
}

/// Why a received queue handle could not be attached (reported through the decode error
/// of the process arguments or message that carried it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachError {
    #[error("the descriptor is not a usable shared-memory segment: {0}")]
    Segment(#[source] io::Error),
    #[error("the shared-memory segment is not a multiproc queue")]
    Foreign,
    #[error(
        "the {expected} was created by a build of multiproc-queue with layout version {found} (this one \
         uses {}); build both programs with the same version",
        crate::layout::LAYOUT_VERSION
    )]
    Version { found: u32, expected: &'static str },
    #[error("expected a multiproc {expected} but received a {found}")]
    Kind { found: &'static str, expected: &'static str },
    #[error("the {0}'s shared memory header is damaged")]
    Damaged(&'static str),
    #[error("robust locks cannot work on this thread: {0}")]
    Thread(#[source] io::Error),
}

macro_rules! put_error {
    ($(#[$meta:meta])* $name:ident { $( $(#[$vmeta:meta])* $extra:ident ),* }) => {
        $(#[$meta])*
        #[derive(thiserror::Error)]
        pub enum $name<T> {
            $( $(#[$vmeta])* $extra(T), )*
            /// This handle was closed with `close()`: it may not put any more. Put through
            /// another handle (clone one before closing if you need both).
            #[error("this queue handle was closed with close() and can no longer put; put through another handle")]
            Closed(T),
            /// The item could not be encoded, or its encoding exceeds the queue's
            /// `max_message_size`.
            #[error("cannot put the item: {error}")]
            Encode {
                /// The item, handed back.
                item: T,
                /// What went wrong.
                error: EncodeError,
            },
            /// The operating system failed (out of memory or descriptors for a large
            /// message, or a lock made unusable).
            #[error("operating-system error while putting an item: {error}")]
            Os {
                /// The item, handed back.
                item: T,
                /// What went wrong.
                error: io::Error,
            },
        }

        impl<T> $name<T> {
            /// The item that was not put.
            pub fn into_inner(self) -> T {
                match self {
                    $( $name::$extra(item) => item, )*
                    $name::Closed(item) | $name::Encode { item, .. } | $name::Os { item, .. } => item,
                }
            }
        }

        // Manual, so that errors are `Debug` (and so `std::error::Error`) whatever `T` is.
        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$extra(_) => f.write_str(concat!(stringify!($name), "::", stringify!($extra), "(..)")), )*
                    $name::Closed(_) => f.write_str(concat!(stringify!($name), "::Closed(..)")),
                    $name::Encode { error, .. } => {
                        f.debug_struct(concat!(stringify!($name), "::Encode")).field("error", error).finish_non_exhaustive()
                    }
                    $name::Os { error, .. } => {
                        f.debug_struct(concat!(stringify!($name), "::Os")).field("error", error).finish_non_exhaustive()
                    }
                }
            }
        }
    };
}

put_error!(
    /// Why a blocking [`put`](crate::Queue::put) failed. The item is handed back.
    SendError {}
);

put_error!(
    /// Why [`put_nowait`](crate::Queue::put_nowait) failed. The item is handed back.
    TrySendError {
        /// The queue is full: it holds `maxsize` items, or its buffer has no room for this
        /// one (Python's `queue.Full`). Get items or retry later.
        #[error("the queue is full (maxsize items, or its byte capacity is used up); get items or retry later")]
        Full
    }
);

put_error!(
    /// Why [`put_timeout`](crate::Queue::put_timeout) failed. The item is handed back.
    SendTimeoutError {
        /// The queue stayed full until the timeout (Python's `queue.Full`).
        #[error("timed out waiting for room in the queue")]
        Timeout
    }
);

macro_rules! from_send_error {
    ($name:ident) => {
        impl<T> From<SendError<T>> for $name<T> {
            fn from(e: SendError<T>) -> Self {
                match e {
                    SendError::Closed(item) => $name::Closed(item),
                    SendError::Encode { item, error } => $name::Encode { item, error },
                    SendError::Os { item, error } => $name::Os { item, error },
                }
            }
        }
    };
}

from_send_error!(TrySendError);
from_send_error!(SendTimeoutError);

macro_rules! get_error {
    ($(#[$meta:meta])* $name:ident { $( $(#[$vmeta:meta])* $extra:ident ),* }) => {
        $(#[$meta])*
        #[derive(Debug, thiserror::Error)]
        pub enum $name {
            $( $(#[$vmeta])* $extra, )*
            /// The queue is empty and nobody can put into it any more: every handle, in
            /// every process, was closed or dropped, or its process died. See the crate
            /// docs for the exact rule.
            #[error(
                "the queue is empty and closed: every handle that could put was closed or dropped (or its process died)"
            )]
            Closed,
            /// A message was taken that does not decode as the queue's item type (a
            /// producer built with another type or another version of it). The message
            /// was removed; the queue stays usable.
            #[error("took a message that does not decode as the queue's item type (it was removed): {0}")]
            Decode(DecodeError),
            /// The queue's shared memory held something that is not a message: it was
            /// written by something other than this library. What it held was discarded
            /// so the queue stays usable.
            #[error("the queue's shared memory is corrupted ({0}); its contents were discarded")]
            Corrupted(String),
            /// The operating system failed (out of memory or descriptors while taking a
            /// large message, which then stays in the queue; or a lock made unusable).
            #[error("operating-system error while getting an item: {0}")]
            Os(io::Error),
        }
    };
}

get_error!(
    /// Why a blocking [`get`](crate::Queue::get) failed.
    RecvError {}
);

get_error!(
    /// Why [`get_nowait`](crate::Queue::get_nowait) failed.
    TryRecvError {
        /// Nothing to take right now (Python's `queue.Empty`).
        #[error("the queue is empty")]
        Empty
    }
);

get_error!(
    /// Why [`get_timeout`](crate::Queue::get_timeout) failed.
    RecvTimeoutError {
        /// Nothing arrived before the timeout (Python's `queue.Empty`).
        #[error("timed out waiting for an item")]
        Timeout
    }
);

macro_rules! from_recv_error {
    ($name:ident) => {
        impl From<RecvError> for $name {
            fn from(e: RecvError) -> Self {
                match e {
                    RecvError::Closed => $name::Closed,
                    RecvError::Decode(d) => $name::Decode(d),
                    RecvError::Corrupted(m) => $name::Corrupted(m),
                    RecvError::Os(e) => $name::Os(e),
                }
            }
        }
    };
}

from_recv_error!(TryRecvError);
from_recv_error!(RecvTimeoutError);

/// [`task_done`](crate::JoinableQueue::task_done) was called more times than items were
/// put (Python's `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("task_done() called more times than there were items put into the JoinableQueue")]
pub struct TaskDoneError;

/// [`join_timeout`](crate::JoinableQueue::join_timeout) expired with tasks unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{unfinished} task(s) still unfinished when the timeout expired; if a consumer died between get() and \
     task_done(), call task_done() once for each item it held"
)]
pub struct JoinTimeoutError {
    /// Items put whose `task_done` had not been called when the timeout expired.
    pub unfinished: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_errors_hand_the_item_back_and_say_what_to_do() {
        let e: TrySendError<String> = SendError::Closed("x".to_owned()).into();
        assert!(e.to_string().contains("closed"));
        assert_eq!(e.into_inner(), "x");
        let e = TrySendError::Full(vec![1]);
        assert_eq!(format!("{e:?}"), "TrySendError::Full(..)");
        assert!(e.to_string().contains("full"));
        assert_eq!(e.into_inner(), vec![1]);
        let e = SendTimeoutError::Os { item: 3, error: io::Error::other("boom") };
        assert!(format!("{e:?}").contains("boom"));
        assert_eq!(e.into_inner(), 3);
        let enc = EncodeError::TooLarge { size: 70 << 20, limit: 64 << 20 };
        let e = SendError::Encode { item: (), error: enc };
        assert_eq!(
            e.to_string(),
            "cannot put the item: message of 70 MiB exceeds the 64 MiB limit set by `max_message_size`"
        );
    }

    #[test]
    fn get_errors_convert() {
        assert!(matches!(TryRecvError::from(RecvError::Closed), TryRecvError::Closed));
        assert!(matches!(RecvTimeoutError::from(RecvError::Corrupted("x".into())), RecvTimeoutError::Corrupted(_)));
        assert!(JoinTimeoutError { unfinished: 2 }.to_string().starts_with("2 task(s)"));
    }
}
