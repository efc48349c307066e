//! A guided tour of multiproc: each section shows one crate at work across real
//! processes. Run with `cargo run --release --example tour`.

use std::time::{Duration, Instant};

use multiproc::{
    Array, Event, JoinError, JoinableQueue, Lock, Manager, Pipe, Pool, Process, ProcessPoolExecutor, Queue,
    StartMethod, TaskError, ThreadPoolExecutor, Value, active_children, as_completed, cpu_count, current_process,
};

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

/// Echoes typed requests back, doubled, until the parent hangs up.
fn doubler(conn: multiproc::Connection) -> u32 {
    let mut served = 0;
    while let Ok(x) = conn.recv::<u64>() {
        conn.send(&(x * 2)).expect("reply");
        served += 1;
    }
    served
}

fn tour_pipe() -> Result<(), Box<dyn std::error::Error>> {
    section("pipe: messages between two processes (multiproc::pipe)");
    let (here, there) = Pipe::duplex()?;
    let mut p = Process::new(doubler, there);
    p.start()?;
    let started = Instant::now();
    for x in 1..=1000u64 {
        here.send(&x)?;
        assert_eq!(here.recv::<u64>()?, x * 2);
    }
    let per_rtt = started.elapsed() / 1000;
    here.send_bytes(b"raw bytes skip the codec")?;
    drop(here); // the child sees end-of-file after the last message and returns
    println!("1000 typed round trips, {per_rtt:?} each; the child served {} before EOF", p.join()?);
    Ok(())
}

/// Holds the lock and dies without releasing it.
fn die_holding(lock: Lock) {
    let guard = lock.lock().expect("lock");
    std::mem::forget(guard);
    std::process::abort();
}

fn add_many((lock, counter, n): (Lock, Value<u64>, u64)) {
    for _ in 0..n {
        let _held = lock.lock().expect("lock");
        counter.update(|c| *c += 1).expect("update");
    }
}

fn tour_lock() -> Result<(), Box<dyn std::error::Error>> {
    section("lock: mutual exclusion that survives a dead holder (multiproc::sync)");
    let lock = Lock::new()?;
    let counter = Value::new(0u64)?;
    let mut workers: Vec<_> = (0..4).map(|_| Process::new(add_many, (lock.clone(), counter.clone(), 2_500))).collect();
    for w in &mut workers {
        w.start()?;
    }
    for w in &mut workers {
        w.join()?;
    }
    println!("4 processes x 2,500 locked increments = {}", counter.load()?);

    let mut p = Process::new(die_holding, lock.clone());
    p.start()?;
    println!("a child took the lock and died: {}", p.join().unwrap_err());
    match lock.lock() {
        Err(multiproc::LockError::OwnerDied(guard)) => {
            println!("the next locker is told (Python would block forever) and holds the lock");
            guard.mark_consistent();
        }
        Ok(_) => return Err("expected OwnerDied".into()),
        Err(e) => return Err(e.to_string().into()),
    }
    Ok(())
}

fn produce((q, from, n): (Queue<(u32, u64)>, u32, u64)) {
    for i in 0..n {
        q.put((from, i)).expect("put");
    }
}

fn tour_queue() -> Result<(), Box<dyn std::error::Error>> {
    section("queue: many producers, many consumers, nothing lost (multiproc::queue)");
    let q: Queue<(u32, u64)> = Queue::new()?;
    let mut producers: Vec<_> = (0..3).map(|id| Process::new(produce, (q.clone(), id, 10_000))).collect();
    for p in &mut producers {
        p.start()?;
    }
    // The producers may exit before anything is consumed: put returns once the item
    // is in shared memory (no feeder thread, unlike Python).
    for p in &mut producers {
        p.join()?;
    }
    q.close(); // our own handle will not put: once the queue drains, get says Closed
    let started = Instant::now();
    let got = q.iter().map_while(Result::ok).count();
    println!(
        "received {got} items from 3 finished producers in {:?}, then the queue reported closed",
        started.elapsed()
    );
    Ok(())
}

fn eat(q: JoinableQueue<String>) {
    while let Ok(job) = q.get() {
        assert!(!job.is_empty());
        q.task_done().expect("task_done");
    }
}

