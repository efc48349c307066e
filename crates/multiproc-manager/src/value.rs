//! `ValueProxy<T>`: Python's `manager.Value(typecode, x)` and `manager.Namespace()`.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::{ObjectRef, WireRef};
use crate::encoding::encode;
use crate::error::{ProxyError, UpdateError};
use crate::reply;
use crate::wire::{Op, Response, ValueOp};

pub(crate) fn fingerprint<T>() -> String {
    format!("value<{}>", type_name::<T>())
}

/// One value of any serde type held by a manager (Python's `ValueProxy` from
/// `manager.Value(...)`; a struct in it plays the part of a `Namespace`).
///
/// ```
/// use multiproc_manager::Manager;
/// use multiproc_process::StartMethod;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// struct Settings { name: String, retries: u32 }
///
/// fn more_retries(mut s: Settings) -> Settings { s.retries += 1; s }
///
/// let manager = Manager::builder().start_method(StartMethod::Fork).start()?;
/// let ns = manager.value(Settings { name: "job".into(), retries: 0 })?;
/// ns.update_with(more_retries)?;
/// assert_eq!(ns.get()?.retries, 1);
/// ns.set(Settings { name: "other".into(), retries: 5 })?;
/// assert_eq!(ns.get()?.name, "other");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ValueProxy<T> {
    pub(crate) obj: Arc<ObjectRef>,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> ValueProxy<T> {
    pub(crate) fn from_ref(obj: Arc<ObjectRef>) -> ValueProxy<T> {
        ValueProxy { obj, _type: PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    fn op(&self, op: ValueOp) -> Result<Response, ProxyError> {
        self.obj.call(Op::Value(op))
    }

    /// A copy of the value (Python's `v.value` / `v.get()`).
    pub fn get(&self) -> Result<T, ProxyError> {
        reply::value(self.op(ValueOp::Get)?, self.obj.limit())
    }

    /// Replaces the value (Python's `v.value = x` / `v.set(x)`).
    pub fn set(&self, value: T) -> Result<(), ProxyError> {
        let limit = self.obj.limit();
        reply::done(self.op(ValueOp::Set(encode(&value, limit)?))?)
    }

    /// Replaces the value and returns the old one, atomically.
    pub fn replace(&self, value: T) -> Result<T, ProxyError> {
        let limit = self.obj.limit();
        reply::value(self.op(ValueOp::Replace(encode(&value, limit)?))?, limit)
    }

    /// Replaces the value with `f(value)` on the server, atomically, in one round trip,
    /// and returns the new value. The same rules as
    /// [`DictProxy::update_with`](crate::DictProxy::update_with) apply.
    pub fn update_with(&self, f: fn(T) -> T) -> Result<T, UpdateError> {
        let limit = self.obj.limit();
        let op = ValueOp::UpdateWith(crate::update::for_value(f, limit)?);
        let r = self.obj.call_with(Op::Value(op), crate::update::exchange)?;
        crate::update::outcome(r, limit)
    }
}

impl<T> Clone for ValueProxy<T> {
    /// Another proxy for the same value.
    fn clone(&self) -> Self {
        ValueProxy::from_ref(self.obj.clone())
    }
}

impl<T> fmt::Debug for ValueProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueProxy").field(&self.obj).finish()
    }
}

impl<T> Serialize for ValueProxy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.obj.to_wire().serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for ValueProxy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireRef::deserialize(d)?;
        ObjectRef::from_wire(w, &fingerprint::<T>()).map(ValueProxy::from_ref).map_err(serde::de::Error::custom)
    }
}
