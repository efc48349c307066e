//! The machinery shared by [`Pool`](crate::Pool) and
//! [`ProcessPoolExecutor`](crate::ProcessPoolExecutor): worker processes, the task
//! backlog, and the manager thread (Python's task-handler, result-handler and
//! worker-handler threads in one).
//!
//! # How it works
//! Each worker is a daemon [`Process`] running [`worker_main`], connected to the
//! parent by its own duplex [`Connection`]. The parent sends a worker only as many tasks
//! as it has decided to (one, or two when tasks are short: see [`State::dispatch`]), and
//! a worker answers in order, so the parent always knows which task a worker is running:
//! the oldest one it sent and has no answer for.
//!
//! Tasks are handed to an idle worker by whichever thread notices first: the thread that
//! submits (so an `apply_async` on an idle pool costs no thread hop) or the manager when
//! a worker reports a result. Sends happen under the state lock, so the order of a
//! worker's queue is the order of its socket.
//!
//! The manager thread waits (in `poll`, without spinning) on every worker's connection
//! and process sentinel, and on a doorbell that submitters ring when it must look again.
//! It:
//! - receives results and completes their tasks (callbacks run here, as in Python) —
//!   unless a thread waiting for a result got there first: such a thread spins for a
//!   few microseconds (the shared policy of `multiproc_sys::spin`) receiving results
//!   from the busy workers itself ([`Inner::help`]), so that a result reaches it without
//!   a hop through the manager thread;
//! - notices a dead worker by its sentinel, reaps it ([`Process::join`] gives the signal
//!   or exit code), fails only the task it was running with [`TaskError::WorkerDied`],
//!   puts the tasks queued behind it back in the backlog, and starts a replacement;
//! - kills a worker whose running task is past the per-task timeout, fails that task
//!   with [`TaskError::Timeout`], and replaces the worker the same way;
//! - replaces a worker that exits after `maxtasksperchild` tasks;
//! - on close, stops idle workers once the backlog is empty; on terminate, kills them all
//!   and fails whatever is pending with [`TaskError::PoolTerminated`].
//!
//! Workers are started by the manager thread, because a daemon child is tied to the
//! thread that started it: they die with the pool's thread, or with the whole parent if
//! it is killed.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use multiproc_codec::{Bincode, EncodeError, decode_with_fds, encode_with_fds};
use multiproc_pipe::{Connection, Pipe, RecvError, SendError, Waitable};
use multiproc_process::{Process, RemoteCall, RemoteResult, StartMethod};

use crate::error::{PoolError, TaskError};
use crate::worker::{FromWorker, ToWorker, WorkerArgs, worker_main};
use multiproc_process::panic_message;

/// Tasks whose runs take less than this on average are sent two at a time per worker,
/// so that a worker finds its next task waiting when it finishes one.
const PIPELINE_BELOW: Duration = Duration::from_micros(500);
/// Arguments above this size are only sent to a worker that has nothing queued (a send
/// larger than the socket's buffer to a busy worker would hold the state lock until the
/// worker reads it; Linux buffers about 200 KiB).
const PIPELINE_MAX_ARGS: usize = 128 << 10;
/// How long terminate waits after SIGTERM before it sends SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long to wait before retrying a worker start that failed.
const RESTART_BACKOFF: Duration = Duration::from_millis(100);
/// After this many workers in a row die before they are ready, the pool is broken.
const EARLY_DEATH_LIMIT: u32 = 3;

fn describe(exitcode: i32) -> String {
    if exitcode < 0 {
        format!("was killed by {}", multiproc_sys::signal::name(-exitcode))
    } else {
        format!("exited with code {exitcode}")
    }
}

/// Where a task's outcome goes: a typed result slot, a map collector, a future.
pub(crate) trait Sink: Send {
    /// Called just before the task is sent to a worker. `false`: the task was cancelled
    /// and is dropped without running (its owner has already been told).
    fn start(&mut self) -> bool {
        true
    }

    /// Delivers the outcome. Runs on the manager thread (or on the submitting thread for
    /// a task that fails before reaching a worker), never under the state lock.
    fn finish(self: Box<Self>, outcome: Result<RemoteResult, TaskError>);

    /// The task was removed from the backlog before it started (`shutdown(cancel_futures)`).
    fn cancel(self: Box<Self>) {
        self.finish(Err(TaskError::Cancelled));
    }
}

/// A task as submitted: its encoded call (or why it could not be encoded) and its sink.
pub(crate) type ChunkJob = (Result<RemoteCall, EncodeError>, Box<dyn Sink>);

