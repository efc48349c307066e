//! Listener and Client over a Unix socket path, an abstract socket and TCP (127.0.0.1
//! only), with clients in child processes under every start method: round trips, a
//! wrong authkey, garbage instead of a handshake, and peers that say nothing.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use multiproc_pipe::{AcceptError, Address, AuthenticationError, Client, ConnectError, Connection, Listener};
use multiproc_process::{Process, StartMethod};
use watchdog::watchdog;

const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];
const LIMIT: Duration = Duration::from_secs(120);

fn start<A, R>(target: fn(A) -> R, args: A, method: StartMethod) -> Process<R>
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    // A daemon dies with the test thread, so a failing test leaves no orphan behind.
    let mut p = Process::new(target, args).with_start_method(method).with_daemon(true);
    p.start().unwrap();
    p
}

fn addresses() -> [Address; 3] {
    [Address::unique_unix(), Address::unique_abstract(), Address::localhost_any_port()]
}

/// Connects with the process authkey (inherited from the test process), says hello and
/// returns the answer.
fn client_hello(address: Address) -> String {
    let conn = Client::connect(&address, None).unwrap_or_else(|e| panic!("{e}"));
    conn.send(&format!("hello from {}", std::process::id())).unwrap();
    let answer: String = conn.recv().unwrap();
    conn.send_bytes(&vec![5u8; 3 << 20]).unwrap();
    answer
}

#[test]
fn round_trip_over_unix_abstract_and_tcp() {
    for method in METHODS {
        for address in addresses() {
            watchdog(&format!("round trip over {address} ({method})"), LIMIT, move || {
                let listener = Listener::bind(&address, None).unwrap();
                let bound = listener.address().clone();
                if let Address::Tcp(a) = &bound {
                    assert!(a.ip().is_loopback() && a.port() != 0, "{a}");
                }
                let mut p = start(client_hello, bound.clone(), method);
                let conn = listener.accept().unwrap();
                assert_eq!(conn.can_pass_fds(), !matches!(bound, Address::Tcp(_)));
                let hello: String = conn.recv().unwrap();
                assert_eq!(hello, format!("hello from {}", p.pid().unwrap()));
                conn.send(&format!("{hello}, welcome")).unwrap();
                assert_eq!(conn.recv_bytes().unwrap(), vec![5u8; 3 << 20]);
                assert!(p.join().unwrap().ends_with(", welcome"));
                listener.close();
                if let Address::Unix(path) = &bound {
                    assert!(!path.exists(), "the socket file {} was left behind", path.display());
                }
            });
        }
    }
}

/// Connects with a key of its own; returns how it went.
fn client_with_key(args: (Address, Vec<u8>)) -> String {
    let (address, key) = args;
    match Client::connect(&address, Some(&key)) {
        Ok(_) => "connected".to_owned(),
        Err(ConnectError::Authentication { source: AuthenticationError::WrongKey(why), .. }) => {
            format!("wrong key: {why}")
        }
        Err(e) => format!("other error: {e}"),
    }
}

#[test]
fn wrong_authkey_fails_on_both_sides() {
    for method in METHODS {
        for address in [Address::unique_unix(), Address::localhost_any_port()] {
            watchdog(&format!("wrong authkey over {address} ({method})"), LIMIT, move || {
                let listener = Listener::bind(&address, Some(b"the right key")).unwrap();
                let bound = listener.address().clone();
                let mut p = start(client_with_key, (bound.clone(), b"a wrong key".to_vec()), method);
                match listener.accept() {
                    Err(AcceptError::Authentication(AuthenticationError::WrongKey(_))) => {}
                    other => panic!("expected a wrong-key error, got {other:?}"),
                }
                let client_saw = p.join().unwrap();
                assert!(client_saw.starts_with("wrong key"), "{client_saw}");

                // The same listener still accepts a client with the right key.
                let mut p = start(client_with_key, (bound, b"the right key".to_vec()), method);
                let conn = listener.accept().unwrap();
                assert_eq!(p.join().unwrap(), "connected");
                drop(conn);
            });
        }
    }
}

/// Connects without any protocol, writes `bytes`, then reads until the listener hangs
/// up; returns how many bytes the listener sent.
fn raw_client(args: (Address, Vec<u8>)) -> usize {
    let (address, bytes) = args;
    let mut got = Vec::new();
    match address {
        Address::Tcp(a) => {
            let mut s = TcpStream::connect(a).unwrap();
            s.write_all(&bytes).unwrap();
            let _ = s.read_to_end(&mut got);
        }
        Address::Unix(path) => {
            let mut s = UnixStream::connect(path).unwrap();
            s.write_all(&bytes).unwrap();
            let _ = s.read_to_end(&mut got);
        }
        Address::Abstract(_) => unreachable!("not used here"),
    }
    got.len()
}

