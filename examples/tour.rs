//! A guided tour of multiproc: each section shows one crate at work across real
//! processes. Run with `cargo run --release --example tour`.

use std::time::{Duration, Instant};

use multiproc::{JoinError, Process, StartMethod, active_children, cpu_count, current_process};

fn section(title: &str) {
    println!("\n=== {title} ===");
}

fn square(x: u64) -> u64 {
    x * x
}

fn whoami(_: ()) -> (String, u32, Vec<u8>) {
    let me = current_process();
    (me.name.clone(), me.pid, me.authkey().to_vec())
}

fn explode(msg: String) -> u32 {
    panic!("{msg}")
}

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn tour_process() -> Result<(), Box<dyn std::error::Error>> {
    section("process: run a function in another process (multiproc::process)");
    println!("this machine has {} CPUs; we are {}", cpu_count(), current_process().name);
    for method in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
        let started = Instant::now();
        let mut p = Process::new(square, 12).with_start_method(method);
        p.start()?;
        let value = p.join()?;
        println!("{method:>10}: square(12) = {value} in {:?} (exitcode {:?})", started.elapsed(), p.exitcode());
    }

    let mut p = Process::new(whoami, ());
    p.start()?;
    let (name, pid, key) = p.join()?;
    println!("a child knows itself: {name}, pid {pid}, inherited authkey: {}", key == current_process().authkey());

    let mut p = Process::new(explode, "out of cheese".to_string());
    p.start()?;
    match p.join() {
        Err(JoinError::Panicked { message }) => {
            println!("a panic comes back as an error: {message:?} (exitcode {:?})", p.exitcode())
        }
        other => return Err(format!("expected a panic, got {other:?}").into()),
    }

    let mut p = Process::new(nap, 10_000).with_name("sleepy");
    p.start()?;
    println!("active children: {:?}", active_children().iter().map(|c| &c.name).collect::<Vec<_>>());
    p.kill()?;
    println!("killed: {} (exitcode {:?})", p.join().unwrap_err(), p.exitcode());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    println!("multiproc tour: Python's multiprocessing, typed and safe when a process dies");
    tour_process()?;
    println!("\ntour finished");
    Ok(())
}
