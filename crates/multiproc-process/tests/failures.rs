//! How a child that does not return normally is reported: a panic (with its message),
//! an early exit, an abort, arguments it cannot decode, a result it cannot encode or the
//! parent cannot decode, death in the middle of sending its result, and garbage on its
//! control channel. Each ends in an error value, never a hang or a panic in the parent.

multiproc_process::test_init!();

#[path = "support/procfs.rs"]
pub mod procfs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::Duration;

use multiproc_process::{JoinError, Process, StartError, StartMethod};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use watchdog::{METHODS, Reaped, THREAD_SAFE_METHODS, started, watchdog};

fn panics(n: u32) -> u32 {
    watchdog::silence_panics();
    if n > 0 {
        panic!("boom {n}: the child gave up");
    }
    n
}

fn panics_static(_: ()) {
    watchdog::silence_panics();
    panic!("static message")
}

fn panics_with_number(_: ()) {
    watchdog::silence_panics();
    std::panic::panic_any(42u8)
}

#[test]
fn panic_message_is_propagated() {
    watchdog("panic_message_is_propagated", || {
        for m in METHODS {
            let mut p = started(Process::new(panics, 7).with_start_method(m));
            let err = p.join().unwrap_err();
            match &err {
                JoinError::Panicked { message } => assert_eq!(message, "boom 7: the child gave up", "[{m}]"),
                other => panic!("[{m}] expected Panicked, got {other:?}"),
            }
            assert_eq!(err.to_string(), "process panicked: boom 7: the child gave up", "[{m}]");
            assert_eq!(p.exitcode(), Some(1), "[{m}] exit code after a panic");

            let mut p = started(Process::new(panics_static, ()).with_start_method(m));
            assert!(matches!(p.join(), Err(JoinError::Panicked { message }) if message == "static message"), "[{m}]");

            let mut p = started(Process::new(panics_with_number, ()).with_start_method(m));
            match p.join() {
                Err(JoinError::Panicked { message }) => assert!(message.contains("non-string"), "[{m}] {message}"),
                other => panic!("[{m}] expected Panicked, got {other:?}"),
            }
            assert_eq!(p.exitcode(), Some(1), "[{m}]");

            // The same target without the panic returns normally.
            let mut p = started(Process::new(panics, 0).with_start_method(m));
            assert_eq!(p.join().unwrap(), 0, "[{m}]");
        }
    });
}

fn exits(code: i32) -> u32 {
    std::process::exit(code)
}

fn aborts(_: ()) -> u32 {
    std::process::abort()
}

#[test]
fn early_exit_and_abort() {
    watchdog("early_exit_and_abort", || {
        for m in METHODS {
            let mut p = started(Process::new(exits, 7).with_start_method(m));
            assert!(matches!(p.join(), Err(JoinError::Exited { code: 7 })), "[{m}] exit(7)");
            assert_eq!(p.exitcode(), Some(7), "[{m}]");

            // Exit code 0 without a value is still not a value.
            let mut p = started(Process::new(exits, 0).with_start_method(m));
            let err = p.join().unwrap_err();
            assert!(matches!(err, JoinError::Exited { code: 0 }), "[{m}] exit(0): {err:?}");
            assert_eq!(err.to_string(), "process exited with code 0 before returning a value", "[{m}]");

            let mut p = started(Process::new(aborts, ()).with_start_method(m));
            assert!(matches!(p.join(), Err(JoinError::Killed { signal: 6 })), "[{m}] abort");
            assert_eq!(p.exitcode(), Some(-6), "[{m}]");
        }
    });
}

/// Serializes as a byte its own `Deserialize` refuses: the child cannot decode it.
#[derive(Debug, Clone, PartialEq)]
struct Picky(u8);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Picky, D::Error> {
        match u8::deserialize(d)? {
            42 => Ok(Picky(42)),
            other => Err(D::Error::custom(format!("picky refuses {other}"))),
        }
    }
}

fn take_picky(p: Picky) -> u8 {
    p.0
}

