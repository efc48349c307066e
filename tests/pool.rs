//! `Pool` across real worker processes: every method under every start method, and the
//! failure paths (a worker killed mid-task, a task past its timeout, an argument or
//! result too large, terminate with tasks in flight), with no zombie left behind.

multiproc::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multiproc::{GetTimeoutError, Pool, PoolError, StartMethod, TaskError};
use serde::{Deserialize, Serialize};
use watchdog::watchdog;

const LIMIT: Duration = Duration::from_secs(120);
const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];

fn pool(n: usize, method: StartMethod) -> Pool {
    Pool::builder().processes(n).start_method(method).build().expect("pool starts")
}

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn sum_triple((a, b, c): (u64, u64, u64)) -> u64 {
    a + b + c
}

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fail_on_odd(x: u64) -> u64 {
    assert!(x % 2 == 0, "odd input {x}");
    x
}

/// Kills its own worker with SIGKILL on item 42, mid-task.
fn die_on_42(x: u64) -> u64 {
    if x == 42 {
        let me = multiproc::sys::Pid::from_raw(std::process::id() as i32);
        let _ = multiproc::sys::signal::kill(me, multiproc::sys::signal::SIGKILL);
        std::thread::sleep(Duration::from_secs(60));
    }
    x
}

fn abort_on_7(x: u64) -> u64 {
    if x == 7 {
        std::process::abort();
    }
    x
}

fn exit_on_3(x: u64) -> u64 {
    if x == 3 {
        std::process::exit(3);
    }
    x
}

fn bytes_of_len(n: usize) -> Vec<u8> {
    vec![7u8; n]
}

fn len_of(v: Vec<u8>) -> usize {
    v.len()
}

