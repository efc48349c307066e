//! `Semaphore` and `BoundedSemaphore` across real processes, under every start method.

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
use multiproc_sync::{BoundedSemaphore, ReleaseError, Semaphore};
use procs::{METHODS, start};

const LONG: Duration = Duration::from_secs(60);
const INSIDE: usize = 0;
const MAX_INSIDE: usize = 1;
const ENTRIES: usize = 2;

/// Enters the guarded section `rounds` times, recording how many are inside at once.
fn enter((sem, counters, rounds): (Semaphore, Counters, u32)) {
    for _ in 0..rounds {
        let permit = sem.acquire();
        let now = counters.cell(INSIDE).fetch_add(1, Ordering::SeqCst) + 1;
        counters.cell(MAX_INSIDE).fetch_max(now, Ordering::SeqCst);
        counters.cell(ENTRIES).fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_micros(300));
        counters.cell(INSIDE).fetch_sub(1, Ordering::SeqCst);
        drop(permit);
    }
}

#[test]
fn semaphore_limits_concurrency() {
    watchdog::run("semaphore_limits_concurrency", || {
        for method in METHODS {
            let sem = Semaphore::new(2).unwrap();
            let counters = Counters::new();
            let children: Vec<_> = (0..5).map(|_| start(enter, (sem.clone(), counters.clone(), 20), method)).collect();
            for mut c in children {
                c.join().unwrap();
            }
            let max = counters.get(MAX_INSIDE);
            assert!(max <= 2, "{method}: {max} processes were inside a Semaphore(2) at once");
            assert!(max >= 1);
            assert_eq!(counters.get(ENTRIES), 100);
            assert_eq!(sem.value(), 2, "{method}: permits were lost");
            eprintln!("{method}: at most {max} inside");
        }
    });
}

fn release_later((sem, delay_ms): (Semaphore, u64)) {
    std::thread::sleep(Duration::from_millis(delay_ms));
    sem.release().expect("release");
}

#[test]
fn any_process_may_release_and_wake_a_waiter() {
    watchdog::run("any_process_may_release_and_wake_a_waiter", || {
        for method in METHODS {
            let sem = Semaphore::new(0).unwrap();
            let t = Instant::now();
            assert!(sem.try_acquire_for(Duration::from_millis(30)).is_none());
            assert!(t.elapsed() >= Duration::from_millis(30));
            assert!(sem.try_acquire().is_none());
            let mut child = start(release_later, (sem.clone(), 20), method);
            // Blocks (spinning, then on the futex) until the child releases.
            let permit = sem.try_acquire_for(LONG).expect("woken by the other process's release");
            permit.forget();
            child.join().unwrap();
            assert_eq!(sem.value(), 0);
            let mut child = start(release_later, (sem.clone(), 20), method);
            sem.acquire().forget();
            child.join().unwrap();
        }
    });
}

fn over_release(sem: BoundedSemaphore) -> Result<(), ReleaseError> {
    sem.release()
}

fn take_one(sem: BoundedSemaphore) {
    sem.acquire().forget();
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    watchdog::run("bounded_semaphore_refuses_over_release", || {
        let sem = BoundedSemaphore::new(2).unwrap();
        assert_eq!(sem.limit(), 2);
        assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases { limit: 2 }));
        for method in METHODS {
            assert_eq!(
                start(over_release, sem.clone(), method).join().unwrap(),
                Err(ReleaseError::TooManyReleases { limit: 2 })
            );
            start(take_one, sem.clone(), method).join().unwrap();
            assert_eq!(sem.value(), 1);
            // Another process may give back what the first took, but only that.
            assert_eq!(start(over_release, sem.clone(), method).join().unwrap(), Ok(()));
            assert_eq!(sem.release(), Err(ReleaseError::TooManyReleases { limit: 2 }));
            assert_eq!(sem.value(), 2);
        }
        let g = sem.acquire();
        let h = sem.acquire();
        assert!(sem.try_acquire().is_none());
        drop((g, h));
        assert_eq!(sem.value(), 2);
        assert!(BoundedSemaphore::new(u32::MAX).is_err());
        assert!(Semaphore::new(multiproc_sync::SEM_VALUE_MAX).unwrap().release().is_err());
    });
}
