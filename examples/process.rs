//! The Process walk-through: names, pids, daemons, `is_alive`, `terminate`, `exitcode`,
//! and a `run()`-style process type, under each start method.
//!
//! Run with `cargo run --example process`.

use std::time::Duration;

use multiproc::{Process, Run, StartMethod, current_process, parent_process};
use serde::{Deserialize, Serialize};

/// A plain function target: the child reports who it is.
fn greet(greeting: String) -> String {
    let me = current_process();
    let parent = parent_process().map(|p| p.pid()).unwrap_or(0);
    format!("{greeting} from {} (pid {}, parent {parent})", me.name, me.pid)
}

/// Sleeps far longer than we are willing to wait: it will be terminated.
fn sleeper(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

/// Python's `class Worker(Process): def run(self): ...`, as a type with `run`.
#[derive(Serialize, Deserialize)]
struct Worker {
    id: u32,
    jobs: Vec<u64>,
}

impl Run for Worker {
    type Output = (u32, u64);
    fn run(self) -> (u32, u64) {
        (self.id, self.jobs.iter().map(|j| j * j).sum())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Must come first: spawn and forkserver children re-enter `main` here.
    multiproc::init();
    println!("parent: {} (pid {})", current_process().name, std::process::id());

    for method in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
        let mut p =
            Process::new(greet, "hello".to_string()).with_name(format!("greeter-{method}")).with_start_method(method);
        println!("[{method}] before start: name={} alive={} exitcode={:?}", p.name(), p.is_alive(), p.exitcode());
        p.start()?;
        println!("[{method}] started pid {:?}", p.pid());
        let reply = p.join()?;
        println!("[{method}] joined: {reply:?}, exitcode={:?}", p.exitcode());
    }

    // terminate(): the child ends by SIGTERM, exitcode is -15 as in Python.
    let mut p = Process::new(sleeper, 60).with_daemon(true);
    p.start()?;
    println!("sleeper daemon={} alive={}", p.daemon(), p.is_alive());
    p.terminate()?;
    let err = p.join().expect_err("a terminated process returns no value");
    println!("sleeper after terminate: {err}; exitcode={:?} alive={}", p.exitcode(), p.is_alive());
    assert_eq!(p.exitcode(), Some(-15));

    // run()-style processes.
    let mut workers: Vec<_> =
        (0..3).map(|id| Process::from_run(Worker { id, jobs: vec![1, 2, 3 + id as u64] })).collect();
    for w in &mut workers {
        w.start()?;
    }
    for w in &mut workers {
        let (id, total) = w.join()?;
        println!("worker {id} computed {total}");
    }
    Ok(())
}
