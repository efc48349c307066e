//! `DictProxy<K, V>`: Python's `manager.dict()`.

use std::any::type_name;
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::{ObjectRef, WireRef};
use crate::encoding::encode;
use crate::error::{ProxyError, UpdateError};
use crate::reply;
use crate::wire::{DictOp, Op, Response};

pub(crate) fn fingerprint<K, V>() -> String {
    format!("dict<{}, {}>", type_name::<K>(), type_name::<V>())
}

/// A dictionary held by a manager (Python's `DictProxy`, from `manager.dict()`).
///
/// Every method is one request to the server, atomic with respect to every other
/// request on the dict. Keys are compared by their encoding (serde + bincode): equal
/// values of ordinary key types (integers, strings, tuples, derived structs and enums)
/// always encode the same. As in Python, the dict remembers insertion order, and
/// [`keys`](DictProxy::keys), [`values`](DictProxy::values) and
/// [`items`](DictProxy::items) return copies.
///
/// Python's `d[k] += 1` is a get and a set, two requests another process can come
/// between; [`update_with`](DictProxy::update_with) runs a function on the server
/// instead, in one round trip, atomically.
///
/// Clone it, share it between threads, or pass it to a child process as an argument
/// (it carries the server's address and the dict's id; the child connects by itself).
///
/// ```
/// use multiproc_manager::Manager;
/// use multiproc_process::{Process, StartMethod};
///
/// fn decrement(count: Option<i64>) -> i64 { count.unwrap_or(0) - 1 }
///
/// fn worker(d: multiproc_manager::DictProxy<String, i64>) {
///     d.update_with("count", decrement).expect("update");
/// }
///
/// let manager = Manager::builder().start_method(StartMethod::Fork).start()?;
/// let d = manager.dict::<String, i64>()?;
/// d.insert("count".to_owned(), 3)?;
/// let mut children: Vec<_> = (0..3).map(|_| Process::new(worker, d.clone()).with_start_method(StartMethod::Fork)).collect();
/// for c in &mut children { c.start()?; }
/// for c in &mut children { c.join()?; }
/// assert_eq!(d.get("count")?, Some(0));
/// assert_eq!(d.items()?, vec![("count".to_owned(), 0)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[allow(clippy::type_complexity, reason = "the PhantomData marker's type is what sets the variance")]
pub struct DictProxy<K, V> {
    pub(crate) obj: Arc<ObjectRef>,
    _types: PhantomData<fn(K, V) -> (K, V)>, // invariant in K and V, and Send + Sync whatever they are
}

