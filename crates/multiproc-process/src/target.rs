//! Finding a function in another process of the same binary.
//!
//! A spawn or forkserver child runs the same executable as its parent, but address space
//! randomisation loads it at another address. The distance between two functions of the
//! same binary is the same in both, so the parent sends each function's offset from
//! [`anchor`] and the child adds its own address of `anchor` back.

use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use multiproc_codec::{Bincode, decode_with_fds, encode_with_fds};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::Outcome;

/// The fixed point offsets are measured from.
#[inline(never)]
fn anchor() -> usize {
    std::hint::black_box(0x6d70)
}

fn anchor_address() -> isize {
    anchor as fn() -> usize as usize as isize
}

/// What a child calls: decode the arguments, run the target, encode what it returned.
pub(crate) type Trampoline = fn(isize, &[u8], Vec<OwnedFd>) -> (Outcome, Vec<OwnedFd>);

/// The offset of a function address from the anchor.
pub(crate) fn offset_of(address: usize) -> isize {
    (address as isize).wrapping_sub(anchor_address())
}

/// The address in this process of a function at `offset` from the anchor.
pub(crate) fn address_of(offset: isize) -> usize {
    anchor_address().wrapping_add(offset) as usize
}

/// Resolves a trampoline sent by the parent.
///
/// # Safety
/// `offset` must have been computed by [`offset_of`] on a [`Trampoline`] in a process
/// running the same binary. The parent guarantees this: the child is an exec of
/// `/proc/self/exe` or a fork of a process that was.
pub(crate) unsafe fn trampoline_at(offset: isize) -> Trampoline {
    let addr = address_of(offset);
    // SAFETY: per the contract, `addr` is the address of a function of exactly this type
    // in this binary; function pointers and usize have the same size on Linux targets.
    unsafe { std::mem::transmute::<usize, Trampoline>(addr) }
}

/// Resolves a `fn(A) -> R` sent by offset.
///
/// # Safety
/// `offset` must have been computed by [`offset_of`] on a `fn(A) -> R` (these exact
/// types) in a process running the same binary.
pub(crate) unsafe fn function_at<A, R>(offset: isize) -> fn(A) -> R {
    // SAFETY: per the contract, the address is that of a function of exactly this type.
    unsafe { std::mem::transmute::<usize, fn(A) -> R>(address_of(offset)) }
}

/// The type-erased entry point for `fn(A) -> R`, monomorphised per pair of types;
/// `target` is the offset of the `fn(A) -> R`.
pub(crate) fn trampoline<A, R>(target: isize, args: &[u8], fds: Vec<OwnedFd>) -> (Outcome, Vec<OwnedFd>)
where
    A: DeserializeOwned,
    R: Serialize,
{
    // SAFETY: the parent computed `target` from a `fn(A) -> R` in this same binary and
    // sent it with the offset of this very monomorphisation of `trampoline::<A, R>`, so
    // the address has exactly this type.
    let f = unsafe { function_at::<A, R>(target) };
    let args: A = match decode_with_fds(&Bincode::new(), args, fds) {
        Ok(a) => a,
        Err(e) => return (Outcome::BadArguments(e.to_string()), Vec::new()),
    };
    run_target(f, args)
}

/// Runs `f(args)`, catching a panic, and encodes what it returned.
pub(crate) fn run_target<A, R: Serialize>(f: fn(A) -> R, args: A) -> (Outcome, Vec<OwnedFd>) {
    match catch_unwind(AssertUnwindSafe(|| f(args))) {
        Ok(value) => {
            let mut buf = Vec::new();
            match encode_with_fds(&Bincode::new(), &value, &mut buf) {
                Ok(fds) => (Outcome::Returned(buf), fds),
                Err(e) => (Outcome::ResultNotSent(e.to_string()), Vec::new()),
            }
        }
        Err(payload) => (Outcome::Panicked(panic_message(payload.as_ref())), Vec::new()),
    }
}

/// The message of a caught panic (the payload of `catch_unwind`), for reporting it to
/// another process: the text for `&str` and `String` payloads.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiproc_codec::Codec;

    fn double(x: u32) -> u32 {
        x * 2
    }

    #[test]
    fn offsets_resolve_in_process() {
        let t: Trampoline = trampoline::<u32, u32>;
        let off = offset_of(t as usize);
        let target = offset_of(double as fn(u32) -> u32 as usize);
        // SAFETY: computed from a Trampoline in this binary just above.
        let back = unsafe { trampoline_at(off) };
        let mut args = Vec::new();
        Bincode::new().encode(&21u32, &mut args).unwrap();
        let (out, _) = back(target, &args, Vec::new());
        match out {
            Outcome::Returned(b) => assert_eq!(Bincode::new().decode::<u32>(&b).unwrap(), 42),
            other => panic!("{other:?}"),
        }
    }
}
