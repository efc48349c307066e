use std::os::fd::AsFd;

use multiproc_sys::proc as sysproc;

use crate::StartMethod;
use crate::runtime::{self, with_me};

/// The current process, as Python's `current_process()` describes it.
#[derive(Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    /// `"MainProcess"` in the main program, the child's name otherwise.
    pub name: String,
    /// The process id.
    pub pid: u32,
    /// Whether this process is a daemon child.
    pub daemon: bool,
    /// Python's `_identity`: empty in the main program, `[N]` for `Process-N`, and so on.
    pub identity: Vec<u32>,
    /// How this process was started, `None` for the main program.
    pub started_by: Option<StartMethod>,
    authkey: Vec<u8>,
}

impl CurrentProcess {
    /// The process's authentication key (inherited from the parent; random in the main
    /// program). Listener/Client use it by default.
    pub fn authkey(&self) -> &[u8] {
        &self.authkey
    }
}

impl std::fmt::Debug for CurrentProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key itself.
        f.debug_struct("CurrentProcess")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("daemon", &self.daemon)
            .field("identity", &self.identity)
            .field("started_by", &self.started_by)
            .field("authkey", &format_args!("<{} bytes>", self.authkey.len()))
            .finish()
    }
}

/// Describes the current process (Python's `multiprocessing.current_process()`).
///
/// ```
/// let me = multiproc_process::current_process();
/// assert_eq!(me.name, "MainProcess");
/// assert_eq!(me.pid, std::process::id());
/// assert_eq!(me.authkey().len(), 32);
/// ```
pub fn current_process() -> CurrentProcess {
    with_me(|me| CurrentProcess {
        name: me.name.clone(),
        pid: sysproc::current_pid().as_raw() as u32,
        daemon: me.daemon,
        identity: me.identity.clone(),
        started_by: me.started_by,
        authkey: me.authkey.clone(),
    })
}

/// This process's authentication key.
pub fn authkey() -> Vec<u8> {
    with_me(|me| me.authkey.clone())
}

/// Replaces this process's authentication key; children started afterwards inherit it.
pub fn set_authkey(key: &[u8]) {
    with_me(|me| me.authkey = key.to_vec());
}

/// The process that started this one (Python's `parent_process()`); `None` in the main
/// program.
#[derive(Debug, Clone)]
pub struct ParentProcess {
    record: std::sync::Arc<runtime::ParentRecord>,
}

impl ParentProcess {
    /// The parent's pid.
    pub fn pid(&self) -> u32 {
        self.record.pid.as_raw() as u32
    }

    /// The parent's name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Whether the parent is still running. A recycled pid is never mistaken for the
    /// parent: the kernel re-parents this process the moment its parent dies.
    pub fn is_alive(&self) -> bool {
        self.record.is_alive()
    }

    /// A descriptor that becomes readable when the parent exits, if it could be opened.
    pub fn sentinel(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.record.pidfd().map(|p| p.as_fd())
    }
}

/// Returns the parent of this process, or `None` in the main program.
pub fn parent_process() -> Option<ParentProcess> {
    with_me(|me| me.parent.clone()).map(|record| ParentProcess { record })
}

/// A live child of this process, as listed by [`active_children`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// The child's pid.
    pub pid: u32,
    /// The child's name.
    pub name: String,
    /// Whether it is a daemon.
    pub daemon: bool,
}

/// The children of this process that are still running (Python's
/// `active_children()`). As in Python, children that have ended are reaped on the way.
pub fn active_children() -> Vec<ChildInfo> {
    runtime::live_children()
        .iter()
        .map(|r| ChildInfo { pid: r.pidfd.pid().as_raw() as u32, name: r.name.clone(), daemon: r.daemon })
        .collect()
}

/// The number of CPUs this process may run on (Python's `process_cpu_count()`, which
/// respects the affinity mask; falls back to 1).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
