//! A daemon worker, a producer, and `JoinableQueue::join` (Python's documented
//! `JoinableQueue` example).
//!
//! The worker runs forever, marking each item done with `task_done`; it is a daemon, so
//! it is killed when `main` ends. The producer puts its items and exits; `main` joins it,
//! then waits on the queue until every item has been marked done, and finishes.
//!
//! Run with `cargo run --example joinable_queue`.

use std::time::Duration;

use multiproc::Process;
use multiproc_queue::JoinableQueue;

const ITEMS: u32 = 30;

fn worker(q: JoinableQueue<u32>) {
    loop {
        let item = q.get().expect("get");
        println!("working on {item}");
        println!("finished {item}");
        q.task_done().expect("one task_done per item");
    }
}

fn producer(q: JoinableQueue<u32>) {
    for item in 0..ITEMS {
        q.put(item).expect("put");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Must come first: spawned and forkserver children take their role here.
    multiproc::init();
    let q: JoinableQueue<u32> = JoinableQueue::new()?;
    Process::new(worker, q.clone()).with_name("worker").with_daemon(true).start()?;

    let mut p = Process::new(producer, q.clone()).with_name("producer");
    p.start()?;
    // No deadlock: the producer's items are in shared memory, not in a feeder thread.
    p.join()?;
    println!("producer done: {} items put, {} unfinished", ITEMS, q.unfinished_tasks());

    // Block until every item has been marked done. A program that can lose workers
    // would use join_timeout and mark the dead worker's items done itself.
    if let Err(e) = q.join_timeout(Duration::from_secs(60)) {
        return Err(e.into());
    }
    println!("all work completed");
    Ok(())
}