/// A task waiting for a worker.
pub(crate) struct Job {
    call: RemoteCall,
    sink: Box<dyn Sink>,
}

/// Everything about a pool that is fixed when it is built.
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) initializer: Option<RemoteCall>,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) start_method: Option<StartMethod>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_message_size: usize,
    pub(crate) name: &'static str,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("processes", &self.processes)
            .field("initializer", &self.initializer.is_some())
            .field("max_tasks", &self.max_tasks)
            .field("start_method", &self.start_method)
            .field("task_timeout", &self.task_timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepting tasks.
    Running,
    /// No new tasks; finish the backlog, then stop the workers.
    Closed,
    /// Kill the workers with this signal and fail everything pending.
    Terminating(i32),
    /// The manager has exited; every worker is reaped.
    Finished,
}

/// A task sent to a worker.
struct InFlight {
    id: u64,
    sink: Box<dyn Sink>,
    /// When it started running: it is at the head of the worker's queue and the worker
    /// is past its initializer.
    started: Option<Instant>,
    /// The call, kept while the task waits behind another in the worker's socket, so
    /// that it can go to another worker if this one dies first.
    call: Option<RemoteCall>,
}

impl InFlight {
    fn mark_started(&mut self, now: Instant) {
        if self.started.is_none() {
            self.started = Some(now);
            self.call = None;
        }
    }
}

/// A live worker as the state sees it (the `Process` itself stays with the manager).
struct Worker {
    key: u64,
    pid: u32,
    conn: Arc<Connection>,
    sentinel: Arc<OwnedFd>,
    /// The worker has sent `Ready`.
    ready: bool,
    /// Sent and unanswered, oldest (running) first.
    queue: VecDeque<InFlight>,
    /// Tasks ever sent to it, for `maxtasksperchild`.
    sent: u64,
    /// Being killed (timeout) or found unusable: send it nothing more.
    doomed: bool,
    /// `Stop` was sent.
    stopping: bool,
    /// Its connection reported end-of-file: leave it out of the wait until it is reaped.
    eof: bool,
}

struct State {
    phase: Phase,
    backlog: VecDeque<Job>,
    workers: Vec<Worker>,
    /// Set when the initializer failed: every task fails with this.
    broken: Option<TaskError>,
    next_id: u64,
    /// Average run time of recent tasks, once one has been measured.
    avg_run: Option<Duration>,
    /// Workers that died before they were ready, in a row (a crashing initializer).
    early_deaths: u32,
    /// The pool was terminated (rather than closed and drained).
    terminated: bool,
}

/// An outcome to deliver once the state lock is released.
type Delivery = (Box<dyn Sink>, Result<RemoteResult, TaskError>);
/// A task on its way to a worker: its id, call and sink.
type Outgoing = (u64, RemoteCall, Box<dyn Sink>);

