//! Micro-benchmarks of a `Connection`'s hot operations on a local pair in one process
//! (criterion): `cargo bench -p multiproc-pipe`.
//!
//! Sending on one end and receiving on the other in the same thread measures framing,
//! encoding and the two system calls without any process wake-up. Round trips and
//! bandwidth between real processes, against a raw socketpair and Python, are in the
//! workspace's comparative runner, `cargo bench --bench compare`.

#![allow(missing_docs, reason = "criterion_group! defines an undocumented public function")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiproc_pipe::Pipe;

/// A typical small typed message: an id, a name and a few numbers.
type Task = (u64, String, [f32; 4]);

fn bytes(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_bytes");
    let (a, b) = Pipe::duplex().expect("create a pipe");
    // Well under the socket buffer, so a send never waits for the receive that follows.
    for size in [64usize, 16 << 10] {
        g.throughput(Throughput::Bytes(size as u64));
        let msg = vec![7u8; size];
        g.bench_with_input(BenchmarkId::new("send_recv", size), &msg, |bench, msg| {
            bench.iter(|| {
                a.send_bytes(msg).expect("send_bytes");
                black_box(b.recv_bytes().expect("recv_bytes"))
            })
        });
        let mut buf = vec![0u8; size];
        g.bench_with_input(BenchmarkId::new("send_recv_into", size), &msg, |bench, msg| {
            bench.iter(|| {
                a.send_bytes(msg).expect("send_bytes");
                black_box(b.recv_bytes_into(&mut buf).expect("recv_bytes_into"))
            })
        });
    }
    g.finish();
}

fn typed(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_typed");
    let (a, b) = Pipe::duplex().expect("create a pipe");
    let task: Task = (42, "resize image 42".to_owned(), [0.25; 4]);
    g.bench_function("send_recv_struct", |bench| {
        bench.iter(|| {
            a.send(&task).expect("send");
            black_box(b.recv::<Task>().expect("recv"))
        })
    });
    g.bench_function("poll_empty", |bench| bench.iter(|| black_box(b.poll(Duration::ZERO).expect("poll"))));
    g.finish();
}

criterion_group!(benches, bytes, typed);
criterion_main!(benches);
