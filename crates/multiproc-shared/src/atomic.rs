//! [`AtomicPod`]: the element types of [`RawValue`](crate::RawValue) and
//! [`RawArray`](crate::RawArray) that may also be reached as atomics.

use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize,
};

use bytemuck::Pod;
use multiproc_sys::mapping::SharedAtomic;

mod sealed {
    pub trait Sealed {}
}

/// An integer type with a same-sized `std` atomic: `u8`..`u64`, `i8`..`i64`, `usize`,
/// `isize`.
///
/// For these, [`RawValue::as_atomic`](crate::RawValue::as_atomic) and
/// [`RawArray::as_atomics`](crate::RawArray::as_atomics) hand out references to the
/// shared memory itself: the one kind of reference into memory that other processes
/// write concurrently that is sound, because every access to it is atomic.
pub trait AtomicPod: Pod + sealed::Sealed {
    /// The atomic type of the same size and alignment.
    type Atomic: SharedAtomic;
}

macro_rules! atomic_pod {
    ($($t:ty => $a:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicPod for $t {
            type Atomic = $a;
        }
    )*};
}

atomic_pod!(
    u8 => AtomicU8,
    i8 => AtomicI8,
    u16 => AtomicU16,
    i16 => AtomicI16,
    u32 => AtomicU32,
    i32 => AtomicI32,
    u64 => AtomicU64,
    i64 => AtomicI64,
    usize => AtomicUsize,
    isize => AtomicIsize
);
