//! Mutual HMAC-SHA256 challenge–response, run on every new Listener/Client connection
//! before any message (Python's `deliver_challenge` / `answer_challenge`, in both
//! directions).
//!
//! Both sides prove they hold the authkey without revealing it; each proof covers both
//! sides' fresh random nonces and names the role that made it, so nothing can be replayed
//! or reflected back:
//!
//! ```text
//! server → client   HELLO    nonce_s
//! client → server   RESPONSE nonce_c, HMAC(key, "client" | nonce_s | nonce_c)
//! server → client   WELCOME  HMAC(key, "server" | nonce_c | nonce_s)      (or FAILURE)
//! client → server   CONFIRM                                              (or FAILURE)
//! ```
//!
//! The final CONFIRM means both sides learn the same outcome: a wrong key fails on both.
//! Handshake messages are ordinary frames limited to [`HANDSHAKE_LIMIT`] bytes and the
//! whole exchange has a deadline, so a silent or hostile peer costs at most that time and
//! a fixed amount of memory.

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{AuthenticationError, Connection, RecvError, SendError};

type HmacSha256 = Hmac<Sha256>;

/// The largest handshake message accepted, in bytes.
pub(crate) const HANDSHAKE_LIMIT: usize = 256;

const NONCE: usize = 32;
const TAG: usize = 32;
const KIND: usize = 8;

const HELLO: &[u8; KIND] = b"MPauth1H";
const RESPONSE: &[u8; KIND] = b"MPauth1R";
const WELCOME: &[u8; KIND] = b"MPauth1W";
const FAILURE: &[u8; KIND] = b"MPauth1F";
const CONFIRM: &[u8; KIND] = b"MPauth1C";

const CLIENT_LABEL: &[u8] = b"multiproc auth v1 client";
const SERVER_LABEL: &[u8] = b"multiproc auth v1 server";

fn mac(key: &[u8], label: &[u8], first: &[u8], second: &[u8]) -> Result<HmacSha256, AuthenticationError> {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key)
        .map_err(|_| AuthenticationError::Protocol("the authkey cannot be used as an HMAC key".to_owned()))?;
    m.update(label);
    m.update(first);
    m.update(second);
    Ok(m)
}

fn nonce() -> Result<[u8; NONCE], AuthenticationError> {
    let mut n = [0u8; NONCE];
    getrandom::fill(&mut n).map_err(|e| AuthenticationError::Io(std::io::Error::other(e.to_string())))?;
    Ok(n)
}

/// One side of a handshake in progress.
struct Exchange<'a> {
    conn: &'a Connection,
    deadline: Instant,
    timeout: Duration,
}

impl Exchange<'_> {
    fn send(&self, kind: &[u8; KIND], parts: &[&[u8]]) -> Result<(), AuthenticationError> {
        let mut msg = kind.to_vec();
        for p in parts {
            msg.extend_from_slice(p);
        }
        self.conn.send_bytes_until(&msg, Some(self.deadline)).map_err(|e| match e {
            SendError::Disconnected => AuthenticationError::Closed,
            SendError::Timeout | SendError::Broken => AuthenticationError::Timeout(self.timeout),
            SendError::Io(e) => AuthenticationError::Io(e),
            other => AuthenticationError::Protocol(other.to_string()),
        })
    }

    /// Receives a message; returns its kind and the rest.
    fn recv(&self) -> Result<([u8; KIND], Vec<u8>), AuthenticationError> {
        let msg = self.conn.recv_bytes_until(Some(self.deadline), HANDSHAKE_LIMIT).map_err(|e| match e {
            RecvError::Disconnected | RecvError::Truncated { .. } => AuthenticationError::Closed,
            RecvError::Timeout => AuthenticationError::Timeout(self.timeout),
            RecvError::TooLarge { size, limit } => AuthenticationError::Protocol(format!(
                "a handshake message claims {size} bytes (at most {limit} are allowed)"
            )),
            RecvError::Corrupt(why) => AuthenticationError::Protocol(why),
            RecvError::Io(e) => AuthenticationError::Io(e),
            other => AuthenticationError::Protocol(other.to_string()),
        })?;
        if msg.len() < KIND {
            return Err(AuthenticationError::Protocol(format!(
                "a handshake message of {} bytes is too short",
                msg.len()
            )));
        }
        let mut kind = [0u8; KIND];
        kind.copy_from_slice(&msg[..KIND]);
        Ok((kind, msg[KIND..].to_vec()))
    }
}

fn unexpected(kind: &[u8; KIND], wanted: &str) -> AuthenticationError {
    AuthenticationError::Protocol(format!("expected a {wanted} message, got \"{}\"", kind.escape_ascii()))
}

