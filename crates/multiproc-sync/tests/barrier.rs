//! `Barrier` across real processes, under every start method: rounds with distinct
//! arrival indices, abort and reset, a killed party.

multiproc_process::test_init!();

#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::Duration;

use multiproc_sync::{Barrier, BarrierError};
use procs::{METHODS, kill, start};

const LONG: Duration = Duration::from_secs(60);
const ROUNDS: usize = 20;

fn rounds(barrier: Barrier) -> Vec<u32> {
    (0..ROUNDS).map(|_| barrier.wait_timeout(LONG).expect("barrier wait")).collect()
}

#[test]
fn parties_meet_round_after_round() {
    watchdog::run("parties_meet_round_after_round", || {
        for method in METHODS {
            let barrier = Barrier::new(4).unwrap();
            assert_eq!(barrier.parties(), 4);
            let children: Vec<_> = (0..3).map(|_| start(rounds, barrier.clone(), method)).collect();
            let mine = rounds(barrier.clone());
            let mut all: Vec<Vec<u32>> = children.into_iter().map(|mut c| c.join().unwrap()).collect();
            all.push(mine);
            for round in 0..ROUNDS {
                let mut indices: Vec<u32> = all.iter().map(|r| r[round]).collect();
                indices.sort_unstable();
                assert_eq!(indices, [0, 1, 2, 3], "{method}: round {round} gave indices {indices:?}");
            }
            assert!(!barrier.is_broken());
            assert_eq!(barrier.n_waiting(), 0);
        }
    });
}

fn wait_once(barrier: Barrier) -> String {
    match barrier.wait_timeout(LONG) {
        Ok(i) => format!("Ok({i})"),
        Err(BarrierError::Broken) => "Broken".to_owned(),
        Err(e) => format!("{e:?}"),
    }
}

fn wait_for_waiters(barrier: &Barrier, n: u32) {
    let until = std::time::Instant::now() + LONG;
    while barrier.n_waiting() < n {
        assert!(std::time::Instant::now() < until, "the other parties never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn abort_breaks_the_barrier_until_reset() {
    watchdog::run("abort_breaks_the_barrier_until_reset", || {
        for method in METHODS {
            let barrier = Barrier::new(3).unwrap();
            let mut a = start(wait_once, barrier.clone(), method);
            let mut b = start(wait_once, barrier.clone(), method);
            wait_for_waiters(&barrier, 2);
            barrier.abort();
            assert_eq!(a.join().unwrap(), "Broken", "{method}");
            assert_eq!(b.join().unwrap(), "Broken", "{method}");
            assert!(barrier.is_broken());
            assert!(matches!(barrier.wait(), Err(BarrierError::Broken)));

            barrier.reset();
            assert!(!barrier.is_broken());
            let mut a = start(wait_once, barrier.clone(), method);
            let mut b = start(wait_once, barrier.clone(), method);
            let mine = barrier.wait_timeout(LONG).expect("after reset");
            let mut got = vec![format!("Ok({mine})"), a.join().unwrap(), b.join().unwrap()];
            got.sort();
            assert_eq!(got, ["Ok(0)", "Ok(1)", "Ok(2)"], "{method}");
        }
    });
}

#[test]
fn reset_breaks_current_waiters() {
    watchdog::run("reset_breaks_current_waiters", || {
        let barrier = Barrier::new(2).unwrap();
        let mut a = start(wait_once, barrier.clone(), METHODS[0]);
        wait_for_waiters(&barrier, 1);
        barrier.reset();
        assert_eq!(a.join().unwrap(), "Broken");
        assert!(!barrier.is_broken());
        let mut a = start(wait_once, barrier.clone(), METHODS[0]);
        barrier.wait_timeout(LONG).expect("fresh round after reset");
        assert!(a.join().unwrap().starts_with("Ok"));
    });
}

fn never_arrive(_barrier: Barrier) {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn a_killed_party_breaks_the_wait_instead_of_hanging_it() {
    watchdog::run("a_killed_party_breaks_the_wait_instead_of_hanging_it", || {
        for method in METHODS {
            let barrier = Barrier::new(3).unwrap();
            let mut waiting = start(wait_once, barrier.clone(), method);
            let mut doomed = start(never_arrive, barrier.clone(), method);
            wait_for_waiters(&barrier, 1);
            kill(&mut doomed);
            // The third party is gone: with a timeout we get an error, and the party
            // already waiting is released with Broken (not after its own long timeout).
            match barrier.wait_timeout(Duration::from_millis(100)) {
                Err(BarrierError::Timeout) => {}
                other => panic!("{method}: expected a timeout, got {other:?}"),
            }
            assert_eq!(waiting.join().unwrap(), "Broken", "{method}");
            assert!(barrier.is_broken());
        }
    });
}