impl State {
    /// Sends backlog tasks to workers that have room, in backlog order, one write per
    /// worker (several tasks go as one `RunMany`).
    ///
    /// A worker has room when its queue is empty or, for short tasks with small
    /// arguments, while it holds fewer than a few (pipelining: the next task waits in its
    /// socket, so it never waits for us between tasks). The least loaded worker is
    /// filled first.
    fn dispatch(&mut self, cfg: &Config, out: &mut Vec<Delivery>) {
        if let Some(err) = &self.broken {
            let err = err.clone();
            out.extend(self.backlog.drain(..).map(|j| (j.sink, Err(err.clone()))));
            return;
        }
        if !matches!(self.phase, Phase::Running | Phase::Closed) || self.backlog.is_empty() {
            return;
        }
        let depth = match self.avg_run {
            Some(d) if d < PIPELINE_BELOW / 10 => 4,
            Some(d) if d < PIPELINE_BELOW => 2,
            _ => 1,
        };
        let mut batches: Vec<Vec<Outgoing>> = self.workers.iter().map(|_| Vec::new()).collect();
        while let Some(job) = self.backlog.front() {
            let depth = if job.call.args_len() <= PIPELINE_MAX_ARGS { depth } else { 1 };
            let pick = (1..=depth).find_map(|room| {
                self.workers.iter().enumerate().position(|(i, w)| {
                    let load = w.queue.len() + batches[i].len();
                    load < room
                        && !w.doomed
                        && !w.stopping
                        && cfg.max_tasks.is_none_or(|m| w.sent + (batches[i].len() as u64) < m)
                })
            });
            let Some(wi) = pick else { break };
            let Some(mut job) = self.backlog.pop_front() else { break };
            if !job.sink.start() {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            batches[wi].push((id, job.call, job.sink));
        }
        for (wi, batch) in batches.into_iter().enumerate() {
            if !batch.is_empty() {
                self.send_batch(wi, batch, out);
            }
        }
    }

    /// Sends tasks to worker `wi` in one message and records them in its queue.
    fn send_batch(&mut self, wi: usize, batch: Vec<Outgoing>, out: &mut Vec<Delivery>) {
        let mut tasks = Vec::with_capacity(batch.len());
        let mut sinks = Vec::with_capacity(batch.len());
        for (id, call, sink) in batch {
            tasks.push((id, call));
            sinks.push(sink);
        }
        let many = tasks.len() > 1;
        let msg = if many {
            ToWorker::RunMany(tasks)
        } else {
            let Some((id, call)) = tasks.into_iter().next() else { return };
            ToWorker::Run { id, call }
        };
        let sent = self.workers[wi].conn.send(&msg);
        let tasks = match msg {
            ToWorker::RunMany(tasks) => tasks,
            ToWorker::Run { id, call } => vec![(id, call)],
            ToWorker::Stop => Vec::new(),
        };
        match sent {
            Ok(()) => {
                let w = &mut self.workers[wi];
                for ((id, call), sink) in tasks.into_iter().zip(sinks) {
                    let mut f = InFlight { id, sink, started: None, call: Some(call) };
                    if w.queue.is_empty() && w.ready {
                        f.mark_started(Instant::now());
                    }
                    w.queue.push_back(f);
                    w.sent += 1;
                }
            }
            Err(SendError::TooLarge { .. } | SendError::Encode(_)) if many => {
                // Find the culprit: send one by one.
                for ((id, call), sink) in tasks.into_iter().zip(sinks) {
                    self.send_batch(wi, vec![(id, call, sink)], out);
                }
            }
            Err(SendError::TooLarge { size, limit }) => {
                let why = EncodeError::TooLarge { size: usize::try_from(size).unwrap_or(usize::MAX), limit };
                out.extend(sinks.into_iter().map(|s| (s, Err(TaskError::Encode(why.to_string())))));
            }
            Err(SendError::Encode(e)) => {
                out.extend(sinks.into_iter().map(|s| (s, Err(TaskError::Encode(e.to_string())))));
            }
            Err(_) => {
                // The worker is dying; its sentinel will tell. The tasks never left.
                self.workers[wi].doomed = true;
                for ((_, call), sink) in tasks.into_iter().zip(sinks).rev() {
                    self.backlog.push_front(Job { call, sink });
                }
            }
        }
    }

    fn worker_mut(&mut self, key: u64) -> Option<&mut Worker> {
        self.workers.iter_mut().find(|w| w.key == key)
    }

    /// Applies one message from worker `key`.
    fn on_message(&mut self, key: u64, msg: FromWorker, out: &mut Vec<Delivery>) {
        let now = Instant::now();
        match msg {
            FromWorker::Ready => {
                if let Some(w) = self.worker_mut(key) {
                    w.ready = true;
                    if let Some(head) = w.queue.front_mut() {
                        head.mark_started(now);
                    }
                }
            }
            FromWorker::InitFailed(message) => {
                let err = TaskError::InitializerFailed { message };
                self.broken.get_or_insert(err.clone());
                if let Some(w) = self.worker_mut(key) {
                    w.doomed = true;
                    out.extend(w.queue.drain(..).map(|f| (f.sink, Err(err.clone()))));
                }
                out.extend(self.backlog.drain(..).map(|j| (j.sink, Err(err.clone()))));
            }
            FromWorker::Done { id, result } => {
                let mut ran = None;
                if let Some(w) = self.worker_mut(key) {
                    if let Some(pos) = w.queue.iter().position(|f| f.id == id) {
                        if let Some(f) = w.queue.remove(pos) {
                            ran = f.started.map(|s| now.saturating_duration_since(s));
                            out.push((f.sink, Ok(result)));
                        }
                    }
                    if w.ready {
                        if let Some(head) = w.queue.front_mut() {
                            head.mark_started(now);
                        }
                    }
                }
                if let Some(ran) = ran {
                    self.avg_run = Some(match self.avg_run {
                        None => ran,
                        Some(avg) => (avg * 7 + ran) / 8,
                    });
                }
            }
        }
    }

    /// Removes a worker that has ended. The task it was running fails with `err`; the
    /// tasks queued behind it never started and go back to the front of the backlog.
    fn remove_worker(&mut self, key: u64, err: TaskError, out: &mut Vec<Delivery>) {
        let Some(pos) = self.workers.iter().position(|w| w.key == key) else { return };
        let w = self.workers.remove(pos);
        if w.ready || w.doomed {
            self.early_deaths = 0;
        } else {
            self.early_deaths += 1;
        }
        let mut requeue = Vec::new();
        for f in w.queue {
            match f.call {
                Some(call) if f.started.is_none() => requeue.push(Job { call, sink: f.sink }),
                _ => out.push((f.sink, Err(err.clone()))),
            }
        }
        for job in requeue.into_iter().rev() {
            self.backlog.push_front(job);
        }
    }
}

/// The shared part of an engine.
struct Inner {
    state: Mutex<State>,
    /// Held from reading workers' messages until they are applied to the state, by the
    /// manager (blocking) and by helping threads (`help`, try only). Without it the
    /// manager could see a worker's death while a helper holds results the worker sent
    /// just before dying, and blame the wrong task (then rerun the one that killed it).
    receiving: Mutex<()>,
    /// Signalled when the manager finishes.
    finished: Condvar,
    cfg: Config,
    doorbell: Connection,
    rung: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Receives whatever results are waiting on the busy workers' connections and
    /// delivers them, without blocking: what a thread waiting for a result does while
    /// it spins, so that a result needs no hop through the manager thread. Gives up at
    /// once if the state or a connection is busy (the manager gets it then).
    fn help(&self) {
        let Ok(_receiving) = self.receiving.try_lock() else { return };
        let conns: Vec<(u64, Arc<Connection>)> = match self.state.try_lock() {
            Ok(st) => {
                st.workers.iter().filter(|w| !w.queue.is_empty() && !w.eof).map(|w| (w.key, w.conn.clone())).collect()
            }
            Err(_) => return,
        };
        let mut messages = Vec::new();
        for (key, conn) in &conns {
            // End-of-file is left to the manager, which watches the sentinel too.
            drain(conn, *key, &mut messages);
        }
        if messages.is_empty() {
            return;
        }
        let mut out = Vec::new();
        let wake_manager = {
            let mut st = self.lock();
            for (key, msg) in messages {
                st.on_message(key, msg, &mut out);
            }
            st.dispatch(&self.cfg, &mut out);
            // The manager blocks in `poll` and did not see these messages: wake it if
            // it has something to do about them (a task started running and has a
            // deadline; a closed pool may be done; the pool broke).
            self.cfg.task_timeout.is_some() || st.phase != Phase::Running || st.broken.is_some()
        };
        if wake_manager {
            self.ring();
        }
        deliver(out);
    }

