//! `concurrent.futures` across real processes and threads: ProcessPoolExecutor under
//! every start method, ThreadPoolExecutor, Future states, cancel, callbacks, `wait`,
//! `as_completed`, shutdown/terminate, a killed worker, and awaiting in tokio.

multiproc::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multiproc::futures::{ReturnWhen, wait};
use multiproc::{
    Future, GetTimeoutError, ProcessPoolExecutor, StartMethod, TaskError, ThreadPoolExecutor, TimeoutError,
    as_completed,
};
use watchdog::watchdog;

const LIMIT: Duration = Duration::from_secs(120);

fn executor(n: usize, method: StartMethod) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder().max_workers(n).start_method(method).build().expect("executor starts")
}

fn square(x: u64) -> u64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fail_on_odd(x: u64) -> u64 {
    assert!(x % 2 == 0, "odd input {x}");
    x
}

fn die(_: ()) -> u64 {
    let me = multiproc::sys::Pid::from_raw(std::process::id() as i32);
    let _ = multiproc::sys::signal::kill(me, multiproc::sys::signal::SIGKILL);
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
            rest.split_whitespace().nth(1) != Some(std::process::id().to_string().as_str())
        }
    }
}

/// Our children in state Z right now.
fn zombies() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") && f.get(1) == Some(&me.as_str()) {
            out.push(pid);
        }
    }
    out
}

fn assert_no_zombies() {
    // Other tests of this binary run at the same time, and their children are briefly
    // zombies between exiting and being reaped; wait (boundedly) for the list to empty.
    for _ in 0..200 {
        if zombies().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let z = zombies();
    assert!(z.is_empty(), "zombie children left behind: {z:?}");
}

fn submit_and_map(method: StartMethod) {
    let ex = executor(2, method);
    assert_eq!(ex.max_workers(), 2);
    let futures: Vec<Future<u64>> = (0..50).map(|i| ex.submit(square, i)).collect();
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.result(), Ok(&((i * i) as u64)));
        assert!(f.done() && !f.running() && !f.cancelled());
        assert_eq!(f.error(), None);
    }
    let owned: Vec<u64> = futures.into_iter().map(|f| f.into_result().unwrap()).collect();
    assert_eq!(owned.len(), 50);
    let expected: Vec<u64> = (0..100).map(|x| x * x).collect();
    assert_eq!(ex.map(square, 0..100).collect::<Result<Vec<_>, _>>().unwrap(), expected);
    assert_eq!(ex.map_with(square, 0..100, None, 7).collect::<Result<Vec<_>, _>>().unwrap(), expected);
    // One outcome per item, in order, failures included.
    let out: Vec<_> = ex.map_with(fail_on_odd, 0..6, Some(Duration::from_secs(60)), 2).collect();
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 3);
    assert!(matches!(&out[3], Err(TaskError::Panicked { message }) if message == "odd input 3"));
    ex.shutdown(true, false);
    assert_no_zombies();
}

#[test]
fn submit_and_map_fork() {
    watchdog("submit_and_map_fork", LIMIT, || submit_and_map(StartMethod::Fork));
}

#[test]
fn submit_and_map_spawn() {
    watchdog("submit_and_map_spawn", LIMIT, || submit_and_map(StartMethod::Spawn));
}

#[test]
fn submit_and_map_forkserver() {
    watchdog("submit_and_map_forkserver", LIMIT, || submit_and_map(StartMethod::ForkServer));
}

#[test]
fn future_states_and_cancel_before_start() {
    watchdog("cancel", LIMIT, || {
        let ex = executor(1, StartMethod::ForkServer);
        let running = ex.submit(sleep_ms, 500);
        let queued = ex.submit(square, 3);
        // Wait until the first one is taken by the worker.
        while !running.running() && !running.done() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(running.running());
        assert!(!running.cancel(), "a running future cannot be cancelled");
        assert!(!queued.running() && !queued.done());
        assert!(queued.cancel());
        assert!(queued.cancel(), "cancelling twice still says cancelled");
        assert!(queued.cancelled() && queued.done());
        assert_eq!(queued.result(), Err(TaskError::Cancelled));
        assert_eq!(queued.error(), Some(TaskError::Cancelled));
        assert_eq!(running.result(), Ok(&500));
        assert!(!running.cancel() && !running.cancelled());
        // The executor goes on.
        assert_eq!(ex.submit(square, 4).into_result(), Ok(16));
    });
}

