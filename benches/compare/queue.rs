//! Issue 6's workloads: messages through `Queue`, `SimpleQueue` and `JoinableQueue`
//! between processes, and crossbeam-channel between threads as the in-process floor.
//!
//! Every workload starts its processes and waits until each says it is ready before the
//! clock starts, then says "go"; the clock stops when the consumers have taken every
//! message (and, for `JoinableQueue`, marked it done).

use std::sync::Arc;
use std::time::{Duration, Instant};

use multiproc::{JoinableQueue, Process, Queue, SimpleQueue};
use serde_bytes::ByteBuf;

const SMALL: usize = 64;
const MIB: usize = 1 << 20;

/// A byte message encoded as one byte string whose producer side shares one buffer:
/// putting it copies the bytes into the queue once, as Python's `q.put(msg)` pickles the
/// same `bytes` object each time. The consumer gets its own `Vec`.
#[derive(Clone)]
struct Payload(Arc<Vec<u8>>);

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ByteBuf::deserialize(d).map(|b| Payload(Arc::new(b.into_vec())))
    }
}

/// The control channels of a run: children say they are ready, the parent says go.
type Control = (Queue<()>, Queue<()>);

fn control() -> Control {
    (Queue::new().expect("create a queue"), Queue::new().expect("create a queue"))
}

fn ready_then_wait((ready, go): &Control) {
    ready.put(()).expect("say ready");
    go.get().expect("wait for go");
}

/// Starts a child (default start method); the caller waits for its "ready".
fn start<A>(target: fn(A), args: A) -> Process<()>
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let mut p = Process::new(target, args);
    p.start().expect("start a child");
    p
}

fn produce((q, ctl, n, size): (Queue<Payload>, Control, u64, usize)) {
    let msg = Payload(Arc::new(vec![7u8; size]));
    ready_then_wait(&ctl);
    for _ in 0..n {
        q.put(msg.clone()).expect("put");
    }
}

fn produce_simple((q, ctl, n): (SimpleQueue<ByteBuf>, Control, u64)) {
    let template = vec![7u8; SMALL];
    ready_then_wait(&ctl);
    for _ in 0..n {
        q.put(ByteBuf::from(template.clone())).expect("put");
    }
}

fn produce_joinable((q, ctl, n): (JoinableQueue<ByteBuf>, Control, u64)) {
    let template = vec![7u8; SMALL];
    ready_then_wait(&ctl);
    for _ in 0..n {
        q.put(ByteBuf::from(template.clone())).expect("put");
    }
    q.join();
}

/// Starts the producer `target` with `args(control)`, waits until it is ready, says go
/// and times `iters` calls of `take` in this process; then joins the producer.
fn consume<A>(target: fn(A), args: impl FnOnce(Control) -> A, iters: u64, mut take: impl FnMut()) -> Duration
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let ctl = control();
    let mut p = start(target, args(ctl.clone()));
    ctl.0.get().expect("wait for ready");
    let start = Instant::now();
    ctl.1.put(()).expect("say go");
    for _ in 0..iters {
        take();
    }
    let took = start.elapsed();
    p.join().expect("join the producer");
    took
}

/// One producer process puts `iters` messages of `size` bytes; the parent gets them.
fn one_to_one(iters: u64, size: usize) -> Duration {
    let q: Queue<Payload> = Queue::new().expect("create a queue");
    let take = || drop(std::hint::black_box(q.get().expect("get")));
    consume(produce, |ctl| (q.clone(), ctl, iters, size), iters, take)
}

/// `Queue`, 64-byte messages, one producer process, the parent consumes.
pub(crate) fn queue_1p1c_small(iters: u64) -> Duration {
    one_to_one(iters, SMALL)
}

/// `Queue`, 1 MiB messages, one producer process, the parent consumes.
pub(crate) fn queue_bandwidth_1mib(iters: u64) -> Duration {
    one_to_one(iters, MIB)
}

/// `SimpleQueue`, 64-byte messages, one producer process, the parent consumes.
pub(crate) fn simple_queue_1p1c_small(iters: u64) -> Duration {
    let q: SimpleQueue<ByteBuf> = SimpleQueue::new().expect("create a queue");
    let take = || drop(std::hint::black_box(q.get().expect("get")));
    consume(produce_simple, |ctl| (q.clone(), ctl, iters), iters, take)
}

/// `JoinableQueue`, 64-byte messages: the producer process puts and then joins, the
/// parent gets and marks each item done.
pub(crate) fn joinable_queue_1p1c_small(iters: u64) -> Duration {
    let q: JoinableQueue<ByteBuf> = JoinableQueue::new().expect("create a queue");
    let take = || {
        std::hint::black_box(q.get().expect("get"));
        q.task_done().expect("task_done");
    };
    consume(produce_joinable, |ctl| (q.clone(), ctl, iters), iters, take)
}

