//! Per-process state: who we are, our children, our fork server, and the child side of
//! every start method.
//!
//! Three globals, always locked in this order when more than one is needed (only the
//! fork path does): `ME`, `CHILDREN`, `FORKSERVER`. The fork path holds all three across
//! `fork()` (after the standard streams' locks) so the child's copies are consistent and
//! unlocked by the child itself; that is why they are `std` mutexes (see `lock`).

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError};

use multiproc_sys::fd::{self, SocketKind};
use multiproc_sys::proc::{self as sysproc, ExitStatus, Forked, PidFd, SpawnCommand};
use multiproc_sys::{Pid, fdpass};
use parking_lot::Mutex;

use crate::wire::{Bootstrap, Outcome, read_frame, write_frame};
use crate::{StartMethod, set_start_method};

/// The environment variable that tells a spawned child which descriptor is its control
/// socket. It is removed as soon as the child reads it.
pub(crate) const CHILD_ENV: &str = "MULTIPROC_CHILD_FD";

/// The environment variable that makes a process the fork server, serving requests on
/// the descriptor it names.
const SERVER_ENV: &str = "MULTIPROC_FORKSERVER_FD";

/// Largest bootstrap or result frame: the codec's 1 GiB limit plus room for the header.
pub(crate) const FRAME_LIMIT: usize = multiproc_codec::DEFAULT_MAX_MESSAGE_SIZE + (1 << 16);

static INITIALIZED: AtomicBool = AtomicBool::new(false);
// This process's own control socket, if it is a child: forked grandchildren close it.
static MY_CONTROL_FD: AtomicI32 = AtomicI32::new(-1);

pub(crate) struct Me {
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) authkey: Vec<u8>,
    pub(crate) next_child: u32,
    pub(crate) parent: Option<Arc<ParentRecord>>,
    pub(crate) started_by: Option<StartMethod>,
}

/// What a child knows about its parent.
#[derive(Debug)]
pub(crate) struct ParentRecord {
    pub(crate) pid: Pid,
    pub(crate) name: String,
    pidfd: std::sync::OnceLock<Option<PidFd>>,
}

impl ParentRecord {
    /// Whether the parent still runs. Every start method makes the requesting process
    /// our parent (the fork server clones with `CLONE_PARENT`), and the kernel
    /// re-parents us the moment it dies, so comparing `getppid()` is exact and cannot
    /// be fooled by a recycled pid.
    pub(crate) fn is_alive(&self) -> bool {
        sysproc::parent_pid() == self.pid
    }

    /// A pidfd for the parent, opened on first use while the parent is known to be
    /// alive (so the pid cannot have been recycled yet).
    pub(crate) fn pidfd(&self) -> Option<&PidFd> {
        self.pidfd.get_or_init(|| if self.is_alive() { PidFd::open(self.pid).ok() } else { None }).as_ref()
    }
}

/// A started child, shared by its `Process` handle and the registry.
#[derive(Debug)]
pub(crate) struct ChildRecord {
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pub(crate) pidfd: PidFd,
    pub(crate) status: Mutex<Option<ExitStatus>>,
}

impl ChildRecord {
    /// Reaps the child if it has exited (exactly once), returning its status.
    pub(crate) fn poll_status(&self) -> std::io::Result<Option<ExitStatus>> {
        let mut st = self.status.lock();
        if st.is_none() {
            *st = self.pidfd.try_wait()?;
        }
        Ok(*st)
    }
}

struct ForkServer {
    sock: OwnedFd,
    owner: Pid,
    server: PidFd,
}

static ME: StdMutex<Option<Me>> = StdMutex::new(None);
static CHILDREN: StdMutex<Vec<Arc<ChildRecord>>> = StdMutex::new(Vec::new());
static FORKSERVER: StdMutex<Option<ForkServer>> = StdMutex::new(None);