#[test]
fn garbage_instead_of_a_handshake() {
    // An HTTP request, and a well-formed header that claims a 1 GiB handshake message.
    let mut huge_claim = b"MPc1".to_vec();
    huge_claim.extend_from_slice(&0u32.to_le_bytes());
    huge_claim.extend_from_slice(&(1u64 << 30).to_le_bytes());
    for method in METHODS {
        for address in [Address::unique_unix(), Address::localhost_any_port()] {
            for (what, garbage) in
                [("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()), ("1 GiB claim", huge_claim.clone())]
            {
                let address = address.clone();
                watchdog(&format!("garbage ({what}) over {address} ({method})"), LIMIT, move || {
                    let listener = Listener::bind(&address, None).unwrap();
                    let bound = listener.address().clone();
                    let mut p = start(raw_client, (bound.clone(), garbage), method);
                    match listener.accept() {
                        Err(AcceptError::Authentication(AuthenticationError::Protocol(why))) => {
                            assert!(why.contains("GET / HTTP") || why.contains("1073741824"), "{why}")
                        }
                        other => panic!("expected a protocol error, got {other:?}"),
                    }
                    assert!(p.join().unwrap() > 0, "the listener sent its challenge");
                    let mut good = start(client_hello, bound, method);
                    let conn = listener.accept().unwrap();
                    let hello: String = conn.recv().unwrap();
                    conn.send(&hello).unwrap();
                    conn.recv_bytes().unwrap();
                    good.join().unwrap();
                });
            }
        }
    }
}

#[test]
fn a_client_that_says_nothing_times_out() {
    for method in METHODS {
        for address in [Address::unique_unix(), Address::localhost_any_port()] {
            watchdog(&format!("silent client over {address} ({method})"), LIMIT, move || {
                let mut listener = Listener::bind(&address, None).unwrap();
                listener.set_handshake_timeout(Duration::from_millis(300));
                let bound = listener.address().clone();
                // Connects and never speaks: it only reads until we hang up.
                let mut p = start(raw_client, (bound.clone(), Vec::new()), method);
                match listener.accept() {
                    Err(AcceptError::Authentication(AuthenticationError::Timeout(t))) => {
                        assert_eq!(t, Duration::from_millis(300))
                    }
                    other => panic!("expected a handshake timeout, got {other:?}"),
                }
                p.join().unwrap();
                assert!(matches!(listener.accept_timeout(Duration::from_millis(20)), Err(AcceptError::Timeout)));
                let mut good = start(client_hello, bound, method);
                let conn: Connection = listener.accept().unwrap();
                let hello: String = conn.recv().unwrap();
                conn.send(&hello).unwrap();
                conn.recv_bytes().unwrap();
                good.join().unwrap();
            });
        }
    }
}

/// Connects to a server that accepts but never speaks.
fn client_of_a_silent_server(path: std::path::PathBuf) -> String {
    match Client::connect_timeout(&Address::Unix(path), None, Duration::from_millis(300)) {
        Err(ConnectError::Authentication { source: AuthenticationError::Timeout(_), .. }) => "timed out".to_owned(),
        other => format!("unexpected: {other:?}"),
    }
}

#[test]
fn a_server_that_says_nothing_times_out() {
    for method in METHODS {
        watchdog(&format!("silent server ({method})"), LIMIT, move || {
            let Address::Unix(path) = Address::unique_unix() else { unreachable!() };
            let server = UnixListener::bind(&path).unwrap();
            let mut p = start(client_of_a_silent_server, path.clone(), method);
            let (held, _) = server.accept().unwrap();
            assert_eq!(p.join().unwrap(), "timed out");
            drop((held, server));
            std::fs::remove_file(&path).unwrap();
        });
    }
}

#[test]
fn binding_a_taken_path_explains_itself() {
    watchdog("taken path", LIMIT, || {
        let address = Address::unique_unix();
        let first = Listener::bind(&address, None).unwrap();
        let e = Listener::bind(&address, None).unwrap_err();
        assert!(e.to_string().contains("a file exists at that path"), "{e}");
        drop(first);
        let Address::Unix(path) = &address else { unreachable!() };
        assert!(!path.exists());
        let e = Client::connect(&address, None).unwrap_err();
        assert!(matches!(e, ConnectError::Connect { .. }), "{e:?}");
        assert!(e.to_string().contains("is a Listener bound to it?"), "{e}");
    });
}

/// Says it is running, then waits for the word to exit.
fn ready_then_wait(conn: Connection) {
    conn.send(&"ready").unwrap();
    let _: String = conn.recv().unwrap();
}

#[test]
fn a_fork_child_does_not_keep_the_listener_open() {
    for method in METHODS {
        watchdog(&format!("listener not kept by a child ({method})"), LIMIT, move || {
            let listener = Listener::bind(&Address::localhost_any_port(), None).unwrap();
            let Address::Tcp(addr) = listener.address().clone() else { unreachable!("bound to TCP") };
            let (mine, theirs) = multiproc_pipe::Pipe::duplex().unwrap();
            let mut p = start(ready_then_wait, theirs, method);
            assert_eq!(mine.recv::<String>().unwrap(), "ready");
            listener.close();
            // Nobody holds the listening socket any more, not even the fork child.
            let e = TcpStream::connect(addr).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
            mine.send(&"bye").unwrap();
            p.join().unwrap();
        });
    }
}
