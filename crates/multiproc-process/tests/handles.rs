//! Handles travel as arguments and return values: raw descriptors wrapped in
//! `multiproc_codec::Fd` (a pipe end, a memfd shared-memory segment), hundreds of them at
//! once, and payloads far larger than a socket buffer in both directions.
//!
//! Pipes are read for an exact number of bytes, never to end of file: a fork child
//! started by another test of this binary holds copies of every descriptor we have.

multiproc_process::test_init!();

#[path = "support/procfs.rs"]
pub mod procfs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use multiproc_codec::Fd;
use multiproc_process::Process;
use multiproc_sys::shm::Segment;
use watchdog::{METHODS, started, watchdog};

fn write_message((w, msg): (Fd, String)) -> usize {
    let mut f = procfs::file(w);
    f.write_all(msg.as_bytes()).expect("child writes to the pipe");
    msg.len()
}

#[test]
fn pipe_end_passed_to_child() {
    watchdog("pipe_end_passed_to_child", || {
        for m in METHODS {
            let (r, w) = procfs::pipe();
            let msg = format!("hello over a {m} pipe ✓");
            let mut p = started(Process::new(write_message, (Fd::new(w.into()), msg.clone())).with_start_method(m));
            let n = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
            assert_eq!(n, msg.len(), "[{m}]");
            let mut got = vec![0u8; n];
            (&r).read_exact(&mut got).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), msg, "[{m}]");
        }
    });
}

const SEG_LEN: usize = 4096;

fn atomics(seg: &Segment) -> &[AtomicU64] {
    assert!(seg.len() >= SEG_LEN);
    // SAFETY: the mapping is page-aligned, at least SEG_LEN bytes, lives as long as
    // `seg`, and is only accessed through atomics by every process.
    unsafe { std::slice::from_raw_parts(seg.as_ptr() as *const AtomicU64, SEG_LEN / 8) }
}

/// Maps the segment it was handed and fills it: word i = seed + i.
fn fill_segment((fd, seed): (Fd, u64)) -> u64 {
    let seg = Segment::from_fd(fd.into_inner(), SEG_LEN).expect("child maps the segment");
    for (i, w) in atomics(&seg).iter().enumerate() {
        w.store(seed + i as u64, Ordering::SeqCst);
    }
    atomics(&seg).iter().map(|w| w.load(Ordering::SeqCst)).sum()
}

#[test]
fn memfd_segment_passed_to_child() {
    watchdog("memfd_segment_passed_to_child", || {
        for (k, m) in METHODS.into_iter().enumerate() {
            let seg = Segment::create("multiproc-test", SEG_LEN).unwrap();
            let seed = 1000 * (k as u64 + 1);
            let fd = Fd::new(seg.try_clone_fd().unwrap());
            let mut p = started(Process::new(fill_segment, (fd, seed)).with_start_method(m));
            let sum = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
            let words = atomics(&seg);
            for (i, w) in words.iter().enumerate() {
                assert_eq!(w.load(Ordering::SeqCst), seed + i as u64, "[{m}] word {i}");
            }
            assert_eq!(sum, words.iter().map(|w| w.load(Ordering::SeqCst)).sum::<u64>(), "[{m}]");
        }
    });
}

/// Returns descriptors the child created: a pipe with a message waiting in it and a
/// filled shared-memory segment.
fn make_handles(text: String) -> (Fd, usize, Fd) {
    let (r, mut w) = procfs::pipe();
    w.write_all(text.as_bytes()).unwrap();
    let seg = Segment::create("multiproc-test-ret", SEG_LEN).unwrap();
    atomics(&seg)[0].store(std::process::id() as u64, Ordering::SeqCst);
    (Fd::new(r.into()), text.len(), Fd::new(seg.try_clone_fd().unwrap()))
}

#[test]
fn returned_value_holds_descriptors() {
    watchdog("returned_value_holds_descriptors", || {
        for m in METHODS {
            let text = format!("made by a {m} child");
            let mut p = started(Process::new(make_handles, text.clone()).with_start_method(m));
            let pid = p.pid().unwrap();
            let (r, n, seg) = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
            assert_eq!(p.exitcode(), Some(0));
            let mut got = vec![0u8; n];
            procfs::file(r).read_exact(&mut got).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), text, "[{m}]");
            let seg = Segment::from_fd(seg.into_inner(), SEG_LEN).unwrap();
            assert_eq!(atomics(&seg)[0].load(Ordering::SeqCst), u64::from(pid), "[{m}] segment outlives its creator");
        }
    });
}

/// Writes one byte (its index) through each of the descriptors it was handed and
/// returns as many duplicates of the first.
fn through_each(ws: Vec<Fd>) -> Vec<Fd> {
    for (i, w) in ws.iter().enumerate() {
        let f = std::fs::File::from(w.try_clone().unwrap().into_inner());
        (&f).write_all(&[i as u8]).unwrap();
    }
    (0..ws.len()).map(|_| ws[0].try_clone().unwrap()).collect()
}

