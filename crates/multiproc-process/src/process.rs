use std::fmt;
use std::io::IoSlice;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use multiproc_codec::{Bincode, EncodeError, decode_with_fds, encode_with_fds};
use multiproc_sys::fd::{self, SocketKind};
use multiproc_sys::fdpass;
use multiproc_sys::proc::{ExitStatus, PidFd, SpawnCommand};
use multiproc_sys::signal;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::runtime::{self, ChildRecord, ChildSetup, FRAME_LIMIT};
use crate::target::{self, Trampoline};
use crate::wire::{Bootstrap, FrameReader, Outcome, Progress};
use crate::{JoinError, StartError, StartMethod, get_start_method};

/// A process type that carries its own data and code, like a Python `Process` subclass
/// that overrides `run()`.
///
/// The value is moved into the child (encoded under spawn and forkserver), `run` is
/// called there, and what it returns comes back from [`Process::join`].
///
/// ```
/// use multiproc_process::{Process, Run, StartMethod};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Countdown { from: u32 }
///
/// impl Run for Countdown {
///     type Output = Vec<u32>;
///     fn run(self) -> Vec<u32> { (0..=self.from).rev().collect() }
/// }
///
/// let mut p = Process::from_run(Countdown { from: 3 }).with_start_method(StartMethod::Fork);
/// p.start()?;
/// assert_eq!(p.join()?, vec![3, 2, 1, 0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Run: Serialize + DeserializeOwned + Send + 'static {
    /// What `run` returns to the parent.
    type Output: Serialize + DeserializeOwned + 'static;
    /// The code to run in the child.
    fn run(self) -> Self::Output;
}

fn call_run<T: Run>(value: T) -> T::Output {
    value.run()
}

/// A target and its arguments, type-erased.
trait Payload: Send {
    fn run_here(self: Box<Self>) -> (Outcome, Vec<OwnedFd>);
    fn encode_args(&self, out: &mut Vec<u8>) -> Result<Vec<OwnedFd>, EncodeError>;
    fn trampoline_offset(&self) -> isize;
    fn target_offset(&self) -> isize;
}

struct Call<A, R> {
    f: fn(A) -> R,
    args: A,
}

impl<A, R> Payload for Call<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    fn run_here(self: Box<Self>) -> (Outcome, Vec<OwnedFd>) {
        // Fork child: of the inherited descriptors registered close-on-fork (queue put
        // tokens), keep only those the arguments own, as if they had been sent to a
        // spawned child (see `multiproc_sys::clofork`).
        let visit = || encode_with_fds(&Bincode::new(), &self.args, &mut Vec::new()).is_ok();
        let _ = multiproc_sys::clofork::retain_reachable(visit);
        target::run_target(self.f, self.args)
    }

    fn encode_args(&self, out: &mut Vec<u8>) -> Result<Vec<OwnedFd>, EncodeError> {
        encode_with_fds(&Bincode::new(), &self.args, out)
    }

    fn trampoline_offset(&self) -> isize {
        let t: Trampoline = target::trampoline::<A, R>;
        target::offset_of(t as usize)
    }

    fn target_offset(&self) -> isize {
        target::offset_of(self.f as usize)
    }
}

/// A function running (or about to run) in another process (Python's
/// `multiprocessing.Process`).
///
/// The target is a plain `fn(A) -> R`; the arguments and the return value are any serde
/// types, and may contain handles (pipe ends, queues, locks) whose descriptors travel
/// out of band. [`join`](Process::join) returns the value, or says how the child failed:
/// it panicked (with the message), exited early, or was killed by a signal.
///
/// ```
/// use multiproc_process::{Process, StartMethod};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let mut p = Process::new(square, 12).with_name("squarer").with_start_method(StartMethod::Fork);
/// p.start()?;
/// assert!(p.pid().is_some());
/// assert_eq!(p.join()?, 144);
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A `Process` dropped without `join` does not stop its child: the child runs on, and
/// the library reaps it after it exits (at the next start or `active_children()`), so it
/// never lingers as a zombie. A daemon child is killed when the thread that started it
/// ends, even if the whole parent is SIGKILLed; start daemons from the main thread (or a
/// thread that lives as long as they should).
pub struct Process<R> {
    payload: Option<Box<dyn Payload>>,
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    method: Option<StartMethod>,
    child: Option<Child>,
    _result: PhantomData<fn() -> R>,
}

