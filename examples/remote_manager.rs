//! A queue served over TCP with an authkey, used by a producer and a consumer that are
//! separate programs (Python's `BaseManager(address=("127.0.0.1", port), authkey=...)`
//! with `serve_forever()` in one program and `connect()` in the others).
//!
//! Self-driving: run without arguments, it serves a manager on 127.0.0.1 (any free
//! port), registers a job queue and a results dict under names, and runs itself twice
//! more, as `producer ADDRESS` and `consumer ADDRESS`. The producer puts the jobs; the
//! consumer takes them, records each result with `update_with` (allowed across programs
//! because both run this same executable, which the server checks) and stops at the
//! end-of-work sentinel. Exits 0 when every job arrived exactly once.
//!
//! Run with `cargo run --example remote_manager`.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use multiproc::Address;
use multiproc_manager::{DictProxy, Manager, QueueProxy};

const AUTHKEY: &[u8] = b"remote-manager example key";
const JOBS: u32 = 1000;
/// End of work.
const DONE: u32 = u32::MAX;
/// Longest the two helper programs may take (a hang guard, not a speed goal).
const PATIENCE: Duration = Duration::from_secs(120);

fn record(seen: Option<u32>) -> u32 {
    seen.unwrap_or(0) + 1
}

fn producer(address: &Address) -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::connect(address, Some(AUTHKEY))?;
    let jobs: QueueProxy<u32> = manager.get("jobs")?;
    for job in 0..JOBS {
        jobs.put(job)?;
    }
    jobs.put(DONE)?;
    println!("producer: put {JOBS} jobs and the end-of-work sentinel");
    Ok(())
}

fn consumer(address: &Address) -> Result<(), Box<dyn std::error::Error>> {
    let manager = Manager::connect(address, Some(AUTHKEY))?;
    let jobs: QueueProxy<u32> = manager.get("jobs")?;
    let seen: DictProxy<u32, u32> = manager.get("seen")?;
    let mut taken = 0;
    loop {
        let job = jobs.get()?;
        if job == DONE {
            break;
        }
        seen.update_with(&job, record)?;
        taken += 1;
    }
    println!("consumer: took {taken} jobs");
    Ok(())
}

fn wait(name: &str, child: &mut std::process::Child) -> Result<bool, Box<dyn std::error::Error>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                println!("{name} failed: {status}");
            }
            return Ok(status.success());
        }
        if start.elapsed() > PATIENCE {
            child.kill()?;
            child.wait()?;
            println!("{name} did not finish in {PATIENCE:?}; killed it");
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let manager = Manager::serve(&Address::localhost_any_port(), Some(AUTHKEY))?;
    let jobs: QueueProxy<u32> = manager.queue()?;
    let seen: DictProxy<u32, u32> = manager.dict()?;
    manager.register("jobs", &jobs)?;
    manager.register("seen", &seen)?;
    let address = manager.address().to_string();
    println!("serving on {address}");

    let me = std::env::current_exe()?;
    let mut consumer = Command::new(&me).args(["consumer", &address]).spawn()?;
    let mut producer = Command::new(&me).args(["producer", &address]).spawn()?;
    let produced = wait("producer", &mut producer)?;
    let consumed = wait("consumer", &mut consumer)?;

    let seen = seen.items()?;
    let all_once = seen.len() == JOBS as usize && seen.iter().all(|&(_, times)| times == 1);
    println!("{} distinct jobs arrived; every one exactly once: {all_once}", seen.len());
    manager.shutdown()?;
    Ok(if produced && consumed && all_once { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    multiproc::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => serve(),
        [role, address] => {
            let address: Address = address.parse()?;
            match role.as_str() {
                "producer" => producer(&address)?,
                "consumer" => consumer(&address)?,
                other => return Err(format!("unknown role {other:?}").into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => Err("usage: remote_manager [producer|consumer ADDRESS]".into()),
    }
}
