//! Micro-benchmarks of a manager's round trips from one process (criterion):
//! `cargo bench -p multiproc-manager`.
//!
//! The cross-process workloads and their comparison with Python's `Manager()` are in the
//! workspace's comparative runner, `cargo bench --bench compare`.

#![allow(missing_docs, reason = "criterion_group! defines an undocumented public function")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use multiproc_manager::{DictProxy, ListProxy, Manager};

// criterion owns `main`: the manager's server (forkserver, the default) needs init().
multiproc_process::test_init!();

fn add_one(n: Option<u64>) -> u64 {
    n.unwrap_or(0) + 1
}

fn dict(c: &mut Criterion) {
    let m = Manager::start().expect("start a manager");
    let d: DictProxy<u32, u64> = m.dict().expect("dict");
    d.insert(0, 0).expect("insert");
    let mut g = c.benchmark_group("dict");
    g.bench_function("insert", |b| b.iter(|| d.insert(black_box(0), black_box(1)).expect("insert")));
    g.bench_function("get", |b| b.iter(|| black_box(d.get(&0).expect("get"))));
    g.bench_function("update_with", |b| b.iter(|| black_box(d.update_with(&0, add_one).expect("update_with"))));
    g.finish();
}

fn list(c: &mut Criterion) {
    let m = Manager::start().expect("start a manager");
    let l: ListProxy<u64> = m.list().expect("list");
    let mut g = c.benchmark_group("list");
    g.bench_function("push_pop", |b| {
        b.iter(|| {
            l.push(black_box(7)).expect("push");
            black_box(l.pop().expect("pop"))
        })
    });
    g.finish();
}

criterion_group!(benches, dict, list);
criterion_main!(benches);
