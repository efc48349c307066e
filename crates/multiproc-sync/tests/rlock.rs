//! `RLock` across real processes, under every start method: re-entrancy, exclusion of
//! other processes until the last level is released, foreign release, owner death.

multiproc_process::test_init!();

#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::Duration;

use multiproc_sync::{Event, LockError, RLock, TryLockError, UnlockError};
use procs::{METHODS, kill, start};

const LONG: Duration = Duration::from_secs(60);

/// Takes the lock twice, then lets go one level per step.
fn nested((rlock, steps): (RLock, [Event; 4])) {
    let outer = rlock.lock().expect("outer lock");
    let inner = rlock.try_lock().expect("re-entrant try_lock");
    steps[0].set();
    steps[1].wait();
    drop(inner);
    steps[2].set();
    steps[3].wait();
    drop(outer);
}

#[test]
fn reentrant_for_its_owner_exclusive_for_others() {
    watchdog::run("reentrant_for_its_owner_exclusive_for_others", || {
        let rlock = RLock::new().unwrap();
        {
            let a = rlock.lock().unwrap();
            let b = rlock.lock().unwrap();
            let c = rlock.try_lock_for(Duration::ZERO).unwrap();
            drop((c, b));
            assert!(rlock.is_locked());
            drop(a);
            assert!(!rlock.is_locked());
        }
        for method in METHODS {
            let steps = [(); 4].map(|()| Event::new().unwrap());
            let mut child = start(nested, (rlock.clone(), steps.clone()), method);
            assert!(steps[0].wait_timeout(LONG));
            assert!(matches!(rlock.try_lock(), Err(TryLockError::WouldBlock)), "{method}");
            steps[1].set();
            assert!(steps[2].wait_timeout(LONG));
            // One level released, one still held.
            assert!(matches!(rlock.try_lock_for(Duration::from_millis(20)), Err(TryLockError::Timeout)), "{method}");
            steps[3].set();
            child.join().unwrap();
            let guard = rlock.try_lock_for(LONG).expect("released by its owner");
            drop(guard);
        }
    });
}

fn release_foreign(rlock: RLock) -> String {
    // SAFETY: this process holds no guard of the lock.
    match unsafe { rlock.force_unlock() } {
        Err(UnlockError::NotOwner) => "NotOwner".to_owned(),
        other => format!("{other:?}"),
    }
}

#[test]
fn release_by_another_process_is_an_error() {
    watchdog::run("release_by_another_process_is_an_error", || {
        let rlock = RLock::new().unwrap();
        let outer = rlock.lock().unwrap();
        let inner = rlock.lock().unwrap();
        for method in METHODS {
            assert_eq!(start(release_foreign, rlock.clone(), method).join().unwrap(), "NotOwner", "{method}");
            assert!(rlock.is_locked());
        }
        // Free: releasing it is still an error, and changes nothing.
        drop((inner, outer));
        assert!(matches!(start(release_foreign, rlock.clone(), METHODS[0]).join().unwrap().as_str(), "NotOwner"));
        // SAFETY: no guard is alive.
        assert!(matches!(unsafe { rlock.force_unlock() }, Err(UnlockError::NotOwner)));
        drop(rlock.lock().unwrap());
    });
}

fn hold_three_levels_until_killed((rlock, held): (RLock, Event)) {
    let _a = rlock.lock().expect("lock");
    let _b = rlock.lock().expect("lock");
    let _c = rlock.lock().expect("lock");
    held.set();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn killed_holder_is_reported() {
    watchdog::run("rlock_killed_holder_is_reported", || {
        for method in METHODS {
            let rlock = RLock::new().unwrap();
            let held = Event::new().unwrap();
            let mut holder = start(hold_three_levels_until_killed, (rlock.clone(), held.clone()), method);
            assert!(held.wait_timeout(LONG));
            kill(&mut holder);
            let guard = match rlock.lock() {
                Err(LockError::OwnerDied(g)) => g,
                other => panic!("{method}: expected OwnerDied, got {:?}", other.map(drop)),
            };
            // Ours now, at one level, and re-entrant as usual; until repaired, every
            // acquisition (a nested one too) hears about the death.
            let again = rlock.lock().expect_err("re-entry before repair").into_inner().expect("held");
            guard.mark_consistent();
            let third = rlock.lock().expect("re-entry after repair");
            drop((third, again));
            assert!(rlock.is_locked());
            drop(guard);
            assert!(!rlock.is_locked());
            drop(rlock.lock().expect("consistent again"));
        }
    });
}
