//! Queue throughput: `cargo bench -p multiproc-queue --bench queue [WORKLOAD...]`.
//!
//! Each workload is measured three ways in one run, as in the workspace's `compare`
//! runner (whose JSON lines this prints):
//! - `multiproc`: the queues of this crate between real processes;
//! - `raw`: crossbeam-channel between two (or four) threads of one process, the
//!   in-process floor;
//! - `python-mp`: Python's `multiprocessing` doing the same job
//!   (`benches/python_queue.py`), when `python3` is on `PATH`.
//!
//! Every workload function has the `compare` runner's shape, `fn(iters) -> Duration`:
//! it starts its processes and waits until they are ready before the clock starts, and
//! stops it when the consumers have taken every message. The procedure is the same as
//! there: calibrate to a twentieth of the budget, then five rounds, best round reported.
//! `MULTIPROC_BENCH_SECONDS` sets the budget per measurement (default 1).

use std::process::Command;
use std::time::{Duration, Instant};

use multiproc_process::Process;
use multiproc_queue::{JoinableQueue, Queue, SimpleQueue};
use serde_bytes::ByteBuf;

const SMALL: usize = 64;
const MIB: usize = 1 << 20;
const ROUNDS: u32 = 5;

type Batch = fn(u64) -> Duration;

// ---- multiproc ----

/// A byte message encoded as one byte string (like `serde_bytes`) whose producer side
/// shares one buffer: putting it copies the bytes into the queue once, as Python's
/// `q.put(msg)` pickles the same `bytes` object each time. The consumer gets its own
/// `Vec`.
#[derive(Clone)]
struct Payload(std::sync::Arc<Vec<u8>>);

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ByteBuf::deserialize(d).map(|b| Payload(std::sync::Arc::new(b.into_vec())))
    }
}

/// The control channels of a run: children say they are ready, the parent says go.
type Control = (Queue<()>, Queue<()>);

fn control() -> Control {
    (Queue::new().expect("queue"), Queue::new().expect("queue"))
}

fn ready_then_wait((ready, go): &Control) {
    ready.put(()).expect("ready");
    go.get().expect("go");
}

fn produce((q, ctl, n, size): (Queue<Payload>, Control, u64, usize)) {
    let msg = Payload(std::sync::Arc::new(vec![7u8; size]));
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

/// Starts a child and returns it; the caller waits for its "ready".
fn spawn<A>(target: fn(A), args: A) -> Process<()>
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let mut p = Process::new(target, args);
    p.start().expect("start");
    p
}

fn one_to_one(iters: u64, size: usize) -> Duration {
    let q: Queue<Payload> = Queue::new().expect("queue");
    let ctl = control();
    let mut p = spawn(produce, (q.clone(), ctl.clone(), iters, size));
    ctl.0.get().expect("ready");
    let start = Instant::now();
    ctl.1.put(()).expect("go");
    for _ in 0..iters {
        std::hint::black_box(q.get().expect("get"));
    }
    let took = start.elapsed();
    p.join().expect("producer");
    took
}

/// `Queue`, 64-byte messages, one producer process, the parent consumes.
pub fn queue_1p1c_small(iters: u64) -> Duration {
    one_to_one(iters, SMALL)
}

/// `Queue`, 1 MiB messages, one producer process, the parent consumes.
pub fn queue_bandwidth_1mib(iters: u64) -> Duration {
    one_to_one(iters, MIB)
}

/// `SimpleQueue`, 64-byte messages, one producer process, the parent consumes.
pub fn simple_queue_1p1c_small(iters: u64) -> Duration {
    let q: SimpleQueue<ByteBuf> = SimpleQueue::new().expect("queue");
    let ctl = control();
    let mut p = spawn(produce_simple, (q.clone(), ctl.clone(), iters));
    ctl.0.get().expect("ready");
    let start = Instant::now();
    ctl.1.put(()).expect("go");
    for _ in 0..iters {
        std::hint::black_box(q.get().expect("get"));
    }
    let took = start.elapsed();
    p.join().expect("producer");
    took
}

/// `JoinableQueue`, 64-byte messages: the producer process puts and then joins, the
/// parent gets and marks each item done.
pub fn joinable_queue_1p1c_small(iters: u64) -> Duration {
    let q: JoinableQueue<ByteBuf> = JoinableQueue::new().expect("queue");
    let ctl = control();
    let mut p = spawn(produce_joinable, (q.clone(), ctl.clone(), iters));
    ctl.0.get().expect("ready");
    let start = Instant::now();
    ctl.1.put(()).expect("go");
    for _ in 0..iters {
        std::hint::black_box(q.get().expect("get"));
        q.task_done().expect("task_done");
    }
    let took = start.elapsed();
    p.join().expect("producer");
    took
}

fn produce_then_sentinel((q, ctl, n): (Queue<Option<ByteBuf>>, Control, u64)) {
    let template = vec![7u8; SMALL];
    ready_then_wait(&ctl);
    for _ in 0..n {
        q.put(Some(ByteBuf::from(template.clone()))).expect("put");
    }
    q.put(None).expect("sentinel");
}