/// The listener's side. `Ok` only if the client proved it holds `key` and accepted our proof.
pub(crate) fn server(conn: &Connection, key: &[u8], timeout: Duration) -> Result<(), AuthenticationError> {
    let x = Exchange { conn, deadline: Instant::now() + timeout, timeout };
    let nonce_s = nonce()?;
    x.send(HELLO, &[&nonce_s])?;
    let (kind, body) = x.recv()?;
    if &kind != RESPONSE {
        return Err(unexpected(&kind, "RESPONSE"));
    }
    if body.len() != NONCE + TAG {
        return Err(AuthenticationError::Protocol(format!(
            "a RESPONSE of {} bytes (expected {})",
            body.len(),
            NONCE + TAG
        )));
    }
    let (nonce_c, tag_c) = body.split_at(NONCE);
    if mac(key, CLIENT_LABEL, &nonce_s, nonce_c)?.verify_slice(tag_c).is_err() {
        // Best effort: the client learns the outcome even if it stops listening.
        let _ = x.send(FAILURE, &[]);
        return Err(AuthenticationError::WrongKey("the client's proof does not match our key"));
    }
    let tag_s = mac(key, SERVER_LABEL, nonce_c, &nonce_s)?.finalize().into_bytes();
    x.send(WELCOME, &[&tag_s])?;
    let (kind, _) = x.recv()?;
    match &kind {
        CONFIRM => Ok(()),
        FAILURE => Err(AuthenticationError::WrongKey("the client rejected our proof of the key")),
        _ => Err(unexpected(&kind, "CONFIRM")),
    }
}

/// The client's side. `Ok` only if the server proved it holds `key` and accepted our proof.
pub(crate) fn client(conn: &Connection, key: &[u8], timeout: Duration) -> Result<(), AuthenticationError> {
    let x = Exchange { conn, deadline: Instant::now() + timeout, timeout };
    let (kind, nonce_s) = x.recv()?;
    if &kind != HELLO {
        return Err(unexpected(&kind, "HELLO"));
    }
    if nonce_s.len() != NONCE {
        return Err(AuthenticationError::Protocol(format!("a HELLO of {} bytes (expected {NONCE})", nonce_s.len())));
    }
    let nonce_c = nonce()?;
    let tag_c = mac(key, CLIENT_LABEL, &nonce_s, &nonce_c)?.finalize().into_bytes();
    x.send(RESPONSE, &[&nonce_c, &tag_c])?;
    let (kind, tag_s) = x.recv()?;
    match &kind {
        WELCOME => {}
        FAILURE => return Err(AuthenticationError::WrongKey("the server rejected our proof of the key")),
        _ => return Err(unexpected(&kind, "WELCOME")),
    }
    if mac(key, SERVER_LABEL, &nonce_c, &nonce_s)?.verify_slice(&tag_s).is_err() {
        let _ = x.send(FAILURE, &[]);
        return Err(AuthenticationError::WrongKey("the server's proof does not match our key"));
    }
    x.send(CONFIRM, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pipe;

    fn run(
        server_key: &'static [u8],
        client_key: &'static [u8],
    ) -> (Result<(), AuthenticationError>, Result<(), AuthenticationError>) {
        let (a, b) = Pipe::duplex().unwrap();
        let t = std::thread::spawn(move || client(&b, client_key, Duration::from_secs(10)));
        let s = server(&a, server_key, Duration::from_secs(10));
        (s, t.join().unwrap())
    }

    #[test]
    fn same_key_succeeds_on_both_sides() {
        let (s, c) = run(b"secret", b"secret");
        s.unwrap();
        c.unwrap();
        let (s, c) = run(b"", b"");
        s.unwrap();
        c.unwrap();
    }

    #[test]
    fn wrong_key_fails_on_both_sides() {
        let (s, c) = run(b"secret", b"guess");
        assert!(matches!(s, Err(AuthenticationError::WrongKey(_))), "{s:?}");
        assert!(matches!(c, Err(AuthenticationError::WrongKey(_))), "{c:?}");
    }

    #[test]
    fn a_reflected_proof_is_refused() {
        // A "client" that echoes the server's own nonce as its nonce and tries to pass off
        // a server-labelled tag must fail: the labels differ.
        let (a, b) = Pipe::duplex().unwrap();
        let t = std::thread::spawn(move || {
            let x = Exchange {
                conn: &b,
                deadline: Instant::now() + Duration::from_secs(10),
                timeout: Duration::from_secs(10),
            };
            let (_, nonce_s) = x.recv().unwrap();
            let forged = mac(b"k", SERVER_LABEL, &nonce_s, &nonce_s).unwrap().finalize().into_bytes();
            x.send(RESPONSE, &[&nonce_s, &forged]).unwrap();
            x.recv().unwrap().0
        });
        let s = server(&a, b"k", Duration::from_secs(10));
        assert!(matches!(s, Err(AuthenticationError::WrongKey(_))), "{s:?}");
        assert_eq!(&t.join().unwrap(), FAILURE);
    }

    #[test]
    fn silence_times_out_and_garbage_is_refused() {
        let (a, _b) = Pipe::duplex().unwrap();
        let s = server(&a, b"k", Duration::from_millis(50));
        assert!(matches!(s, Err(AuthenticationError::Timeout(_))), "{s:?}");

        let (a, b) = Pipe::duplex().unwrap();
        b.send_bytes(&[0u8; 1000]).unwrap();
        let s = server(&a, b"k", Duration::from_secs(10));
        assert!(matches!(&s, Err(AuthenticationError::Protocol(m)) if m.contains("1000 bytes")), "{s:?}");
    }
}