/// Locks one of the three globals.
///
/// They are `std` mutexes, not `parking_lot` ones, because the fork path holds them
/// across `fork()` and the child then unlocks its copies. A `std` (futex) mutex unlocks
/// by resetting its own word. A `parking_lot` mutex that another thread of the parent
/// was waiting for at the moment of the fork may instead be handed over on unlock (its
/// "eventually fair" unlock) to that waiter, which does not exist in the child, and
/// its unlock looks the waiter up in `parking_lot`'s global table, whose bucket locks
/// other threads may have held: either way the child's copy stays locked and the child
/// hangs in `current_process()` or its next `start` (seen with a few threads starting
/// fork children at once). A poisoned lock is still used: no code here panics while
/// holding one with the data half-updated.
fn lock<T>(m: &'static StdMutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_authkey() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    if getrandom::fill(&mut key).is_err() {
        // getrandom(2) cannot fail on the kernels we support; fall back to something
        // unpredictable enough rather than refuse to run.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        for (i, b) in key.iter_mut().enumerate() {
            *b = (t.as_nanos() >> (i % 16 * 8)) as u8 ^ (sysproc::current_pid().as_raw() as u8).rotate_left(i as u32);
        }
    }
    key
}

pub(crate) fn with_me<T>(f: impl FnOnce(&mut Me) -> T) -> T {
    let mut guard = lock(&ME);
    let me = guard.get_or_insert_with(|| Me {
        name: "MainProcess".to_owned(),
        identity: Vec::new(),
        daemon: false,
        authkey: new_authkey(),
        next_child: 1,
        parent: None,
        started_by: None,
    });
    f(me)
}

/// Whether `init()` ran in this program (or we are a child of one that did).
pub(crate) fn initialized() -> bool {
    INITIALIZED.load(Ordering::Acquire)
}

/// Makes this program able to use the spawn and forkserver start methods, and, if this
/// process was started by spawn, runs the requested target and exits instead of
/// returning (Python's `if __name__ == "__main__":` guard).
///
/// Call it as the first line of `main`: a spawned child (and the fork server, which is
/// an exec of this binary too) takes its role here, before any of the program's own
/// code runs. It also starts this process's fork server. In test binaries, where `main`
/// is not yours, use [`crate::test_init!`]. Calling it more than once is harmless.
///
/// ```
/// // The first line of `main`:
/// multiproc_process::init();
/// ```
pub fn init() {
    if let Some(raw) = std::env::var_os(SERVER_ENV) {
        // SAFETY: as below: a freshly exec'd process before any of the program's code.
        unsafe { sysproc::remove_env(SERVER_ENV) };
        let raw: i32 = raw.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        let owner = sysproc::parent_pid();
        match fd::adopt_inherited(raw) {
            Ok(sock) => {
                multiproc_sys::signal::ignore_sigpipe();
                serve(sock, owner)
            }
            Err(e) => {
                eprintln!("multiproc: started as a fork server but {e}");
                sysproc::exit_now(1);
            }
        }
    }
    if let Some(raw) = std::env::var_os(CHILD_ENV) {
        // SAFETY: we are at the very start of a freshly exec'd child, before any of the
        // program's own code has run, so no other thread touches the environment.
        unsafe { sysproc::remove_env(CHILD_ENV) };
        let raw: i32 = raw.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        match fd::adopt_inherited(raw) {
            Ok(ctrl) => run_child(ctrl, StartMethod::Spawn),
            Err(e) => {
                eprintln!("multiproc: started as a spawned child but {e}");
                sysproc::exit_now(1);
            }
        }
    }
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return;
    }
    with_me(|_| ());
    // Start the fork server now, so that the first forkserver child does not wait for it.
    let mut fs = lock(&FORKSERVER);
    if fs.is_none() {
        *fs = start_fork_server().ok();
    }
}

/// Allocates the identity and default name of a new child ("Process-N", nested as
/// "Process-N:M" in children, as Python names them).
pub(crate) fn next_child_identity() -> (Vec<u32>, String) {
    with_me(|me| {
        let mut id = me.identity.clone();
        id.push(me.next_child);
        me.next_child += 1;
        let name = format!("Process-{}", id.iter().map(u32::to_string).collect::<Vec<_>>().join(":"));
        (id, name)
    })
}

pub(crate) fn register_child(record: Arc<ChildRecord>) {
    lock(&CHILDREN).push(record);
}

