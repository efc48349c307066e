use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::AddressParseError;

/// Where a [`Listener`](crate::Listener) listens and a [`Client`](crate::Client)
/// connects (Python's `address` with its `family`).
///
/// Parses from and displays as text:
///
/// | text | address |
/// |---|---|
/// | `/run/app.sock`, `./app.sock`, `unix:app.sock` | [`Address::Unix`]: a socket file (Python's `AF_UNIX` string) |
/// | `@app` | [`Address::Abstract`]: a Linux abstract socket, no file (Python's `'\0app'`) |
/// | `127.0.0.1:5000`, `[::1]:0`, `localhost:5000` | [`Address::Tcp`] (Python's `(host, port)` tuple) |
///
/// ```
/// use multiproc_pipe::Address;
///
/// let a: Address = "127.0.0.1:0".parse()?;
/// assert!(matches!(a, Address::Tcp(_)));
/// assert_eq!("@svc".parse::<Address>()?, Address::Abstract(b"svc".to_vec()));
/// assert_eq!("/tmp/x.sock".parse::<Address>()?.to_string(), "unix:/tmp/x.sock");
/// # Ok::<(), multiproc_pipe::AddressParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Address {
    /// A Unix socket file at this path. A [`Listener`](crate::Listener) creates it and
    /// removes it when dropped.
    Unix(PathBuf),
    /// A Linux abstract Unix socket with this name (no leading NUL): no file, gone when
    /// the listener closes.
    Abstract(Vec<u8>),
    /// A TCP address. Port 0 asks for any free port; [`Listener::address`](crate::Listener::address)
    /// tells which one was given.
    Tcp(SocketAddr),
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    let mut random = [0u8; 6];
    // Uniqueness comes from pid + counter; the random part only makes names
    // unpredictable, so a failure to get randomness is not fatal.
    let _ = getrandom::fill(&mut random);
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("multiproc-{}-{}-{random}", std::process::id(), UNIQUE.fetch_add(1, Ordering::Relaxed))
}

impl Address {
    /// A fresh socket path in the temporary directory (Python's `arbitrary_address('AF_UNIX')`).
    pub fn unique_unix() -> Address {
        Address::Unix(std::env::temp_dir().join(format!("{}.sock", unique_name())))
    }

    /// A fresh abstract socket name.
    pub fn unique_abstract() -> Address {
        Address::Abstract(unique_name().into_bytes())
    }

    /// `127.0.0.1:0`: any free TCP port on the loopback interface.
    pub fn localhost_any_port() -> Address {
        Address::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Unix(p)
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Address {
        Address::Unix(p.to_path_buf())
    }
}

impl FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Address, AddressParseError> {
        let err = || AddressParseError { input: s.to_owned() };
        if let Some(path) = s.strip_prefix("unix:") {
            return if path.is_empty() { Err(err()) } else { Ok(Address::Unix(PathBuf::from(path))) };
        }
        if let Some(name) = s.strip_prefix('@') {
            return if name.is_empty() { Err(err()) } else { Ok(Address::Abstract(name.as_bytes().to_vec())) };
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Address::Tcp(a));
        }
        if let Some(port) = s.strip_prefix("localhost:") {
            let port = port.parse::<u16>().map_err(|_| err())?;
            return Ok(Address::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
        }
        if s.contains('/') {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        Err(err())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Abstract(name) => write!(f, "@{}", name.escape_ascii()),
            Address::Tcp(a) => write!(f, "{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for text in ["unix:/tmp/a.sock", "unix:rel/b.sock", "@name", "127.0.0.1:80", "[::1]:0"] {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
            assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
        }
        assert_eq!("./x.sock".parse::<Address>().unwrap(), Address::Unix("./x.sock".into()));
        assert_eq!("localhost:7".parse::<Address>().unwrap(), Address::Tcp("127.0.0.1:7".parse().unwrap()));
        for bad in ["", "nonsense", "unix:", "@", "localhost:x", "1.2.3.4"] {
            let e = bad.parse::<Address>().unwrap_err();
            assert!(e.to_string().contains("is not an address"), "{e}");
        }
    }

    #[test]
    fn unique_addresses_differ() {
        assert_ne!(Address::unique_unix(), Address::unique_unix());
        assert_ne!(Address::unique_abstract(), Address::unique_abstract());
    }
}
