//! Your own shared types (Python's `BaseManager.register(typeid, callable)`).
//!
//! A type implementing [`Shared`] lives in the server; proxies send it typed requests and
//! get typed responses, one at a time (the server runs [`Shared::handle`] under the
//! object's lock). The program that starts or serves the manager registers the type
//! with [`ManagerBuilder::register`](crate::ManagerBuilder::register); a server process
//! receives the registration as a function reference of the same executable, so it runs
//! the very same code.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use multiproc_process::FnRef;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_bytes::ByteBuf;

use crate::client::{ObjectRef, WireRef, unexpected};
use crate::encoding::{decode, encode};
use crate::error::ProxyError;
use crate::wire::{Op, Response};
use multiproc_process::panic_message;

/// A type whose values live in a manager's server and are used through a
/// [`SharedProxy`] (Python: a class registered with `BaseManager.register`).
///
/// Every method call of a Python proxy becomes one [`Request`](Shared::Request) here,
/// answered by one [`Response`](Shared::Response); the server runs
/// [`handle`](Shared::handle) with the object locked, so each request is atomic.
///
/// ```
/// use multiproc_manager::{Manager, Shared};
/// use serde::{Deserialize, Serialize};
///
/// /// A running total with a history, kept by the manager.
/// struct Tally { total: i64, entries: usize }
///
/// #[derive(Serialize, Deserialize)]
/// enum TallyRequest { Add(i64), Total }
///
/// impl Shared for Tally {
///     const TYPEID: &'static str = "Tally";
///     type Init = i64;
///     type Request = TallyRequest;
///     type Response = (i64, usize);
///     fn create(start: i64) -> Tally { Tally { total: start, entries: 0 } }
///     fn handle(&mut self, request: TallyRequest) -> (i64, usize) {
///         if let TallyRequest::Add(n) = request {
///             self.total += n;
///             self.entries += 1;
///         }
///         (self.total, self.entries)
///     }
/// }
///
/// let manager = Manager::builder().register::<Tally>().start_method(multiproc_process::StartMethod::Fork).start()?;
/// let tally = manager.create::<Tally>(10)?;
/// tally.call(TallyRequest::Add(5))?;
/// assert_eq!(tally.call(TallyRequest::Total)?, (15, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Shared: Send + 'static {
    /// The name the type is registered under (Python's `typeid`). Programs that share
    /// a served manager must agree on it.
    const TYPEID: &'static str;
    /// What [`create`](Shared::create) is given.
    type Init: Serialize + DeserializeOwned;
    /// What a proxy sends.
    type Request: Serialize + DeserializeOwned;
    /// What the server answers.
    type Response: Serialize + DeserializeOwned;
    /// Makes a new value (in the server).
    fn create(init: Self::Init) -> Self;
    /// Answers one request (in the server, with the value locked).
    fn handle(&mut self, request: Self::Request) -> Self::Response;
}

/// The type fingerprint of a `Shared` type: its id and the types it exchanges.
pub(crate) fn fingerprint<S: Shared>() -> String {
    format!("{}<{}, {}, {}>", S::TYPEID, type_name::<S::Init>(), type_name::<S::Request>(), type_name::<S::Response>())
}

// ---- the server side ----

/// Why a registered object could not answer.
pub(crate) enum Failure {
    Decode(String),
    Encode(String),
    TooLarge { size: u64, limit: u64 },
    Panicked(String),
}

/// A `Shared` value with its types erased, as the server holds it.
pub(crate) trait ErasedShared: Send {
    fn handle_bytes(&mut self, request: &[u8], limit: usize) -> Result<ByteBuf, Failure>;
}

struct Holder<S>(S);

impl<S: Shared> ErasedShared for Holder<S> {
    fn handle_bytes(&mut self, request: &[u8], limit: usize) -> Result<ByteBuf, Failure> {
        let request: S::Request = decode(request, limit).map_err(|e| Failure::Decode(e.to_string()))?;
        let response = catch_unwind(AssertUnwindSafe(|| self.0.handle(request)))
            .map_err(|p| Failure::Panicked(panic_message(&*p)))?;
        encode(&response, limit).map_err(|e| match e {
            multiproc_codec::EncodeError::TooLarge { size, limit } => {
                Failure::TooLarge { size: size as u64, limit: limit as u64 }
            }
            other => Failure::Encode(other.to_string()),
        })
    }
}

/// What a registration's constructor returns.
pub(crate) type Created = Result<Box<dyn ErasedShared>, String>;

fn create_erased<S: Shared>(init: ByteBuf) -> Created {
    let init: S::Init = decode(&init, usize::MAX).map_err(|e| format!("the initial value does not decode: {e}"))?;
    let value = catch_unwind(AssertUnwindSafe(|| S::create(init)))
        .map_err(|p| format!("{}::create panicked: {}", S::TYPEID, panic_message(&*p)))?;
    Ok(Box::new(Holder(value)))
}

/// A registered type, as the server process receives it.
#[derive(Serialize, Deserialize)]
pub(crate) struct Registration {
    pub(crate) typeid: String,
    pub(crate) fingerprint: String,
    pub(crate) create: FnRef<ByteBuf, Created>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration").field("typeid", &self.typeid).field("fingerprint", &self.fingerprint).finish()
    }
}

impl Registration {
    pub(crate) fn of<S: Shared>() -> Registration {
        Registration {
            typeid: S::TYPEID.to_owned(),
            fingerprint: fingerprint::<S>(),
            create: FnRef::new(create_erased::<S>),
        }
    }
}

impl Clone for Registration {
    fn clone(&self) -> Self {
        Registration { typeid: self.typeid.clone(), fingerprint: self.fingerprint.clone(), create: self.create }
    }
}

// ---- the proxy ----

/// A proxy for a value of your own [`Shared`] type held by a manager (Python: the proxy
/// `BaseManager.register` generates).
///
/// Made by [`Manager::create`](crate::Manager::create) or found by name with
/// [`Manager::get`](crate::Manager::get). Clone it, send it to other threads, or pass it
/// to a child process as an argument (it carries the server's address and the object's
/// id; the child connects by itself). See [`Shared`] for an example.
pub struct SharedProxy<S: Shared> {
    pub(crate) obj: Arc<ObjectRef>,
    _type: PhantomData<fn(S) -> S>,
}

impl<S: Shared> SharedProxy<S> {
    pub(crate) fn from_ref(obj: Arc<ObjectRef>) -> SharedProxy<S> {
        SharedProxy { obj, _type: PhantomData }
    }

    /// Sends one request and returns the answer. The server handles the requests of all
    /// proxies of the object one at a time.
    pub fn call(&self, request: S::Request) -> Result<S::Response, ProxyError> {
        let limit = self.obj.client().max_message_size();
        let bytes = encode(&request, limit)?;
        match self.obj.call(Op::User(bytes))? {
            Response::Bytes(b) => Ok(decode(&b, limit)?),
            other => Err(unexpected(other)),
        }
    }
}

impl<S: Shared> Clone for SharedProxy<S> {
    fn clone(&self) -> Self {
        SharedProxy::from_ref(self.obj.clone())
    }
}

impl<S: Shared> fmt::Debug for SharedProxy<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedProxy").field(&self.obj).finish()
    }
}

impl<S: Shared> Serialize for SharedProxy<S> {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        self.obj.to_wire().serialize(s)
    }
}

impl<'de, S: Shared> Deserialize<'de> for SharedProxy<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireRef::deserialize(d)?;
        ObjectRef::from_wire(w, &fingerprint::<S>()).map(SharedProxy::from_ref).map_err(serde::de::Error::custom)
    }
}
