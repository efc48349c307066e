//! `Lock` across real processes, under every start method: mutual exclusion, owner death
//! (SIGKILL while holding, and at random points of a lock/unlock loop), timeouts.

multiproc_process::test_init!();

#[path = "support/counter.rs"]
pub mod counter;
#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::{Duration, Instant};

use counter::Counters;
use multiproc_sync::{Event, Lock, LockError, TryLockError, UnlockError};
use procs::{METHODS, Rng, kill, start};

const LONG: Duration = Duration::from_secs(60);

fn increment((lock, counter, n): (Lock, Counters, u64)) -> u64 {
    for _ in 0..n {
        let guard = lock.lock().expect("lock");
        counter.racy_increment(0);
        drop(guard);
    }
    n
}

#[test]
fn four_processes_increment_under_the_lock() {
    watchdog::run("four_processes_increment_under_the_lock", || {
        for method in METHODS {
            let lock = Lock::new().unwrap();
            let counter = Counters::new();
            let children: Vec<_> =
                (0..4).map(|_| start(increment, (lock.clone(), counter.clone(), 10_000), method)).collect();
            for mut child in children {
                assert_eq!(child.join().unwrap(), 10_000);
            }
            assert_eq!(
                counter.get(0),
                40_000,
                "{method}: increments were lost, so two processes held the lock at once"
            );
            assert!(!lock.is_locked());
        }
    });
}

fn hold_until_killed((lock, held): (Lock, Event)) {
    let _guard = lock.lock().expect("lock");
    held.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Locks and reports whether the previous holder was reported dead; repairs it.
fn lock_and_repair(lock: Lock) -> bool {
    match lock.lock() {
        Ok(_) => false,
        Err(LockError::OwnerDied(guard)) => {
            guard.mark_consistent();
            true
        }
        Err(e) => panic!("lock failed: {e}"),
    }
}

#[test]
fn killed_holder_is_reported_to_the_next_locker() {
    watchdog::run("killed_holder_is_reported_to_the_next_locker", || {
        for method in METHODS {
            let lock = Lock::new().unwrap();
            let held = Event::new().unwrap();
            let mut holder = start(hold_until_killed, (lock.clone(), held.clone()), method);
            assert!(held.wait_timeout(LONG), "{method}: the child never took the lock");
            assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));
            kill(&mut holder);

            // The next locker (here) gets the lock, with the news.
            let guard = match lock.lock() {
                Err(LockError::OwnerDied(guard)) => guard,
                other => panic!("{method}: expected OwnerDied, got {:?}", other.map(drop)),
            };
            drop(guard);
            // Not marked consistent: the next locker is told too, in another process.
            let mut next = start(lock_and_repair, lock.clone(), method);
            assert!(next.join().unwrap(), "{method}: the second locker was not told about the death");
            // Repaired there: plain locking from now on.
            let guard = lock.lock().expect("repaired lock");
            drop(guard);
            assert!(!start(lock_and_repair, lock.clone(), method).join().unwrap());
        }
    });
}

fn churn((lock, counter, started): (Lock, Counters, Event)) {
    started.set();
    loop {
        let guard = match lock.lock() {
            Ok(g) => g,
            Err(LockError::OwnerDied(g)) => {
                g.mark_consistent();
                g
            }
            Err(e) => panic!("lock failed: {e}"),
        };
        counter.racy_increment(0);
        drop(guard);
    }
}

#[test]
fn sigkill_at_random_points_never_leaves_the_lock_stuck() {
    watchdog::run("sigkill_at_random_points_never_leaves_the_lock_stuck", || {
        let mut rng = Rng::from_clock("sigkill_at_random_points");
        for method in METHODS {
            let rounds = if method == multiproc_process::StartMethod::Fork { 100 } else { 30 };
            let lock = Lock::new().unwrap();
            let counter = Counters::new();
            let mut deaths_reported = 0;
            for round in 0..rounds {
                // Two churning children contend, so the victim may die while waiting,
                // locking, holding or unlocking.
                let started = [Event::new().unwrap(), Event::new().unwrap()];
                let mut victim = start(churn, (lock.clone(), counter.clone(), started[0].clone()), method);
                let mut other = start(churn, (lock.clone(), counter.clone(), started[1].clone()), method);
                assert!(started.iter().all(|e| e.wait_timeout(LONG)));
                std::thread::sleep(Duration::from_micros(rng.below(3_000)));
                kill(&mut victim);
                // The survivor keeps going, and so can we.
                match lock.try_lock_for(Duration::from_secs(30)) {
                    Ok(_) => {}
                    Err(TryLockError::OwnerDied(g)) => {
                        deaths_reported += 1;
                        g.mark_consistent();
                    }
                    Err(e) => panic!("{method}, round {round}: lock stuck after a SIGKILL: {e}"),
                }
                kill(&mut other);
                match lock.try_lock_for(Duration::from_secs(30)) {
                    Ok(_) => {}
                    Err(TryLockError::OwnerDied(g)) => g.mark_consistent(),
                    Err(e) => panic!("{method}, round {round}: lock stuck after a SIGKILL: {e}"),
                }
            }
            eprintln!("{method}: {rounds} rounds, the kill hit a holder {deaths_reported} times");
            assert!(counter.get(0) > 0);
        }
    });
}

fn hold_until_told((lock, held, release): (Lock, Event, Event)) {
    let guard = lock.lock().expect("lock");
    held.set();
    release.wait();
    drop(guard);
}

#[test]
fn try_lock_for_times_out_while_held_and_succeeds_once_released() {
    watchdog::run("try_lock_for_times_out_while_held_and_succeeds_once_released", || {
        for method in METHODS {
            let lock = Lock::new().unwrap();
            let (held, release) = (Event::new().unwrap(), Event::new().unwrap());
            let mut holder = start(hold_until_told, (lock.clone(), held.clone(), release.clone()), method);
            assert!(held.wait_timeout(LONG));
            let t = Instant::now();
            assert!(matches!(lock.try_lock_for(Duration::from_millis(50)), Err(TryLockError::Timeout)));
            assert!(t.elapsed() >= Duration::from_millis(50), "gave up before the timeout");
            let deadline = Instant::now() + Duration::from_millis(10);
            assert!(matches!(lock.try_lock_until(deadline), Err(TryLockError::Timeout)));
            assert!(matches!(lock.try_lock(), Err(TryLockError::WouldBlock)));

            release.set();
            let guard = lock.try_lock_for(LONG).expect("the lock was released");
            holder.join().unwrap();
            drop(guard);
        }
    });
}

fn try_foreign_unlock(lock: Lock) -> String {
    // SAFETY: this process holds no guard of the lock.
    match unsafe { lock.force_unlock() } {
        Err(UnlockError::NotOwner) => "NotOwner".to_owned(),
        other => format!("{other:?}"),
    }
}

#[test]
fn relocking_and_foreign_unlock_are_errors() {
    watchdog::run("relocking_and_foreign_unlock_are_errors", || {
        let lock = Lock::new().unwrap();
        let guard = lock.lock().unwrap();
        assert!(matches!(lock.lock(), Err(LockError::Deadlock)));
        assert!(matches!(lock.try_lock(), Err(TryLockError::Deadlock)));
        for method in METHODS {
            assert_eq!(start(try_foreign_unlock, lock.clone(), method).join().unwrap(), "NotOwner");
            assert!(lock.is_locked(), "{method}: a foreign unlock released the lock");
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: this thread holds no guard of the lock.
                assert!(matches!(unsafe { lock.force_unlock() }, Err(UnlockError::NotOwner)));
            });
        });
        drop(guard);
        assert!(!lock.is_locked());
    });
}