#[test]
fn undecodable_arguments_are_a_clear_error() {
    watchdog("undecodable_arguments_are_a_clear_error", || {
        for m in THREAD_SAFE_METHODS {
            let mut p = started(Process::new(take_picky, Picky(7)).with_start_method(m));
            let err = p.join().unwrap_err();
            match &err {
                JoinError::BadArguments(msg) => assert!(msg.contains("picky refuses 7"), "[{m}] {msg}"),
                other => panic!("[{m}] expected BadArguments, got {other:?}"),
            }
            assert!(err.to_string().starts_with("process could not decode its arguments"), "[{m}] {err}");
            assert_eq!(p.exitcode(), Some(1), "[{m}]");
            // What it accepts works.
            let mut p = started(Process::new(take_picky, Picky(42)).with_start_method(m));
            assert_eq!(p.join().unwrap(), 42, "[{m}]");
        }
        // fork hands the value over as it is, without encoding it.
        let mut p = started(Process::new(take_picky, Picky(7)).with_start_method(StartMethod::Fork));
        assert_eq!(p.join().unwrap(), 7, "[fork] arguments are not encoded");
    });
}

/// Cannot be serialized at all.
struct Unsendable;

impl Serialize for Unsendable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("unsendable by design"))
    }
}

impl<'de> Deserialize<'de> for Unsendable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unsendable, D::Error> {
        <()>::deserialize(d).map(|()| Unsendable)
    }
}

fn take_unsendable(_: Unsendable) -> u8 {
    1
}

fn make_unsendable(_: ()) -> Unsendable {
    Unsendable
}

#[test]
fn arguments_that_cannot_be_encoded_start_nothing() {
    watchdog("arguments_that_cannot_be_encoded_start_nothing", || {
        for m in THREAD_SAFE_METHODS {
            let mut p = Reaped::new(Process::new(take_unsendable, Unsendable).with_start_method(m));
            match p.start() {
                Err(StartError::Encode(e)) => assert!(e.to_string().contains("unsendable by design"), "[{m}] {e}"),
                other => panic!("[{m}] expected StartError::Encode, got {other:?}"),
            }
            assert_eq!(p.pid(), None, "[{m}] a process was created");
            assert!(!p.is_alive(), "[{m}]");
        }
        let mut p = started(Process::new(take_unsendable, Unsendable).with_start_method(StartMethod::Fork));
        assert_eq!(p.join().unwrap(), 1, "[fork] arguments are not encoded");
    });
}

#[test]
fn result_that_cannot_be_encoded() {
    watchdog("result_that_cannot_be_encoded", || {
        for m in METHODS {
            let mut p = started(Process::new(make_unsendable, ()).with_start_method(m));
            match p.join() {
                Err(JoinError::ResultNotSent(msg)) => assert!(msg.contains("unsendable by design"), "[{m}] {msg}"),
                other => panic!("[{m}] expected ResultNotSent, got {:?}", other.map(|_| ())),
            }
            assert_eq!(p.exitcode(), Some(1), "[{m}]");
        }
    });
}

fn make_picky(b: u8) -> Picky {
    Picky(b)
}

#[test]
fn result_the_parent_cannot_decode() {
    watchdog("result_the_parent_cannot_decode", || {
        for m in METHODS {
            let mut p = started(Process::new(make_picky, 9).with_start_method(m));
            match p.join() {
                Err(JoinError::Decode(e)) => assert!(e.to_string().contains("picky refuses 9"), "[{m}] {e}"),
                other => panic!("[{m}] expected Decode, got {other:?}"),
            }
            // The child itself did fine.
            assert_eq!(p.exitcode(), Some(0), "[{m}]");
            assert!(matches!(p.join(), Err(JoinError::AlreadyJoined)), "[{m}]");
        }
    });
}

/// Tells the parent it is about to return, then returns `n` bytes.
fn big_after_ready((ready, n): (multiproc_codec::Fd, usize)) -> Vec<u8> {
    let mut f = std::fs::File::from(ready.into_inner());
    std::io::Write::write_all(&mut f, b"r").expect("child signals ready");
    vec![0x5a; n]
}

