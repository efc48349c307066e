//! What [`Value`](crate::Value) and [`Array`](crate::Array) have in common: a block with
//! a lock inside, locking, and travelling to another process.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use multiproc_sync::{LockError, LockGuard, RawLock, RawMutex, TryLockError};
use serde::{Deserializer, Serializer};

use crate::block::{Block, Kind, LockMode, deserialize_block, serialize_block};
use crate::guard::{GuardResult, SharedGuard, TryGuardResult};

/// A block whose elements are only reached under the lock embedded in it.
pub(crate) struct LockedBlock<T> {
    block: Arc<Block<T>>,
}

impl<T> Clone for LockedBlock<T> {
    fn clone(&self) -> Self {
        LockedBlock { block: self.block.clone() }
    }
}

impl<T: Pod> LockedBlock<T> {
    pub(crate) fn create(kind: Kind, len: usize, init: &[T]) -> io::Result<LockedBlock<T>> {
        Ok(LockedBlock { block: Arc::new(Block::create(kind, len, init, LockMode::Embedded)?) })
    }

    pub(crate) fn block(&self) -> &Block<T> {
        &self.block
    }

    /// The lock that guards the elements.
    #[inline]
    pub(crate) fn raw(&self) -> &RawMutex {
        match self.block.mutex() {
            Some(mutex) => mutex,
            // `create` embeds one, and `attach` refuses a Value or Array block without.
            None => unreachable!("a Value or Array block always has a lock"),
        }
    }

    #[inline]
    fn guard<'a, D: ?Sized>(
        &'a self,
        lock: LockGuard<'a, RawMutex>,
        view: impl FnOnce(&'a mut [T]) -> &'a mut D,
    ) -> SharedGuard<'a, D> {
        // SAFETY: `lock` proves that this thread holds the lock that guards the elements,
        // and every access to them (in any process) goes through a guard of that lock;
        // the reference is stored in the guard beside `lock`, so it cannot outlive it.
        let elems = unsafe { self.block.elems_mut() };
        SharedGuard::new(view(elems), lock)
    }

    #[inline]
    pub(crate) fn lock<'a, D: ?Sized>(
        &'a self,
        view: impl Fn(&'a mut [T]) -> &'a mut D,
    ) -> GuardResult<SharedGuard<'a, D>> {
        match LockGuard::lock(self.raw()) {
            Ok(g) => Ok(self.guard(g, view)),
            Err(e) => Err(e.map(|g| self.guard(g, view))),
        }
    }

    pub(crate) fn try_lock<'a, D: ?Sized>(
        &'a self,
        view: impl Fn(&'a mut [T]) -> &'a mut D,
    ) -> TryGuardResult<SharedGuard<'a, D>> {
        self.wrap_try(LockGuard::try_lock(self.raw()), view)
    }

    pub(crate) fn try_lock_for<'a, D: ?Sized>(
        &'a self,
        timeout: Duration,
        view: impl Fn(&'a mut [T]) -> &'a mut D,
    ) -> TryGuardResult<SharedGuard<'a, D>> {
        self.wrap_try(LockGuard::try_lock_for(self.raw(), timeout), view)
    }

    pub(crate) fn try_lock_until<'a, D: ?Sized>(
        &'a self,
        deadline: Instant,
        view: impl Fn(&'a mut [T]) -> &'a mut D,
    ) -> TryGuardResult<SharedGuard<'a, D>> {
        self.wrap_try(LockGuard::try_lock_until(self.raw(), deadline), view)
    }

    fn wrap_try<'a, D: ?Sized>(
        &'a self,
        r: Result<LockGuard<'a, RawMutex>, TryLockError<LockGuard<'a, RawMutex>>>,
        view: impl Fn(&'a mut [T]) -> &'a mut D,
    ) -> TryGuardResult<SharedGuard<'a, D>> {
        match r {
            Ok(g) => Ok(self.guard(g, view)),
            Err(e) => Err(e.map(|g| self.guard(g, view))),
        }
    }

    /// Runs `f` on the elements under the lock; on owner death `f` runs all the same
    /// and its result comes back in [`LockError::OwnerDied`].
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R, LockError<R>> {
        match self.lock(|e| e) {
            Ok(mut g) => Ok(f(&mut g)),
            Err(LockError::OwnerDied(mut g)) => Err(LockError::OwnerDied(f(&mut g))),
            Err(LockError::Deadlock) => Err(LockError::Deadlock),
            Err(LockError::Os(e)) => Err(LockError::Os(e)),
        }
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }

    pub(crate) fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_block(&self.block, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D, kind: Kind) -> Result<LockedBlock<T>, D::Error> {
        deserialize_block(d, kind).map(|b| LockedBlock { block: Arc::new(b) })
    }
}