struct Child {
    record: Arc<ChildRecord>,
    method: StartMethod,
    channel: Mutex<Channel>,
}

impl Drop for Child {
    fn drop(&mut self) {
        // Without this, a joined (or otherwise reaped) child's record, and with it its
        // pidfd, stayed in the registry until the next `start` or `active_children()`:
        // a program that joins and drops a batch of processes kept one descriptor open
        // per process until it started another.
        runtime::release_child(&self.record);
    }
}

struct Channel {
    ctrl: Option<OwnedFd>,
    reader: FrameReader,
    result: ResultState,
}

enum ResultState {
    Pending,
    Received(Outcome, Vec<OwnedFd>),
    Missing,
    Broken(String),
    Taken,
}

impl Channel {
    /// Reads whatever the child has sent so far, without blocking.
    fn pump(&mut self) {
        let Some(ctrl) = self.ctrl.as_ref() else { return };
        if !matches!(self.result, ResultState::Pending) {
            return;
        }
        match self.reader.read(ctrl.as_fd(), true) {
            Ok(Progress::Pending) => return,
            Ok(Progress::Done) => {
                self.result = match self.reader.decode::<Outcome>() {
                    Ok((o, fds)) => ResultState::Received(o, fds),
                    Err(e) => ResultState::Broken(format!("malformed result message: {e}")),
                }
            }
            Ok(Progress::Closed { .. }) => self.result = ResultState::Missing,
            Err(e) => self.result = ResultState::Broken(e.to_string()),
        }
        self.ctrl = None;
    }
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("daemon", &self.daemon)
            .field("start_method", &self.start_method())
            .field("exitcode", &self.exitcode())
            .finish()
    }
}

