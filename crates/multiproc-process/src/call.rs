//! Function calls that travel to another process of the same binary.
//!
//! This is what a process start does for its one target, made reusable: a worker pool
//! sends many calls to long-lived workers, a manager runs a read-modify-write function
//! on its server. A [`RemoteCall`] names a `fn(A) -> R` by its offset inside the binary
//! (see the crate docs) and carries the encoded arguments, whose file descriptors ride
//! as [`Fd`]s, so a `RemoteCall` sent through any multiproc channel brings them along.

use std::marker::PhantomData;

use multiproc_codec::{Bincode, DecodeError, EncodeError, Fd, decode_with_fds, encode_with_fds};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::target::{self, Trampoline};
use crate::wire::Outcome;

/// An encoded call of a `fn(A) -> R` with its arguments.
///
/// ```
/// use multiproc_process::RemoteCall;
///
/// fn add((a, b): (i32, i32)) -> i32 { a + b }
///
/// let call = RemoteCall::new(add, &(2, 3))?;
/// // ... sent to a process running this same binary, which runs it:
/// // SAFETY: made by RemoteCall::new in this very binary.
/// let result = unsafe { call.call() };
/// assert_eq!(result.decode::<i32>()?, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Serialize, Deserialize)]
pub struct RemoteCall {
    trampoline: isize,
    target: isize,
    #[serde(with = "serde_bytes")]
    args: Vec<u8>,
    fds: Vec<Fd>,
}

impl RemoteCall {
    /// Encodes a call of `f(args)`. Fails if the arguments cannot be encoded.
    pub fn new<A, R>(f: fn(A) -> R, args: &A) -> Result<RemoteCall, EncodeError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize,
    {
        let mut bytes = Vec::new();
        let fds = encode_with_fds(&Bincode::new(), args, &mut bytes)?;
        let t: Trampoline = target::trampoline::<A, R>;
        Ok(RemoteCall {
            trampoline: target::offset_of(t as usize),
            target: target::offset_of(f as usize),
            args: bytes,
            fds: fds.into_iter().map(Fd::new).collect(),
        })
    }

    /// The size of the encoded arguments in bytes.
    pub fn args_len(&self) -> usize {
        self.args.len()
    }

    /// Runs the call in this process, catching a panic, and encodes what it returned.
    ///
    /// # Safety
    /// The call must have been made by [`RemoteCall::new`] in a process running this
    /// same executable (a parent, a sibling started from the same binary), and have
    /// reached us through a channel only such processes can write to: its offsets are
    /// turned back into function pointers and called.
    pub unsafe fn call(self) -> RemoteResult {
        // SAFETY: forwarded from this function's contract.
        let trampoline = unsafe { target::trampoline_at(self.trampoline) };
        let fds = self.fds.into_iter().map(Fd::into_inner).collect();
        let (outcome, fds) = trampoline(self.target, &self.args, fds);
        match outcome {
            Outcome::Returned(bytes) => RemoteResult::Returned { bytes, fds: fds.into_iter().map(Fd::new).collect() },
            Outcome::Panicked(m) => RemoteResult::Panicked(m),
            Outcome::BadArguments(m) => RemoteResult::BadArguments(m),
            Outcome::ResultNotSent(m) => RemoteResult::ResultNotSent(m),
        }
    }
}

/// A `fn(A) -> R` that can travel inside a message to a process of the same binary, as
/// its offset from a fixed symbol (for a chunk of map items, a manager's update
/// function, and the like).
pub struct FnRef<A, R> {
    offset: isize,
    _fn: PhantomData<fn(A) -> R>,
}

impl<A, R> FnRef<A, R> {
    /// Refers to `f`.
    pub fn new(f: fn(A) -> R) -> FnRef<A, R> {
        FnRef { offset: target::offset_of(f as usize), _fn: PhantomData }
    }

    /// The function again.
    ///
    /// # Safety
    /// `self` must have been made by [`FnRef::new`] with these same `A` and `R` in a
    /// process running this same executable, and have reached us through a channel
    /// only such processes can write to (the same contract as [`RemoteCall::call`]).
    pub unsafe fn resolve(&self) -> fn(A) -> R {
        // SAFETY: forwarded from this function's contract: the offset is that of a
        // `fn(A) -> R` of this binary.
        unsafe { target::function_at::<A, R>(self.offset) }
    }
}