fn tour_joinable_queue() -> Result<(), Box<dyn std::error::Error>> {
    section("joinable queue: wait until every task is done (multiproc::queue)");
    let q: JoinableQueue<String> = JoinableQueue::new()?;
    let mut consumer = Process::new(eat, q.clone()).with_daemon(true);
    consumer.start()?;
    for i in 0..100 {
        q.put(format!("job {i}"))?;
    }
    q.join_timeout(Duration::from_secs(60))?;
    println!("100 jobs put, all marked done by the daemon consumer");
    consumer.kill()?;
    let _ = consumer.join();
    Ok(())
}

fn fill((arr, ready, slot): (Array<u32>, Event, usize)) {
    arr.store(slot, (slot as u32 + 1) * 100).expect("store");
    ready.wait();
}

fn tour_shared() -> Result<(), Box<dyn std::error::Error>> {
    section("shared memory: typed values and arrays (multiproc::shared)");
    let arr = Array::<u32>::zeroed(4)?;
    let ready = Event::new()?;
    let mut kids: Vec<_> = (0..4).map(|slot| Process::new(fill, (arr.clone(), ready.clone(), slot))).collect();
    for k in &mut kids {
        k.start()?;
    }
    ready.set();
    for k in &mut kids {
        k.join()?;
    }
    println!("each child wrote its slot: {:?}", arr.to_vec()?);
    Ok(())
}

fn take_one(n: Option<i64>) -> i64 {
    n.unwrap_or(0) - 1
}

fn decrement(d: multiproc::DictProxy<String, i64>) {
    d.update_with("count", take_one).expect("update_with");
}

fn tour_manager() -> Result<(), Box<dyn std::error::Error>> {
    section("manager: a server process owning shared objects (multiproc::manager)");
    let manager = Manager::start()?;
    let d = manager.dict::<String, i64>()?;
    d.insert("count".to_owned(), 20)?;
    let mut kids: Vec<_> = (0..20).map(|_| Process::new(decrement, d.clone())).collect();
    for k in &mut kids {
        k.start()?;
    }
    for k in &mut kids {
        k.join()?;
    }
    // update_with runs the function on the server, atomically: no lock needed.
    println!("20 processes each decremented {{\"count\": 20}} on the server: {:?}", d.get("count")?);
    let l = manager.list::<String>()?;
    l.extend(["a".to_owned(), "b".to_owned()])?;
    println!("a shared list: {:?}", l.to_vec()?);
    manager.shutdown()?;
    Ok(())
}

fn cube(x: u64) -> u64 {
    x * x * x
}

fn crash_on(x: u64) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    x
}

fn tour_pool() -> Result<(), Box<dyn std::error::Error>> {
    section("pool: map work over worker processes (multiproc::Pool)");
    let pool = Pool::new(2)?;
    println!("map(cube, 0..10) = {:?}", pool.map(cube, 0..10)?);
    let pending = pool.apply_async(cube, 7);
    println!("apply_async(cube, 7).get() = {:?}", pending.get()?);
    let lazy: u64 = pool.imap(cube, 0..).take(1000).map(|r| r.unwrap_or(0)).sum();
    println!("imap over an endless iterator, first 1000 cubes summed: {lazy}");
    let crashed: Vec<Result<u64, TaskError>> = pool.imap(crash_on, 0..6).collect();
    println!("a worker that aborts fails only its task: {:?}", crashed[3].as_ref().unwrap_err().to_string());
    println!("and the pool goes on: {:?}", pool.map(cube, [1, 2, 3])?);
    Ok(())
}

fn tour_executor() -> Result<(), Box<dyn std::error::Error>> {
    section("executor: concurrent.futures (multiproc::futures)");
    let processes = ProcessPoolExecutor::new(2)?;
    let futures: Vec<_> = (1..=4).map(|x| processes.submit(cube, x)).collect();
    let done: Vec<u64> = as_completed(&futures, None).filter_map(|f| f.ok()?.result().ok().copied()).collect();
    println!("ProcessPoolExecutor, as_completed: {done:?}");
    let threads = ThreadPoolExecutor::new(2);
    let f = threads.submit(|| (1..=10u64).product::<u64>());
    f.add_done_callback(|f| println!("ThreadPoolExecutor callback: 10! = {:?}", f.result()));
    f.result()?;
    threads.shutdown(true, false);
    processes.shutdown(true, false);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    println!("multiproc tour: Python's multiprocessing, typed and safe when a process dies");
    tour_process()?;
    tour_pipe()?;
    tour_lock()?;
    tour_queue()?;
    tour_joinable_queue()?;
    tour_shared()?;
    tour_manager()?;
    tour_pool()?;
    tour_executor()?;
    println!("\ntour finished");
    Ok(())
}