/// Called when a child's `Process` handle goes away. A child that has ended is reaped
/// (if not yet) and forgotten now, closing its pidfd; one still running stays in the
/// registry, to be reaped once it exits (see `reap_orphans`).
pub(crate) fn release_child(record: &Arc<ChildRecord>) {
    if matches!(record.poll_status(), Ok(Some(_))) {
        lock(&CHILDREN).retain(|r| !Arc::ptr_eq(r, record));
    }
}

/// Reaps children whose `Process` handle was dropped without a join, once they exit.
pub(crate) fn reap_orphans() {
    lock(&CHILDREN).retain(|r| {
        if Arc::strong_count(r) > 1 {
            return true;
        }
        !matches!(r.poll_status(), Ok(Some(_)) | Err(_))
    });
}

/// Live children of this process, reaping the ones that have ended.
pub(crate) fn live_children() -> Vec<Arc<ChildRecord>> {
    reap_orphans();
    let mut list = lock(&CHILDREN);
    list.retain(|r| Arc::strong_count(r) > 1 || r.status.lock().is_none());
    list.iter().filter(|r| matches!(r.poll_status(), Ok(None))).cloned().collect()
}

pub(crate) struct ChildSetup {
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
}

/// Forks a child that runs `body` and exits; returns its pid in the parent.
pub(crate) fn fork_child(
    setup: ChildSetup,
    parent_end: &OwnedFd,
    child_end: OwnedFd,
    body: impl FnOnce() -> (Outcome, Vec<OwnedFd>),
) -> std::io::Result<Pid> {
    // Hold the standard streams' locks across the fork, taken before ours (a thread that
    // prints may call into this crate, never the reverse). The child flushes both before
    // it exits (and its target may print); had another thread of the parent held one at
    // the moment of the fork, the child's copy would stay locked by a thread that does
    // not exist there and the child would hang in that flush. Held by this thread, they
    // are ours in the child, which releases them before running the target.
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    // Buffered output would otherwise be printed twice, once by each process.
    let _ = out.flush();
    let _ = err.flush();
    let parent_pid = sysproc::current_pid();
    // Hold every runtime lock across the fork so the child's copies are consistent.
    let mut me = lock(&ME);
    let mut children = lock(&CHILDREN);
    let mut fs = lock(&FORKSERVER);
    // Everything the child needs is built here, before the fork: pages the child
    // writes or allocates in are copied from the parent one by one, and those copies
    // are most of what a fork child costs beyond a bare fork.
    let parent_name = me.as_ref().map_or_else(|| "MainProcess".to_owned(), |m| m.name.clone());
    let authkey = me.as_ref().map_or_else(new_authkey, |m| m.authkey.clone());
    let daemon = setup.daemon;
    let child_state = child_me(setup, authkey, parent_pid, parent_name, StartMethod::Fork);
    multiproc_codec::warm_up();
    // SAFETY: the child below never returns from this function: it runs `body` and then
    // `_exit`s. Like Python's fork method it is unsafe to combine with threads that hold
    // locks; that is the documented contract of StartMethod::Fork.
    match unsafe { sysproc::fork() }? {
        Forked::Parent(pid) => {
            drop((me, children, fs));
            drop((out, err));
            drop(child_state);
            drop(child_end);
            Ok(pid)
        }
        Forked::Child => {
            // The parent's end is owned by a frame this child never returns to.
            fd::close_inherited_copy(fd::raw(parent_end));
            if daemon {
                arm_daemon(parent_pid);
            }
            // The parent's state, children and fork server are not ours. Forget them
            // rather than drop them: dropping would only free memory (copying more
            // pages) and close our copies of descriptors, which `_exit` does anyway.
            std::mem::forget(me.replace(child_state));
            std::mem::forget(std::mem::take(&mut *children));
            std::mem::forget(fs.take());
            drop((me, children, fs));
            drop((out, err));
            fd::close_inherited_copy(MY_CONTROL_FD.swap(fd::raw(&child_end), Ordering::AcqRel));
            let (outcome, fds) = body();
            finish_child(child_end, outcome, fds)
        }
    }
}