fn consume_until_sentinel((q, ready, done): (Queue<Option<ByteBuf>>, Queue<()>, Queue<u64>)) {
    ready.put(()).expect("ready");
    let mut n = 0;
    while q.get().expect("get").is_some() {
        n += 1;
    }
    done.put(n).expect("done");
}

/// `Queue`, 64-byte messages, two producer processes and two consumer processes.
pub fn queue_2p2c_small(iters: u64) -> Duration {
    let q: Queue<Option<ByteBuf>> = Queue::new().expect("queue");
    let ctl = control();
    let done: Queue<u64> = Queue::new().expect("queue");
    let half = (iters / 2).max(1);
    let mut procs = Vec::new();
    for _ in 0..2 {
        procs.push(spawn(consume_until_sentinel, (q.clone(), ctl.0.clone(), done.clone())));
    }
    for _ in 0..2 {
        procs.push(spawn(produce_then_sentinel, (q.clone(), ctl.clone(), half)));
    }
    for _ in 0..4 {
        ctl.0.get().expect("ready");
    }
    let start = Instant::now();
    ctl.1.put(()).expect("go");
    ctl.1.put(()).expect("go");
    let total = done.get().expect("done") + done.get().expect("done");
    let took = start.elapsed();
    for p in &mut procs {
        p.join().expect("child");
    }
    assert_eq!(total, 2 * half);
    took.mul_f64(iters as f64 / (2 * half) as f64)
}

// ---- raw: crossbeam-channel between threads ----

fn crossbeam_one_to_one(iters: u64, size: usize) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    let producer = std::thread::spawn(move || {
        let template = vec![7u8; size];
        go_rx.recv().expect("go");
        for _ in 0..iters {
            tx.send(template.clone()).expect("send");
        }
    });
    let start = Instant::now();
    go_tx.send(()).expect("go");
    for _ in 0..iters {
        std::hint::black_box(rx.recv().expect("recv"));
    }
    let took = start.elapsed();
    producer.join().expect("producer");
    took
}

/// crossbeam-channel (unbounded), 64-byte `Vec`s, producer thread to consumer thread.
pub fn crossbeam_1p1c_small(iters: u64) -> Duration {
    crossbeam_one_to_one(iters, SMALL)
}

/// crossbeam-channel (unbounded), 1 MiB `Vec`s (moved, not copied), thread to thread.
pub fn crossbeam_bandwidth_1mib(iters: u64) -> Duration {
    crossbeam_one_to_one(iters, MIB)
}

