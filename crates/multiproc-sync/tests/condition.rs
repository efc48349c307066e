//! `Condition` across real processes, under every start method: a bounded buffer between
//! a producer and a consumer process (notify, wait and wait_for), over a Lock and over an
//! RLock; timeouts; a holder killed while another process waits.

multiproc_process::test_init!();

#[path = "support/counter.rs"]
pub mod counter;
#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use counter::Counters;
use multiproc_sync::{Condition, ConditionLock, Event, Lock, LockError, RLock};
use procs::{METHODS, kill, start};

const ITEMS: u64 = 300;
const PRODUCED: usize = 0;
const CONSUMED: usize = 1;
const SLOT: usize = 2;

/// Puts 0..ITEMS through a one-slot buffer, waiting with plain `wait` while it is full.
fn produce<L: ConditionLock>((cond, c): (Condition<L>, Counters)) {
    for item in 0..ITEMS {
        let mut guard = cond.lock().expect("lock");
        while c.get(PRODUCED) != c.get(CONSUMED) {
            guard.wait().expect("wait");
        }
        c.cell(SLOT).store(item, Ordering::SeqCst);
        c.cell(PRODUCED).fetch_add(1, Ordering::SeqCst);
        cond.notify(1);
    }
}

/// Takes ITEMS items out of the buffer with `wait_for`; returns their sum.
fn consume<L: ConditionLock>((cond, c): (Condition<L>, Counters)) -> u64 {
    let mut sum = 0;
    for _ in 0..ITEMS {
        let mut guard = cond.lock().expect("lock");
        guard.wait_for(|| c.get(PRODUCED) > c.get(CONSUMED)).expect("wait_for");
        sum += c.get(SLOT);
        c.cell(CONSUMED).fetch_add(1, Ordering::SeqCst);
        cond.notify_all();
    }
    sum
}

fn producer_consumer<L: ConditionLock + Send + 'static>(cond: Condition<L>) {
    for method in METHODS {
        let c = Counters::new();
        let mut consumer = start(consume::<L>, (cond.clone(), c.clone()), method);
        let mut producer = start(produce::<L>, (cond.clone(), c.clone()), method);
        producer.join().unwrap();
        let sum = consumer.join().unwrap();
        assert_eq!(sum, ITEMS * (ITEMS - 1) / 2, "{method}: an item was lost or seen twice");
        assert_eq!((c.get(PRODUCED), c.get(CONSUMED)), (ITEMS, ITEMS));
    }
}

#[test]
fn producer_and_consumer_over_a_lock() {
    watchdog::run("producer_and_consumer_over_a_lock", || {
        producer_consumer(Condition::with_lock(Lock::new().unwrap()).unwrap());
    });
}

#[test]
fn producer_and_consumer_over_an_rlock() {
    watchdog::run("producer_and_consumer_over_an_rlock", || producer_consumer(Condition::new().unwrap()));
}

#[test]
fn waits_time_out_and_rlock_levels_come_back() {
    watchdog::run("waits_time_out_and_rlock_levels_come_back", || {
        let cond = Condition::new().unwrap();
        let mut guard = cond.lock().unwrap();
        // A second level on the same thread: waiting releases both, and restores both.
        let inner = cond.lock_handle().lock().unwrap();
        let t = Instant::now();
        assert!(!guard.wait_timeout(Duration::from_millis(20)).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert!(!guard.wait_for_timeout(|| false, Duration::from_millis(10)).unwrap());
        assert!(guard.wait_for_timeout(|| true, Duration::from_millis(10)).unwrap());
        drop(inner);
        assert!(cond.lock_handle().is_locked());
        drop(guard);
        assert!(!cond.lock_handle().is_locked());
    });
}

fn notify_then_die_holding((cond, holding): (Condition<Lock>, Event)) {
    let _guard = cond.lock().expect("lock");
    cond.notify_all();
    holding.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn a_waiter_learns_that_the_holder_died() {
    watchdog::run("a_waiter_learns_that_the_holder_died", || {
        for method in METHODS {
            let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
            let holding = Event::new().unwrap();
            let mut guard = cond.lock().unwrap();
            let mut child = start(notify_then_die_holding, (cond.clone(), holding.clone()), method);
            // Kill the child from another thread once it holds the lock; this thread is
            // then inside wait(), trying to take the lock back.
            let killer = std::thread::spawn(move || {
                assert!(holding.wait_timeout(Duration::from_secs(60)));
                std::thread::sleep(Duration::from_millis(10));
                kill(&mut child);
            });
            match guard.wait() {
                Err(LockError::OwnerDied(())) => guard.mark_consistent(),
                other => panic!("{method}: expected OwnerDied from wait, got {other:?}"),
            }
            killer.join().unwrap();
            drop(guard);
            drop(cond.lock().expect("consistent again"));
        }
    });
}

#[test]
fn notify_without_waiters_is_harmless() {
    let cond = Condition::with_lock(RLock::new().unwrap()).unwrap();
    cond.notify(3);
    cond.notify_one();
    cond.notify_all();
    let mut guard = cond.lock().unwrap();
    assert!(!guard.wait_timeout(Duration::from_millis(1)).unwrap());
}