fn child_me(setup: ChildSetup, authkey: Vec<u8>, parent_pid: Pid, parent_name: String, how: StartMethod) -> Me {
    let pidfd = std::sync::OnceLock::new();
    Me {
        name: setup.name,
        identity: setup.identity,
        daemon: setup.daemon,
        authkey,
        next_child: 1,
        parent: Some(Arc::new(ParentRecord { pid: parent_pid, name: parent_name, pidfd })),
        started_by: Some(how),
    }
}

/// A daemon child dies with the thread that created it (`PR_SET_PDEATHSIG`), even if
/// that thread's process is SIGKILLed; if the parent already died, exit now.
fn arm_daemon(parent: Pid) {
    if sysproc::set_parent_death_signal(Some(libc_sigkill())).is_err() || sysproc::parent_pid() != parent {
        sysproc::exit_now(1);
    }
}

fn libc_sigkill() -> i32 {
    multiproc_sys::signal::SIGKILL
}

/// Sends the outcome to the parent, flushes standard streams and exits.
fn finish_child(ctrl: OwnedFd, outcome: Outcome, fds: Vec<OwnedFd>) -> ! {
    let code = outcome.exit_code();
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    // If the parent is gone (or dropped its handle) nobody wants the result.
    let _ = crate::wire::write_frame_spilling(ctrl.as_fd(), &outcome, &borrowed);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    sysproc::exit_now(code)
}

/// The child side of spawn and forkserver: read the bootstrap, run the target, report.
fn run_child(ctrl: OwnedFd, how: StartMethod) -> ! {
    // A spawned child may be running from a constructor, before Rust's runtime has set
    // this up for `main`: writing to a closed pipe must be an error, not death.
    multiproc_sys::signal::ignore_sigpipe();
    MY_CONTROL_FD.store(fd::raw(&ctrl), Ordering::Release);
    let (boot, fds): (Bootstrap, Vec<OwnedFd>) = match read_frame(&ctrl, FRAME_LIMIT) {
        Ok(x) => x,
        Err(e) => {
            let _ = write_frame(ctrl.as_fd(), &Outcome::BadArguments(format!("bad bootstrap message: {e}")), &[]);
            sysproc::exit_now(1)
        }
    };
    INITIALIZED.store(true, Ordering::Release);
    let _ = set_start_method(boot.start_method);
    multiproc_sys::spin::set_max_spin(std::time::Duration::from_nanos(boot.spin_ns));
    let setup = ChildSetup { name: boot.name, identity: boot.identity, daemon: boot.daemon };
    *lock(&ME) = Some(child_me(setup, boot.authkey, Pid::from_raw(boot.parent_pid), boot.parent_name, how));
    // SAFETY: the parent computed this offset from a `Trampoline` of this same binary:
    // we are an exec of its /proc/self/exe, or a fork of a server that was its fork.
    let trampoline = unsafe { crate::target::trampoline_at(boot.trampoline) };
    let (outcome, out_fds) = trampoline(boot.target, &boot.args, fds);
    finish_child(ctrl, outcome, out_fds)
}

// ---- fork server ----

/// Starts a fork server for this process: a fresh exec of this binary (so it holds none
/// of our descriptors, and neither do the children it forks), which `init()` turns into
/// the server loop. It is our child, killed when the thread that started it exits.
fn start_fork_server() -> std::io::Result<ForkServer> {
    let (client, server) = fd::socket_pair(SocketKind::SeqPacket)?;
    let owner = sysproc::current_pid();
    let cmd = SpawnCommand::current_exe(
        &[(SERVER_ENV, fd::raw(&server).to_string())],
        &[CHILD_ENV],
        server.as_fd(),
        Some(libc_sigkill()),
    )?;
    let pid = cmd.spawn()?;
    drop(server);
    Ok(ForkServer { sock: client, owner, server: PidFd::open(pid)? })
}