impl<A, R> Clone for FnRef<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for FnRef<A, R> {}

impl<A, R> std::fmt::Debug for FnRef<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FnRef<{}>({:#x})", std::any::type_name::<fn(A) -> R>(), self.offset)
    }
}

impl<A, R> Serialize for FnRef<A, R> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.offset as i64).serialize(s)
    }
}

impl<'de, A, R> Deserialize<'de> for FnRef<A, R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(FnRef { offset: i64::deserialize(d)? as isize, _fn: PhantomData })
    }
}

/// Any function of this binary as its offset from a fixed symbol, for function types
/// [`FnRef`] cannot name, such as `fn(A, B) -> R` (`multiproc::Pool::starmap` sends
/// two-parameter functions this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FnOffset(i64);

impl FnOffset {
    /// The offset of the function at `address` (a function pointer cast to `usize`).
    pub fn of(address: usize) -> FnOffset {
        FnOffset(target::offset_of(address) as i64)
    }

    /// The address, in this process, of the function the offset was taken from; cast it
    /// back to the same function pointer type to call it.
    ///
    /// # Safety
    /// `self` must have been made by [`FnOffset::of`] from a function pointer in a
    /// process running this same executable, and have reached us through a channel only
    /// such processes can write to (the same contract as [`FnRef::resolve`]).
    pub unsafe fn address(self) -> usize {
        target::address_of(self.0 as isize)
    }
}

/// What a [`RemoteCall`] produced, ready to travel back.
#[derive(Debug, Serialize, Deserialize)]
pub enum RemoteResult {
    /// The encoded return value and its descriptors.
    Returned {
        /// The encoded value.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        /// Descriptors of the handles inside it.
        fds: Vec<Fd>,
    },
    /// The function panicked with this message.
    Panicked(String),
    /// The arguments did not decode as the function's argument type.
    BadArguments(String),
    /// The return value could not be encoded.
    ResultNotSent(String),
}

/// Why a [`RemoteResult`] holds no value of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The function panicked.
    #[error("the function panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The arguments could not be decoded where the function ran.
    #[error("the function's arguments could not be decoded: {0}")]
    BadArguments(String),
    /// The function's return value could not be encoded.
    #[error("the function's return value could not be encoded: {0}")]
    ResultNotSent(String),
    /// The returned bytes did not decode as the expected type.
    #[error("cannot decode the returned value: {0}")]
    Decode(#[from] DecodeError),
}

impl RemoteResult {
    /// Decodes the returned value, or says why there is none.
    pub fn decode<R: DeserializeOwned>(self) -> Result<R, CallError> {
        match self {
            RemoteResult::Returned { bytes, fds } => {
                Ok(decode_with_fds(&Bincode::new(), &bytes, fds.into_iter().map(Fd::into_inner).collect())?)
            }
            RemoteResult::Panicked(message) => Err(CallError::Panicked { message }),
            RemoteResult::BadArguments(m) => Err(CallError::BadArguments(m)),
            RemoteResult::ResultNotSent(m) => Err(CallError::ResultNotSent(m)),
        }
    }

    /// Whether the function returned normally.
    pub fn is_returned(&self) -> bool {
        matches!(self, RemoteResult::Returned { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shout(s: String) -> String {
        s.to_uppercase()
    }

    fn fail(_: ()) -> u8 {
        panic!("nope")
    }

    #[test]
    fn fn_refs_travel() {
        let r = FnRef::new(shout);
        let mut buf = Vec::new();
        multiproc_codec::Codec::encode(&Bincode::new(), &r, &mut buf).unwrap();
        let back: FnRef<String, String> = multiproc_codec::Codec::decode(&Bincode::new(), &buf).unwrap();
        // SAFETY: made just above in this binary with the same types.
        assert_eq!(unsafe { back.resolve() }("a".into()), "A");
    }

    #[test]
    fn runs_and_reports_panics() {
        let c = RemoteCall::new(shout, &"hi".to_string()).unwrap();
        // SAFETY: made just above in this binary.
        assert_eq!(unsafe { c.call() }.decode::<String>().unwrap(), "HI");
        let c = RemoteCall::new(fail, &()).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { c.call() }.decode::<u8>(), Err(CallError::Panicked { message: "nope".into() }));
    }
}
