//! Turning the server's answers into the values a proxy returns.

use serde::de::DeserializeOwned;

use crate::client::unexpected;
use crate::encoding::decode;
use crate::error::ProxyError;
use crate::wire::Response;

pub(crate) fn done(r: Response) -> Result<(), ProxyError> {
    match r {
        Response::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn value<T: DeserializeOwned>(r: Response, limit: usize) -> Result<T, ProxyError> {
    match r {
        Response::Bytes(b) => Ok(decode(&b, limit)?),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn maybe<T: DeserializeOwned>(r: Response, limit: usize) -> Result<Option<T>, ProxyError> {
    match r {
        Response::MaybeBytes(None) => Ok(None),
        Response::MaybeBytes(Some(b)) => Ok(Some(decode(&b, limit)?)),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn many<T: DeserializeOwned>(r: Response, limit: usize) -> Result<Vec<T>, ProxyError> {
    match r {
        Response::List(items) => items.iter().map(|b| decode(b, limit).map_err(ProxyError::from)).collect(),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn pairs<K: DeserializeOwned, V: DeserializeOwned>(
    r: Response,
    limit: usize,
) -> Result<Vec<(K, V)>, ProxyError> {
    match r {
        Response::Pairs(items) => items.iter().map(|(k, v)| Ok((decode(k, limit)?, decode(v, limit)?))).collect(),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn count(r: Response) -> Result<usize, ProxyError> {
    match r {
        Response::Count(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn flag(r: Response) -> Result<bool, ProxyError> {
    match r {
        Response::Flag(b) => Ok(b),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn index(r: Response) -> Result<Option<usize>, ProxyError> {
    match r {
        Response::Index(i) => Ok(i.map(|i| usize::try_from(i).unwrap_or(usize::MAX))),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn id(r: Response) -> Result<u64, ProxyError> {
    match r {
        Response::Id(id) => Ok(id),
        other => Err(unexpected(other)),
    }
}
