//! Two producers, two consumers, one queue (Python's classic `multiprocessing.Queue`
//! producer/consumer with end-of-work sentinels).
//!
//! Each producer makes its items and exits; once both are done, `main` puts one
//! sentinel per consumer. Each consumer eats items until it gets a sentinel and returns
//! what it ate. The program exits 0 only if every item was eaten exactly once.
//!
//! Run with `cargo run --example producer_consumer`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use multiproc::Process;
use multiproc_queue::Queue;
use serde::{Deserialize, Serialize};

const PRODUCERS: u32 = 2;
const CONSUMERS: u32 = 2;
const ITEMS_EACH: u32 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Msg {
    /// Item `n` made by producer `by`.
    Item { by: u32, n: u32 },
    /// End of work: the consumer that takes it stops.
    Done,
}

fn producer((id, q): (u32, Queue<Msg>)) {
    for n in 0..ITEMS_EACH {
        println!("producer {id} made item {id}-{n}");
        q.put(Msg::Item { by: id, n }).expect("put");
    }
    // Returning drops the handle; put already placed every item in shared memory, so
    // nothing needs flushing and the process can exit at once.
}

fn consumer((id, q): (u32, Queue<Msg>)) -> Vec<(u32, u32)> {
    let mut eaten = Vec::new();
    loop {
        match q.get().expect("get") {
            Msg::Item { by, n } => {
                println!("consumer {id} ate item {by}-{n}");
                eaten.push((by, n));
            }
            Msg::Done => {
                println!("consumer {id} got the end-of-work sentinel after {} items", eaten.len());
                return eaten;
            }
        }
    }
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    // Must come first: spawned and forkserver children take their role here.
    multiproc::init();
    let q: Queue<Msg> = Queue::new()?;
    let mut consumers = Vec::new();
    for id in 0..CONSUMERS {
        let mut c = Process::new(consumer, (id, q.clone())).with_name(format!("consumer-{id}"));
        c.start()?;
        consumers.push(c);
    }
    let mut producers = Vec::new();
    for id in 0..PRODUCERS {
        let mut p = Process::new(producer, (id, q.clone())).with_name(format!("producer-{id}"));
        p.start()?;
        producers.push(p);
    }
    for p in &mut producers {
        p.join()?;
    }
    for _ in 0..CONSUMERS {
        q.put(Msg::Done)?;
    }
    let mut times_eaten: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    for (id, c) in consumers.iter_mut().enumerate() {
        let eaten = c.join()?;
        println!("consumer {id} ate {} items: {eaten:?}", eaten.len());
        for item in eaten {
            *times_eaten.entry(item).or_default() += 1;
        }
    }
    let expected = (PRODUCERS * ITEMS_EACH) as usize;
    let all_once = times_eaten.len() == expected && times_eaten.values().all(|&t| t == 1);
    if all_once {
        println!("all {expected} items were eaten exactly once");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("items eaten a wrong number of times: {times_eaten:?}");
        Ok(ExitCode::FAILURE)
    }
}