    /// Wakes the manager so it looks at the state again.
    fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            let _ = self.doorbell.send_bytes(&[]);
        }
    }
}

/// Lets a thread waiting for one of the pool's results receive results itself (see
/// [`Inner::help`]); does not keep the pool alive.
#[derive(Clone)]
pub(crate) struct Helper(Weak<Inner>);

impl Helper {
    /// Receives and delivers whatever results are waiting, without blocking.
    pub(crate) fn help(&self) {
        if let Some(inner) = self.0.upgrade() {
            inner.help();
        }
    }
}

/// A pool's workers and manager.
pub(crate) struct Engine {
    inner: Arc<Inner>,
    /// Dropping leaves the manager to finish the backlog on its own (after
    /// `shutdown(wait=false)`), instead of terminating.
    detached: AtomicBool,
    manager: Mutex<Option<JoinHandle<()>>>,
    manager_id: std::thread::ThreadId,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Engine")
            .field("config", &self.inner.cfg)
            .field("phase", &st.phase)
            .field("workers", &st.workers.iter().map(|w| w.pid).collect::<Vec<_>>())
            .field("backlog", &st.backlog.len())
            .finish()
    }
}

/// Delivers outcomes; a panicking callback is reported and does not stop the pool.
fn deliver(out: Vec<Delivery>) {
    for (sink, outcome) in out {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| sink.finish(outcome))) {
            eprintln!("multiproc: a pool callback panicked (ignored): {}", panic_message(p.as_ref()));
        }
    }
}

/// Duplicates an encoded call (with its descriptors) for another worker.
fn clone_call(call: &RemoteCall) -> Result<RemoteCall, String> {
    let codec = Bincode::new();
    let mut bytes = Vec::new();
    let fds = encode_with_fds(&codec, call, &mut bytes).map_err(|e| e.to_string())?;
    decode_with_fds(&codec, &bytes, fds).map_err(|e| e.to_string())
}