fn produce_then_sentinel((q, ctl, n): (Queue<Option<ByteBuf>>, Control, u64)) {
    let template = vec![7u8; SMALL];
    ready_then_wait(&ctl);
    for _ in 0..n {
        q.put(Some(ByteBuf::from(template.clone()))).expect("put");
    }
    q.put(None).expect("put the sentinel");
}

fn consume_until_sentinel((q, ready, done): (Queue<Option<ByteBuf>>, Queue<()>, Queue<u64>)) {
    ready.put(()).expect("say ready");
    let mut n = 0;
    while q.get().expect("get").is_some() {
        n += 1;
    }
    done.put(n).expect("report the count");
}

/// `Queue`, 64-byte messages, two producer processes and two consumer processes, each
/// producer ending with a sentinel. Panics if the consumers did not get every message.
pub(crate) fn queue_2p2c_small(iters: u64) -> Duration {
    let q: Queue<Option<ByteBuf>> = Queue::new().expect("create a queue");
    let ctl = control();
    let done: Queue<u64> = Queue::new().expect("create a queue");
    let half = (iters / 2).max(1);
    let mut procs = Vec::new();
    for _ in 0..2 {
        procs.push(start(consume_until_sentinel, (q.clone(), ctl.0.clone(), done.clone())));
    }
    for _ in 0..2 {
        procs.push(start(produce_then_sentinel, (q.clone(), ctl.clone(), half)));
    }
    for _ in 0..4 {
        ctl.0.get().expect("wait for ready");
    }
    let start = Instant::now();
    ctl.1.put(()).expect("say go");
    ctl.1.put(()).expect("say go");
    let total = done.get().expect("get a count") + done.get().expect("get a count");
    let took = start.elapsed();
    for p in &mut procs {
        p.join().expect("join a child");
    }
    assert_eq!(total, 2 * half, "the consumers did not get every message once");
    took.mul_f64(iters as f64 / (2 * half) as f64)
}

/// crossbeam-channel (unbounded), producer thread to consumer thread.
fn crossbeam_one_to_one(iters: u64, size: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    let producer = std::thread::spawn(move || {
        let template = vec![7u8; size];
        go_rx.recv().expect("wait for go");
        for _ in 0..iters {
            tx.send(template.clone()).expect("send");
        }
    });
    let start = Instant::now();
    go_tx.send(()).expect("say go");
    for _ in 0..iters {
        std::hint::black_box(rx.recv().expect("recv"));
    }
    let took = start.elapsed();
    producer.join().expect("join the producer");
    took
}

/// Raw reference: crossbeam-channel, 64-byte `Vec`s, one thread to another.
pub(crate) fn raw_crossbeam_1p1c_small(iters: u64) -> Duration {
    crossbeam_one_to_one(iters, SMALL)
}

/// Raw reference: crossbeam-channel, 1 MiB `Vec`s (each a fresh copy of the template,
/// moved through the channel), one thread to another.
pub(crate) fn raw_crossbeam_bandwidth_1mib(iters: u64) -> Duration {
    crossbeam_one_to_one(iters, MIB)
}

/// Raw reference: crossbeam-channel, 64-byte `Vec`s, two producer and two consumer
/// threads, each producer ending with a sentinel.
pub(crate) fn raw_crossbeam_2p2c_small(iters: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded::<Option<Vec<u8>>>();
    let (go_tx, go_rx) = crossbeam_channel::unbounded::<()>();
    let half = (iters / 2).max(1);
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (tx, go_rx) = (tx.clone(), go_rx.clone());
        threads.push(std::thread::spawn(move || {
            let template = vec![7u8; SMALL];
            go_rx.recv().expect("wait for go");
            for _ in 0..half {
                tx.send(Some(template.clone())).expect("send");
            }
            tx.send(None).expect("send the sentinel");
            0
        }));
    }
    for _ in 0..2 {
        let rx = rx.clone();
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while rx.recv().expect("recv").is_some() {
                n += 1;
            }
            n
        }));
    }
    let start = Instant::now();
    go_tx.send(()).expect("say go");
    go_tx.send(()).expect("say go");
    let total: u64 = threads.into_iter().map(|t| t.join().expect("join a thread")).sum();
    let took = start.elapsed();
    assert_eq!(total, 2 * half, "the consumer threads did not get every message once");
    took.mul_f64(iters as f64 / (2 * half) as f64)
}
