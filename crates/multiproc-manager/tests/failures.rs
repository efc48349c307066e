//! Failure behaviour, each across real processes under every start method:
//!
//! - the server SIGKILLed: every proxy call, and a call already waiting, returns
//!   `ServerGone` promptly;
//! - a client SIGKILLed in the middle of requests: the server serves everyone else,
//!   frees the client's objects, a lock it held is reported to the next locker, and a
//!   queue get it was waiting in takes no item;
//! - garbage bytes, a garbage request and an oversize request: that connection is
//!   dropped, the server goes on;
//! - a wrong authkey is rejected;
//! - a type mismatch (by name, or a proxy received as the wrong type) is a clear error;
//! - a panicking `update_with` function changes nothing;
//! - the owner SIGKILLed: its server process exits.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::Duration;

use multiproc_codec::{Bincode, encode_with_fds};
use multiproc_manager::{
    ConnectError, DictProxy, GetError, ListProxy, LookupError, Manager, ProxyError, QueueProxy, UpdateError, ValueProxy,
};
use multiproc_pipe::{Address, Client, RecvError};
use multiproc_process::{JoinError, Process, StartMethod};
use multiproc_sync::{Event, Lock, LockError};
use serde::Serialize;
use watchdog::{METHODS, eventually, is_dead, sigkill, started, watchdog, within};

/// Long enough for anything that should be prompt; only a hang exceeds it.
const PROMPT: Duration = Duration::from_secs(20);

fn tcp_manager(method: StartMethod) -> Manager {
    Manager::builder().start_method(method).address(Address::localhost_any_port()).start().expect("start")
}

#[test]
fn a_killed_server_makes_every_call_fail_promptly() {
    for method in METHODS {
        watchdog(&format!("server killed [{method}]"), move || {
            for manager in [Manager::builder().start_method(method).start().expect("start"), tcp_manager(method)] {
                let d: DictProxy<String, u32> = manager.dict().unwrap();
                let l: ListProxy<u32> = manager.list().unwrap();
                let v: ValueProxy<u32> = manager.value(1).unwrap();
                d.insert("a".into(), 1).unwrap();
                let remote = !manager.queue::<u8>().unwrap().is_local();
                // Over TCP a get waits inside the server: it must end when the server dies.
                let waiting = remote.then(|| {
                    let q: QueueProxy<u8> = manager.queue().unwrap();
                    std::thread::spawn(move || q.get())
                });
                let pid = manager.server_pid().expect("a server process");
                std::thread::sleep(Duration::from_millis(50)); // let the get reach the server
                sigkill(pid);
                let d2 = d.clone();
                let m2 = manager.clone();
                let results = within(PROMPT, move || {
                    vec![
                        d2.get("a").map(drop),
                        d2.insert("b".into(), 2).map(drop),
                        l.push(1),
                        v.get().map(drop),
                        d2.update_with("a", |n| n.unwrap_or(0) + 1).map(drop).map_err(|e| match e {
                            UpdateError::Proxy(p) => p,
                            other => panic!("{other}"),
                        }),
                        m2.dict::<u8, u8>().map(drop),
                        m2.stats().map(drop),
                    ]
                })
                .unwrap_or_else(|| panic!("[{method}] calls hung after the server was killed"));
                for (i, r) in results.into_iter().enumerate() {
                    match r {
                        Err(e) if e.is_server_gone() => assert!(e.to_string().contains("gone"), "{e}"),
                        other => panic!("[{method}] call {i} after the server died: {other:?}"),
                    }
                }
                if let Some(waiting) = waiting {
                    let got = within(PROMPT, move || waiting.join().expect("the waiting thread"))
                        .unwrap_or_else(|| panic!("[{method}] a waiting get hung after the server was killed"));
                    assert!(matches!(got, Err(GetError::Failed(ref e)) if e.is_server_gone()), "{got:?}");
                }
                // Shutting down a dead server just reaps it.
                manager.shutdown().expect("shutdown");
                assert!(is_dead(pid));
            }
        });
    }
}

type Victim = (Manager, Lock, Event, DictProxy<u32, Vec<u8>>);

/// Holds the lock, creates an object of its own, then writes 1 MiB values until it is
/// killed (most likely in the middle of one).
fn hog((manager, lock, ready, big): Victim) {
    let _held = lock.lock().expect("lock");
    let mine: ListProxy<u8> = manager.list_from([1, 2, 3]).expect("list");
    mine.push(4).expect("push");
    ready.set();
    for i in 0u32.. {
        big.insert(i % 4, vec![i as u8; 1 << 20]).expect("insert");
    }
}

