//! Read-modify-write on the server in one round trip (`update_with`).
//!
//! The server holds values as bytes and knows nothing of their types, so the proxy
//! sends two function references of this executable: a trampoline of this crate,
//! monomorphised for the value type, whose signature is type-free
//! (`fn(UpdateCall) -> UpdateResult`), and the user's `fn(Option<V>) -> V` (or
//! `fn(V) -> V`), encoded as an [`FnRef`] that only the trampoline decodes. The server
//! calls the trampoline with the current bytes while it holds the object's lock; the
//! trampoline decodes, calls the user's function (catching a panic), and encodes the
//! result, which the server stores and sends back.
//!
//! The server only does this for a client proven to run the same executable (see
//! `crate::binary`); otherwise the offsets would mean nothing.

use std::panic::{AssertUnwindSafe, catch_unwind};

use multiproc_process::FnRef;
use serde::Serialize;
use serde::de::DeserializeOwned;

use serde_bytes::ByteBuf;

use crate::client::{Link, unexpected};
use crate::encoding::{decode, encode};
use crate::error::{ProxyError, UpdateError};
use crate::wire::{Request, Response, ServerError, UpdateCall, UpdateFailure, UpdateFn, UpdateResult};
use multiproc_process::panic_message;

/// The request part for `dict.update_with(key, f)`.
pub(crate) fn for_dict<V>(f: fn(Option<V>) -> V, limit: usize) -> Result<UpdateFn, ProxyError>
where
    V: Serialize + DeserializeOwned,
{
    Ok(UpdateFn { trampoline: FnRef::new(dict_trampoline::<V>), target: encode(&FnRef::new(f), limit)? })
}

/// The request part for `value.update_with(f)`.
pub(crate) fn for_value<V>(f: fn(V) -> V, limit: usize) -> Result<UpdateFn, ProxyError>
where
    V: Serialize + DeserializeOwned,
{
    Ok(UpdateFn { trampoline: FnRef::new(value_trampoline::<V>), target: encode(&FnRef::new(f), limit)? })
}

fn limit_of(call: &UpdateCall) -> usize {
    usize::try_from(call.limit).unwrap_or(usize::MAX)
}

fn finish<V: Serialize>(result: std::thread::Result<V>, limit: usize) -> UpdateResult {
    let new = result.map_err(|p| UpdateFailure::Panicked(panic_message(&*p)))?;
    encode(&new, limit).map_err(|e| UpdateFailure::Encode(e.to_string()))
}

fn dict_trampoline<V: Serialize + DeserializeOwned>(call: UpdateCall) -> UpdateResult {
    let limit = limit_of(&call);
    let target: FnRef<Option<V>, V> = decode(&call.target, limit).map_err(|e| UpdateFailure::Decode(e.to_string()))?;
    let current = match call.current {
        Some(bytes) => Some(decode::<V>(&bytes, limit).map_err(|e| UpdateFailure::Decode(e.to_string()))?),
        None => None,
    };
    // SAFETY: the server calls this trampoline only for a client proven to run this
    // executable (same file as ours, see `crate::binary`), over a connection
    // authenticated with the manager's authkey. That client made `target` with
    // `FnRef::new(f)` for an `f: fn(Option<V>) -> V` with this very `V`, because it
    // monomorphised this trampoline for the same `V` in `for_dict`.
    let f = unsafe { target.resolve() };
    finish(catch_unwind(AssertUnwindSafe(|| f(current))), limit)
}

fn value_trampoline<V: Serialize + DeserializeOwned>(call: UpdateCall) -> UpdateResult {
    let limit = limit_of(&call);
    let target: FnRef<V, V> = decode(&call.target, limit).map_err(|e| UpdateFailure::Decode(e.to_string()))?;
    let Some(bytes) = call.current else {
        return Err(UpdateFailure::Decode("the value is missing".to_owned()));
    };
    let current: V = decode(&bytes, limit).map_err(|e| UpdateFailure::Decode(e.to_string()))?;
    // SAFETY: as in `dict_trampoline`: the client runs this executable (proven) and
    // made `target` from an `fn(V) -> V` with the `V` of this instantiation (`for_value`).
    let f = unsafe { target.resolve() };
    finish(catch_unwind(AssertUnwindSafe(|| f(current))), limit)
}

/// Runs an update on the server: calls the trampoline with the current bytes.
pub(crate) fn run(update: UpdateFn, current: Option<serde_bytes::ByteBuf>, limit: usize) -> UpdateResult {
    // SAFETY: the caller (the server's request loop) only gets here for a connection
    // whose peer runs this executable (`crate::binary`) and authenticated with the
    // authkey; such a peer made `trampoline` with `FnRef::new` from one of the
    // trampolines above, whose type is exactly `fn(UpdateCall) -> UpdateResult`.
    let trampoline = unsafe { update.trampoline.resolve() };
    trampoline(UpdateCall { target: update.target, current, limit: limit as u64 })
}

