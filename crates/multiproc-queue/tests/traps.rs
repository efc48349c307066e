//! Python's queue traps, each across real processes with every start method:
//! - a producer exits (or is joined) right after `put` returns: nothing is lost, no
//!   deadlock (CPython gh-73983 and the "joining processes that use queues" warning);
//! - a producer SIGKILLed at random moments in the middle of puts: partial messages are
//!   never delivered, every complete one is, the queue stays usable;
//! - a consumer SIGKILLed at random moments in the middle of gets: at most the one
//!   message it had taken is lost, the others get everything else;
//! - `JoinableQueue::join` with a consumer that died between `get` and `task_done`.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::fs::File;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use multiproc_codec::Fd;
use multiproc_process::JoinError;
use multiproc_queue::{JoinableQueue, Queue, RecvTimeoutError, SendTimeoutError, TaskDoneError, TryRecvError};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use watchdog::{METHODS, Rng, join, seed, start, watchdog};

/// Ring size for these tests: small, so that messages above 32 KiB travel out of band
/// and the queue fills up often.
const CAPACITY: usize = 64 << 10;

/// A message that proves its own integrity: every byte is derived from its label.
#[derive(Debug, Serialize, Deserialize)]
struct Msg {
    round: u32,
    seq: u64,
    body: ByteBuf,
}

fn body_byte(round: u32, seq: u64, i: usize) -> u8 {
    (seq as usize ^ i.wrapping_mul(2_654_435_761) ^ round as usize) as u8
}

impl Msg {
    fn new(round: u32, seq: u64, len: usize) -> Msg {
        Msg { round, seq, body: ByteBuf::from((0..len).map(|i| body_byte(round, seq, i)).collect::<Vec<u8>>()) }
    }

    fn check(&self, round: u32) {
        assert_eq!(self.round, round, "message of another round");
        if let Some(i) = (0..self.body.len()).find(|&i| self.body[i] != body_byte(round, self.seq, i)) {
            panic!("message {} of round {round} is damaged at byte {i} of {}", self.seq, self.body.len());
        }
    }
}

/// A size mix that puts a process killed at a random moment in every part of a put:
/// small records, records that wrap around the ring, and out-of-band messages.
fn size(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..=4 => rng.below(200) as usize,
        5..=7 => 1000 + rng.below(20_000) as usize,
        _ => CAPACITY / 2 + rng.below(40_000) as usize,
    }
}

fn pipe() -> (File, Fd) {
    let (r, w) = multiproc_sys::fd::pipe().expect("pipe");
    (File::from(r), Fd::new(w))
}

/// Reads every u64 written to the pipe until all write ends are closed.
fn read_reports(mut r: File) -> Vec<u64> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).expect("read reports");
    bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
}

fn report(w: &mut File, seq: u64) {
    w.write_all(&seq.to_le_bytes()).expect("report");
}

// ---- a producer exits right after put ----

fn put_and_exit((q, n): (Queue<Msg>, u64)) {
    for seq in 0..n {
        q.put(Msg::new(0, seq, (seq as usize * 997) % 3000)).expect("put");
    }
    // One message out of band, to be sure its memfd outlives this process too.
    q.put(Msg::new(0, n, CAPACITY)).expect("put large");
}

#[test]
fn producer_exits_right_after_put_and_nothing_is_lost() {
    watchdog("producer exits after put", || {
        for method in METHODS {
            let q: Queue<Msg> = Queue::builder().capacity(1 << 20).build().expect("queue");
            let n = 200;
            let mut p = start(method, put_and_exit, (q.clone(), n));
            // Joined before anyone consumed: no feeder thread to flush, so no deadlock.
            join(method, &mut p);
            assert_eq!(q.qsize(), n as usize + 1, "[{method}]");
            q.close();
            for seq in 0..=n {
                let m = q.get().unwrap_or_else(|e| panic!("[{method}] message {seq}: {e}"));
                assert_eq!(m.seq, seq, "[{method}]");
                m.check(0);
            }
            assert!(matches!(q.get_nowait(), Err(TryRecvError::Closed)), "[{method}] the producer is gone");
        }
    });
}

