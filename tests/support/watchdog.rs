//! Runs a test body under a watchdog, one test at a time.
//!
//! Include with `#[path = "support/watchdog.rs"] mod watchdog;`.
//!
//! The body runs on its own thread; if it has not finished within the limit the test
//! fails with a message naming it, instead of hanging the whole run. Bodies of one test
//! binary also run one at a time: a child started with the fork method inherits every
//! descriptor open in the parent, so a test running beside it could otherwise hold a
//! copy of this test's pipe ends and delay the end-of-file it waits for.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long a test may wait for the tests before it to finish.
const TURN_LIMIT: Duration = Duration::from_secs(600);

enum Report<T> {
    Started,
    Finished(std::thread::Result<T>),
}

/// Runs `body`, failing the test if it takes longer than `limit` (which is a hang
/// detector, not a speed requirement: choose it generously).
pub fn watchdog<T: Send + 'static>(name: &str, limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = tx.send(Report::Started);
            let _ = tx.send(Report::Finished(catch_unwind(AssertUnwindSafe(body))));
        })
        .expect("cannot start the test thread");
    match rx.recv_timeout(TURN_LIMIT) {
        Ok(Report::Started) => {}
        Ok(Report::Finished(_)) => unreachable!("a body reports that it started first"),
        Err(_) => panic!("watchdog: `{name}` never got its turn: an earlier test of this binary is hung"),
    }
    match rx.recv_timeout(limit) {
        Ok(Report::Finished(Ok(value))) => {
            let _ = thread.join();
            value
        }
        Ok(Report::Finished(Err(panic))) => resume_unwind(panic),
        Ok(Report::Started) => unreachable!("a body reports that it started once"),
        Err(RecvTimeoutError::Timeout) => panic!(
            "watchdog: `{name}` did not finish within {limit:?}; it is probably hung \
             (a receive that never returns, or a child that never exits)"
        ),
        Err(RecvTimeoutError::Disconnected) => panic!("watchdog: `{name}` ended without reporting a result"),
    }
}
