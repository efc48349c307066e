//! `Event` across real processes, under every start method.

multiproc_process::test_init!();

#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::{Duration, Instant};

use multiproc_sync::{Event, Semaphore};
use procs::{METHODS, start};

const LONG: Duration = Duration::from_secs(60);

/// Says it is about to wait, then waits for the event; returns what `wait` said.
fn waiter((event, ready): (Event, Semaphore)) -> bool {
    ready.release().expect("release");
    event.wait_timeout(LONG)
}

#[test]
fn set_wakes_waiters_in_other_processes() {
    watchdog::run("set_wakes_waiters_in_other_processes", || {
        for method in METHODS {
            let event = Event::new().unwrap();
            let ready = Semaphore::new(0).unwrap();
            let children: Vec<_> = (0..3).map(|_| start(waiter, (event.clone(), ready.clone()), method)).collect();
            for _ in 0..3 {
                ready.acquire().forget();
            }
            // Give them time to get past spinning and asleep on the futex.
            std::thread::sleep(Duration::from_millis(50));
            assert!(!event.is_set());
            event.set();
            for mut c in children {
                assert!(c.join().unwrap(), "{method}: a waiter was not woken by set()");
            }
            // Already set: waiters return at once; cleared: they time out.
            assert!(start(waiter, (event.clone(), ready.clone()), method).join().unwrap());
            event.clear();
            assert!(!event.is_set());
        }
    });
}

#[test]
fn wait_times_out_while_clear() {
    watchdog::run("wait_times_out_while_clear", || {
        let event = Event::new().unwrap();
        let t = Instant::now();
        assert!(!event.wait_timeout(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(!event.wait_until(Instant::now() + Duration::from_millis(5)));
        event.set();
        event.set();
        assert!(event.wait_timeout(Duration::ZERO));
        event.wait();
        event.clear();
        assert!(!event.wait_timeout(Duration::from_millis(1)));
    });
}