impl<K, V> DictProxy<K, V> {
    pub(crate) fn from_ref(obj: Arc<ObjectRef>) -> DictProxy<K, V> {
        DictProxy { obj, _types: PhantomData }
    }
}

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn op(&self, op: DictOp) -> Result<Response, ProxyError> {
        self.obj.call(Op::Dict(op))
    }

    /// The value for `key`, if any (Python's `d.get(k)`).
    ///
    /// Like `HashMap::get`, the key may be any borrowed form of `K` with the same
    /// encoding (`&str` for `String`, `&[T]` for `Vec<T>`).
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>, ProxyError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let limit = self.obj.limit();
        reply::maybe(self.op(DictOp::Get(encode(key, limit)?))?, limit)
    }

    /// The value for `key`, or `default` if there is none (Python's `d.get(k, default)`).
    pub fn get_or<Q>(&self, key: &Q, default: V) -> Result<V, ProxyError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// Sets `key` to `value`, returning the old value (Python's `d[k] = v`). An existing
    /// key keeps its place in the order.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, ProxyError> {
        let limit = self.obj.limit();
        reply::maybe(self.op(DictOp::Insert(encode(&key, limit)?, encode(&value, limit)?))?, limit)
    }

    /// Removes `key`, returning its value (Python's `d.pop(k, None)`).
    pub fn remove<Q>(&self, key: &Q) -> Result<Option<V>, ProxyError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let limit = self.obj.limit();
        reply::maybe(self.op(DictOp::Remove(encode(key, limit)?))?, limit)
    }

    /// The same as [`remove`](DictProxy::remove), under Python's name.
    pub fn pop<Q>(&self, key: &Q) -> Result<Option<V>, ProxyError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.remove(key)
    }

    /// Whether `key` is present (Python's `k in d`).
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool, ProxyError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let limit = self.obj.limit();
        reply::flag(self.op(DictOp::Contains(encode(key, limit)?))?)
    }

    /// The number of entries (Python's `len(d)`).
    pub fn len(&self) -> Result<usize, ProxyError> {
        reply::count(self.op(DictOp::Len)?)
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> Result<bool, ProxyError> {
        Ok(self.len()? == 0)
    }

    /// The keys, in insertion order (Python's `list(d.keys())`).
    pub fn keys(&self) -> Result<Vec<K>, ProxyError> {
        reply::many(self.op(DictOp::Keys)?, self.obj.limit())
    }

    /// The values, in insertion order.
    pub fn values(&self) -> Result<Vec<V>, ProxyError> {
        reply::many(self.op(DictOp::Values)?, self.obj.limit())
    }

    /// The entries, in insertion order (Python's `list(d.items())`, or `d.copy()`).
    pub fn items(&self) -> Result<Vec<(K, V)>, ProxyError> {
        reply::pairs(self.op(DictOp::Items)?, self.obj.limit())
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), ProxyError> {
        reply::done(self.op(DictOp::Clear)?)
    }

    /// Inserts every pair, in one request (Python's `d.update(pairs)`).
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), ProxyError> {
        let limit = self.obj.limit();
        let pairs = pairs.into_iter().map(|(k, v)| Ok((encode(&k, limit)?, encode(&v, limit)?)));
        let pairs = pairs.collect::<Result<Vec<_>, ProxyError>>()?;
        reply::done(self.op(DictOp::Update(pairs))?)
    }

    /// The value of `key`, inserting `default` first if there is none (Python's
    /// `d.setdefault(k, default)`), atomically.
    pub fn setdefault(&self, key: K, default: V) -> Result<V, ProxyError> {
        let limit = self.obj.limit();
        reply::value(self.op(DictOp::SetDefault(encode(&key, limit)?, encode(&default, limit)?))?, limit)
    }

    /// Replaces the value of `key` with `f(current)` on the server, atomically, in one
    /// round trip, and returns the new value. `f` gets `None` if the key is missing.
    ///
    /// `f` runs inside the server process, under the dict's lock: keep it short, and do
    /// not use this manager's proxies from it (that would wait for the lock it holds). It
    /// is sent as its address in this executable, so the server must run the same
    /// executable: true for [`Manager::start`](crate::Manager::start), checked for a
    /// served manager (see [`UpdateError::NotSameBinary`]). A panic in `f` leaves the
    /// value unchanged and is returned as [`UpdateError::Panicked`].
    pub fn update_with<Q>(&self, key: &Q, f: fn(Option<V>) -> V) -> Result<V, UpdateError>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let limit = self.obj.limit();
        let op = DictOp::UpdateWith {
            key: encode(key, limit).map_err(ProxyError::from)?,
            update: crate::update::for_dict(f, limit)?,
        };
        let r = self.obj.call_with(Op::Dict(op), crate::update::exchange)?;
        crate::update::outcome(r, limit)
    }
}

impl<K, V> Clone for DictProxy<K, V> {
    /// Another proxy for the same dict.
    fn clone(&self) -> Self {
        DictProxy::from_ref(self.obj.clone())
    }
}

impl<K, V> fmt::Debug for DictProxy<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DictProxy").field(&self.obj).finish()
    }
}

impl<K, V> Serialize for DictProxy<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.obj.to_wire().serialize(s)
    }
}

impl<'de, K, V> Deserialize<'de> for DictProxy<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireRef::deserialize(d)?;
        ObjectRef::from_wire(w, &fingerprint::<K, V>()).map(DictProxy::from_ref).map_err(serde::de::Error::custom)
    }
}
