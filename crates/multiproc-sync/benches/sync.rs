//! Micro-benchmarks of the primitives' hot operations in one process (criterion):
//! `cargo bench -p multiproc-sync`.
//!
//! Each operation here is the uncontended fast path: an atomic or two on shared memory
//! and no system call. The cross-process workloads (two processes fighting over a lock)
//! and their comparisons with Python and with in-process locks are in the workspace's
//! comparative runner, `cargo bench --bench compare`.

#![allow(missing_docs, reason = "criterion_group! defines an undocumented public function")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use multiproc_sync::{BoundedSemaphore, Event, Lock, RLock, Semaphore};

fn lock(c: &mut Criterion) {
    let mut g = c.benchmark_group("lock");
    let lock = Lock::new().expect("create a lock");
    g.bench_function("lock_unlock", |b| b.iter(|| drop(black_box(lock.lock().expect("lock")))));
    g.bench_function("try_lock_unlock", |b| b.iter(|| drop(black_box(lock.try_lock().expect("try_lock")))));
    g.bench_function("is_locked", |b| b.iter(|| black_box(lock.is_locked())));
    g.finish();
}

fn rlock(c: &mut Criterion) {
    let mut g = c.benchmark_group("rlock");
    let rlock = RLock::new().expect("create an rlock");
    g.bench_function("lock_unlock", |b| b.iter(|| drop(black_box(rlock.lock().expect("lock")))));
    // Re-entry while held: a count on the owner's side, no atomic read-modify-write.
    let _outer = rlock.lock().expect("lock");
    g.bench_function("reenter_unlock", |b| b.iter(|| drop(black_box(rlock.lock().expect("re-enter")))));
    g.finish();
}

fn semaphore(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore");
    let sem = Semaphore::new(1).expect("create a semaphore");
    g.bench_function("acquire_release", |b| b.iter(|| drop(black_box(sem.acquire()))));
    g.bench_function("try_acquire_release", |b| b.iter(|| drop(black_box(sem.try_acquire()))));
    let bounded = BoundedSemaphore::new(1).expect("create a bounded semaphore");
    g.bench_function("bounded_acquire_release", |b| b.iter(|| drop(black_box(bounded.acquire()))));
    g.finish();
}

fn event(c: &mut Criterion) {
    let mut g = c.benchmark_group("event");
    let event = Event::new().expect("create an event");
    g.bench_function("set_clear", |b| {
        b.iter(|| {
            event.set();
            event.clear();
        })
    });
    event.set();
    g.bench_function("wait_when_set", |b| b.iter(|| event.wait()));
    g.finish();
}

criterion_group!(benches, lock, rlock, semaphore, event);
criterion_main!(benches);
