//! `Value` across real processes, under every start method: locked increments that
//! must add up exactly, one-shot load/store/update, structs, owner death (a holder
//! SIGKILLed with the lock held), and handles of the wrong type or origin refused.

multiproc_process::test_init!();

#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use bytemuck::{Pod, Zeroable};
use multiproc_codec::{Bincode, decode_with_fds, encode_with_fds};
use multiproc_shared::{Array, LockError, RawValue, TryLockError, Value};
use multiproc_sync::Event;
use procs::{LONG, METHODS, kill, run, start};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn increment((counter, n): (Value<u64>, u64)) -> u64 {
    for _ in 0..n {
        // A read, then a write, under the lock: lost updates would show in the total.
        let mut guard = counter.lock().expect("lock");
        let seen = *guard;
        *guard = seen + 1;
    }
    n
}

#[test]
fn four_processes_times_ten_thousand_locked_increments() {
    watchdog::run("four_processes_times_ten_thousand_locked_increments", || {
        for method in METHODS {
            let counter = Value::new(0u64).unwrap();
            let children: Vec<_> = (0..4).map(|_| start(increment, (counter.clone(), 10_000), method)).collect();
            for mut child in children {
                assert_eq!(child.join().unwrap(), 10_000, "{method}");
            }
            assert_eq!(counter.load().unwrap(), 40_000, "{method}: increments were lost");
            assert!(!counter.is_locked());
        }
    });
}

fn store_and_update(v: Value<i32>) -> i32 {
    let before = v.load().expect("load");
    v.store(before * 10).expect("store");
    v.update(|x| {
        *x += 1;
        *x
    })
    .expect("update")
}

#[test]
fn load_store_and_update_cross_processes() {
    watchdog::run("load_store_and_update_cross_processes", || {
        for method in METHODS {
            let v = Value::new(4i32).unwrap();
            assert_eq!(run(store_and_update, v.clone(), method), 41, "{method}");
            assert_eq!(v.load().unwrap(), 41, "{method}");
        }
    });
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
struct Stats {
    count: u64,
    sum: f64,
    max: i32,
    _pad: u32,
}

fn record((stats, samples): (Value<Stats>, Vec<i32>)) {
    for s in samples {
        let mut g = stats.lock().expect("lock");
        g.count += 1;
        g.sum += f64::from(s);
        g.max = g.max.max(s);
    }
}

#[test]
fn a_struct_is_updated_as_a_whole_under_one_lock() {
    watchdog::run("a_struct_is_updated_as_a_whole_under_one_lock", || {
        for method in METHODS {
            let stats = Value::new(Stats::default()).unwrap();
            let kids: Vec<_> = (0..3)
                .map(|k| start(record, (stats.clone(), (0..500).map(|i| i * (k + 1)).collect()), method))
                .collect();
            for mut k in kids {
                k.join().unwrap();
            }
            let s = stats.load().unwrap();
            assert_eq!(s.count, 1500, "{method}");
            assert_eq!(s.sum, (0..500).map(|i| f64::from(i) * 6.0).sum::<f64>(), "{method}");
            assert_eq!(s.max, 499 * 3, "{method}");
        }
    });
}

fn hold_until_killed((v, held): (Value<u64>, Event)) {
    let mut guard = v.lock().expect("lock");
    *guard = 7; // a "half-done" update, never finished
    held.set();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// Loads, and reports whether the load was told about a dead holder.
fn load_reporting(v: Value<u64>) -> (u64, bool) {
    match v.load() {
        Ok(x) => (x, false),
        Err(LockError::OwnerDied(x)) => (x, true),
        Err(e) => panic!("load failed: {e}"),
    }
}

#[test]
fn a_holder_killed_with_the_lock_is_reported_and_the_guard_works() {
    watchdog::run("a_holder_killed_with_the_lock_is_reported_and_the_guard_works", || {
        for method in METHODS {
            let v = Value::new(1u64).unwrap();
            let held = Event::new().unwrap();
            let mut holder = start(hold_until_killed, (v.clone(), held.clone()), method);
            assert!(held.wait_timeout(LONG), "{method}: the child never took the lock");
            assert!(matches!(v.try_lock(), Err(TryLockError::WouldBlock)), "{method}");
            kill(&mut holder);

            let mut guard = match v.lock() {
                Err(LockError::OwnerDied(g)) => g,
                other => panic!("{method}: expected OwnerDied, got {:?}", other.map(drop).map_err(|e| e.map(drop))),
            };
            assert_eq!(*guard, 7, "{method}: the dead holder's write is visible");
            *guard = 8; // the guard works like any other
            drop(guard);
            // Not marked consistent: the next locker, in another process, is told too.
            assert_eq!(run(load_reporting, v.clone(), method), (8, true), "{method}");
            // Repaired: nobody is told any more.
            match v.lock() {
                Err(LockError::OwnerDied(g)) => g.mark_consistent(),
                other => panic!("{method}: expected OwnerDied, got {:?}", other.map(drop).map_err(|e| e.map(drop))),
            }
            assert_eq!(run(load_reporting, v.clone(), method), (8, false), "{method}");
            assert_eq!(v.load().unwrap(), 8);
        }
    });
}

#[test]
fn locking_twice_on_one_thread_is_an_error_not_a_hang() {
    watchdog::run("locking_twice_on_one_thread_is_an_error_not_a_hang", || {
        let v = Value::new(0u8).unwrap();
        let copy = v.clone();
        let guard = v.lock().unwrap();
        assert!(matches!(copy.lock(), Err(LockError::Deadlock)));
        assert!(matches!(copy.try_lock(), Err(TryLockError::Deadlock)));
        assert!(matches!(copy.load(), Err(LockError::Deadlock)));
        drop(guard);
        assert_eq!(copy.load().unwrap(), 0);
        let guard = v.try_lock_for(std::time::Duration::from_millis(10)).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = copy.try_lock_for(std::time::Duration::from_millis(20));
                assert!(matches!(r, Err(TryLockError::Timeout)));
            });
        });
        drop(guard);
    });
}

