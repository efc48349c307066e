//! Many producers and consumers in separate processes: every item arrives exactly once,
//! and each producer's items arrive in the order it put them. Once per start method.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use multiproc_process::StartMethod;
use multiproc_queue::Queue;
use watchdog::{METHODS, join, start, watchdog};

const PRODUCERS: u8 = 4;
const CONSUMERS: usize = 3;
const ITEMS: u32 = 50_000;

type Item = (u8, u32);

fn produce((q, id): (Queue<Item>, u8)) {
    for seq in 0..ITEMS {
        q.put((id, seq)).unwrap_or_else(|e| panic!("producer {id}: put {seq}: {e}"));
    }
}

fn consume(q: Queue<Item>) -> Vec<Item> {
    // This handle only takes; the queue closes once the producers are done.
    q.close();
    q.iter().map(|item| item.unwrap_or_else(|e| panic!("consumer: {e}"))).collect()
}

fn exactly_once(method: StartMethod) {
    let q: Queue<Item> = Queue::new().expect("queue");
    let mut consumers: Vec<_> = (0..CONSUMERS).map(|_| start(method, consume, q.clone())).collect();
    let mut producers: Vec<_> = (0..PRODUCERS).map(|id| start(method, produce, (q.clone(), id))).collect();
    // The parent neither puts nor gets: its handle must not hold the queue open.
    drop(q);
    for p in &mut producers {
        join(method, p);
    }
    let mut seen = vec![vec![0u32; ITEMS as usize]; PRODUCERS as usize];
    let mut per_consumer = Vec::new();
    for c in &mut consumers {
        let got = join(method, c);
        // Within one consumer, each producer's items come in the order they were put.
        let mut last = [None::<u32>; PRODUCERS as usize];
        for &(id, seq) in &got {
            assert!(id < PRODUCERS && seq < ITEMS, "[{method}] item ({id}, {seq}) was never put");
            let prev = &mut last[id as usize];
            assert!(prev.is_none_or(|p| p < seq), "[{method}] producer {id}: {seq} arrived after {prev:?}");
            *prev = Some(seq);
            seen[id as usize][seq as usize] += 1;
        }
        per_consumer.push(got.len());
    }
    for (id, counts) in seen.iter().enumerate() {
        for (seq, &n) in counts.iter().enumerate() {
            assert_eq!(n, 1, "[{method}] item ({id}, {seq}) was received {n} times");
        }
    }
    assert_eq!(per_consumer.iter().sum::<usize>(), PRODUCERS as usize * ITEMS as usize);
    eprintln!("[{method}] items per consumer: {per_consumer:?}");
}

#[test]
fn four_producers_three_consumers_fork() {
    watchdog("exactly once, fork", || exactly_once(METHODS[0]));
}

#[test]
fn four_producers_three_consumers_spawn() {
    watchdog("exactly once, spawn", || exactly_once(METHODS[1]));
}

#[test]
fn four_producers_three_consumers_forkserver() {
    watchdog("exactly once, forkserver", || exactly_once(METHODS[2]));
}