#[test]
fn hundreds_of_descriptors_each_way() {
    // More than the 253 one sendmsg can carry, so both directions need several.
    const N: usize = 300;
    watchdog("hundreds_of_descriptors_each_way", || {
        for m in METHODS {
            let (r, w) = procfs::pipe();
            let ws: Vec<Fd> = (0..N).map(|_| Fd::new(w.try_clone().unwrap().into())).collect();
            drop(w);
            let mut p = started(Process::new(through_each, ws).with_start_method(m));
            let back = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
            let mut got = vec![0u8; N];
            (&r).read_exact(&mut got).unwrap();
            assert_eq!(got, (0..N).map(|i| i as u8).collect::<Vec<_>>(), "[{m}] one byte per descriptor, in order");
            assert_eq!(back.len(), N, "[{m}]");
            for (i, fd) in back.iter().enumerate() {
                let f = std::fs::File::from(fd.try_clone().unwrap().into_inner());
                (&f).write_all(&[7]).unwrap_or_else(|e| panic!("[{m}] returned descriptor {i}: {e}"));
            }
            let mut sevens = vec![0u8; N];
            (&r).read_exact(&mut sevens).unwrap();
            assert!(sevens.iter().all(|&b| b == 7), "[{m}]");
        }
    });
}

/// The headline size for a result: 40 times the default Unix socket buffer (208 KiB).
const BIG: usize = 8 << 20;
/// Enough to need many socket buffers, for the scenarios that do not need 8 MiB (large
/// payloads cost seconds in a debug build: the library wraps them in a `Vec<u8>`, which
/// serde encodes byte by byte).
const LARGE: usize = 2 << 20;

/// Bytes that serde encodes in one piece (`serialize_bytes`), as `serde_bytes` would: a
/// plain `Vec<u8>` goes through serde byte by byte, which takes seconds for 8 MiB in a
/// debug build without telling us anything more. `plain_vec_*` below covers `Vec<u8>`.
#[derive(Debug, Clone, PartialEq)]
struct Blob(Vec<u8>);

impl serde::Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn blob(n: usize) -> Blob {
    Blob(pattern(n))
}

fn checksum(v: Blob) -> (usize, u64) {
    (v.0.len(), v.0.iter().map(|&b| u64::from(b)).sum())
}

#[test]
fn result_larger_than_the_socket_buffer() {
    watchdog("result_larger_than_the_socket_buffer", || {
        let want = pattern(BIG);
        for m in METHODS {
            let mut p = started(Process::new(blob, BIG).with_start_method(m));
            let got = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
            assert!(got.0 == want, "[{m}] 8 MiB result came back different ({} bytes)", got.0.len());
            assert_eq!(p.exitcode(), Some(0), "[{m}]");
        }
    });
}

#[test]
fn plain_vec_result_larger_than_the_socket_buffer() {
    // 1 MiB: five times the default Unix socket buffer (208 KiB), as a plain Vec<u8>.
    watchdog("plain_vec_result_larger_than_the_socket_buffer", || {
        for m in METHODS {
            let mut p = started(Process::new(pattern, 1 << 20).with_start_method(m));
            let got = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
            assert!(got == pattern(1 << 20), "[{m}] 1 MiB Vec<u8> came back different ({} bytes)", got.len());
        }
    });
}

#[test]
fn is_alive_polling_drains_a_large_result() {
    watchdog("is_alive_polling_drains_a_large_result", || {
        for m in METHODS {
            let mut p = started(Process::new(blob, LARGE).with_start_method(m));
            // The child can only exit once its 2 MiB are read; is_alive must read them,
            // or this loop never ends (the watchdog then fails the test).
            let mut polls = 0u64;
            while p.is_alive() {
                polls += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            assert_eq!(p.exitcode(), Some(0), "[{m}] after {polls} polls");
            let got = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
            assert!(got.0 == pattern(LARGE), "[{m}] result damaged by polling");
        }
    });
}

#[test]
fn arguments_larger_than_the_socket_buffer() {
    watchdog("arguments_larger_than_the_socket_buffer", || {
        let data = blob(LARGE);
        let want = checksum(data.clone());
        for m in METHODS {
            let mut p = started(Process::new(checksum, data.clone()).with_start_method(m));
            assert_eq!(p.join().unwrap_or_else(|e| panic!("[{m}] {e}")), want, "[{m}]");
        }
    });
}

#[test]
fn join_timeout_in_small_steps_on_a_large_result() {
    watchdog("join_timeout_in_small_steps_on_a_large_result", || {
        for m in METHODS {
            let mut p = started(Process::new(blob, LARGE).with_start_method(m));
            // Each timed-out join reads what has arrived and keeps the partial frame.
            let mut timeouts = 0u64;
            let got = loop {
                match p.join_timeout(Duration::from_micros(300)) {
                    Ok(v) => break v,
                    Err(multiproc_process::JoinError::Timeout) => timeouts += 1,
                    Err(e) => panic!("[{m}] after {timeouts} timeouts: {e}"),
                }
            };
            assert!(got.0 == pattern(LARGE), "[{m}] result damaged by {timeouts} partial reads");
        }
    });
}

/// Known bug, reported on issue 3: the sentinel (a pidfd) only fires when the child has
/// exited, but a child whose return value is larger than the socket buffer cannot exit
/// until the parent reads it, and waiting on sentinels reads nothing. So the Python
/// idiom "wait on the sentinels of all my processes, then join the ones that are done"
/// (`multiprocessing.connection.wait`) deadlocks on such a child.
#[test]
fn sentinel_fires_for_a_child_with_a_large_result() {
    watchdog("sentinel_fires_for_a_child_with_a_large_result", || {
        for m in METHODS {
            let mut p = started(Process::new(blob, LARGE).with_start_method(m));
            let s = p.sentinel().unwrap();
            // A bounded wait for something that should happen, not a speed requirement.
            let fired = multiproc_sys::poll::readable(&[s], Some(Duration::from_secs(10))).unwrap();
            assert_eq!(fired, vec![0], "[{m}] the sentinel did not fire: the child waits for us to read its result");
            assert!(p.join().unwrap().0 == pattern(LARGE), "[{m}]");
        }
    });
}