impl<R> Process<R>
where
    R: Serialize + DeserializeOwned + 'static,
{
    /// A new, not yet started process that will run `target(args)`.
    pub fn new<A>(target: fn(A) -> R, args: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
    {
        let (identity, name) = runtime::next_child_identity();
        Process {
            payload: Some(Box::new(Call { f: target, args })),
            name,
            identity,
            daemon: false,
            method: None,
            child: None,
            _result: PhantomData,
        }
    }

    /// A new process that will call `value.run()` (Python: a `Process` subclass).
    pub fn from_run<T: Run<Output = R>>(value: T) -> Process<R> {
        Process::new(call_run::<T>, value)
    }

    /// Starts the child. Under spawn and forkserver the arguments are encoded first; an
    /// argument that cannot be encoded fails here and no process is created.
    pub fn start(&mut self) -> Result<(), StartError> {
        if self.child.is_some() {
            return Err(StartError::AlreadyStarted);
        }
        let method = self.start_method();
        if method != StartMethod::Fork && !runtime::initialized() {
            return Err(StartError::NotInitialized(method));
        }
        let payload = self.payload.take().ok_or(StartError::AlreadyStarted)?;
        runtime::reap_orphans();
        self.launch(method, payload)
    }

    fn launch(&mut self, method: StartMethod, payload: Box<dyn Payload>) -> Result<(), StartError> {
        let (parent_end, child_end) = fd::socket_pair(SocketKind::Stream)?;
        let setup = || ChildSetup { name: self.name.clone(), identity: self.identity.clone(), daemon: self.daemon };
        let (pid, used) = if method == StartMethod::Fork {
            let pid = runtime::fork_child(setup(), &parent_end, child_end, move || payload.run_here())?;
            (pid, StartMethod::Fork)
        } else {
            // Encode before creating anything, so a bad argument costs no process.
            let mut args = Vec::new();
            let fds = payload.encode_args(&mut args)?;
            let boot = runtime::with_me(|me| Bootstrap {
                trampoline: payload.trampoline_offset(),
                target: payload.target_offset(),
                name: self.name.clone(),
                identity: self.identity.clone(),
                authkey: me.authkey.clone(),
                daemon: self.daemon,
                parent_pid: multiproc_sys::proc::current_pid().as_raw(),
                parent_name: me.name.clone(),
                start_method: get_start_method(),
                spin_ns: multiproc_sys::spin::max_spin().as_nanos() as u64,
                args,
            });
            let frame = crate::wire::encode_frame(&boot, fds.len())?;
            let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
            // Put as much of the bootstrap as fits into the socket before the child
            // exists, so that it finds its instructions waiting instead of sleeping
            // until we are scheduled again (one wake-up less per process).
            let mut sent = 0;
            let mut fds_sent = borrowed.is_empty();
            if borrowed.len() <= fdpass::MAX_FDS_PER_SEND {
                match fdpass::send_with_fds(parent_end.as_fd(), &[IoSlice::new(&frame)], &borrowed, true) {
                    Ok(n) => (sent, fds_sent) = (n, true),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let server_pid = if method == StartMethod::ForkServer {
                runtime::fork_server_request(&child_end, self.daemon).map_err(StartError::ForkServer)?
            } else {
                None
            };
            let (pid, used) = match server_pid {
                Some(pid) => (pid, StartMethod::ForkServer),
                None => {
                    let death = self.daemon.then_some(signal::SIGKILL);
                    let cmd = SpawnCommand::current_exe(
                        &[(runtime::CHILD_ENV, fd::raw(&child_end).to_string())],
                        &[],
                        child_end.as_fd(),
                        death,
                    )?;
                    (cmd.spawn()?, StartMethod::Spawn)
                }
            };
            drop(child_end);
            // The rest, if any. A child that died before reading gives EPIPE here; join
            // then reports how it died.
            let rest: &[BorrowedFd<'_>] = if fds_sent { &[] } else { &borrowed };
            let _ = fdpass::send_all_with_fds(parent_end.as_fd(), &frame[sent..], rest);
            (pid, used)
        };
        let pidfd = PidFd::open(pid)?;
        let record =
            Arc::new(ChildRecord { name: self.name.clone(), daemon: self.daemon, pidfd, status: Mutex::new(None) });
        runtime::register_child(record.clone());
        self.child = Some(Child {
            record,
            method: used,
            channel: Mutex::new(Channel {
                ctrl: Some(parent_end),
                reader: FrameReader::new(FRAME_LIMIT),
                result: ResultState::Pending,
            }),
        });
        Ok(())
    }

    /// Waits for the child to end and returns its target's value.
    ///
    /// Errors say how it ended otherwise: [`JoinError::Panicked`] with the message,
    /// [`JoinError::Exited`], [`JoinError::Killed`] with the signal. The child is reaped
    /// either way; a second `join` returns [`JoinError::AlreadyJoined`].
    pub fn join(&mut self) -> Result<R, JoinError> {
        self.join_until(None)
    }

    /// Like [`join`](Process::join), but gives up after `timeout` with
    /// [`JoinError::Timeout`]; the process keeps running and can be joined later.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, JoinError> {
        self.join_until(Some(Instant::now() + timeout))
    }

    /// Like [`join_timeout`](Process::join_timeout) with a deadline.
    pub fn join_deadline(&mut self, deadline: Instant) -> Result<R, JoinError> {
        self.join_until(Some(deadline))
    }

    fn join_until(&mut self, deadline: Option<Instant>) -> Result<R, JoinError> {
        let child = self.child.as_ref().ok_or(JoinError::NotStarted)?;
        let mut ch = child.channel.lock();
        let status = loop {
            ch.pump();
            if let Some(status) = child.record.poll_status()? {
                // Everything the child wrote before exiting is in the socket by now.
                ch.pump();
                if matches!(ch.result, ResultState::Pending) {
                    // Still incomplete with the writer dead: the rest is not coming
                    // (or another process holds the socket open); count it as missing.
                    ch.result = ResultState::Missing;
                    ch.ctrl = None;
                }
                break status;
            }
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(JoinError::Timeout);
                    }
                    Some(left)
                }
            };
            let pidfd = child.record.pidfd.as_fd();
            match ch.ctrl.as_ref() {
                Some(c) => multiproc_sys::poll::readable(&[pidfd, c.as_fd()], left)?,
                None => multiproc_sys::poll::readable(&[pidfd], left)?,
            };
        };
        let result = std::mem::replace(&mut ch.result, ResultState::Taken);
        match result {
            ResultState::Taken => Err(JoinError::AlreadyJoined),
            ResultState::Received(Outcome::Returned(bytes), fds) => Ok(decode_with_fds(&Bincode::new(), &bytes, fds)?),
            ResultState::Received(Outcome::Panicked(message), _) => Err(JoinError::Panicked { message }),
            ResultState::Received(Outcome::BadArguments(m), _) => Err(JoinError::BadArguments(m)),
            ResultState::Received(Outcome::ResultNotSent(m), _) => Err(JoinError::ResultNotSent(m)),
            ResultState::Broken(m) if status == ExitStatus::Exited(0) => {
                Err(JoinError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, m)))
            }
            ResultState::Pending | ResultState::Missing | ResultState::Broken(_) => Err(match status {
                ExitStatus::Signaled(signal) => JoinError::Killed { signal },
                ExitStatus::Exited(code) => JoinError::Exited { code },
            }),
        }
    }

    /// Closes the process handle (Python's `close()`), releasing its descriptors.
    /// Fails, handing the process back, if the child is still running.
    pub fn close(self) -> Result<(), CloseError<R>> {
        if self.is_alive() {
            return Err(CloseError(Box::new(self)));
        }
        Ok(())
    }
}