/// The fork server's loop: one request (daemon flag + the child's control socket), one
/// `clone(CLONE_PARENT)`, one reply (the pid, or `-errno`). The new process is a child of
/// the requester, which reaps and signals it directly.
fn serve(sock: OwnedFd, owner: Pid) -> ! {
    loop {
        let mut req = [0u8; 1];
        let mut fds = Vec::new();
        match fdpass::recv_with_fds(sock.as_fd(), &mut req, &mut fds, false) {
            Ok(1) if fds.len() == 1 => {}
            Ok(0) | Err(_) => sysproc::exit_now(0),
            Ok(_) => {
                let _ =
                    fdpass::send_with_fds(sock.as_fd(), &[std::io::IoSlice::new(&(-22i64).to_le_bytes())], &[], false);
                continue;
            }
        }
        let Some(ctrl) = fds.pop() else { continue };
        let daemon = req[0] == 1;
        // SAFETY: the fork server is single-threaded; the child never returns here.
        let reply: i64 = match unsafe { sysproc::fork_sibling() } {
            Ok(Forked::Child) => {
                drop(sock);
                // Not a daemon: the server's own death signal must not follow us.
                let _ = sysproc::set_parent_death_signal(None);
                if daemon {
                    arm_daemon(owner);
                }
                run_child(ctrl, StartMethod::ForkServer)
            }
            Ok(Forked::Parent(pid)) => pid.as_raw() as i64,
            Err(e) => -(e.raw_os_error().unwrap_or(libc_eio()) as i64),
        };
        drop(ctrl);
        if fdpass::send_with_fds(sock.as_fd(), &[std::io::IoSlice::new(&reply.to_le_bytes())], &[], false).is_err() {
            sysproc::exit_now(0);
        }
    }
}

fn libc_eio() -> i32 {
    5
}

/// Asks this process's fork server for a child that will read its bootstrap from
/// `child_end`, starting (or restarting) the server if needed. Always `Some` today; the
/// caller treats `None` as "use spawn".
pub(crate) fn fork_server_request(child_end: &OwnedFd, daemon: bool) -> Result<Option<Pid>, String> {
    let mut guard = lock(&FORKSERVER);
    let me = sysproc::current_pid();
    for attempt in 0..2 {
        let usable = guard.as_ref().is_some_and(|f| f.owner == me && !f.server.has_exited().unwrap_or(true));
        if !usable {
            if let Some(dead) = guard.take() {
                // Reap a dead server of ours so it does not linger as a zombie.
                if dead.owner == me {
                    let _ = dead.server.try_wait();
                }
            }
            // The server is an exec of this binary, so starting one is safe from any
            // thread, with any lock held.
            let server = start_fork_server().map_err(|e| format!("cannot start a fork server: {e}"))?;
            *guard = Some(server);
        }
        let Some(fs) = guard.as_ref() else { return Ok(None) };
        let req = [u8::from(daemon)];
        let sent = fdpass::send_with_fds(fs.sock.as_fd(), &[std::io::IoSlice::new(&req)], &[child_end.as_fd()], false);
        let mut reply = [0u8; 8];
        let got = sent.and_then(|_| fdpass::recv_with_fds(fs.sock.as_fd(), &mut reply, &mut Vec::new(), false));
        match got {
            Ok(8) => {
                let v = i64::from_le_bytes(reply);
                if v > 0 {
                    return Ok(Some(Pid::from_raw(v as i32)));
                }
                return Err(format!(
                    "fork failed in the fork server: {}",
                    std::io::Error::from_raw_os_error(-v as i32)
                ));
            }
            _ if attempt == 0 => {
                // The server died (killed?); start a new one if we can and retry once.
                if let Some(dead) = guard.take() {
                    let _ = dead.server.send_signal(libc_sigkill());
                    let _ = dead.server.wait();
                }
            }
            Ok(_) => return Err("the fork server sent a malformed reply".to_owned()),
            Err(e) => return Err(format!("the fork server is gone: {e}")),
        }
    }
    Err("the fork server is gone".to_owned())
}

/// The pid of this process's fork server, if it has one (for tests and diagnostics).
pub fn fork_server_pid() -> Option<u32> {
    lock(&FORKSERVER).as_ref().filter(|f| f.owner == sysproc::current_pid()).map(|f| f.server.pid().as_raw() as u32)
}
