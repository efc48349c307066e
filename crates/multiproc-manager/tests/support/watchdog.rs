//! Helpers shared by the multiproc-manager integration tests: a watchdog that turns a
//! hang into a clear failure, a guard that kills and reaps a child on every exit path,
//! the start methods every scenario loops over, and a look at processes through `/proc`.
//!
//! Include with `#[path = "support/watchdog.rs"] mod watchdog;`. Each test file uses a
//! subset, hence the `dead_code` allowance.

use std::ops::{Deref, DerefMut};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use multiproc_process::{Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every start method, in the order the tests run them.
pub const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];

/// How long a test may go without finishing before the watchdog calls it hung. Hang
/// detection, not a speed requirement: every test here normally ends in a small
/// fraction of it, even in a debug build on a loaded two-core machine.
pub const HANG: Duration = Duration::from_secs(120);

/// Runs `body` on its own thread and fails with "watchdog: NAME hung for Ns" if it has
/// not finished after `HANG`. A panic in `body` is re-raised here with its message.
pub fn watchdog<T: Send + 'static>(name: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    watchdog_for(name, HANG, body)
}

/// [`watchdog`] with an explicit limit.
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

/// Runs `f` on a helper thread and returns its result, or `None` if it has not returned
/// after `limit` (the thread is left behind). For calls that must not hang.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
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
    /// Gives the process back without killing it.
    pub fn into_inner(mut self) -> Process<R> {
        self.0.take().expect("process already taken")
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Drop for Reaped<R> {
    fn drop(&mut self) {
        if let Some(p) = self.0.as_mut() {
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
    let mut g = Reaped(Some(p));
    if let Err(e) = g.start() {
        panic!("[{method}] start failed: {e}");
    }
    g
}

/// Replaces the panic hook with a silent one, in a child that panics on purpose.
pub fn silence_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// A process's state letter and parent pid from `/proc/PID/stat`; `None` if it is gone.
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` has ended: no longer in `/proc`, or a zombie waiting for its parent.
pub fn is_dead(pid: u32) -> bool {
    !matches!(stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Our zombie children: every process in state `Z` whose parent is this process.
pub fn our_zombies() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| matches!(stat(pid), Some(('Z', ppid)) if ppid == me))
        .collect()
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes; returns whether
/// it held. A bounded wait for something asynchronous, never a speed requirement.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends SIGKILL to `pid`.
pub fn sigkill(pid: u32) {
    let pid = multiproc_sys::Pid::from_raw(pid as i32);
    multiproc_sys::signal::kill(pid, multiproc_sys::signal::SIGKILL).expect("kill");
}