/// crossbeam-channel (unbounded), 64-byte `Vec`s, two producer and two consumer threads.
pub fn crossbeam_2p2c_small(iters: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded::<Option<Vec<u8>>>();
    let (go_tx, go_rx) = crossbeam_channel::unbounded::<()>();
    let half = (iters / 2).max(1);
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (tx, go_rx) = (tx.clone(), go_rx.clone());
        threads.push(std::thread::spawn(move || {
            let template = vec![7u8; SMALL];
            go_rx.recv().expect("go");
            for _ in 0..half {
                tx.send(Some(template.clone())).expect("send");
            }
            tx.send(None).expect("sentinel");
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
    go_tx.send(()).expect("go");
    go_tx.send(()).expect("go");
    let total: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    let took = start.elapsed();
    assert_eq!(total, 2 * half);
    took.mul_f64(iters as f64 / (2 * half) as f64)
}

// ---- runner ----

struct Workload {
    name: &'static str,
    unit: &'static str,
    bytes_per_op: u64,
    multiproc: Batch,
    raw: Option<Batch>,
    /// Goals: at least this many times Python's figure...
    min_vs_python: f64,
    /// ...and at most this many times slower than the raw reference.
    max_vs_raw: f64,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "queue_1p1c_small",
        unit: "msgs/s",
        bytes_per_op: 0,
        multiproc: queue_1p1c_small,
        raw: Some(crossbeam_1p1c_small),
        min_vs_python: 20.0,
        max_vs_raw: 3.0,
    },
    Workload {
        name: "simple_queue_1p1c_small",
        unit: "msgs/s",
        bytes_per_op: 0,
        multiproc: simple_queue_1p1c_small,
        raw: Some(crossbeam_1p1c_small),
        min_vs_python: 20.0,
        max_vs_raw: 3.0,
    },
    Workload {
        name: "joinable_queue_1p1c_small",
        unit: "msgs/s",
        bytes_per_op: 0,
        multiproc: joinable_queue_1p1c_small,
        raw: Some(crossbeam_1p1c_small),
        min_vs_python: 20.0,
        max_vs_raw: 3.0,
    },
    Workload {
        name: "queue_bandwidth_1mib",
        unit: "GB/s",
        bytes_per_op: MIB as u64,
        multiproc: queue_bandwidth_1mib,
        raw: Some(crossbeam_bandwidth_1mib),
        min_vs_python: 2.0,
        max_vs_raw: f64::INFINITY,
    },
    Workload {
        name: "queue_2p2c_small",
        unit: "msgs/s",
        bytes_per_op: 0,
        multiproc: queue_2p2c_small,
        raw: Some(crossbeam_2p2c_small),
        min_vs_python: 20.0,
        max_vs_raw: 3.0,
    },
];

fn budget() -> Duration {
    std::env::var("MULTIPROC_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
}

/// Best-of-rounds seconds per operation (benches/compare/measure.rs's procedure).
fn seconds_per_op(batch: Batch, budget: Duration) -> f64 {
    let calibration = budget.as_secs_f64() / 20.0;
    let mut iters: u64 = 1;
    let per_op = loop {
        let took = batch(iters).as_secs_f64();
        if took >= calibration || iters >= 1 << 40 {
            break took / iters as f64;
        }
        let factor = if took > 0.0 { calibration / took * 1.2 } else { 100.0 };
        iters = (iters as f64 * factor.clamp(2.0, 100.0)).ceil() as u64;
    };
    let round = (budget.as_secs_f64() - calibration).max(0.0) / f64::from(ROUNDS);
    let iters = ((round / per_op) as u64).max(1);
    (0..ROUNDS).map(|_| batch(iters).as_secs_f64() / iters as f64).fold(f64::INFINITY, f64::min)
}

fn value(w: &Workload, secs_per_op: f64) -> f64 {
    if w.unit == "GB/s" { w.bytes_per_op as f64 / secs_per_op / 1e9 } else { 1.0 / secs_per_op }
}

fn json(workload: &str, imp: &str, value: f64, unit: &str, reference: Option<&str>) {
    let reference = reference.map(|r| format!(",\"reference\":\"{r}\"")).unwrap_or_default();
    println!("{{\"workload\":\"{workload}\",\"impl\":\"{imp}\",\"value\":{value:.4e},\"unit\":\"{unit}\"{reference}}}");
}

/// Runs the Python baselines and returns workload → value.
fn python(names: &[&str]) -> Vec<(String, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_queue.py");
    let interpreter = std::env::var("MULTIPROC_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = match Command::new(&interpreter).arg(script).args(names).output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            eprintln!("python baseline failed: {}", String::from_utf8_lossy(&out.stderr));
            return Vec::new();
        }
        Err(e) => {
            eprintln!("python baseline skipped: cannot run {interpreter}: {e}");
            return Vec::new();
        }
    };
    let mut results = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("{line}");
        let field = |key: &str| {
            let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
            let rest = &line[start..];
            let end = rest.find([',', '}'])?;
            Some(rest[..end].trim_matches('"').to_owned())
        };
        if let (Some(w), Some(v)) = (field("workload"), field("value").and_then(|v| v.parse().ok())) {
            results.push((w, v));
        }
    }
    results
}

fn main() {
    // Spawned and forkserver children take their role here.
    multiproc_process::init();
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Workload> =
        WORKLOADS.iter().filter(|w| wanted.is_empty() || wanted.iter().any(|n| n == w.name)).collect();
    let budget = budget();
    let mut table = Vec::new();
    for w in &selected {
        let mp = value(w, seconds_per_op(w.multiproc, budget));
        json(w.name, "multiproc", mp, w.unit, None);
        let raw = w.raw.map(|r| {
            let v = value(w, seconds_per_op(r, budget));
            json(w.name, "raw", v, w.unit, Some("crossbeam-channel between threads"));
            v
        });
        table.push((w, mp, raw));
    }
    let names: Vec<&str> = selected.iter().map(|w| w.name).collect();
    let py = python(&names);
    println!();
    println!(
        "{:<28} {:>14} {:>14} {:>14} {:>10} {:>10}",
        "workload", "multiproc", "crossbeam", "python-mp", "vs python", "vs raw"
    );
    for (w, mp, raw) in table {
        let p = py.iter().find(|(n, _)| n == w.name).map(|(_, v)| *v);
        let vs_py = p.map(|p| mp / p);
        let vs_raw = raw.map(|r| r / mp);
        let py_goal =
            vs_py.map_or("".to_owned(), |x| format!("{x:.1}x {}", if x >= w.min_vs_python { "ok" } else { "MISS" }));
        let raw_goal = vs_raw.map_or("".to_owned(), |x| {
            if w.max_vs_raw.is_finite() {
                format!("{x:.2}x {}", if x <= w.max_vs_raw { "ok" } else { "MISS" })
            } else {
                format!("{x:.2}x")
            }
        });
        println!(
            "{:<28} {:>14} {:>14} {:>14} {:>10} {:>10}",
            w.name,
            format!("{mp:.3e} {}", w.unit),
            raw.map_or("-".to_owned(), |r| format!("{r:.3e}")),
            p.map_or("-".to_owned(), |p| format!("{p:.3e}")),
            py_goal,
            raw_goal
        );
    }
    println!(
        "goals: >= 20x python msgs/s, >= 2x python GB/s, within 3x of crossbeam between threads (vs raw = \
         crossbeam / multiproc)"
    );
}
