//! Values to and from the bytes the server holds.

use multiproc_codec::{Bincode, Codec, DecodeError, EncodeError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

/// Encodes `value` with the workspace codec, refusing more than `limit` bytes.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, limit: usize) -> Result<ByteBuf, EncodeError> {
    let mut out = Vec::new();
    Bincode::with_max_message_size(limit).encode(value, &mut out)?;
    Ok(ByteBuf::from(out))
}

/// Decodes a `T` from the whole of `bytes`; garbage is an error, never a panic.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    Bincode::with_max_message_size(limit).decode(bytes)
}
