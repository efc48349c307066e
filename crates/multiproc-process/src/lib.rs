//! Python's `multiprocessing.Process` for Rust: run a function in another process and get
//! its result back.
//!
//! | Python | here |
//! |---|---|
//! | `Process(target=f, args=(a,))` | [`Process::new`]`(f, a)` |
//! | `class P(Process): def run(self)` | a type implementing [`Run`], [`Process::from_run`] |
//! | `p.start()`, `p.join()`, `p.join(timeout)` | [`Process::start`], [`Process::join`] (returns `f`'s value), [`Process::join_timeout`] |
//! | `p.is_alive()`, `p.pid`, `p.exitcode`, `p.name`, `p.daemon`, `p.sentinel` | methods of the same names |
//! | `p.terminate()`, `p.kill()`, `p.close()` | the same |
//! | `set_start_method`, `get_context`, `get_start_method` | the same, with [`StartMethod`] |
//! | `current_process()`, `parent_process()`, `active_children()`, `cpu_count()` | the same |
//! | `if __name__ == "__main__":` | [`init()`] as the first line of `main`; [`test_init!`] in test binaries |
//!
//! A target is a plain function pointer `fn(A) -> R` where `A` and `R` are serde types.
//! With [`StartMethod::Fork`] the child is a copy of the parent and simply calls it. With
//! [`StartMethod::Spawn`] (a fresh exec of this binary) and [`StartMethod::ForkServer`] (a
//! fork of a small server started by `init()`), the child finds the function by its
//! offset inside the binary and receives the arguments encoded, with any file descriptors
//! they hold sent alongside (`SCM_RIGHTS`). All three give the same results.
//!
//! What differs from Python, on purpose:
//! - `join` returns the target's value, or a [`JoinError`] saying whether the child
//!   panicked (with the message), exited early, or was killed by a signal.
//! - Daemon children die with their parent even when it is SIGKILLed (`PR_SET_PDEATHSIG`).
//! - Children are watched through pidfds, so `kill` and `terminate` can never hit a
//!   recycled pid, and a child is reaped exactly once.

mod call;
mod error;
mod info;
mod method;
mod process;
mod runtime;
mod target;
mod wire;

pub use call::{CallError, FnOffset, FnRef, RemoteCall, RemoteResult};
pub use error::{JoinError, StartError};
pub use info::{
    ChildInfo, CurrentProcess, ParentProcess, active_children, authkey, cpu_count, current_process, parent_process,
    set_authkey,
};
pub use method::{
    Context, ContextError, StartMethod, get_all_start_methods, get_context, get_start_method, set_start_method,
};
pub use process::{CloseError, Process, Run};
pub use runtime::{fork_server_pid, init};
pub use target::panic_message;

/// Runs [`init()`] before `main` in a test binary (or any binary whose `main` you do not
/// control), so that tests can use the spawn and forkserver start methods.
///
/// Put it once at the top level of each integration-test file:
///
/// ```ignore
/// multiproc_process::test_init!();
/// ```
///
/// It registers a constructor in `.init_array`, which runs before the test harness: a
/// spawned child (or the fork server) takes its role there instead of starting the
/// harness.
#[macro_export]
macro_rules! test_init {
    () => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        static __MULTIPROC_TEST_INIT: extern "C" fn() = {
            extern "C" fn __multiproc_test_init() {
                $crate::init();
            }
            __multiproc_test_init
        };
    };
}