/// Sends an `update_with` request over `link`. Over TCP, where the server cannot look
/// at our process, the connection first proves (once) that we run its executable.
pub(crate) fn exchange(link: &mut Link, req: &Request) -> Result<Response, UpdateError> {
    if !link.can_pass_fds() && !link.proven {
        let fingerprint = crate::binary::fingerprint().map_err(UpdateError::NotSameBinary)?;
        match link.round_trip(&Request::ProveBinary { fingerprint: ByteBuf::from(fingerprint.to_vec()) })? {
            Response::Done => link.proven = true,
            Response::Error(ServerError::NotSameBinary(m)) => return Err(UpdateError::NotSameBinary(m)),
            other => return Err(unexpected(other).into()),
        }
    }
    Ok(link.round_trip(req)?)
}

/// The new value from the answer to an `update_with` request.
pub(crate) fn outcome<V: DeserializeOwned>(r: Response, limit: usize) -> Result<V, UpdateError> {
    match r {
        Response::Bytes(b) => Ok(decode(&b, limit).map_err(ProxyError::from)?),
        Response::Error(ServerError::NotSameBinary(m)) => Err(UpdateError::NotSameBinary(m)),
        Response::Error(ServerError::UpdateFailed(UpdateFailure::Panicked(message))) => {
            Err(UpdateError::Panicked { message })
        }
        Response::Error(ServerError::UpdateFailed(UpdateFailure::Decode(m))) => Err(ProxyError::Protocol(format!(
            "the server could not decode the value or the function for update_with: {m}"
        ))
        .into()),
        Response::Error(ServerError::UpdateFailed(UpdateFailure::Encode(m))) => {
            Err(ProxyError::Protocol(format!("the new value could not be encoded: {m}")).into())
        }
        other => Err(unexpected(other).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(v: Option<u32>) -> u32 {
        v.unwrap_or(0) + 1
    }

    fn fail(_: Option<u32>) -> u32 {
        panic!("no update today")
    }

    fn double(v: i64) -> i64 {
        v * 2
    }

    #[test]
    fn trampolines_decode_call_and_encode() {
        let limit = 1 << 20;
        let u = for_dict(bump, limit).unwrap();
        let out = run(u, None, limit).unwrap();
        assert_eq!(decode::<u32>(&out, limit).unwrap(), 1);
        let u = for_dict(bump, limit).unwrap();
        let out = run(u, Some(encode(&41u32, limit).unwrap()), limit).unwrap();
        assert_eq!(decode::<u32>(&out, limit).unwrap(), 42);
        let u = for_value(double, limit).unwrap();
        let out = run(u, Some(encode(&21i64, limit).unwrap()), limit).unwrap();
        assert_eq!(decode::<i64>(&out, limit).unwrap(), 42);
    }

    #[test]
    fn a_client_of_another_build_is_refused_over_tcp() {
        let limit = 1 << 20;
        let m = crate::Manager::builder().address(multiproc_pipe::Address::localhost_any_port()).serve().unwrap();
        let d: crate::DictProxy<u8, u32> = m.dict().unwrap();
        let client = d.obj.client();
        // A connection that has not proven anything, then one that claims another build.
        let mut link = client.open_link().unwrap();
        let update_request = || {
            let op = crate::wire::DictOp::UpdateWith {
                key: encode(&1u8, limit).unwrap(),
                update: for_dict(bump, limit).unwrap(),
            };
            Request::Call { id: d.obj.id(), attach: false, op: crate::wire::Op::Dict(op) }
        };
        let r = link.round_trip(&update_request()).unwrap();
        assert!(matches!(r, Response::Error(ServerError::NotSameBinary(_))), "{r:?}");
        let wrong = ByteBuf::from(b"gnu-build-id:another build".to_vec());
        let r = link.round_trip(&Request::ProveBinary { fingerprint: wrong }).unwrap();
        assert!(matches!(r, Response::Error(ServerError::NotSameBinary(_))), "{r:?}");
        let r = link.round_trip(&update_request()).unwrap();
        let e = outcome::<u32>(r, limit).unwrap_err();
        assert!(matches!(e, UpdateError::NotSameBinary(_)), "{e}");
        assert!(e.to_string().contains("same executable"), "{e}");
        assert_eq!(d.get(&1).unwrap(), None, "nothing ran");
        // The proxy's own connections prove the build they run, and may.
        assert_eq!(d.update_with(&1, bump).unwrap(), 1);
    }

    #[test]
    fn panics_and_garbage_are_failures() {
        let limit = 1 << 20;
        let r = run(for_dict(fail, limit).unwrap(), None, limit);
        assert!(matches!(r, Err(UpdateFailure::Panicked(m)) if m == "no update today"));
        let garbage = Some(serde_bytes::ByteBuf::from(vec![0xff; 9]));
        assert!(matches!(run(for_dict(bump, limit).unwrap(), garbage, limit), Err(UpdateFailure::Decode(_))));
        assert!(matches!(run(for_value(double, limit).unwrap(), None, limit), Err(UpdateFailure::Decode(_))));
    }
}
