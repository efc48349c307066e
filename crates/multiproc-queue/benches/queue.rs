//! Micro-benchmarks of the queues' hot operations on one handle in one process
//! (criterion): `cargo bench -p multiproc-queue`.
//!
//! A put followed by a get on the same handle measures one trip through the shared ring
//! (encode, copy in, copy out, decode) without any waiting. Throughput between real
//! processes, against crossbeam-channel and Python, is in the workspace's comparative
//! runner, `cargo bench --bench compare`.

#![allow(missing_docs, reason = "criterion_group! defines an undocumented public function")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiproc_queue::{JoinableQueue, Queue, SimpleQueue};
use serde_bytes::ByteBuf;

fn message(size: usize) -> ByteBuf {
    ByteBuf::from(vec![7u8; size])
}

fn queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    for size in [64usize, 64 << 10] {
        g.throughput(Throughput::Bytes(size as u64));
        let q: Queue<ByteBuf> = Queue::new().expect("create a queue");
        let msg = message(size);
        g.bench_with_input(BenchmarkId::new("put_get", size), &msg, |b, msg| {
            b.iter(|| {
                q.put(msg.clone()).expect("put");
                black_box(q.get().expect("get"))
            })
        });
    }
    let q: Queue<u64> = Queue::new().expect("create a queue");
    g.throughput(Throughput::Elements(1));
    g.bench_function("put_nowait_get_nowait_u64", |b| {
        b.iter(|| {
            q.put_nowait(black_box(42)).expect("put_nowait");
            black_box(q.get_nowait().expect("get_nowait"))
        })
    });
    g.bench_function("get_nowait_empty", |b| b.iter(|| black_box(q.get_nowait().is_err())));
    g.finish();
}

/// `SimpleQueue` and `JoinableQueue`: the same trip through their own handles.
fn other_queues(c: &mut Criterion) {
    let mut g = c.benchmark_group("other_queues");
    let msg = message(64);
    let simple: SimpleQueue<ByteBuf> = SimpleQueue::new().expect("create a queue");
    g.bench_function("simple_put_get/64", |b| {
        b.iter(|| {
            simple.put(msg.clone()).expect("put");
            black_box(simple.get().expect("get"))
        })
    });
    // With `task_done`, so that the queue's count of unfinished tasks stays at zero.
    let joinable: JoinableQueue<ByteBuf> = JoinableQueue::new().expect("create a queue");
    g.bench_function("joinable_put_get_task_done/64", |b| {
        b.iter(|| {
            joinable.put(msg.clone()).expect("put");
            black_box(joinable.get().expect("get"));
            joinable.task_done().expect("task_done");
        })
    });
    g.finish();
}

criterion_group!(benches, queue, other_queues);
criterion_main!(benches);
