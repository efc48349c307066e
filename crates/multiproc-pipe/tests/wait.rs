//! `wait()` over several connections, a process sentinel and a raw descriptor, with
//! children under every start method.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use multiproc_pipe::{Connection, Pipe, RecvError, Waitable, wait};
use multiproc_process::{Process, StartMethod};
use watchdog::watchdog;

const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];

/// Answers "go" with its name, then returns when told to stop.
fn speak_when_told(args: (Connection, String)) {
    let (conn, name) = args;
    while let Ok(word) = conn.recv::<String>() {
        match word.as_str() {
            "go" => conn.send(&name).unwrap(),
            _ => return,
        }
    }
}

/// Starts [`speak_when_told`] on `conn`. The child is a daemon, so it dies with the test
/// thread even if the test fails before joining it.
fn child(conn: Connection, name: &str, method: StartMethod) -> Process<()> {
    let mut p = Process::new(speak_when_told, (conn, name.to_owned())).with_start_method(method).with_daemon(true);
    p.start().unwrap();
    p
}

#[test]
fn wait_over_connections_a_sentinel_and_a_raw_fd() {
    for method in METHODS {
        watchdog(&format!("wait ({method})"), Duration::from_secs(60), move || {
            // All three pipes exist before any child starts; a fork child still keeps
            // only its own end, so each child's end-of-file is seen when it exits.
            let (a, a_child) = Pipe::duplex().unwrap();
            let (b, b_child) = Pipe::duplex().unwrap();
            let (c, c_child) = Pipe::duplex().unwrap();
            let mut pa = child(a_child, "a", method);
            let mut pb = child(b_child, "b", method);
            let mut pc = child(c_child, "c", method);
            let (raw, mut raw_peer) = UnixStream::pair().unwrap();

            {
                let sentinel = pc.sentinel().unwrap();
                let raw_fd = raw.as_fd();
                let objects: [&dyn Waitable; 5] = [&a, &b, &c, &sentinel, &raw_fd];

                assert!(wait(&objects, Duration::from_millis(30)).unwrap().is_empty(), "nothing is ready yet");
                assert!(wait(&objects, Duration::ZERO).unwrap().is_empty());

                b.send(&"go").unwrap();
                assert_eq!(wait(&objects, None).unwrap(), vec![1]);
                assert_eq!(b.recv::<String>().unwrap(), "b");

                // A process sentinel becomes ready when the process ends. Its connection
                // reports end-of-file as it closes, which may be a moment earlier.
                c.send(&"stop").unwrap();
                let mut ready = Vec::new();
                while !ready.contains(&3) {
                    ready = wait(&objects, None).unwrap();
                    assert!(ready.iter().all(|i| [2, 3].contains(i)), "{ready:?}");
                }
                assert_eq!(wait(&objects, Duration::ZERO).unwrap(), vec![2, 3]);

                raw_peer.write_all(b"!").unwrap();
                a.send(&"go").unwrap();
                let mut ready = Vec::new();
                while ready != vec![0, 2, 3, 4] {
                    ready = wait(&objects, None).unwrap();
                }
                assert_eq!(a.recv::<String>().unwrap(), "a");
            }
            pc.join().unwrap();
            assert!(matches!(c.recv::<String>(), Err(RecvError::Disconnected)));

            // Messages already read ahead into a connection's buffer count as ready even
            // though its socket has nothing left.
            a.send(&"go").unwrap();
            a.send(&"go").unwrap();
            assert_eq!(a.recv::<String>().unwrap(), "a");
            let objects: [&dyn Waitable; 2] = [&a, &b];
            let ready = wait(&objects, Duration::from_secs(30)).unwrap();
            assert_eq!(ready, vec![0]);
            assert_eq!(a.recv::<String>().unwrap(), "a");

            a.send(&"stop").unwrap();
            b.send(&"stop").unwrap();
            pa.join().unwrap();
            pb.join().unwrap();
        });
    }
}
