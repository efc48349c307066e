//! File descriptors carried out of band beside an encoded message.

use std::cell::RefCell;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Codec, DecodeError, EncodeError};

thread_local! {
    // Descriptors collected by the encode in progress on this thread (innermost last).
    static OUTGOING: RefCell<Vec<Vec<OwnedFd>>> = const { RefCell::new(Vec::new()) };
    // Descriptors handed to the decode in progress on this thread.
    static INCOMING: RefCell<Vec<Vec<Option<OwnedFd>>>> = const { RefCell::new(Vec::new()) };
}

/// A file descriptor that can be part of a message.
///
/// Serializing an `Fd` inside [`encode_with_fds`] duplicates the descriptor into the
/// out-of-band list and writes only its index; deserializing inside [`decode_with_fds`]
/// takes the received descriptor with that index. Anywhere else (e.g. `serde_json`) it is
/// an error, because a descriptor number means nothing to another process.
#[derive(Debug)]
pub struct Fd(OwnedFd);

impl Fd {
    /// Wraps a descriptor.
    pub fn new(fd: OwnedFd) -> Fd {
        Fd(fd)
    }

    /// Unwraps the descriptor.
    pub fn into_inner(self) -> OwnedFd {
        self.0
    }

    /// Duplicates the descriptor (the copy is `O_CLOEXEC`).
    pub fn try_clone(&self) -> std::io::Result<Fd> {
        self.0.try_clone().map(Fd)
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Fd {
        Fd(fd)
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let index = OUTGOING.with(|o| {
            let mut o = o.borrow_mut();
            let list = o.last_mut().ok_or_else(|| {
                S::Error::custom(
                    "a file descriptor handle can only be sent through multiproc \
                     (process arguments, a Connection, a Queue), not encoded on its own",
                )
            })?;
            let dup = self.0.try_clone().map_err(|e| S::Error::custom(format!("cannot duplicate descriptor: {e}")))?;
            list.push(dup);
            Ok::<_, S::Error>((list.len() - 1) as u32)
        })?;
        s.serialize_u32(index)
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fd, D::Error> {
        let index = u32::deserialize(d)?;
        INCOMING.with(|i| {
            let mut i = i.borrow_mut();
            let Some(list) = i.last_mut() else {
                return Err(D::Error::custom("a file descriptor handle can only be received through multiproc"));
            };
            let received = list.len();
            list.get_mut(index as usize)
                .and_then(Option::take)
                .map(Fd)
                .ok_or_else(|| D::Error::custom(MissingFdMarker { index, received }))
        })
    }
}

// Carries the details of a missing descriptor through serde's string-only error channel.
struct MissingFdMarker {
    index: u32,
    received: usize,
}

impl fmt::Display for MissingFdMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{MISSING_FD_TAG}{}/{}", self.index, self.received)
    }
}

const MISSING_FD_TAG: &str = "multiproc: missing fd ";

fn missing_fd_from(msg: &str) -> Option<DecodeError> {
    let rest = &msg[msg.find(MISSING_FD_TAG)? + MISSING_FD_TAG.len()..];
    let (i, r) = rest.split_once('/')?;
    let r: String = r.chars().take_while(char::is_ascii_digit).collect();
    Some(DecodeError::MissingFd { index: i.parse().ok()?, received: r.parse().ok()? })
}

/// Initialises this thread's descriptor-passing state now.
///
/// A forked child that encodes its result would otherwise set it up first (allocating
/// and registering thread-local destructors), touching pages it shares copy-on-write
/// with its parent; doing it once in the parent before forking makes every child
/// cheaper.
pub fn warm_up() {
    OUTGOING.with(|o| drop(o.borrow()));
    INCOMING.with(|i| drop(i.borrow()));
}

/// Encodes `value` into `out` and returns the descriptors of every [`Fd`] inside it, in
/// the order the message refers to them. The caller sends them out of band.
pub fn encode_with_fds<C: Codec, T: Serialize + ?Sized>(
    codec: &C,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, EncodeError> {
    OUTGOING.with(|o| o.borrow_mut().push(Vec::new()));
    let result = codec.encode(value, out);
    let fds = OUTGOING.with(|o| o.borrow_mut().pop()).unwrap_or_default();
    result.map(|()| fds)
}

/// Decodes a value whose [`Fd`]s refer to `fds` (received out of band, in order).
/// Descriptors the value does not use are closed.
pub fn decode_with_fds<C: Codec, T: DeserializeOwned>(
    codec: &C,
    bytes: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<T, DecodeError> {
    INCOMING.with(|i| i.borrow_mut().push(fds.into_iter().map(Some).collect()));
    let result = codec.decode(bytes);
    INCOMING.with(|i| i.borrow_mut().pop());
    result.map_err(|e| match &e {
        DecodeError::Invalid(msg) => missing_fd_from(msg).unwrap_or(e),
        _ => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bincode;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Handle {
        name: String,
        fd: Fd,
        more: Vec<Fd>,
    }

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn fds_go_out_of_band() {
        let c = Bincode::new();
        let h = Handle { name: "x".into(), fd: Fd::new(devnull()), more: vec![Fd::new(devnull()), Fd::new(devnull())] };
        let mut buf = Vec::new();
        let fds = encode_with_fds(&c, &h, &mut buf).unwrap();
        assert_eq!(fds.len(), 3);
        let back: Handle = decode_with_fds(&c, &buf, fds).unwrap();
        assert_eq!(back.name, "x");
        assert_eq!(back.more.len(), 2);
    }

    #[test]
    fn missing_fd_is_an_error_value() {
        let c = Bincode::new();
        let h = Handle { name: "x".into(), fd: Fd::new(devnull()), more: vec![] };
        let mut buf = Vec::new();
        let _fds = encode_with_fds(&c, &h, &mut buf).unwrap();
        let err = decode_with_fds::<_, Handle>(&c, &buf, Vec::new()).unwrap_err();
        assert_eq!(err, DecodeError::MissingFd { index: 0, received: 0 });
    }

    #[test]
    fn plain_encode_refuses_handles() {
        let c = Bincode::new();
        let mut buf = Vec::new();
        let err = c.encode(&Fd::new(devnull()), &mut buf).unwrap_err();
        assert!(err.to_string().contains("can only be sent through multiproc"), "{err}");
    }
}
