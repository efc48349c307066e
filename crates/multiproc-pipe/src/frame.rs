//! The wire format of one message on a connection.
//!
//! A frame is a 16-byte header followed by the payload:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `b"MPc1"`: catches a peer that speaks something else, or a stream that lost its place |
//! | 4..8 | number of file descriptors sent with the frame (`SCM_RIGHTS`), little endian |
//! | 8..16 | payload length in bytes, little endian |
//!
//! Descriptors ride on the first byte of the frame (in chunks of 253, one byte each, when
//! there are more), so they have all arrived by the time the frame has.

/// Length of a frame header.
pub(crate) const HEADER_LEN: usize = 16;

const MAGIC: [u8; 4] = *b"MPc1";

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Descriptors that travel with the frame.
    pub(crate) fds: u32,
    /// Payload length in bytes.
    pub(crate) len: u64,
}

impl Header {
    /// The header's bytes.
    pub(crate) fn encode(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.fds.to_le_bytes());
        out[8..16].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Parses a header; `None` if the magic is wrong (the bytes are not a frame).
    pub(crate) fn decode(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
        if bytes[0..4] != MAGIC {
            return None;
        }
        let mut fds = [0u8; 4];
        fds.copy_from_slice(&bytes[4..8]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..16]);
        Some(Header { fds: u32::from_le_bytes(fds), len: u64::from_le_bytes(len) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_magic() {
        let h = Header { fds: 3, len: 1 << 40 };
        assert_eq!(Header::decode(&h.encode()), Some(h));
        let mut garbage = h.encode();
        garbage[0] ^= 0xFF;
        assert_eq!(Header::decode(&garbage), None);
        assert_eq!(Header::decode(b"GET / HTTP/1.1\r\n"), None);
    }
}