impl Engine {
    /// Starts the manager thread and the workers; returns once every worker started.
    pub(crate) fn start(cfg: Config) -> Result<Engine, PoolError> {
        if cfg.processes == 0 {
            return Err(PoolError::NoWorkers);
        }
        let (doorbell, doorbell_rx) = Pipe::duplex()?;
        let inner = Arc::new(Inner {
            receiving: Mutex::new(()),
            state: Mutex::new(State {
                phase: Phase::Running,
                backlog: VecDeque::new(),
                workers: Vec::new(),
                broken: None,
                next_id: 0,
                avg_run: None,
                early_deaths: 0,
                terminated: false,
            }),
            finished: Condvar::new(),
            cfg,
            doorbell,
            rung: AtomicBool::new(false),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let for_manager = inner.clone();
        let handle = std::thread::Builder::new()
            .name(format!("multiproc-{}", inner.cfg.name))
            .spawn(move || Manager::run(for_manager, doorbell_rx, tx))?;
        let manager_id = handle.thread().id();
        match rx.recv() {
            Ok(Ok(())) => {
                Ok(Engine { inner, detached: AtomicBool::new(false), manager: Mutex::new(Some(handle)), manager_id })
            }
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => {
                let _ = handle.join();
                Err(PoolError::Io(std::io::Error::other("the pool's manager thread failed to start")))
            }
        }
    }

    /// A handle for threads waiting on this pool's results.
    pub(crate) fn helper(&self) -> Helper {
        Helper(Arc::downgrade(&self.inner))
    }

    /// The number of worker processes.
    pub(crate) fn processes(&self) -> usize {
        self.inner.cfg.processes
    }

    /// Queues tasks (and sends what idle workers can take at once). A task whose call
    /// could not be encoded, or that arrives after close, fails at once.
    pub(crate) fn submit(&self, jobs: impl IntoIterator<Item = ChunkJob>) {
        let mut out = Vec::new();
        {
            let mut st = self.inner.lock();
            for (call, sink) in jobs {
                match call {
                    Err(e) => out.push((sink, Err(TaskError::Encode(e.to_string())))),
                    Ok(_) if st.phase != Phase::Running => {
                        let err = if st.terminated { TaskError::PoolTerminated } else { TaskError::PoolClosed };
                        out.push((sink, Err(st.broken.clone().unwrap_or(err))));
                    }
                    Ok(call) => st.backlog.push_back(Job { call, sink }),
                }
            }
            st.dispatch(&self.inner.cfg, &mut out);
        }
        if self.inner.cfg.task_timeout.is_some() {
            // A task sent from this thread has a deadline the manager must watch.
            self.inner.ring();
        }
        deliver(out);
    }

    /// Whether the pool still accepts tasks.
    pub(crate) fn is_running(&self) -> bool {
        self.inner.lock().phase == Phase::Running
    }

    /// Stops accepting tasks; the workers exit once the backlog is done (Python's `close`).
    pub(crate) fn close(&self) {
        let mut st = self.inner.lock();
        if st.phase == Phase::Running {
            st.phase = Phase::Closed;
        }
        drop(st);
        self.inner.ring();
    }

    /// Cancels every task that has not been sent to a worker.
    pub(crate) fn cancel_backlog(&self) {
        let jobs: Vec<Job> = self.inner.lock().backlog.drain(..).collect();
        for job in jobs {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| job.sink.cancel())) {
                eprintln!("multiproc: a pool callback panicked (ignored): {}", panic_message(p.as_ref()));
            }
        }
        self.inner.ring();
    }

    /// Kills the workers with `signal` (SIGKILL follows SIGTERM after a grace period) and
    /// fails every pending task; does not wait (see [`join`](Engine::join)).
    pub(crate) fn terminate(&self, signal: i32) {
        let mut st = self.inner.lock();
        if matches!(st.phase, Phase::Running | Phase::Closed) {
            st.phase = Phase::Terminating(signal);
            st.terminated = true;
        }
        drop(st);
        self.inner.ring();
    }