// ---- a producer killed in the middle of puts ----

fn put_forever((q, progress, round, seed): (Queue<Msg>, Fd, u32, u64)) {
    let mut progress = File::from(progress.into_inner());
    let mut rng = Rng(seed);
    for seq in 0.. {
        q.put(Msg::new(round, seq, size(&mut rng))).expect("put");
        // Reported only once put has returned: every reported message must arrive.
        report(&mut progress, seq);
    }
}

#[test]
fn producer_killed_mid_put_loses_only_the_partial_message() {
    watchdog("producer killed mid-put", || {
        let mut rng = Rng(seed("producer killed mid-put"));
        for method in METHODS {
            // One queue for all rounds: each round's dead producer leaves its debris
            // (unpublished bytes, maybe an orphaned out-of-band descriptor, a lock whose
            // owner died) for the next round to cope with.
            let q: Queue<Msg> = Queue::builder().capacity(CAPACITY).build().expect("queue");
            for round in 0..5u32 {
                let (reports, progress) = pipe();
                let mut p = start(method, put_forever, (q.clone(), progress, round, rng.next()));
                let kill_at = Instant::now() + Duration::from_millis(5 + rng.below(60));
                let mut got = Vec::new();
                // Consume while it produces, so it is killed while copying, not only
                // while waiting for room.
                while Instant::now() < kill_at {
                    match q.get_timeout(Duration::from_millis(1)) {
                        Ok(m) => got.push(m),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(e) => panic!("[{method}] round {round}: {e}"),
                    }
                }
                p.kill().expect("kill");
                match p.join() {
                    Err(JoinError::Killed { signal }) => assert_eq!(signal, 9),
                    other => panic!("[{method}] round {round}: producer was not killed: {other:?}"),
                }
                loop {
                    match q.get_nowait() {
                        Ok(m) => got.push(m),
                        Err(TryRecvError::Empty) => break,
                        Err(e) => panic!("[{method}] round {round}: after the kill: {e}"),
                    }
                }
                let reported = read_reports(reports);
                for (i, m) in got.iter().enumerate() {
                    assert_eq!(m.seq, i as u64, "[{method}] round {round}: a message is missing or out of order");
                    m.check(round);
                }
                // Every put that returned was delivered; at most one more (put returned,
                // killed before reporting) may have been.
                let confirmed = reported.len();
                eprintln!("[{method}] round {round}: {} delivered, {confirmed} confirmed", got.len());
                assert!(
                    got.len() == confirmed || got.len() == confirmed + 1,
                    "[{method}] round {round}: {confirmed} puts returned but {} messages arrived",
                    got.len()
                );
            }
            // Still usable, for small and large messages.
            q.put(Msg::new(99, 0, 10)).expect("put after the kills");
            q.put(Msg::new(99, 1, CAPACITY)).expect("large put after the kills");
            q.get_timeout(Duration::from_secs(10)).expect("get after the kills").check(99);
            q.get_timeout(Duration::from_secs(10)).expect("large get after the kills").check(99);
        }
    });
}

// ---- a consumer killed in the middle of gets ----

fn get_forever((q, progress): (Queue<Msg>, Fd)) {
    let mut progress = File::from(progress.into_inner());
    loop {
        let m = q.get().expect("get");
        report(&mut progress, m.seq);
    }
}

