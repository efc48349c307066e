//! What a map task calls: a `fn(A) -> R` (map, imap) or a two-parameter `fn(A, B) -> R`
//! called with the items of a pair (starmap), encoded for one item or for a chunk.

use multiproc_codec::EncodeError;
use multiproc_process::{FnOffset, RemoteCall, RemoteResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::worker::{chunk_call, encode_chunk, run_caught};

/// A function the map family can send, one item or a chunk at a time.
pub(crate) trait Target<A>: Copy {
    /// The call of the function on one item.
    fn single(self, item: A) -> Result<RemoteCall, EncodeError>;
    /// The call of the function on each item of a chunk (see `worker::run_chunk`).
    fn chunk(self, items: Vec<A>) -> Result<RemoteCall, EncodeError>;
}

/// A `fn(A) -> R`.
pub(crate) struct Unary<A, R>(pub(crate) fn(A) -> R);

impl<A, R> Clone for Unary<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for Unary<A, R> {}

impl<A, R> Target<A> for Unary<A, R>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    fn single(self, item: A) -> Result<RemoteCall, EncodeError> {
        RemoteCall::new(self.0, &item)
    }

    fn chunk(self, items: Vec<A>) -> Result<RemoteCall, EncodeError> {
        chunk_call(self.0, items)
    }
}

/// A `fn(A, B) -> R`, called with the two items of each pair.
pub(crate) struct Binary<A, B, R>(pub(crate) fn(A, B) -> R);

impl<A, B, R> Clone for Binary<A, B, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, B, R> Copy for Binary<A, B, R> {}

impl<A, B, R> Target<(A, B)> for Binary<A, B, R>
where
    A: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    fn single(self, item: (A, B)) -> Result<RemoteCall, EncodeError> {
        RemoteCall::new(star_one::<A, B, R>, &(FnOffset::of(self.0 as usize), item))
    }

    fn chunk(self, items: Vec<(A, B)>) -> Result<RemoteCall, EncodeError> {
        RemoteCall::new(star_chunk::<A, B, R>, &(FnOffset::of(self.0 as usize), items))
    }
}

/// The two-parameter function behind an offset.
///
/// # Safety
/// `f` must be the offset of a `fn(A, B) -> R` of exactly these types, taken in a process
/// running this same executable.
unsafe fn resolve<A, B, R>(f: FnOffset) -> fn(A, B) -> R {
    // SAFETY: per the contract, the address is that of a `fn(A, B) -> R` of this binary;
    // function pointers and usize have the same size on our targets.
    unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(f.address()) }
}

/// Worker side of [`Binary::single`].
fn star_one<A, B, R>((f, (a, b)): (FnOffset, (A, B))) -> R {
    // SAFETY: `Binary::single` took the offset from a `fn(A, B) -> R` and sent it with
    // this very monomorphisation, in a call only our parent can send us.
    let f = unsafe { resolve::<A, B, R>(f) };
    f(a, b)
}

/// Worker side of [`Binary::chunk`]: each item's panic fails only that item.
fn star_chunk<A, B, R: Serialize>((f, items): (FnOffset, Vec<(A, B)>)) -> RemoteResult {
    // SAFETY: as in `star_one`.
    let f = unsafe { resolve::<A, B, R>(f) };
    encode_chunk(items.into_iter().map(|(a, b)| run_caught(move || f(a, b))).collect())
}
