//! Runs a test body that could hang on its own thread, and fails the test with a clear
//! message if it does not finish in time. The limit only catches deadlocks: it is far
//! above any normal run time and says nothing about speed.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc;
use std::time::Duration;

/// How long a test body may run before it is declared hung.
pub const LIMIT: Duration = Duration::from_secs(180);

/// Runs `body` under the watchdog; its panics propagate as the test's own.
pub fn run<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(body)));
        })
        .expect("start the watchdog's test thread");
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(value)) => {
            let _ = handle.join();
            value
        }
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!(
            "{what} did not finish within {LIMIT:?}: it is most likely deadlocked \
             (a lock or wait that never returned); the watchdog gave up on it"
        ),
    }
}