impl<R> Process<R> {
    /// Sets the name (before `start`; Python's `name=`). Defaults to `Process-N`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Makes the child a daemon (before `start`): it is killed when the thread that
    /// started it exits, even if the parent process is SIGKILLed.
    pub fn with_daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Chooses the start method for this process (default: [`get_start_method`]).
    pub fn with_start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is (or will be) a daemon.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// The start method this process uses (after `start`: the one it was started with).
    pub fn start_method(&self) -> StartMethod {
        match &self.child {
            Some(c) => c.method,
            None => self.method.unwrap_or_else(get_start_method),
        }
    }

    /// The child's pid once started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.record.pidfd.pid().as_raw() as u32)
    }

    /// Python's `exitcode`: `None` while running (or before start), the exit code once
    /// it ended (0 after a normal return, 1 after a panic), `-N` if killed by signal `N`.
    pub fn exitcode(&self) -> Option<i32> {
        let child = self.child.as_ref()?;
        if let Some(mut ch) = child.channel.try_lock() {
            ch.pump();
        }
        child.record.poll_status().ok().flatten().map(ExitStatus::code)
    }

    /// Whether the child has been started and has not yet ended.
    ///
    /// Also reads whatever result the child has sent, so a child with a large return
    /// value is never stuck waiting for a parent that only polls `is_alive`.
    pub fn is_alive(&self) -> bool {
        self.child.is_some() && self.exitcode().is_none()
    }

    /// Sends SIGTERM (Python's `terminate()`). Does nothing if it has already ended.
    pub fn terminate(&self) -> std::io::Result<()> {
        self.signal(signal::SIGTERM)
    }

    /// Sends SIGKILL (Python's `kill()`). Does nothing if it has already ended.
    pub fn kill(&self) -> std::io::Result<()> {
        self.signal(signal::SIGKILL)
    }

    /// Sends any signal to the child (through its pidfd, so never to a recycled pid).
    pub fn signal(&self, sig: i32) -> std::io::Result<()> {
        let child = self.child.as_ref().ok_or_else(|| std::io::Error::other("process has not been started"))?;
        if child.record.status.lock().is_some() {
            return Ok(());
        }
        child.record.pidfd.send_signal(sig).map(drop)
    }

    /// A descriptor that becomes readable when the child ends (Python's `sentinel`);
    /// poll it together with connections via `multiproc::pipe::wait`.
    pub fn sentinel(&self) -> Option<BorrowedFd<'_>> {
        self.child.as_ref().map(|c| c.record.pidfd.as_fd())
    }
}

/// [`Process::close`] on a running process; holds the process so nothing is lost.
pub struct CloseError<R>(pub Box<Process<R>>);

impl<R> fmt::Debug for CloseError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CloseError").field(&self.0).finish()
    }
}

impl<R> fmt::Display for CloseError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot close process {:?}: it is still running", self.0.name)
    }
}

impl<R> std::error::Error for CloseError<R> {}