fn wait_in_get(q: QueueProxy<u32>) -> u32 {
    q.get().expect("get")
}

#[test]
fn a_client_killed_mid_request_does_not_hurt_the_others() {
    for method in METHODS {
        watchdog(&format!("client killed [{method}]"), move || {
            let manager = Manager::builder().start_method(method).start().expect("start");
            let lock = manager.lock().unwrap();
            let ready = manager.event().unwrap();
            let big: DictProxy<u32, Vec<u8>> = manager.dict().unwrap();
            let mine: DictProxy<String, u32> = manager.dict().unwrap();
            let before = manager.stats().unwrap();
            let args = (manager.clone(), lock.clone(), ready.clone(), big.clone());
            let mut child = started(Process::new(hog, args).with_start_method(method));
            assert!(ready.wait_timeout(PROMPT), "[{method}] the child never got going");
            std::thread::sleep(Duration::from_millis(30));
            child.kill().unwrap();
            assert!(matches!(child.join(), Err(JoinError::Killed { .. })));

            // The server goes on, for everyone.
            mine.insert("still".into(), 1).unwrap();
            assert_eq!(mine.get("still").unwrap(), Some(1));
            let values = big.items().unwrap();
            assert!(values.len() <= 4);
            for (k, v) in values {
                assert_eq!(v.len(), 1 << 20, "[{method}] a value was stored half-written");
                assert!(v.iter().all(|&b| b == v[0]) && v[0] as u32 % 4 == k);
            }
            // Its connection and its list are gone; the lock it held is reported.
            assert!(
                eventually(PROMPT, || manager.stats().unwrap() == before),
                "[{method}] the dead client's resources were not freed: {:?} vs {before:?}",
                manager.stats().unwrap()
            );
            match lock.try_lock_for(PROMPT) {
                Err(multiproc_sync::TryLockError::OwnerDied(guard)) => guard.mark_consistent(),
                other => panic!("[{method}] a lock held by a killed client: {:?}", other.map(drop)),
            }
            assert!(lock.lock().is_ok(), "the lock is consistent again");

            // Over TCP a get waits in the server on the client's behalf; killed there,
            // it takes no item.
            let tcp = tcp_manager(method);
            let q: QueueProxy<u32> = tcp.queue().unwrap();
            assert!(!q.is_local());
            let idle = tcp.stats().unwrap().connections;
            let mut getter = started(Process::new(wait_in_get, q.clone()).with_start_method(method));
            assert!(eventually(PROMPT, || tcp.stats().unwrap().connections > idle), "[{method}] the getter never came");
            std::thread::sleep(Duration::from_millis(100));
            getter.kill().unwrap();
            let _ = getter.join();
            assert!(
                eventually(PROMPT, || tcp.stats().unwrap().connections == idle),
                "[{method}] its connection stayed"
            );
            q.put(42).unwrap();
            assert_eq!(q.get_timeout(PROMPT).unwrap(), 42, "[{method}] the dead client's get took the item");
        });
    }
}

/// The greeting a client sends first, mirrored here to reach the request parser with
/// garbage (the layout of `wire::Hello`, protocol version 1).
#[derive(Serialize)]
struct Hello {
    protocol: u32,
    session: [u8; 16],
}

fn raw_unix(address: &Address) -> UnixStream {
    match address {
        Address::Abstract(name) => {
            UnixStream::connect_addr(&SocketAddr::from_abstract_name(name).expect("name")).expect("connect")
        }
        other => panic!("expected an abstract address, got {other}"),
    }
}

/// Whether the server closed `conn` (reading gives end-of-file).
fn dropped_by_server(conn: &multiproc_pipe::Connection) -> bool {
    matches!(conn.recv_bytes_timeout(PROMPT), Err(RecvError::Disconnected | RecvError::Truncated { .. }))
}

