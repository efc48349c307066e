use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Codec, DecodeError, EncodeError};

/// The default limit on one message: 1 GiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 30;

/// serde + bincode 2 (standard configuration: little endian, variable-length integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bincode {
    max_message_size: usize,
}

impl Default for Bincode {
    fn default() -> Self {
        Bincode { max_message_size: DEFAULT_MAX_MESSAGE_SIZE }
    }
}

impl Bincode {
    /// A codec with the default 1 GiB limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that refuses messages larger than `bytes`.
    pub fn with_max_message_size(bytes: usize) -> Self {
        Bincode { max_message_size: bytes }
    }
}

type Cfg<const N: usize> = Configuration<LittleEndian, Varint, Limit<N>>;

fn cfg<const N: usize>() -> Cfg<N> {
    bincode::config::standard().with_limit::<N>()
}

fn decode_limited<T: DeserializeOwned, const N: usize>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, cfg::<N>())
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

impl Codec for Bincode {
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map_err(|e| EncodeError::Serialize(e.to_string()))?;
        let size = out.len() - start;
        if size > self.max_message_size {
            out.truncate(start);
            return Err(EncodeError::TooLarge { size, limit: self.max_message_size });
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        if bytes.len() > self.max_message_size {
            return Err(DecodeError::TooLarge { size: bytes.len(), limit: self.max_message_size });
        }
        // bincode allocates a string or byte buffer as soon as it has read its length, as
        // long as the running total of claimed memory stays under its (compile-time)
        // limit. Decoding a value never legitimately claims more than 16 bytes of memory
        // per input byte (a one-byte varint `u128` claims 16), so pick the smallest
        // limit above that: a forged length can then cost at most a small multiple of
        // what was actually received.
        let need = bytes.len().saturating_mul(16).max(1 << 12);
        macro_rules! pick {
            ($($n:literal)*) => {
                $( if need <= (1usize << $n) { return decode_limited::<T, { 1usize << $n }>(bytes); } )*
            };
        }
        pick!(12 14 16 18 20 22 24 26 28 30 32 34 36 38);
        decode_limited::<T, { usize::MAX }>(bytes)
    }

    fn max_message_size(&self) -> usize {
        self.max_message_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Msg {
        Unit,
        Text(String),
        Nums { xs: Vec<u64>, map: HashMap<String, i32> },
        Nested(Box<Option<Msg>>),
    }

    fn round<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        let c = Bincode::new();
        let mut buf = Vec::new();
        c.encode(&v, &mut buf).unwrap();
        assert_eq!(c.decode::<T>(&buf).unwrap(), v);
    }

    #[test]
    fn round_trips() {
        round(Msg::Unit);
        round(Msg::Text("héllo".into()));
        round(Msg::Nums { xs: (0..1000).collect(), map: [("a".to_string(), -5)].into() });
        round(Msg::Nested(Box::new(Some(Msg::Unit))));
        round(vec![0u128; 100_000]);
        round(vec![String::new(); 10_000]);
        round((1u8, -2i64, 3.5f64, 'x', true, ()));
    }

    #[test]
    fn forged_length_does_not_allocate() {
        // A varint length of u64::MAX / 2 followed by nothing: must fail fast.
        let c = Bincode::new();
        let forged = [0xFDu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(matches!(c.decode::<String>(&forged), Err(DecodeError::Invalid(_))));
        assert!(matches!(c.decode::<Vec<u8>>(&forged), Err(DecodeError::Invalid(_))));
        // A claimed 1 GiB string in a 9-byte message.
        let mut gib = vec![0xFCu8];
        gib.extend_from_slice(&(1u32 << 30).to_le_bytes());
        assert!(c.decode::<String>(&gib).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let c = Bincode::new();
        let mut seed = 0x2545F4914F6CDD1Du64;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = c.decode::<Msg>(&bytes);
            let _ = c.decode::<(String, Vec<u32>, Option<char>)>(&bytes);
            let _ = c.decode::<HashMap<u64, String>>(&bytes);
        }
    }

    #[test]
    fn limits_and_trailing_bytes() {
        let c = Bincode::with_max_message_size(16);
        let mut buf = Vec::new();
        assert!(matches!(c.encode(&vec![1u8; 100], &mut buf), Err(EncodeError::TooLarge { size: 101, limit: 16 })));
        assert!(buf.is_empty());
        assert!(matches!(c.decode::<u8>(&[0u8; 17]), Err(DecodeError::TooLarge { .. })));
        assert_eq!(c.decode::<u8>(&[1, 2]), Err(DecodeError::TrailingBytes(1)));
        assert!(matches!(c.decode::<u32>(&[]), Err(DecodeError::Invalid(_))));
        let msg = EncodeError::TooLarge { size: 70 << 20, limit: 64 << 20 }.to_string();
        assert_eq!(msg, "message of 70 MiB exceeds the 64 MiB limit set by `max_message_size`");
    }
}