/// Zombie children of this process (state `Z` in /proc, parent us).
fn our_zombies() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str()) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` has ended and been reaped (no /proc entry, or not our child any more).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
            let ppid = rest.split_whitespace().nth(1).unwrap_or("");
            ppid != std::process::id().to_string()
        }
    }
}

fn assert_no_zombies() {
    // Other tests of this binary run at the same time, and their children are briefly
    // zombies between exiting and being reaped by their own pools; so wait (boundedly)
    // for the list to empty rather than demand it at one instant.
    let mut z = our_zombies();
    for _ in 0..200 {
        if z.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
        z = our_zombies();
    }
    assert!(z.is_empty(), "zombie children left behind: {z:?}");
}

fn every_method(method: StartMethod) {
    let p = pool(2, method);
    assert_eq!(p.processes(), 2);
    assert_eq!(p.apply(square, 12), Ok(144));
    assert_eq!(p.apply_async(square, 5).get(), Ok(25));
    let expected: Vec<u64> = (0..100).map(|x| x * x).collect();
    assert_eq!(p.map(square, 0..100).unwrap(), expected);
    assert_eq!(p.map_chunked(square, 0..100, 7).unwrap(), expected);
    assert_eq!(p.map_async(square, 0..100).get().unwrap(), expected);
    assert_eq!(p.map_async_chunked(square, 0..100, 1).get().unwrap(), expected);
    let pairs: Vec<(u64, u64)> = (0..50).map(|i| (i, 10 * i)).collect();
    let sums: Vec<u64> = (0..50).map(|i| 11 * i).collect();
    assert_eq!(p.starmap(add, pairs.clone()).unwrap(), sums);
    assert_eq!(p.starmap_chunked(add, pairs.clone(), 4).unwrap(), sums);
    assert_eq!(p.starmap_async(add, pairs.clone()).get().unwrap(), sums);
    assert_eq!(p.starmap_async_chunked(add, pairs, 1).get().unwrap(), sums);
    assert_eq!(p.map(sum_triple, [(1, 2, 3), (4, 5, 6)]).unwrap(), [6, 15]);
    let imap: Vec<u64> = p.imap(square, 0..100).map(Result::unwrap).collect();
    assert_eq!(imap, expected);
    let imap: Vec<u64> = p.imap_chunked(square, 0..100, 9).map(Result::unwrap).collect();
    assert_eq!(imap, expected);
    let mut unordered: Vec<u64> = p.imap_unordered(square, 0..100).map(Result::unwrap).collect();
    unordered.sort_unstable();
    assert_eq!(unordered, expected);
    let mut unordered: Vec<u64> = p.imap_unordered_chunked(square, 0..100, 6).map(Result::unwrap).collect();
    unordered.sort_unstable();
    assert_eq!(unordered, expected);
    assert_eq!(p.map(square, Vec::<u64>::new()).unwrap(), Vec::<u64>::new());
    assert_eq!(p.imap(square, Vec::<u64>::new()).count(), 0);
    // The workers are other processes.
    let pids = p.map_chunked(pid_of, 0..20, 1).unwrap();
    assert!(pids.iter().all(|&pid| pid != std::process::id()));
    p.close();
    p.join().unwrap();
    assert_no_zombies();
}

#[test]
fn every_method_fork() {
    watchdog("every_method_fork", LIMIT, || every_method(StartMethod::Fork));
}

#[test]
fn every_method_spawn() {
    watchdog("every_method_spawn", LIMIT, || every_method(StartMethod::Spawn));
}

#[test]
fn every_method_forkserver() {
    watchdog("every_method_forkserver", LIMIT, || every_method(StartMethod::ForkServer));
}

#[test]
fn a_panic_fails_only_its_item() {
    watchdog("a_panic_fails_only_its_item", LIMIT, || {
        let p = pool(2, StartMethod::ForkServer);
        match p.apply(fail_on_odd, 3) {
            Err(TaskError::Panicked { message }) => assert_eq!(message, "odd input 3"),
            other => panic!("{other:?}"),
        }
        // Inside chunks too: each item alone.
        for chunksize in [1, 4] {
            let out: Vec<_> = p.imap_chunked(fail_on_odd, 0..10, chunksize).collect();
            for (i, r) in out.iter().enumerate() {
                if i % 2 == 0 {
                    assert_eq!(r, &Ok(i as u64));
                } else {
                    assert!(matches!(r, Err(TaskError::Panicked { message }) if message == &format!("odd input {i}")));
                }
            }
        }
        // map reports the first failure, as Python raises it.
        assert!(matches!(p.map(fail_on_odd, [2, 4, 5]), Err(TaskError::Panicked { .. })));
        assert_eq!(p.apply(square, 3), Ok(9));
    });
}

#[test]
fn callbacks_and_error_callbacks() {
    watchdog("callbacks_and_error_callbacks", LIMIT, || {
        let p = pool(2, StartMethod::Fork);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut results = Vec::new();
        for x in 0..6u64 {
            let (s, e) = (seen.clone(), errors.clone());
            results.push(p.apply_async_with(
                fail_on_odd,
                x,
                move |v: &u64| {
                    // Python: callbacks run in the parent process.
                    assert_eq!(multiproc::current_process().name, "MainProcess");
                    s.lock().unwrap().push(*v);
                },
                move |err: &TaskError| e.lock().unwrap().push(err.to_string()),
            ));
        }
        for (x, r) in results.into_iter().enumerate() {
            // The callback ran before the result became ready.
            let outcome = r.get();
            assert_eq!(outcome.is_ok(), x % 2 == 0);
        }
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, [0, 2, 4]);
        let errors = errors.lock().unwrap().clone();
        assert_eq!(errors.len(), 3);
        assert!(errors.iter().all(|e| e.contains("odd input")), "{errors:?}");

        let got = Arc::new(Mutex::new(None));
        let g = got.clone();
        let all =
            p.map_async_with(square, 0..10, Some(3), move |v: &Vec<u64>| *g.lock().unwrap() = Some(v.clone()), |_| {});
        assert_eq!(all.get().unwrap().len(), 10);
        assert_eq!(got.lock().unwrap().as_ref().map(Vec::len), Some(10));
        let failed = Arc::new(AtomicUsize::new(0));
        let f = failed.clone();
        let r = p.map_async_with(
            fail_on_odd,
            [2, 3, 4],
            None,
            |_| panic!("no success"),
            move |_| {
                f.fetch_add(1, Ordering::SeqCst);
            },
        );
        assert!(r.get().is_err());
        assert_eq!(failed.load(Ordering::SeqCst), 1);
        // A callback that panics does not hurt the pool.
        let r = p.apply_async_with(square, 2, |_| panic!("callback bug"), |_| {});
        assert_eq!(r.get(), Ok(4));
        assert_eq!(p.apply(square, 5), Ok(25));
    });
}

fn killed_worker(method: StartMethod) {
    let p = pool(2, method);
    let results: Vec<_> = (0..100u64).map(|i| p.apply_async(die_on_42, i)).collect();
    let outcomes: Vec<Result<u64, TaskError>> = results.into_iter().map(|r| r.get()).collect();
    let ok = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 99, "{outcomes:?}");
    match &outcomes[42] {
        Err(e @ TaskError::WorkerDied { exitcode: -9, .. }) => {
            assert_eq!(e.signal(), Some(9));
            assert!(e.to_string().contains("SIGKILL"), "{e}");
        }
        other => panic!("item 42: {other:?}"),
    }
    for (i, r) in outcomes.iter().enumerate().filter(|(i, _)| *i != 42) {
        assert_eq!(r, &Ok(i as u64));
    }
    // The pool goes on with a replacement worker.
    assert_eq!(p.map(square, 0..20).unwrap().len(), 20);
    assert_eq!(p.worker_pids().len(), 2);
    drop(p);
    assert_no_zombies();
}

#[test]
fn sigkilled_worker_fails_one_task_fork() {
    watchdog("sigkilled_worker_fails_one_task_fork", LIMIT, || killed_worker(StartMethod::Fork));
}

#[test]
fn sigkilled_worker_fails_one_task_forkserver() {
    watchdog("sigkilled_worker_fails_one_task_forkserver", LIMIT, || killed_worker(StartMethod::ForkServer));
}

#[test]
fn sigkilled_worker_fails_one_task_spawn() {
    watchdog("sigkilled_worker_fails_one_task_spawn", LIMIT, || killed_worker(StartMethod::Spawn));
}

#[test]
fn abort_and_exit_fail_one_task_even_inside_chunks() {
    watchdog("abort_and_exit", LIMIT, || {
        let p = pool(2, StartMethod::ForkServer);
        let out: Vec<_> = p.imap(abort_on_7, 0..20).collect();
        assert!(matches!(out[7], Err(TaskError::WorkerDied { exitcode: -6, .. })), "{:?}", out[7]);
        assert!(out[7].as_ref().unwrap_err().to_string().contains("SIGABRT"));
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 19);
        match p.apply(exit_on_3, 3) {
            Err(e @ TaskError::WorkerDied { exitcode: 3, .. }) => assert!(e.to_string().contains("exited with code 3")),
            other => panic!("{other:?}"),
        }
        // A chunk whose worker dies fails as a whole: its items never reported.
        let out: Vec<_> = p.imap_chunked(abort_on_7, 0..20, 5).collect();
        assert!(out[5..10].iter().all(|r| matches!(r, Err(TaskError::WorkerDied { .. }))), "{out:?}");
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 15);
        assert_eq!(p.apply(square, 6), Ok(36));
        drop(p);
        assert_no_zombies();
    });
}

#[test]
fn worker_killed_from_outside() {
    watchdog("worker_killed_from_outside", LIMIT, || {
        let p = pool(2, StartMethod::Fork);
        let slow: Vec<_> = (0..2).map(|_| p.apply_async(sleep_ms, 1500)).collect();
        std::thread::sleep(Duration::from_millis(200));
        let victim = p.worker_pids()[0];
        multiproc::sys::signal::kill(multiproc::sys::Pid::from_raw(victim as i32), multiproc::sys::signal::SIGKILL)
            .unwrap();
        let outcomes: Vec<_> = slow.into_iter().map(|r| r.get()).collect();
        let died: Vec<_> =
            outcomes.iter().filter(|r| matches!(r, Err(TaskError::WorkerDied { exitcode: -9, .. }))).collect();
        assert_eq!(died.len(), 1, "{outcomes:?}");
        assert!(matches!(died[0], Err(TaskError::WorkerDied { pid, .. }) if *pid == victim));
        assert_eq!(outcomes.iter().filter(|r| **r == Ok(1500)).count(), 1);
        assert!(!p.worker_pids().contains(&victim));
        assert_eq!(p.apply(square, 3), Ok(9));
    });
}

#[test]
fn task_timeout_kills_and_replaces_the_worker() {
    watchdog("task_timeout", LIMIT, || {
        let p = Pool::builder()
            .processes(2)
            .start_method(StartMethod::ForkServer)
            .task_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let pids_before = p.worker_pids();
        let stuck = p.apply_async(sleep_ms, 60_000);
        let quick: Vec<_> = (0..20).map(|i| p.apply_async(square, i)).collect();
        match stuck.get() {
            Err(e @ TaskError::Timeout { limit }) => {
                assert_eq!(limit, Duration::from_millis(300));
                assert!(e.to_string().contains("timeout"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        for (i, r) in quick.into_iter().enumerate() {
            assert_eq!(r.get(), Ok((i * i) as u64));
        }
        // The stuck worker was replaced; the pool goes on.
        assert_eq!(p.map(sleep_ms, [10, 20, 30]).unwrap(), [10, 20, 30]);
        let pids_after = p.worker_pids();
        assert_eq!(pids_after.len(), 2);
        assert!(pids_before.iter().any(|pid| !pids_after.contains(pid)), "{pids_before:?} -> {pids_after:?}");
        drop(p);
        assert_no_zombies();
    });
}

#[test]
fn maxtasksperchild_replaces_workers() {
    watchdog("maxtasksperchild", LIMIT, || {
        for method in METHODS {
            let p = Pool::builder().processes(1).maxtasksperchild(2).start_method(method).build().unwrap();
            let pids: Vec<u32> = (0..6).map(|i| p.apply(pid_of, i).unwrap()).collect();
            // One worker at a time, two tasks each: pid changes every second task.
            assert_eq!(pids[0], pids[1], "{pids:?}");
            assert_eq!(pids[2], pids[3], "{pids:?}");
            assert_eq!(pids[4], pids[5], "{pids:?}");
            assert!(pids[0] != pids[2] && pids[2] != pids[4] && pids[0] != pids[4], "{pids:?}");
            drop(p);
        }
        // With maps, a chunk counts as one task.
        let p = Pool::builder().processes(2).maxtasksperchild(1).start_method(StartMethod::Fork).build().unwrap();
        let pids = p.map_chunked(pid_of, 0..12, 3).unwrap();
        let distinct: std::collections::HashSet<_> = pids.iter().collect();
        assert_eq!(distinct.len(), 4, "{pids:?}");
        drop(p);
        assert_no_zombies();
    });
}

static INIT_RUNS: AtomicU32 = AtomicU32::new(0);

fn init_worker(tag: String) {
    assert_eq!(tag, "ready");
    INIT_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn init_count(_: u64) -> (u32, u32) {
    std::thread::sleep(Duration::from_millis(2));
    (std::process::id(), INIT_RUNS.load(Ordering::SeqCst))
}

fn bad_init(_: ()) {
    panic!("cannot initialize");
}

#[test]
fn initializer_runs_once_per_worker() {
    watchdog("initializer", LIMIT, || {
        for method in METHODS {
            let p = Pool::builder()
                .processes(2)
                .initializer(init_worker, "ready".to_string())
                .maxtasksperchild(10)
                .start_method(method)
                .build()
                .unwrap();
            let seen = p.map_chunked(init_count, 0..40, 1).unwrap();
            let mut per_pid: HashMap<u32, u32> = HashMap::new();
            for (pid, count) in seen {
                assert_eq!(count, 1, "the initializer ran {count} times in worker {pid} ({method})");
                per_pid.insert(pid, count);
            }
            // maxtasksperchild 10 over 40 tasks: at least 4 workers, each initialized.
            assert!(per_pid.len() >= 4, "{per_pid:?}");
            assert_eq!(INIT_RUNS.load(Ordering::SeqCst), 0, "the initializer ran in the parent");
        }
    });
}

#[test]
fn failing_initializer_breaks_the_pool_with_a_clear_error() {
    watchdog("failing_initializer", LIMIT, || {
        let p = Pool::builder().processes(2).initializer(bad_init, ()).start_method(StartMethod::Fork).build().unwrap();
        match p.apply(square, 2) {
            Err(e @ TaskError::InitializerFailed { .. }) => assert!(e.to_string().contains("cannot initialize"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(p.apply(square, 3), Err(TaskError::InitializerFailed { .. })));
        drop(p);
        assert_no_zombies();
    });
}

#[test]
fn close_then_apply_is_an_error_and_join_waits() {
    watchdog("close_then_apply", LIMIT, || {
        let p = pool(2, StartMethod::ForkServer);
        assert!(matches!(p.join(), Err(PoolError::StillRunning)));
        let pending: Vec<_> = (0..4).map(|_| p.apply_async(sleep_ms, 100)).collect();
        let pids = p.worker_pids();
        p.close();
        assert_eq!(p.apply(square, 2), Err(TaskError::PoolClosed));
        assert!(p.apply(square, 2).unwrap_err().to_string().contains("closed"));
        assert!(matches!(p.map(square, 0..3), Err(TaskError::PoolClosed)));
        // Work submitted before close still completes; waiting for it first (this thread
        // then receives the last results itself) must not keep join from returning.
        assert!(pending[0].wait_timeout(Duration::from_secs(60)));
        p.join().unwrap();
        for r in pending {
            assert_eq!(r.get(), Ok(100));
        }
        assert!(pids.iter().all(|&pid| gone(pid)), "workers still running after join: {pids:?}");
        // Python's idiom: map_async, close, get, join.
        let p = pool(2, StartMethod::Fork);
        let r = p.map_async(sleep_ms, [30; 6]);
        p.close();
        assert_eq!(r.get().unwrap(), [30; 6]);
        p.join().unwrap();
        assert_no_zombies();
    });
}

#[test]
fn terminate_fails_pending_results_and_reaps_everything() {
    watchdog("terminate", LIMIT, || {
        let p = pool(2, StartMethod::Fork);
        let pids = p.worker_pids();
        let pending: Vec<_> = (0..6).map(|_| p.apply_async(sleep_ms, 30_000)).collect();
        std::thread::sleep(Duration::from_millis(100));
        p.terminate();
        for r in pending {
            assert_eq!(r.get(), Err(TaskError::PoolTerminated));
        }
        assert!(pids.iter().all(|&pid| gone(pid)), "workers alive after terminate: {pids:?}");
        assert!(p.join().is_ok());
        assert_eq!(p.apply(square, 2), Err(TaskError::PoolTerminated));
        assert_no_zombies();
    });
}

#[test]
fn dropping_the_pool_kills_and_reaps_workers() {
    watchdog("drop", LIMIT, || {
        let p = pool(2, StartMethod::Spawn);
        let r = p.apply_async(sleep_ms, 30_000);
        let pids = p.worker_pids();
        assert_eq!(pids.len(), 2);
        drop(p);
        assert!(pids.iter().all(|&pid| gone(pid)), "{pids:?}");
        assert_eq!(r.get(), Err(TaskError::PoolTerminated));
        assert_no_zombies();
    });
}

#[test]
fn a_panicking_parent_leaves_no_workers() {
    watchdog("panicking_parent", LIMIT, || {
        let pids = Arc::new(Mutex::new(Vec::new()));
        let p2 = pids.clone();
        let result = std::thread::spawn(move || {
            let p = pool(2, StartMethod::ForkServer);
            *p2.lock().unwrap() = p.worker_pids();
            let _r = p.apply_async(sleep_ms, 30_000);
            panic!("the parent thread panics while the pool is busy");
        })
        .join();
        assert!(result.is_err());
        let pids = pids.lock().unwrap().clone();
        assert_eq!(pids.len(), 2);
        assert!(pids.iter().all(|&pid| gone(pid)), "{pids:?}");
        assert_no_zombies();
    });
}

/// An argument whose encoding fails.
#[derive(Debug, Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses to be encoded"))
    }
}

fn take_unencodable(_: Unencodable) -> u8 {
    1
}

fn make_unencodable(_: u8) -> Unencodable {
    Unencodable
}

/// Encodes unless it holds 1.
#[derive(Debug, Deserialize)]
struct Picky(u8);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 1 {
            return Err(serde::ser::Error::custom("this value refuses to be encoded"));
        }
        s.serialize_u8(self.0)
    }
}

fn picky(x: u8) -> Picky {
    Picky(x)
}

#[test]
fn unencodable_or_oversize_fails_only_that_task() {
    watchdog("oversize", LIMIT, || {
        for method in [StartMethod::Fork, StartMethod::ForkServer] {
            let p = Pool::builder().processes(2).start_method(method).max_message_size(64 << 10).build().unwrap();
            let big = p.apply_async(len_of, vec![1u8; 1 << 20]);
            let small = p.apply_async(len_of, vec![1u8; 1000]);
            match big.get() {
                Err(e @ TaskError::Encode(_)) => assert!(e.to_string().contains("limit"), "{e}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(small.get(), Ok(1000));
            match p.apply(bytes_of_len, 1 << 20) {
                Err(e @ TaskError::ResultNotSent(_)) => assert!(e.to_string().contains("limit"), "{e}"),
                other => panic!("{other:?}"),
            }
            match p.apply(take_unencodable, Unencodable) {
                Err(e @ TaskError::Encode(_)) => assert!(e.to_string().contains("refuses"), "{e}"),
                other => panic!("{other:?}"),
            }
            assert!(matches!(p.apply(make_unencodable, 0), Err(TaskError::ResultNotSent(m)) if m.contains("refuses")));
            // In a chunk, an item whose result cannot be encoded fails alone...
            let out: Vec<_> = p.imap_chunked(picky, [0, 1, 2], 3).collect();
            assert!(matches!(out[0], Ok(Picky(0))) && matches!(out[2], Ok(Picky(2))), "{out:?}");
            assert!(matches!(&out[1], Err(TaskError::ResultNotSent(m)) if m.contains("refuses")), "{out:?}");
            // ...while results that are too large together fail their chunk (they travel
            // as one message); other chunks are not affected.
            let out: Vec<_> = p.imap_chunked(bytes_of_len, [10, 1 << 20, 20, 30], 3).collect();
            assert!(out[..3].iter().all(|r| matches!(r, Err(TaskError::ResultNotSent(_)))));
            assert_eq!(out[3].as_ref().map(Vec::len), Ok(30));
            // Same pool, still fine.
            assert_eq!(p.map(square, 0..10).unwrap().len(), 10);
        }
    });
}

#[test]
fn imap_consumes_an_endless_iterator_lazily() {
    watchdog("imap_lazy", LIMIT, || {
        let p = pool(2, StartMethod::ForkServer);
        let pulled = std::cell::Cell::new(0u64);
        let input = (0u64..).inspect(|_| pulled.set(pulled.get() + 1));
        let firsts: Vec<u64> = p.imap(square, input).take(10).map(Result::unwrap).collect();
        assert_eq!(firsts, (0..10).map(|x| x * x).collect::<Vec<_>>());
        assert!(pulled.get() < 200, "the endless input was pulled {} times", pulled.get());
        // Unordered and chunked too.
        let pulled = std::cell::Cell::new(0u64);
        let input = (0u64..).inspect(|_| pulled.set(pulled.get() + 1));
        let n = p.imap_unordered_chunked(square, input, 10).take(100).count();
        assert_eq!(n, 100);
        assert!(pulled.get() < 2000, "pulled {}", pulled.get());
    });
}

#[test]
fn timeouts_hand_back_the_wait() {
    watchdog("timeouts", LIMIT, || {
        let p = pool(2, StartMethod::Fork);
        let r = p.apply_async(sleep_ms, 400);
        assert!(!r.ready());
        assert_eq!(r.successful(), None);
        assert!(!r.wait_timeout(Duration::from_millis(10)));
        let r = match r.get_timeout(Duration::from_millis(10)) {
            Err(GetTimeoutError::Timeout(r)) => r,
            other => panic!("{other:?}"),
        };
        r.wait();
        assert!(r.ready());
        assert_eq!(r.successful(), Some(true));
        assert_eq!(r.get_timeout(Duration::from_secs(30)).unwrap(), 400);
        let failing = p.apply_async(fail_on_odd, 1);
        failing.wait();
        assert_eq!(failing.successful(), Some(false));
        assert!(matches!(
            failing.get_timeout(Duration::from_secs(30)),
            Err(GetTimeoutError::Failed(TaskError::Panicked { .. }))
        ));

        let mut it = p.imap(sleep_ms, [300, 1]);
        assert!(matches!(it.next_timeout(Duration::from_millis(10)), Some(Err(GetTimeoutError::Timeout(())))));
        assert_eq!(it.next_timeout(Duration::from_secs(30)).map(|r| r.ok()), Some(Some(300)));
        assert_eq!(it.next(), Some(Ok(1)));
        assert!(it.next_timeout(Duration::from_millis(1)).is_none());
    });
}

#[test]
fn await_an_async_result_in_tokio() {
    watchdog("tokio", LIMIT, || {
        let p = pool(2, StartMethod::ForkServer);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (a, b, c) = rt.block_on(async {
            let a = p.apply_async(square, 7).await;
            let b = p.apply_async(sleep_ms, 50);
            let c = p.map_async(square, 0..4);
            (a, b.await, c.await)
        });
        assert_eq!(a, Ok(49));
        assert_eq!(b, Ok(50));
        assert_eq!(c, Ok(vec![0, 1, 4, 9]));
    });
}