    /// Waits until the manager has finished and every worker is reaped.
    pub(crate) fn join(&self) {
        if std::thread::current().id() == self.manager_id {
            // A callback cannot wait for the thread it runs on.
            return;
        }
        let handle = self.manager.lock().unwrap_or_else(PoisonError::into_inner).take();
        match handle {
            Some(h) => {
                let _ = h.join();
            }
            None => {
                // Another thread is joining: wait for the manager to report.
                let mut st = self.inner.lock();
                while st.phase != Phase::Finished {
                    st = self.inner.finished.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Makes dropping the engine leave a closed pool to finish its backlog in the
    /// background instead of terminating it.
    pub(crate) fn detach_on_drop(&self) {
        self.detached.store(true, Ordering::Release);
    }

    /// The pids of the live workers.
    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        self.inner.lock().workers.iter().map(|w| w.pid).collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.detached.load(Ordering::Acquire) && !std::thread::panicking() {
            // The manager finishes the backlog, stops and reaps the workers, and exits.
            return;
        }
        self.terminate(multiproc_sys::signal::SIGKILL);
        self.join();
    }
}

/// The manager thread's own data: the worker processes themselves.
struct Manager {
    inner: Arc<Inner>,
    doorbell: Connection,
    procs: HashMap<u64, Process<()>>,
    next_key: u64,
    /// When to try again to start missing workers after a failure.
    retry_at: Option<Instant>,
}

impl Manager {
    fn run(inner: Arc<Inner>, doorbell: Connection, ready: std::sync::mpsc::Sender<Result<(), PoolError>>) {
        let mut m = Manager { inner, doorbell, procs: HashMap::new(), next_key: 0, retry_at: None };
        // The first workers: a failure here is the builder's error.
        let mut started = Vec::new();
        for _ in 0..m.inner.cfg.processes {
            match m.start_worker() {
                Ok(w) => started.push(w),
                Err(e) => {
                    for w in &started {
                        m.reap(w.key, true);
                    }
                    m.finish();
                    let _ = ready.send(Err(e));
                    return;
                }
            }
        }
        m.inner.lock().workers.extend(started);
        let _ = ready.send(Ok(()));
        drop(ready);
        let result = catch_unwind(AssertUnwindSafe(|| m.serve()));
        if let Err(p) = result {
            eprintln!("multiproc: the pool manager failed: {}; the pool is terminated", panic_message(p.as_ref()));
            m.terminate_all(multiproc_sys::signal::SIGKILL);
        }
        m.finish();
    }

    fn finish(&mut self) {
        let mut st = self.inner.lock();
        st.phase = Phase::Finished;
        let out: Vec<Delivery> = st.backlog.drain(..).map(|j| (j.sink, Err(TaskError::PoolTerminated))).collect();
        drop(st);
        self.inner.finished.notify_all();
        deliver(out);
    }

    fn start_worker(&mut self) -> Result<Worker, PoolError> {
        let cfg = &self.inner.cfg;
        let (mine, theirs) = Pipe::duplex()?;
        let mine = mine.with_max_message_size(cfg.max_message_size);
        let theirs = theirs.with_max_message_size(cfg.max_message_size);
        let initializer = cfg.initializer.as_ref().map(clone_call).transpose().map_err(PoolError::Initializer)?;
        let key = self.next_key;
        self.next_key += 1;
        let args = WorkerArgs { conn: theirs, initializer, max_tasks: cfg.max_tasks };
        let mut p =
            Process::new(worker_main, args).with_daemon(true).with_name(format!("{}Worker-{}", cfg.name, key + 1));
        if let Some(method) = cfg.start_method {
            p = p.with_start_method(method);
        }
        p.start()?;
        let pid = p.pid().unwrap_or(0);
        let sentinel = match p.sentinel().map(|s| s.try_clone_to_owned()) {
            Some(Ok(fd)) => fd,
            Some(Err(e)) => {
                let _ = p.kill();
                let _ = p.join();
                return Err(PoolError::Io(e));
            }
            None => return Err(PoolError::Io(std::io::Error::other("a started worker has no sentinel"))),
        };
        self.procs.insert(key, p);
        Ok(Worker {
            key,
            pid,
            conn: Arc::new(mine),
            sentinel: Arc::new(sentinel),
            ready: false,
            queue: VecDeque::new(),
            sent: 0,
            doomed: false,
            stopping: false,
            eof: false,
        })
    }

    /// Reaps worker `key`'s process (killing it first if `kill`), returning Python's
    /// exitcode.
    fn reap(&mut self, key: u64, kill: bool) -> i32 {
        let Some(mut p) = self.procs.remove(&key) else { return 0 };
        if kill {
            let _ = p.kill();
        }
        let _ = p.join();
        p.exitcode().unwrap_or(0)
    }

    fn serve(&mut self) {
        let inner = self.inner.clone();
        let cfg = &inner.cfg;
        loop {
            // What to wait on: a snapshot (only this thread adds or removes workers).
            let (watch, timeout) = {
                let st = inner.lock();
                if let Phase::Terminating(sig) = st.phase {
                    drop(st);
                    self.terminate_all(sig);
                    return;
                }
                let now = Instant::now();
                let mut deadline: Option<Instant> = self.retry_at;
                if let Some(limit) = cfg.task_timeout {
                    for w in &st.workers {
                        if let Some(s) = w.queue.front().and_then(|f| f.started) {
                            let d = s + limit;
                            deadline = Some(deadline.map_or(d, |x| x.min(d)));
                        }
                    }
                }
                let watch: Vec<(u64, Option<Arc<Connection>>, Arc<OwnedFd>)> =
                    st.workers.iter().map(|w| (w.key, (!w.eof).then(|| w.conn.clone()), w.sentinel.clone())).collect();
                (watch, deadline.map(|d| d.saturating_duration_since(now)))
            };
            let mut objects: Vec<&dyn Waitable> = vec![&self.doorbell];
            let mut slots: Vec<(u64, bool)> = Vec::new();
            for (key, conn, sentinel) in &watch {
                if let Some(c) = conn {
                    objects.push(&**c);
                    slots.push((*key, false));
                }
                objects.push(&**sentinel);
                slots.push((*key, true));
            }
            let ready = match wait_without_spinning(&objects, timeout) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("multiproc: the pool manager cannot wait: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            // Receive outside the state lock (decoding a large result takes time), but
            // under `receiving`, so no helper is halfway through applying messages
            // when a worker's death is judged below.
            let _receiving = inner.receiving.lock().unwrap_or_else(PoisonError::into_inner);
            let mut messages: Vec<(u64, FromWorker)> = Vec::new();
            let mut eof: Vec<u64> = Vec::new();
            let mut ended: Vec<u64> = Vec::new();
            for &i in &ready {
                if i == 0 {
                    // Drain, then re-arm: a ring before the re-arm changed the state
                    // before the snapshot this loop takes next; one after it sends a
                    // new message. (Re-arming first could swallow a ring for good.)
                    while self.doorbell.recv_bytes_timeout(Duration::ZERO).is_ok() {}
                    self.inner.rung.store(false, Ordering::Release);
                    continue;
                }
                let (key, is_sentinel) = slots[i - 1];
                if is_sentinel {
                    ended.push(key);
                }
                let conn = watch.iter().find(|w| w.0 == key).and_then(|w| w.1.as_ref());
                if let Some(conn) = conn {
                    if !drain(conn, key, &mut messages) {
                        eof.push(key);
                    }
                }
            }
            let mut out = Vec::new();
            let mut st = inner.lock();
            for (key, msg) in messages {
                st.on_message(key, msg, &mut out);
            }
            for key in eof {
                if let Some(w) = st.worker_mut(key) {
                    w.eof = true;
                }
            }
            // Workers that ended: reap, fail their running task, requeue the rest.
            for key in ended {
                let Some(pid) = st.workers.iter().find(|w| w.key == key).map(|w| w.pid) else { continue };
                let exitcode = self.reap(key, false);
                let err = TaskError::WorkerDied { pid, exitcode };
                st.remove_worker(key, err, &mut out);
                if st.early_deaths >= EARLY_DEATH_LIMIT && st.broken.is_none() {
                    // Workers keep dying before they can run anything: starting more
                    // would loop forever, as CPython's Pool does.
                    let message = format!(
                        "{EARLY_DEATH_LIMIT} workers in a row died before they were ready (the last {})",
                        describe(exitcode)
                    );
                    let err = if cfg.initializer.is_some() {
                        TaskError::InitializerFailed { message }
                    } else {
                        TaskError::WorkerStart(message)
                    };
                    st.broken = Some(err.clone());
                    for w in &mut st.workers {
                        w.doomed = true;
                    }
                }
            }
            // Per-task timeouts.
            if let Some(limit) = cfg.task_timeout {
                let now = Instant::now();
                let late: Vec<u64> = st
                    .workers
                    .iter()
                    .filter(|w| !w.doomed && w.queue.front().and_then(|f| f.started).is_some_and(|s| now >= s + limit))
                    .map(|w| w.key)
                    .collect();
                for key in late {
                    if let Some(p) = self.procs.get(&key) {
                        let _ = p.kill();
                    }
                    if let Some(w) = st.worker_mut(key) {
                        w.doomed = true;
                        if let Some(head) = w.queue.pop_front() {
                            out.push((head.sink, Err(TaskError::Timeout { limit })));
                        }
                    }
                    // The sentinel fires once it is dead; queued tasks are requeued then.
                }
            }
            if let Phase::Terminating(sig) = st.phase {
                drop(st);
                deliver(out);
                self.terminate_all(sig);
                return;
            }
            // Replacements (started without the lock: a start may take milliseconds).
            let wanted = if st.broken.is_some() {
                0
            } else if st.phase == Phase::Running || !st.backlog.is_empty() {
                let live = st.workers.iter().filter(|w| !w.doomed && !self.retiring(w)).count();
                cfg.processes.saturating_sub(live)
            } else {
                0
            };
            let may_start = self.retry_at.is_none_or(|t| Instant::now() >= t);
            if wanted > 0 && may_start {
                drop(st);
                let mut new = Vec::new();
                let mut failure = None;
                for _ in 0..wanted {
                    match self.start_worker() {
                        Ok(w) => new.push(w),
                        Err(e) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    }
                }
                st = inner.lock();
                st.workers.extend(new);
                self.retry_at = failure.as_ref().map(|_| Instant::now() + RESTART_BACKOFF);
                if let Some(f) = &failure {
                    if st.workers.is_empty() {
                        // Nobody can run the backlog: fail it rather than hang.
                        let err = TaskError::WorkerStart(f.clone());
                        out.extend(st.backlog.drain(..).map(|j| (j.sink, Err(err.clone()))));
                    }
                }
            }
            st.dispatch(cfg, &mut out);
            // Closed and nothing left to do (or broken): stop idle workers; finished when
            // none is left.
            if (st.phase == Phase::Closed && st.backlog.is_empty()) || st.broken.is_some() {
                for w in st.workers.iter_mut().filter(|w| w.queue.is_empty() && !w.stopping) {
                    w.stopping = true;
                    let _ = w.conn.send(&ToWorker::Stop);
                }
                if st.workers.is_empty() && st.phase != Phase::Running {
                    drop(st);
                    deliver(out);
                    return;
                }
            }
            drop(st);
            deliver(out);
        }
    }

    fn retiring(&self, w: &Worker) -> bool {
        self.inner.cfg.max_tasks.is_some_and(|m| w.sent >= m)
    }

    /// Kills every worker, reaps it, and fails everything pending.
    fn terminate_all(&mut self, signal: i32) {
        let (workers, backlog) = {
            let mut st = self.inner.lock();
            st.phase = Phase::Terminating(signal);
            st.terminated = true;
            (std::mem::take(&mut st.workers), std::mem::take(&mut st.backlog))
        };
        let mut out: Vec<Delivery> = Vec::new();
        for w in workers {
            out.extend(w.queue.into_iter().map(|f| (f.sink, Err(TaskError::PoolTerminated))));
        }
        out.extend(backlog.into_iter().map(|j| (j.sink, Err(TaskError::PoolTerminated))));
        for p in self.procs.values() {
            let _ = p.signal(signal);
        }
        for (_, mut p) in self.procs.drain() {
            if signal != multiproc_sys::signal::SIGKILL
                && matches!(p.join_timeout(TERM_GRACE), Err(multiproc_process::JoinError::Timeout))
            {
                let _ = p.kill();
            }
            let _ = p.join();
        }
        deliver(out);
    }
}

/// Like [`multiproc_pipe::wait`], but blocks at once instead of spinning first: the
/// threads waiting for results spin and receive them themselves (see [`Inner::help`]),
/// and on a machine with few cores a spinning manager would take the CPU from the
/// workers it waits for.
fn wait_without_spinning(objects: &[&dyn Waitable], timeout: Option<Duration>) -> std::io::Result<Vec<usize>> {
    let buffered: Vec<usize> = (0..objects.len()).filter(|&i| objects[i].ready_now()).collect();
    if !buffered.is_empty() {
        return Ok(buffered);
    }
    let fds: Vec<_> = objects.iter().map(|o| o.wait_fd()).collect();
    multiproc_sys::poll::readable(&fds, timeout)
}

/// Receives every message waiting on a worker's connection. `false` once the connection
/// can give no more (end-of-file, a truncated message from a killed worker, garbage).
fn drain(conn: &Connection, key: u64, into: &mut Vec<(u64, FromWorker)>) -> bool {
    loop {
        match conn.try_recv::<FromWorker>() {
            Ok(m) => into.push((key, m)),
            Err(RecvError::Timeout) => return true,
            Err(RecvError::Decode(_)) | Err(RecvError::TooLarge { .. }) => continue,
            Err(_) => return false,
        }
    }
}
