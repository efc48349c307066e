//! What can be registered under a name and found again by another program
//! ([`Manager::register`](crate::Manager::register) / [`Manager::get`](crate::Manager::get)).

#![allow(
    private_interfaces,
    reason = "`Shareable` is sealed: its methods live in a supertrait no one outside this crate can name \
              or implement, and they deal in this crate's private protocol types on purpose"
)]

use std::sync::Arc;

use multiproc_sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};

use crate::client::{Client, ObjectRef, Target};
use crate::error::ProxyError;
use crate::queue::{self, JoinableQueueProxy, Local, QueueProxy};
use crate::shared::{self, Shared, SharedProxy};
use crate::wire::{Op, QueueOp, Registered, SyncHandle};
use crate::{DictProxy, ListProxy, ValueProxy, dict, list, value};

/// What a lookup found on the server.
pub(crate) enum Found {
    /// An object, already attached to this process's session.
    Object(u64),
    /// A shared-memory primitive.
    Sync(SyncHandle),
}

/// A proxy or shared-memory primitive that can be registered under a name on a manager
/// and opened by name in another process or program.
///
/// Implemented for every proxy ([`DictProxy`], [`ListProxy`], [`ValueProxy`],
/// [`QueueProxy`], [`JoinableQueueProxy`], [`SharedProxy`]) and for the primitives a
/// manager hands out ([`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`],
/// [`Event`], [`Condition`], [`Barrier`]). Opening checks the type: a dict created as
/// `DictProxy<String, i64>` cannot be opened as `DictProxy<u8, u8>`
/// ([`LookupError::TypeMismatch`](crate::LookupError::TypeMismatch)).
pub trait Shareable: sealed::Sealed {}

pub(crate) mod sealed {
    use super::*;

    /// The methods behind [`Shareable`](super::Shareable), private to this crate.
    pub trait Sealed: Sized {
        /// The type fingerprint a lookup must match.
        fn expected() -> String;
        /// What the server stores under the name.
        fn registered(&self) -> Registered;
        /// The manager a proxy belongs to (`None` for a primitive, which belongs to none).
        fn home(&self) -> Option<&Target>;
        /// The value for what a lookup found.
        fn found(client: Arc<Client>, found: Found) -> Result<Self, ProxyError>;
    }
}

fn object(found: Found) -> Result<u64, ProxyError> {
    match found {
        Found::Object(id) => Ok(id),
        Found::Sync(h) => Err(ProxyError::Protocol(format!("a {} where an object was expected", h.fingerprint()))),
    }
}

/// The shared-memory queue behind a queue object, when the connection can carry it.
pub(crate) fn open_local(obj: &ObjectRef) -> Result<Option<Local>, ProxyError> {
    let client = obj.client();
    if !matches!(client.target().address, multiproc_pipe::Address::Unix(_) | multiproc_pipe::Address::Abstract(_)) {
        return Ok(None);
    }
    Local::from_response(obj.call(Op::Queue(QueueOp::Open))?).map(Some)
}

macro_rules! object_proxy {
    ($ty:ident < $($p:ident),* >, $fingerprint:expr) => {
        impl<$($p),*> Shareable for $ty<$($p),*> {}
        impl<$($p),*> sealed::Sealed for $ty<$($p),*> {
            fn expected() -> String {
                $fingerprint
            }
            fn registered(&self) -> Registered {
                Registered::Object { id: self.obj.id() }
            }
            fn home(&self) -> Option<&Target> {
                Some(self.obj.target())
            }
            fn found(client: Arc<Client>, found: Found) -> Result<Self, ProxyError> {
                Ok($ty::from_ref(ObjectRef::attached(client, object(found)?, Self::expected())))
            }
        }
    };
}

object_proxy!(DictProxy<K, V>, dict::fingerprint::<K, V>());
object_proxy!(ListProxy<T>, list::fingerprint::<T>());
object_proxy!(ValueProxy<T>, value::fingerprint::<T>());

impl<S: Shared> Shareable for SharedProxy<S> {}
impl<S: Shared> sealed::Sealed for SharedProxy<S> {
    fn expected() -> String {
        shared::fingerprint::<S>()
    }
    fn registered(&self) -> Registered {
        Registered::Object { id: self.obj.id() }
    }
    fn home(&self) -> Option<&Target> {
        Some(self.obj.target())
    }
    fn found(client: Arc<Client>, found: Found) -> Result<Self, ProxyError> {
        Ok(SharedProxy::from_ref(ObjectRef::attached(client, object(found)?, Self::expected())))
    }
}

impl<T> Shareable for QueueProxy<T> {}
impl<T> sealed::Sealed for QueueProxy<T> {
    fn expected() -> String {
        queue::fingerprint::<T>(false)
    }
    fn registered(&self) -> Registered {
        Registered::Object { id: self.obj.id() }
    }
    fn home(&self) -> Option<&Target> {
        Some(self.obj.target())
    }
    fn found(client: Arc<Client>, found: Found) -> Result<Self, ProxyError> {
        let obj = ObjectRef::attached(client, object(found)?, Self::expected());
        let local = open_local(&obj)?;
        Ok(QueueProxy::new(obj, local))
    }
}

impl<T> Shareable for JoinableQueueProxy<T> {}
impl<T> sealed::Sealed for JoinableQueueProxy<T> {
    fn expected() -> String {
        queue::fingerprint::<T>(true)
    }
    fn registered(&self) -> Registered {
        Registered::Object { id: self.obj.id() }
    }
    fn home(&self) -> Option<&Target> {
        Some(self.obj.target())
    }
    fn found(client: Arc<Client>, found: Found) -> Result<Self, ProxyError> {
        let obj = ObjectRef::attached(client, object(found)?, Self::expected());
        let local = open_local(&obj)?;
        Ok(JoinableQueueProxy::new(obj, local))
    }
}

macro_rules! primitive {
    ($ty:ident) => {
        impl Shareable for $ty {}
        impl sealed::Sealed for $ty {
            fn expected() -> String {
                stringify!($ty).to_owned()
            }
            fn registered(&self) -> Registered {
                Registered::Sync(SyncHandle::$ty(self.clone()))
            }
            fn home(&self) -> Option<&Target> {
                None
            }
            fn found(_client: Arc<Client>, found: Found) -> Result<Self, ProxyError> {
                match found {
                    Found::Sync(SyncHandle::$ty(h)) => Ok(h),
                    Found::Sync(other) => Err(ProxyError::TypeMismatch {
                        expected: Self::expected(),
                        found: other.fingerprint().to_owned(),
                    }),
                    Found::Object(_) => {
                        Err(ProxyError::Protocol(format!("an object where a {} was expected", stringify!($ty))))
                    }
                }
            }
        }
    };
}

primitive!(Lock);
primitive!(RLock);
primitive!(Semaphore);
primitive!(BoundedSemaphore);
primitive!(Event);
primitive!(Condition);
primitive!(Barrier);