#[test]
fn timeouts_on_futures_and_map() {
    watchdog("future_timeouts", LIMIT, || {
        let ex = executor(2, StartMethod::Fork);
        let f = ex.submit(sleep_ms, 300);
        assert!(matches!(f.result_timeout(Duration::from_millis(10)), Err(GetTimeoutError::Timeout(()))));
        assert!(matches!(f.error_timeout(Duration::from_millis(1)), Err(GetTimeoutError::Timeout(()))));
        assert_eq!(f.result_timeout(Duration::from_secs(60)).ok(), Some(&300));
        assert_eq!(f.error_timeout(Duration::from_secs(60)).ok(), Some(None));
        let mut it = ex.map_with(sleep_ms, [10, 2000, 10], Some(Duration::from_millis(400)), 1);
        assert_eq!(it.next(), Some(Ok(10)));
        match it.next() {
            Some(Err(e @ TaskError::MapTimeout { .. })) => assert!(e.to_string().contains("cancelled"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(it.next(), None);
    });
}

#[test]
fn done_callbacks_run_once_done() {
    watchdog("done_callbacks", LIMIT, || {
        let ex = executor(2, StartMethod::ForkServer);
        let hits = Arc::new(Mutex::new(Vec::new()));
        let f = ex.submit(sleep_ms, 100);
        let h = hits.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        f.add_done_callback(move |f: &Future<u64>| {
            // Not done yet when added: runs on the thread that completes it.
            h.lock().unwrap().push(*f.result().unwrap());
            tx.send(()).unwrap();
        });
        f.wait_done();
        // As in Python, waiters are woken before the callbacks run: wait for it.
        rx.recv_timeout(Duration::from_secs(60)).expect("the done callback ran");
        // Already done: runs at once, on this thread.
        let h = hits.clone();
        let me = std::thread::current().id();
        f.add_done_callback(move |_| {
            assert_eq!(std::thread::current().id(), me);
            h.lock().unwrap().push(0);
        });
        assert_eq!(*hits.lock().unwrap(), [100, 0]);
        // Cancellation runs them too.
        let blocker = ex.submit(sleep_ms, 300);
        let blocker2 = ex.submit(sleep_ms, 300);
        let queued = ex.submit(square, 2);
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        queued.add_done_callback(move |f| {
            assert!(f.cancelled());
            c.fetch_add(1, Ordering::SeqCst);
        });
        if queued.cancel() {
            assert_eq!(count.load(Ordering::SeqCst), 1);
        }
        let _ = (blocker.result(), blocker2.result());
    });
}

/// Python's `Future.result()` returns when done; this helper is the test's own wait.
trait WaitDone {
    fn wait_done(&self);
}

impl<R> WaitDone for Future<R> {
    fn wait_done(&self) {
        let _ = self.result();
    }
}

#[test]
fn wait_and_as_completed() {
    watchdog("wait_as_completed", LIMIT, || {
        let ex = executor(3, StartMethod::Fork);
        let futures: Vec<Future<u64>> = [900u64, 50, 450].into_iter().map(|ms| ex.submit(sleep_ms, ms)).collect();
        let (done, not_done) = wait(&futures, ReturnWhen::FirstCompleted, None);
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].result(), Ok(&50));
        assert_eq!(not_done.len(), 2);
        let (done, not_done) = wait(&futures, ReturnWhen::AllCompleted, Duration::from_millis(1));
        assert!(done.len() < 3 && !not_done.is_empty());
        let order: Vec<u64> = as_completed(&futures, None).map(|f| *f.unwrap().result().unwrap()).collect();
        assert_eq!(order, [50, 450, 900]);
        let (done, not_done) = wait(&futures, ReturnWhen::AllCompleted, None);
        assert_eq!((done.len(), not_done.len()), (3, 0));

        // FIRST_EXCEPTION returns at the first failure.
        let futures = vec![ex.submit(fail_on_odd, 1), ex.submit(sleep_ms, 2000)];
        let (done, not_done) = wait(&futures, ReturnWhen::FirstException, None);
        assert_eq!(done.len(), 1);
        assert!(done[0].error().is_some());
        assert_eq!(not_done.len(), 1);
        // as_completed with a timeout yields what is done, then the timeout.
        let items: Vec<_> = as_completed(&futures, Duration::from_millis(100)).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(items[1].err(), Some(TimeoutError));
        // Duplicates count once, as in Python's sets.
        let twice = [&futures[0], &futures[0]];
        assert_eq!(as_completed(twice, None).count(), 1);
    });
}

#[test]
fn a_killed_worker_fails_one_future_not_the_executor() {
    watchdog("killed_worker", LIMIT, || {
        let ex = executor(2, StartMethod::ForkServer);
        let before: Vec<_> = (0..10).map(|i| ex.submit(square, i)).collect();
        let doomed = ex.submit(die, ());
        let after: Vec<_> = (0..10).map(|i| ex.submit(square, i)).collect();
        match doomed.result() {
            Err(e @ TaskError::WorkerDied { exitcode: -9, .. }) => assert!(e.to_string().contains("SIGKILL")),
            other => panic!("{other:?}"),
        }
        for (i, f) in before.iter().chain(&after).enumerate() {
            assert_eq!(f.result().copied(), Ok(((i % 10) * (i % 10)) as u64));
        }
        assert_eq!(ex.submit(square, 9).into_result(), Ok(81));
        drop(ex);
        assert_no_zombies();
    });
}

#[test]
fn shutdown_cancels_queued_futures() {
    watchdog("shutdown", LIMIT, || {
        let ex = executor(1, StartMethod::Fork);
        let first = ex.submit(sleep_ms, 300);
        while !first.running() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let queued: Vec<_> = (0..5).map(|i| ex.submit(square, i)).collect();
        let pids = ex.worker_pids();
        ex.shutdown(true, true);
        assert_eq!(first.result(), Ok(&300));
        assert!(queued.iter().all(|f| f.cancelled()), "{queued:?}");
        assert_eq!(ex.submit(square, 1).result(), Err(TaskError::PoolClosed));
        assert!(pids.iter().all(|&p| gone(p)));
        assert_no_zombies();
        // shutdown(wait=false): returns at once, the work still completes.
        let ex = executor(1, StartMethod::Fork);
        let f = ex.submit(sleep_ms, 200);
        ex.shutdown(false, false);
        drop(ex);
        assert_eq!(f.into_result(), Ok(200));
    });
}

#[test]
fn terminate_and_kill_workers() {
    watchdog("terminate_workers", LIMIT, || {
        for kill in [false, true] {
            let ex = executor(2, StartMethod::ForkServer);
            let pids = ex.worker_pids();
            let pending: Vec<_> = (0..4).map(|_| ex.submit(sleep_ms, 30_000)).collect();
            std::thread::sleep(Duration::from_millis(100));
            if kill {
                ex.kill_workers();
            } else {
                ex.terminate_workers();
            }
            for f in &pending {
                assert_eq!(f.result(), Err(TaskError::PoolTerminated));
            }
            assert!(pids.iter().all(|&p| gone(p)), "{pids:?}");
            assert_eq!(ex.submit(square, 2).result(), Err(TaskError::PoolTerminated));
        }
        assert_no_zombies();
    });
}

#[test]
fn max_tasks_per_child_and_initializer() {
    watchdog("executor_max_tasks", LIMIT, || {
        fn init(v: u32) {
            assert_eq!(v, 7);
        }
        let ex = ProcessPoolExecutor::builder()
            .max_workers(1)
            .max_tasks_per_child(3)
            .initializer(init, 7)
            .start_method(StartMethod::Spawn)
            .build()
            .unwrap();
        let pids: Vec<u32> = (0..6).map(|i| ex.submit(pid_of, i).into_result().unwrap()).collect();
        assert!(pids[..3].iter().all(|&p| p == pids[0]) && pids[3..].iter().all(|&p| p == pids[3]), "{pids:?}");
        assert_ne!(pids[0], pids[3]);
    });
}

#[test]
fn thread_pool_executor() {
    watchdog("thread_pool", LIMIT, || {
        let inits = Arc::new(AtomicUsize::new(0));
        let i2 = inits.clone();
        let ex = ThreadPoolExecutor::builder()
            .max_workers(3)
            .thread_name_prefix("tpe")
            .initializer(move || {
                i2.fetch_add(1, Ordering::SeqCst);
            })
            .build();
        assert_eq!(ex.max_workers(), 3);
        let base = String::from("value");
        let f = ex.submit(move || format!("{base}!"));
        assert_eq!(f.result().map(String::as_str), Ok("value!"));
        let name = ex.submit(|| std::thread::current().name().map(str::to_owned));
        assert!(name.result().unwrap().as_deref().is_some_and(|n| n.starts_with("tpe")));
        let boom = ex.submit(|| -> u8 { panic!("thread task failed") });
        assert!(matches!(boom.result(), Err(TaskError::Panicked { message }) if message == "thread task failed"));
        let out: Vec<_> = ex.map(|x: u32| x * 2, 0..10).collect::<Result<_, _>>().unwrap();
        assert_eq!(out, (0..10).map(|x| x * 2).collect::<Vec<_>>());
        let timed: Vec<_> = ex
            .map_with(
                |ms: u64| std::thread::sleep(Duration::from_millis(ms)),
                [1, 1500],
                Some(Duration::from_millis(200)),
            )
            .collect();
        assert!(matches!(timed.last(), Some(Err(TaskError::MapTimeout { .. }))), "{timed:?}");
        // as_completed order with threads.
        let futures: Vec<_> = [300u64, 20, 150]
            .into_iter()
            .map(|ms| {
                ex.submit(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    ms
                })
            })
            .collect();
        let order: Vec<u64> = as_completed(&futures, None).map(|f| *f.unwrap().result().unwrap()).collect();
        assert_eq!(order, [20, 150, 300]);
        // Cancel before start, then shutdown with cancel_futures.
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let blockers: Vec<_> = (0..3)
            .map(|_| {
                let g = gate.clone();
                ex.submit(move || drop(g.lock()))
            })
            .collect();
        let queued = ex.submit(|| 1u8);
        let queued2 = ex.submit(|| 2u8);
        assert!(queued.cancel());
        assert_eq!(queued.result(), Err(TaskError::Cancelled));
        drop(held);
        for b in &blockers {
            assert!(b.result().is_ok());
        }
        assert_eq!(queued2.result(), Ok(&2));
        ex.shutdown(true, true);
        assert_eq!(ex.submit(|| 3u8).result(), Err(TaskError::PoolClosed));
        assert!((1..=3).contains(&inits.load(Ordering::SeqCst)));
    });
}

#[test]
fn await_futures_in_tokio() {
    watchdog("tokio_futures", LIMIT, || {
        let ex = executor(2, StartMethod::ForkServer);
        let threads = ThreadPoolExecutor::new(2);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (a, b, c) = rt.block_on(async {
            let a = ex.submit(square, 6).await;
            let b = ex.submit(sleep_ms, 50).await;
            let c = threads.submit(|| "thread".to_owned()).await;
            (a, b, c)
        });
        assert_eq!(a, Ok(36));
        assert_eq!(b, Ok(50));
        assert_eq!(c.as_deref(), Ok("thread"));
    });
}