#[test]
fn garbage_and_oversize_requests_drop_only_their_connection() {
    const LIMIT: usize = 64 << 10;
    for method in METHODS {
        watchdog(&format!("garbage [{method}]"), move || {
            let key = b"garbage test key".to_vec();
            let manager =
                Manager::builder().start_method(method).authkey(&key).max_message_size(LIMIT).start().expect("start");
            let d: DictProxy<u8, Vec<u8>> = manager.dict().unwrap();
            d.insert(1, vec![1]).unwrap();
            let address = manager.address().clone();
            let idle = manager.stats().unwrap().connections;

            // Garbage instead of the authentication handshake.
            let mut raw = raw_unix(&address);
            raw.write_all(b"GET / HTTP/1.1\r\nHost: manager\r\n\r\n").unwrap();
            raw.set_read_timeout(Some(PROMPT)).unwrap();
            let mut buf = [0u8; 256];
            loop {
                match raw.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue, // the handshake's greeting
                    Err(e) => panic!("[{method}] the server kept a garbage connection: {e}"),
                }
            }
            assert_eq!(d.get(&1).unwrap(), Some(vec![1]));

            // Authenticated, then garbage instead of the greeting.
            let conn = Client::connect(&address, Some(&key)).unwrap();
            conn.send_bytes(b"\xff\xff\xff\xff not a hello").unwrap();
            assert!(dropped_by_server(&conn), "[{method}] garbage greeting");

            // Greeted, then a garbage request.
            let greeted = || {
                let conn = Client::connect(&address, Some(&key)).unwrap().with_max_message_size(4 * LIMIT);
                conn.send(&Hello { protocol: 1, session: [7; 16] }).unwrap();
                conn.recv_bytes().expect("the server's welcome");
                conn
            };
            let conn = greeted();
            conn.send_bytes(&[0xee; 100]).unwrap();
            assert!(dropped_by_server(&conn), "[{method}] garbage request");

            // Greeted, then a request over the size limit.
            let conn = greeted();
            conn.send_bytes(&vec![0u8; LIMIT + 1]).unwrap();
            assert!(dropped_by_server(&conn), "[{method}] oversize request");

            // Greeted, then bytes that are not even frames.
            let conn = greeted();
            let mut raw = UnixStream::from(std::os::fd::AsFd::as_fd(&conn).try_clone_to_owned().unwrap());
            raw.write_all(&[0x55; 64]).unwrap();
            assert!(dropped_by_server(&conn), "[{method}] broken framing");
            drop(raw);

            // Everyone else was served all along, and is still.
            assert_eq!(d.get(&1).unwrap(), Some(vec![1]));
            assert!(eventually(PROMPT, || manager.stats().unwrap().connections == idle));

            // A proxy refuses to send more than the limit, and stays usable.
            let e = d.insert(2, vec![0; LIMIT]).unwrap_err();
            assert!(matches!(e, ProxyError::TooLarge { .. }), "{e}");
            assert!(e.to_string().contains("max_message_size"), "{e}");
            // An answer over the limit is an error too, not a dropped connection.
            for k in 2..6 {
                d.insert(k, vec![k; LIMIT / 3]).unwrap();
            }
            assert!(matches!(d.values(), Err(ProxyError::TooLarge { .. })));
            assert_eq!(d.get(&1).unwrap(), Some(vec![1]));
        });
    }
}

#[test]
fn a_wrong_authkey_is_rejected() {
    for method in METHODS {
        watchdog(&format!("authkey [{method}]"), move || {
            for address in [Address::unique_abstract(), Address::localhost_any_port()] {
                let manager = Manager::builder()
                    .start_method(method)
                    .address(address)
                    .authkey(b"the right key")
                    .start()
                    .expect("start");
                let e = Manager::connect(manager.address(), Some(b"a wrong key")).unwrap_err();
                assert!(matches!(e, ConnectError::Pipe(multiproc_pipe::ConnectError::Authentication { .. })), "{e}");
                assert!(e.to_string().contains("authkey"), "{e}");
                // The process authkey is not the manager's either.
                assert!(Manager::connect(manager.address(), None).is_err());
                let right = Manager::connect(manager.address(), Some(b"the right key")).unwrap();
                let v = right.value(3u8).unwrap();
                assert_eq!(v.get().unwrap(), 3);
                assert!(matches!(right.shutdown(), Err(multiproc_manager::ShutdownError::NotOwner)));
            }
        });
    }
}

fn open_by_name(manager: Manager) -> String {
    match manager.get::<DictProxy<u8, u8>>("counts") {
        Err(e @ LookupError::TypeMismatch { .. }) => e.to_string(),
        other => panic!("opened a dict<String, i64> as dict<u8, u8>: {other:?}"),
    }
}

