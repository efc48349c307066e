//! Micro-benchmarks of the hot operations on shared values in one process (criterion):
//! `cargo bench -p multiproc-shared`.
//!
//! `Value` and `Array` operations take and release the embedded lock around a plain
//! memory access; `RawValue` and `RawArray` are atomics without a lock. The
//! cross-process workload (two processes incrementing one `Value`, against Python) is in
//! the workspace's comparative runner, `cargo bench --bench compare`.

#![allow(missing_docs, reason = "criterion_group! defines an undocumented public function")]

use std::hint::black_box;
use std::sync::atomic::Ordering;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiproc_shared::{Array, RawArray, RawValue, Value};

fn value(c: &mut Criterion) {
    let mut g = c.benchmark_group("value");
    let v = Value::new(0i64).expect("create a value");
    g.bench_function("load", |b| b.iter(|| black_box(v.load().expect("load"))));
    g.bench_function("store", |b| b.iter(|| v.store(black_box(7)).expect("store")));
    g.bench_function("locked_increment", |b| b.iter(|| *v.lock().expect("lock") += 1));
    g.bench_function("update", |b| b.iter(|| v.update(|x| *x += 1).expect("update")));
    g.finish();
}

fn raw_value(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_value");
    let v = RawValue::new(0i64).expect("create a raw value");
    g.bench_function("load", |b| b.iter(|| black_box(v.load())));
    g.bench_function("store", |b| b.iter(|| v.store(black_box(7))));
    g.bench_function("fetch_add", |b| b.iter(|| black_box(v.as_atomic().fetch_add(1, Ordering::Relaxed))));
    g.finish();
}

fn arrays(c: &mut Criterion) {
    let mut g = c.benchmark_group("array");
    for len in [16usize, 4096] {
        g.throughput(Throughput::Bytes((len * size_of::<f64>()) as u64));
        let locked = Array::<f64>::zeroed(len).expect("create an array");
        g.bench_with_input(BenchmarkId::new("to_vec", len), &locked, |b, a| {
            b.iter(|| black_box(a.to_vec().expect("to_vec")))
        });
        let raw = RawArray::<f64>::zeroed(len).expect("create a raw array");
        g.bench_with_input(BenchmarkId::new("raw_to_vec", len), &raw, |b, a| b.iter(|| black_box(a.to_vec())));
    }
    g.finish();
}

criterion_group!(benches, value, raw_value, arrays);
criterion_main!(benches);
