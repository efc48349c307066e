//! Micro-benchmarks of a child process's whole lifetime, one start method at a time
//! (criterion): `cargo bench -p multiproc-process`.
//!
//! One iteration creates a `Process` with a trivial target, starts it, and joins it. The
//! same figures against raw `fork`/`exec` and Python are in the workspace's comparative
//! runner, `cargo bench --bench compare`.

#![allow(missing_docs, reason = "criterion_group! defines an undocumented public function")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group};
use multiproc_process::{Process, StartMethod};

fn double(x: u64) -> u64 {
    x * 2
}

fn start_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("process");
    // Each iteration is a whole process; fewer, longer samples keep a run short.
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for method in [StartMethod::Fork, StartMethod::ForkServer, StartMethod::Spawn] {
        g.bench_function(BenchmarkId::new("start_join", method.name()), |b| {
            b.iter(|| {
                let mut p = Process::new(double, black_box(21)).with_start_method(method);
                p.start().expect("start a child");
                assert_eq!(p.join().expect("join the child"), 42);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, start_join);

fn main() {
    // A spawned child re-runs this binary: it takes its role here. The fork server is
    // forked now, while the process is still single-threaded.
    multiproc_process::init();
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
