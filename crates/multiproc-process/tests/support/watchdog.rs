//! Helpers shared by the multiproc-process integration tests: a watchdog that turns a
//! hang into a clear failure, a guard that kills and reaps a child on every exit path,
//! and the list of start methods every scenario loops over.
//!
//! Include with `#[path = "support/watchdog.rs"] mod watchdog;`. Each test file uses a
//! subset, hence the `dead_code` allowance.

use std::ops::{Deref, DerefMut};
use std::sync::mpsc;
use std::time::Duration;

use multiproc_process::{Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every start method, in the order the tests run them.
pub const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];

/// The methods that are safe to use from a multi-threaded parent.
pub const THREAD_SAFE_METHODS: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::ForkServer];

/// How long a test may go without finishing before the watchdog calls it hung. This is
/// hang detection, not a speed requirement: every test here normally ends in well under
/// a tenth of it, even in a debug build on a loaded two-core machine.
pub const HANG: Duration = Duration::from_secs(60);

/// Runs `body` on its own thread and fails with "watchdog: NAME hung for Ns" if it has
/// not finished after `HANG`. A panic in `body` is re-raised here with its message.
pub fn watchdog<T: Send + 'static>(name: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_for(name, HANG, body)
}

/// [`watchdog`] with an explicit limit, for the few tests that start thousands of
/// processes.
pub fn watchdog_for<T: Send + 'static>(name: &str, limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // A send error only means the watchdog already gave up on us.
            let _ = tx.send(body());
        })
        .expect("cannot start the watchdog's test thread");
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = thread.join();
            v
        }
        // The body panicked (dropping the sender): re-raise its panic, message intact.
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => panic!("watchdog: {name} ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: {name} hung for {}s", limit.as_secs())
        }
    }
}

/// Owns a started (or not) process and, when dropped, kills and reaps it, so a failing
/// assertion never leaves a child behind. Use it like the `Process` it wraps.
pub struct Reaped<R: Serialize + DeserializeOwned + 'static>(Option<Process<R>>);

impl<R: Serialize + DeserializeOwned + 'static> std::fmt::Debug for Reaped<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Reaped").field(&self.0).finish()
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Reaped<R> {
    /// Takes charge of `p`.
    pub fn new(p: Process<R>) -> Self {
        Reaped(Some(p))
    }

    /// Gives the process back without killing it.
    pub fn into_inner(mut self) -> Process<R> {
        self.0.take().expect("process already taken")
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Drop for Reaped<R> {
    fn drop(&mut self) {
        if let Some(p) = self.0.as_mut() {
            // Not started / already ended: both calls are harmless no-ops or quick errors.
            let _ = p.kill();
            let _ = p.join();
        }
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Deref for Reaped<R> {
    type Target = Process<R>;
    fn deref(&self) -> &Process<R> {
        self.0.as_ref().expect("process already taken")
    }
}

impl<R: Serialize + DeserializeOwned + 'static> DerefMut for Reaped<R> {
    fn deref_mut(&mut self) -> &mut Process<R> {
        self.0.as_mut().expect("process already taken")
    }
}

/// Starts `p` and wraps it in a [`Reaped`] guard, panicking with the method on failure.
pub fn started<R: Serialize + DeserializeOwned + 'static>(p: Process<R>) -> Reaped<R> {
    let method = p.start_method();
    let mut g = Reaped::new(p);
    if let Err(e) = g.start() {
        panic!("[{method}] start failed: {e}");
    }
    g
}

/// Replaces the panic hook with a silent one. Called by targets that panic on purpose, so
/// the expected panic does not print a backtrace banner into the test output (under
/// spawn and forkserver the child's stderr is the terminal, not the harness's capture).
/// It only affects the child process that calls it.
pub fn silence_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}