#[test]
fn a_type_mismatch_is_a_clear_error() {
    for method in METHODS {
        watchdog(&format!("type mismatch [{method}]"), move || {
            let manager = Manager::builder().start_method(method).start().expect("start");
            let counts: DictProxy<String, i64> = manager.dict().unwrap();
            manager.register("counts", &counts).unwrap();
            let mut child = started(Process::new(open_by_name, manager.clone()).with_start_method(method));
            let message = child.join().unwrap();
            assert!(message.contains("\"counts\""), "{message}");
            assert!(message.contains("dict<alloc::string::String, i64>"), "{message}");
            assert!(message.contains("dict<u8, u8>"), "{message}");
            let e = manager.get::<ListProxy<i64>>("counts").unwrap_err();
            assert!(e.to_string().contains("list<i64>"), "{e}");

            // A proxy received as another type (as a process argument would be).
            let codec = Bincode::new();
            let mut bytes = Vec::new();
            let fds = encode_with_fds(&codec, &counts, &mut bytes).unwrap();
            let e = multiproc_codec::decode_with_fds::<_, DictProxy<u8, u8>>(&codec, &bytes, fds).unwrap_err();
            assert!(e.to_string().contains("received as a dict<u8, u8>"), "{e}");
        });
    }
}

fn explode(_: Option<u32>) -> u32 {
    panic!("this update fails")
}

#[test]
fn a_panicking_update_changes_nothing() {
    watchdog("panicking update", || {
        let manager = Manager::start().expect("start");
        let d: DictProxy<String, u32> = manager.dict().unwrap();
        d.insert("n".into(), 5).unwrap();
        match d.update_with("n", explode) {
            Err(UpdateError::Panicked { message }) => assert!(message.contains("this update fails")),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.get("n").unwrap(), Some(5));
        assert_eq!(d.update_with("n", |n| n.unwrap_or(0) * 2).unwrap(), 10);
    });
}

fn own_a_manager((method, report): (StartMethod, multiproc_pipe::Connection)) {
    let manager = Manager::builder().start_method(method).start().expect("start");
    let d: DictProxy<u8, u8> = manager.dict().expect("dict");
    d.insert(1, 1).expect("insert");
    report.send(&manager.server_pid().expect("pid")).expect("report");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn the_server_exits_when_its_owner_is_killed() {
    for method in METHODS {
        watchdog(&format!("owner killed [{method}]"), move || {
            let (ours, theirs) = multiproc_pipe::Pipe::duplex().unwrap();
            let mut owner = started(Process::new(own_a_manager, (method, theirs)).with_start_method(method));
            let server: u32 = ours.recv_timeout(PROMPT).expect("the owner reports its server");
            assert!(!is_dead(server));
            owner.kill().unwrap();
            assert!(matches!(owner.join(), Err(JoinError::Killed { .. })));
            assert!(eventually(PROMPT, || is_dead(server)), "[{method}] the server outlived its owner");
        });
    }
}

#[test]
fn a_lock_taken_through_a_manager_reports_a_dead_holder_everywhere() {
    watchdog("dead holder", || {
        let manager = Manager::start().expect("start");
        let lock = manager.lock().unwrap();
        manager.register("the lock", &lock).unwrap();
        let mut child = started(Process::new(hold_and_die, manager.clone()).with_start_method(StartMethod::ForkServer));
        assert!(matches!(child.join(), Err(JoinError::Killed { .. })));
        let again: Lock = manager.get("the lock").unwrap();
        match again.lock() {
            Err(LockError::OwnerDied(g)) => g.mark_consistent(),
            other => panic!("{:?}", other.map(drop)),
        }
    });
}

fn hold_and_die(manager: Manager) {
    let lock: Lock = manager.get("the lock").expect("get");
    let guard = lock.lock().expect("lock");
    std::mem::forget(guard);
    sigkill(std::process::id());
}

#[test]
fn shutting_down_a_server_that_cannot_answer_kills_it() {
    watchdog("stopped server", || {
        let manager = Manager::start().expect("start");
        let pid = manager.server_pid().expect("pid");
        let stop = nix::sys::signal::Signal::SIGSTOP;
        nix::sys::signal::kill(multiproc_sys::Pid::from_raw(pid as i32), stop).expect("SIGSTOP");
        // The polite request cannot be answered; after a grace period the server is
        // killed and reaped.
        manager.shutdown().expect("shutdown");
        assert!(is_dead(pid));
    });
}