#[test]
fn killed_while_sending_its_result() {
    watchdog("killed_while_sending_its_result", || {
        for m in METHODS {
            let (r, w) = multiproc_sys::fd::pipe().unwrap();
            let mut r = std::fs::File::from(r);
            // A 1 MiB result goes through a memfd (a child never blocks on its parent to
            // finish sending), so the kill lands while it encodes, copies or exits: the
            // parent sees either the whole value or the kill, never part of a value.
            let n = 1usize << 20;
            let args = (multiproc_codec::Fd::new(w), n);
            let mut p = started(Process::new(big_after_ready, args).with_start_method(m));
            let mut b = [0u8; 1];
            std::io::Read::read_exact(&mut r, &mut b).unwrap();
            p.kill().unwrap();
            match p.join() {
                Err(JoinError::Killed { signal: 9 }) => assert_eq!(p.exitcode(), Some(-9), "[{m}]"),
                Ok(v) => {
                    assert!(v.len() == n && v.iter().all(|&x| x == 0x5a), "[{m}] a partial value came back");
                    assert_eq!(p.exitcode(), Some(0), "[{m}]");
                }
                other => panic!("[{m}] expected Killed or the whole value, got {:?}", other.map(|v| v.len())),
            }
        }
    });
}

/// Writes `garbage` to every socket this process has open, then returns normally.
/// Only used under spawn and forkserver, where the only socket a child has is its
/// control channel to us (a fork child also holds copies of other tests' sockets).
fn scribble(garbage: Vec<u8>) -> u8 {
    use std::io::Write;
    for fd in multiproc_sys::fd::open_fds().unwrap_or_default() {
        let is_socket =
            std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|p| p.to_string_lossy().starts_with("socket:"));
        if is_socket && fd > 2 {
            let f = std::fs::File::from(multiproc_sys::fd::dup(borrow(fd)).expect("dup"));
            let _ = (&f).write_all(&garbage);
        }
    }
    1
}

fn borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: `fd` was just listed as open in this process and nothing closes it while
    // the caller duplicates it.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

#[test]
fn garbage_on_the_control_channel() {
    watchdog("garbage_on_the_control_channel", || {
        for m in THREAD_SAFE_METHODS {
            // Not a frame at all.
            let mut p = started(Process::new(scribble, vec![0xAB; 16]).with_start_method(m));
            let err = p.join().unwrap_err();
            assert!(matches!(err, JoinError::Io(_)), "[{m}] garbage: {err:?}");
            assert!(err.to_string().contains("bad frame magic"), "[{m}] {err}");

            // A header that claims an enormous body.
            let mut forged = 0x4d50_5243u32.to_le_bytes().to_vec();
            forged.extend_from_slice(&0u32.to_le_bytes());
            forged.extend_from_slice(&u64::MAX.to_le_bytes());
            let mut p = started(Process::new(scribble, forged).with_start_method(m));
            let err = p.join().unwrap_err();
            assert!(err.to_string().contains("exceeds the limit"), "[{m}] forged length: {err}");

            // A well-formed header whose body is not an outcome.
            let mut bogus = 0x4d50_5243u32.to_le_bytes().to_vec();
            bogus.extend_from_slice(&0u32.to_le_bytes());
            bogus.extend_from_slice(&3u64.to_le_bytes());
            bogus.extend_from_slice(&[0xff, 0xff, 0xff]);
            let mut p = started(Process::new(scribble, bogus).with_start_method(m));
            let err = p.join().unwrap_err();
            assert!(err.to_string().contains("malformed result"), "[{m}] bogus body: {err}");
            assert_eq!(p.exitcode(), Some(0), "[{m}]");
        }
    });
}

/// Blocks until killed (bounded, so a child that outlives a failed test ends anyway).
fn linger(_: ()) -> u8 {
    std::thread::sleep(Duration::from_secs(120));
    0
}

#[test]
fn killed_from_outside() {
    watchdog("killed_from_outside", || {
        for m in METHODS {
            let mut p = started(Process::new(linger, ()).with_start_method(m));
            let pid = multiproc_sys::Pid::from_raw(p.pid().unwrap() as i32);
            multiproc_sys::signal::kill(pid, multiproc_sys::signal::SIGKILL).unwrap();
            assert!(matches!(p.join(), Err(JoinError::Killed { signal: 9 })), "[{m}]");
            assert_eq!(JoinError::Killed { signal: 9 }.to_string(), "process was killed by SIGKILL (9)");
        }
    });
}
