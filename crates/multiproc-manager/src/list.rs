//! `ListProxy<T>`: Python's `manager.list()`.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::{ObjectRef, WireRef, unexpected};
use crate::encoding::{decode, encode};
use crate::error::ProxyError;
use crate::reply;
use crate::wire::{ListOp, Op, Response};

pub(crate) fn fingerprint<T>() -> String {
    format!("list<{}>", type_name::<T>())
}

/// A list held by a manager (Python's `ListProxy`, from `manager.list()`).
///
/// Every method is one request to the server, atomic with respect to every other
/// request on the list. Items are compared ([`remove`](ListProxy::remove),
/// [`index`](ListProxy::index), [`contains`](ListProxy::contains)) by their encoding, as
/// dict keys are. Indices are `usize`; Python's negative indices are
/// [`pop`](ListProxy::pop) (the last item) and `len() - k`.
///
/// ```
/// use multiproc_manager::Manager;
/// use multiproc_process::StartMethod;
///
/// let manager = Manager::builder().start_method(StartMethod::Fork).start()?;
/// let l = manager.list_from(["b", "c"].map(String::from))?;
/// l.insert(0, "a".to_owned())?;
/// l.push("d".to_owned())?;
/// assert_eq!(l.index("c")?, Some(2));
/// assert_eq!(l.pop()?, Some("d".to_owned()));
/// assert!(l.remove("b")?);
/// assert_eq!(l.to_vec()?, ["a", "c"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ListProxy<T> {
    pub(crate) obj: Arc<ObjectRef>,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> ListProxy<T> {
    pub(crate) fn from_ref(obj: Arc<ObjectRef>) -> ListProxy<T> {
        ListProxy { obj, _type: PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    fn op(&self, op: ListOp) -> Result<Response, ProxyError> {
        self.obj.call(Op::List(op))
    }

    /// Appends an item (Python's `append`).
    pub fn push(&self, item: T) -> Result<(), ProxyError> {
        let limit = self.obj.limit();
        reply::done(self.op(ListOp::Push(encode(&item, limit)?))?)
    }

    /// The same as [`push`](ListProxy::push), under Python's name.
    pub fn append(&self, item: T) -> Result<(), ProxyError> {
        self.push(item)
    }

    /// Appends every item, in one request (Python's `extend`).
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), ProxyError> {
        let limit = self.obj.limit();
        let items = items.into_iter().map(|i| encode(&i, limit)).collect::<Result<Vec<_>, _>>()?;
        reply::done(self.op(ListOp::Extend(items))?)
    }

    /// Inserts `item` before position `index`; an index past the end appends (as in
    /// Python).
    pub fn insert(&self, index: usize, item: T) -> Result<(), ProxyError> {
        let limit = self.obj.limit();
        reply::done(self.op(ListOp::Insert(index as u64, encode(&item, limit)?))?)
    }

    /// Removes and returns the last item, `None` if the list is empty (Python's `pop()`).
    pub fn pop(&self) -> Result<Option<T>, ProxyError> {
        reply::maybe(self.op(ListOp::Pop(None))?, self.obj.limit())
    }

    /// Removes and returns the item at `index` (Python's `pop(i)`); fails with
    /// [`ProxyError::IndexOutOfRange`] past the end.
    pub fn pop_at(&self, index: usize) -> Result<T, ProxyError> {
        let limit = self.obj.limit();
        match self.op(ListOp::Pop(Some(index as u64)))? {
            Response::MaybeBytes(Some(b)) => Ok(decode(&b, limit)?),
            other => Err(unexpected(other)),
        }
    }

    /// The item at `index`, `None` past the end (Python's `l[i]`).
    pub fn get(&self, index: usize) -> Result<Option<T>, ProxyError> {
        reply::maybe(self.op(ListOp::Get(index as u64))?, self.obj.limit())
    }

    /// Replaces the item at `index` (Python's `l[i] = x`); fails with
    /// [`ProxyError::IndexOutOfRange`] past the end.
    pub fn set(&self, index: usize, item: T) -> Result<(), ProxyError> {
        let limit = self.obj.limit();
        reply::done(self.op(ListOp::Set(index as u64, encode(&item, limit)?))?)
    }

    /// The number of items (Python's `len(l)`).
    pub fn len(&self) -> Result<usize, ProxyError> {
        reply::count(self.op(ListOp::Len)?)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> Result<bool, ProxyError> {
        Ok(self.len()? == 0)
    }

    /// Removes the first item equal to `item`; `false` if there is none (where Python
    /// raises `ValueError`).
    pub fn remove<Q: Serialize + ?Sized>(&self, item: &Q) -> Result<bool, ProxyError>
    where
        T: std::borrow::Borrow<Q>,
    {
        let limit = self.obj.limit();
        reply::flag(self.op(ListOp::Remove(encode(item, limit)?))?)
    }

    /// The position of the first item equal to `item`, if any (Python's `index`).
    pub fn index<Q: Serialize + ?Sized>(&self, item: &Q) -> Result<Option<usize>, ProxyError>
    where
        T: std::borrow::Borrow<Q>,
    {
        let limit = self.obj.limit();
        reply::index(self.op(ListOp::Index(encode(item, limit)?))?)
    }

    /// Whether some item equals `item` (Python's `x in l`).
    pub fn contains<Q: Serialize + ?Sized>(&self, item: &Q) -> Result<bool, ProxyError>
    where
        T: std::borrow::Borrow<Q>,
    {
        Ok(self.index(item)?.is_some())
    }

    /// Removes every item.
    pub fn clear(&self) -> Result<(), ProxyError> {
        reply::done(self.op(ListOp::Clear)?)
    }

    /// A copy of the whole list (Python's `l[:]`).
    pub fn to_vec(&self) -> Result<Vec<T>, ProxyError> {
        reply::many(self.op(ListOp::ToVec)?, self.obj.limit())
    }
}

impl<T> Clone for ListProxy<T> {
    /// Another proxy for the same list.
    fn clone(&self) -> Self {
        ListProxy::from_ref(self.obj.clone())
    }
}

impl<T> fmt::Debug for ListProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ListProxy").field(&self.obj).finish()
    }
}

impl<T> Serialize for ListProxy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.obj.to_wire().serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for ListProxy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireRef::deserialize(d)?;
        ObjectRef::from_wire(w, &fingerprint::<T>()).map(ListProxy::from_ref).map_err(serde::de::Error::custom)
    }
}