#[test]
fn consumer_killed_mid_get_leaves_the_queue_to_the_others() {
    watchdog("consumer killed mid-get", || {
        let mut rng = Rng(seed("consumer killed mid-get"));
        for method in METHODS {
            let q: Queue<Msg> = Queue::builder().capacity(CAPACITY).build().expect("queue");
            for round in 0..5u32 {
                let (reports, progress) = pipe();
                let mut c = start(method, get_forever, (q.clone(), progress));
                let kill_at = Instant::now() + Duration::from_millis(5 + rng.below(60));
                let mut put = 0u64;
                while Instant::now() < kill_at {
                    match q.put_timeout(Msg::new(round, put, size(&mut rng)), Duration::from_millis(1)) {
                        Ok(()) => put += 1,
                        Err(SendTimeoutError::Timeout(_)) => {}
                        Err(e) => panic!("[{method}] round {round}: {e}"),
                    }
                }
                c.kill().expect("kill");
                assert!(matches!(c.join(), Err(JoinError::Killed { signal: 9 })), "[{method}] not killed");
                let taken = read_reports(reports);
                let mut rest = Vec::new();
                loop {
                    match q.get_nowait() {
                        Ok(m) => {
                            m.check(round);
                            rest.push(m.seq);
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(e) => panic!("[{method}] round {round}: after the kill: {e}"),
                    }
                }
                // The dead consumer took 0..k in order; we get the rest in order. Only the
                // message it was holding when killed (taken, not yet reported) may be lost.
                for (i, &s) in taken.iter().enumerate() {
                    assert_eq!(s, i as u64, "[{method}] round {round}: consumer saw messages out of order");
                }
                let k = taken.len() as u64;
                eprintln!("[{method}] round {round}: {put} put, {k} taken by the victim, {} left", rest.len());
                let first = rest.first().copied().unwrap_or(put);
                assert!(
                    first == k || first == k + 1,
                    "[{method}] round {round}: consumer reported {k} messages, the next one left is {first}"
                );
                let expected: Vec<u64> = (first..put).collect();
                assert_eq!(rest, expected, "[{method}] round {round}: messages lost after the consumer died");
            }
            q.put(Msg::new(7, 0, CAPACITY)).expect("put after the kills");
            q.get_timeout(Duration::from_secs(10)).expect("get after the kills").check(7);
        }
    });
}

// ---- JoinableQueue::join with a consumer that died before task_done ----

fn get_then_die((q, progress): (JoinableQueue<u32>, Fd)) {
    let mut progress = File::from(progress.into_inner());
    let item = q.get().expect("get");
    report(&mut progress, u64::from(item));
    // Die between get and task_done.
    let _ = multiproc_sys::signal::kill(multiproc_sys::proc::current_pid(), multiproc_sys::signal::SIGKILL);
    unreachable!("SIGKILL cannot be caught");
}

#[test]
fn join_returns_when_a_consumer_died_before_task_done() {
    watchdog("join with a dead consumer", || {
        for method in METHODS {
            let q: JoinableQueue<u32> = JoinableQueue::new().expect("queue");
            for i in 0..3 {
                q.put(i).expect("put");
            }
            let (reports, progress) = pipe();
            let mut c = start(method, get_then_die, (q.clone(), progress));
            assert!(matches!(c.join(), Err(JoinError::Killed { signal: 9 })), "[{method}]");
            assert_eq!(read_reports(reports), vec![0], "[{method}] the consumer took the first item");
            for expected in 1..3 {
                assert_eq!(q.get().expect("get"), expected);
                q.task_done().expect("task_done");
            }
            // The dead consumer's task can never be marked done by it: join would wait
            // forever, join_timeout returns and says how many are missing...
            let err = q.join_timeout(Duration::from_millis(200)).expect_err("one task is unfinished");
            assert_eq!(err.unfinished, 1, "[{method}]");
            assert_eq!(q.unfinished_tasks(), 1);
            // ...and the documented recovery: mark it done on the dead consumer's behalf.
            q.task_done().expect("task_done for the dead consumer");
            q.join();
            assert_eq!(q.task_done(), Err(TaskDoneError), "[{method}] more task_done than puts");
        }
    });
}

#[test]
fn joining_a_producer_with_unconsumed_items_does_not_deadlock() {
    // CPython's documented trap: a process that has put items waits at exit for its
    // feeder thread to flush them into the pipe, so joining it before consuming the
    // items deadlocks once the pipe is full. Here put is done when it returns.
    watchdog("join producer before consuming", || {
        for method in METHODS {
            let q: Queue<Msg> = Queue::builder().capacity(4 << 20).build().expect("queue");
            let mut p = start(method, put_and_exit, (q.clone(), 1000));
            join(method, &mut p);
            drop(p);
            q.close();
            let n = q.iter().map(|m| m.expect("decodes").check(0)).count();
            assert_eq!(n, 1001, "[{method}]");
        }
    });
}
