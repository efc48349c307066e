//! When a queue counts as closed: consumers drain it and then get `Closed` instead of
//! blocking forever, whether the producers dropped their handles, closed them, or were
//! SIGKILLed; and a fork child does not hold the queue open through handles it was not
//! given.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::Duration;

use multiproc_process::StartMethod;
use multiproc_queue::{Queue, RecvError, RecvTimeoutError, SendError, SimpleQueue, TryRecvError};
use watchdog::{METHODS, join, start, watchdog};

fn put_n((q, from, n): (Queue<u64>, u64, u64)) {
    for i in from..from + n {
        q.put(i).expect("put");
    }
}

fn put_n_then_close((q, from, n): (Queue<u64>, u64, u64)) {
    put_n((q.clone(), from, n));
    q.close();
    // Still alive, still holding the (closed) handle: closing is what counts.
    std::thread::sleep(Duration::from_millis(300));
}

fn put_n_then_hang((q, from, n): (Queue<u64>, u64, u64)) {
    put_n((q.clone(), from, n));
    // Never drops its handle: only its death releases it.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn drain(q: Queue<u64>) -> Vec<u64> {
    q.close();
    q.iter().map(|r| r.expect("decodes")).collect()
}

#[test]
fn consumers_drain_then_see_closed_when_producers_drop_or_close() {
    watchdog("closed after producers drop or close", || {
        for method in METHODS {
            let q: Queue<u64> = Queue::new().expect("queue");
            let mut consumers: Vec<_> = (0..2).map(|_| start(method, drain, q.clone())).collect();
            let mut dropper = start(method, put_n, (q.clone(), 0, 1000));
            let mut closer = start(method, put_n_then_close, (q.clone(), 1000, 1000));
            drop(q);
            join(method, &mut dropper);
            join(method, &mut closer);
            let mut all: Vec<u64> = consumers.iter_mut().flat_map(|c| join(method, c)).collect();
            all.sort_unstable();
            assert_eq!(all, (0..2000).collect::<Vec<_>>(), "[{method}]");
        }
    });
}

#[test]
fn a_sigkilled_producer_no_longer_holds_the_queue_open() {
    watchdog("closed after producer killed", || {
        for method in METHODS {
            let q: Queue<u64> = Queue::new().expect("queue");
            let mut p = start(method, put_n_then_hang, (q.clone(), 0, 10));
            q.close();
            for i in 0..10 {
                assert_eq!(q.get().expect("get"), i, "[{method}]");
            }
            // Still open: the producer lives and holds its handle.
            assert!(matches!(q.get_timeout(Duration::from_millis(50)), Err(RecvTimeoutError::Timeout)), "[{method}]");
            p.kill().expect("kill");
            // It never ran any code to release its handle; the kernel did.
            assert!(matches!(q.get(), Err(RecvError::Closed)), "[{method}]");
            let _ = p.join();
        }
    });
}

fn count_until_closed(q: Queue<u64>) -> usize {
    drain(q).len()
}

#[test]
fn a_fork_child_keeps_only_the_handles_it_was_given() {
    // The fork child inherits copies of every descriptor of the parent, including the
    // put tokens of `q` itself and of `extra`, which it was not given. If it kept them,
    // the queue would stay open until it exited, and it would wait for itself forever.
    watchdog("fork child inherits other handles", || {
        let q: Queue<u64> = Queue::new().expect("queue");
        let extra = q.clone();
        let unrelated: SimpleQueue<u8> = SimpleQueue::new().expect("queue");
        let mut c = start(StartMethod::Fork, count_until_closed, q.clone());
        for i in 0..5 {
            extra.put(i).expect("put");
        }
        drop(extra);
        drop(q);
        assert_eq!(join(StartMethod::Fork, &mut c), 5);
        // The child's neutralising of inherited tokens did not touch ours.
        unrelated.put(1).expect("put");
        assert_eq!(unrelated.get().expect("get"), 1);
    });
}

#[test]
fn closing_a_handle_refuses_puts_but_not_gets() {
    watchdog("close semantics", || {
        let q: Queue<String> = Queue::new().expect("queue");
        let other = q.clone();
        q.put("before".to_owned()).expect("put");
        q.close();
        q.close();
        assert!(q.is_closed() && !other.is_closed());
        match q.put("after".to_owned()) {
            Err(SendError::Closed(item)) => assert_eq!(item, "after"),
            other => panic!("put on a closed handle: {other:?}"),
        }
        assert!(q.clone().is_closed(), "a clone of a closed handle is closed");
        // Gets still work, and the queue is still open through `other`.
        assert_eq!(q.get().expect("get"), "before");
        assert!(matches!(q.get_nowait(), Err(TryRecvError::Empty)));
        other.put("via other".to_owned()).expect("put");
        assert_eq!(q.get().expect("get"), "via other");
        drop(other);
        assert!(matches!(q.get(), Err(RecvError::Closed)));
        assert_eq!(q.iter().count(), 0);
    });
}

fn wait_for_one(q: Queue<u64>) -> Result<u64, String> {
    q.close();
    q.get().map_err(|e| e.to_string())
}

#[test]
fn a_blocked_consumer_wakes_when_the_last_producer_leaves() {
    watchdog("blocked consumer wakes on close", || {
        for method in METHODS {
            let q: Queue<u64> = Queue::new().expect("queue");
            let mut c = start(method, wait_for_one, q.clone());
            // Let it block in get, then leave without putting.
            std::thread::sleep(Duration::from_millis(100));
            drop(q);
            let err = join(method, &mut c).expect_err("nothing was put");
            assert!(err.contains("empty and closed"), "[{method}] {err}");
        }
    });
}
