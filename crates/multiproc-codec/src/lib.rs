//! Typed messages for multiproc (Python: `pickle`, as `multiprocessing` uses it).
//!
//! Python sends objects between processes by pickling them, which executes code chosen by
//! whoever wrote the bytes. Here a message is a value of a type both sides name, encoded
//! with serde: decoding checks the bytes against that type and can only build a value of
//! it. The codec is one small trait, [`Codec`], so another format can replace the default
//! [`Bincode`] (serde + bincode 2).
//!
//! Three rules hold for every decode:
//! - a size limit ([`Bincode::max_message_size`], 1 GiB by default) is checked before
//!   anything is read;
//! - garbage, truncated or trailing bytes give a [`DecodeError`], never a panic;
//! - a length written in the message cannot make the decoder allocate more than a small
//!   multiple of the bytes that actually arrived.
//!
//! File descriptors (pipe ends, shared-memory segments) cannot travel as bytes. A handle
//! type wraps its descriptor in [`Fd`]; [`encode_with_fds`] collects those descriptors
//! while the value is encoded, the transport sends them out of band (`SCM_RIGHTS`), and
//! [`decode_with_fds`] gives them back to the [`Fd`]s of the decoded value.

mod bincode_codec;
mod error;
mod fd;
mod size;

pub use bincode_codec::{Bincode, DEFAULT_MAX_MESSAGE_SIZE};
pub use error::{DecodeError, EncodeError};
pub use fd::{Fd, decode_with_fds, encode_with_fds, warm_up};
pub use size::human_size;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A message format: turns typed values into bytes and back.
///
/// Implementations must never panic on any input to [`Codec::decode`] and must enforce
/// their size limit before allocating.
pub trait Codec: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Appends the encoding of `value` to `out`.
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// Decodes exactly one value from the whole of `bytes`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, DecodeError>;

    /// The largest encoded message this codec accepts, in bytes.
    fn max_message_size(&self) -> usize;
}