/// Sends `value` through the codec as a process argument would travel (descriptors out
/// of band), decoding it as `U`.
fn send<T: Serialize, U: DeserializeOwned>(value: &T) -> Result<U, String> {
    let codec = Bincode::new();
    let mut bytes = Vec::new();
    let fds = encode_with_fds(&codec, value, &mut bytes).map_err(|e| e.to_string())?;
    decode_with_fds(&codec, &bytes, fds).map_err(|e| e.to_string())
}

#[test]
fn the_wrong_type_or_a_foreign_segment_is_refused() {
    let v = Value::new(5u64).unwrap();
    let same: Value<u64> = send(&v).unwrap();
    assert_eq!(same.load().unwrap(), 5);

    let err = send::<_, Value<u32>>(&v).unwrap_err();
    assert!(err.contains("Value<u32>") && err.contains("8-byte elements"), "{err}");
    let err = send::<_, Value<i64>>(&v).unwrap_err();
    assert!(err.contains("another element type"), "same size, other type: {err}");
    let err = send::<_, Value<[u8; 8]>>(&v).unwrap_err();
    assert!(err.contains("another element type"), "{err}");
    let err = send::<_, Array<u64>>(&v).unwrap_err();
    assert!(err.contains("expected a multiproc-shared Array<u64>, got a Value"), "{err}");
    let err = send::<_, RawValue<u64>>(&v).unwrap_err();
    assert!(err.contains("got a Value"), "{err}");

    // A sealed memfd that is not ours, and something that is not shared memory at all.
    let seg = multiproc_sys::shm::Segment::create("foreign", 4096).unwrap();
    let err = send::<_, Value<u64>>(&multiproc_codec::Fd::new(seg.try_clone_fd().unwrap())).unwrap_err();
    assert!(err.contains("not a multiproc-shared Value<u64>"), "{err}");
    let (r, _w) = multiproc_sys::fd::pipe().unwrap();
    let err = send::<_, Value<u64>>(&multiproc_codec::Fd::new(r)).unwrap_err();
    assert!(err.contains("not a usable shared-memory segment"), "{err}");
    // A lock is not a value either.
    let err = send::<_, Value<u64>>(&multiproc_sync::Lock::new().unwrap()).unwrap_err();
    assert!(err.contains("not a multiproc-shared"), "{err}");
}
