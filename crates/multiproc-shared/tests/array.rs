//! `Array`, `RawValue` and `RawArray` across real processes, under every start method:
//! arrays written by children and read by the parent, whole-slice work under one lock,
//! atomics on raw values, owner death on an array, and mismatched handles refused.

multiproc_process::test_init!();

#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::sync::atomic::Ordering;

use multiproc_codec::{Bincode, decode_with_fds, encode_with_fds};
use multiproc_shared::{Array, LockError, RawArray, RawValue};
use multiproc_sync::Event;
use procs::{LONG, METHODS, kill, run, start};

const PER_CHILD: usize = 1000;

/// Child `k` fills its own stretch of the array with `k * 1_000_000 + i`, a few
/// elements per lock so that the children interleave.
fn fill_part((a, k): (Array<u64>, usize)) -> usize {
    for chunk in (0..PER_CHILD).collect::<Vec<_>>().chunks(7) {
        let mut g = a.lock().expect("lock");
        for &i in chunk {
            g[k * PER_CHILD + i] = (k * 1_000_000 + i) as u64;
        }
    }
    k
}

#[test]
fn children_write_an_array_that_the_parent_reads() {
    watchdog::run("children_write_an_array_that_the_parent_reads", || {
        for method in METHODS {
            let a = Array::<u64>::zeroed(3 * PER_CHILD).unwrap();
            assert_eq!(a.len(), 3 * PER_CHILD);
            let kids: Vec<_> = (0..3).map(|k| start(fill_part, (a.clone(), k), method)).collect();
            for (k, mut kid) in kids.into_iter().enumerate() {
                assert_eq!(kid.join().unwrap(), k);
            }
            let got = a.to_vec().unwrap();
            for k in 0..3 {
                for i in 0..PER_CHILD {
                    assert_eq!(got[k * PER_CHILD + i], (k * 1_000_000 + i) as u64, "{method}: element {k}/{i}");
                }
            }
            assert_eq!(a.load(2 * PER_CHILD + 5).unwrap(), 2_000_005);
        }
    });
}

/// Rotates the whole array by one under a single lock, `n` times: with the lock, the
/// array always stays a rotation of the original, whoever interleaves.
fn rotate((a, n): (Array<i32>, usize)) {
    for _ in 0..n {
        a.lock().expect("lock").rotate_left(1);
    }
}

#[test]
fn whole_slice_operations_under_one_lock_stay_consistent() {
    watchdog::run("whole_slice_operations_under_one_lock_stay_consistent", || {
        for method in METHODS {
            let original: Vec<i32> = (0..64).collect();
            let a = Array::from_slice(&original).unwrap();
            let kids: Vec<_> = (0..2).map(|_| start(rotate, (a.clone(), 999), method)).collect();
            rotate((a.clone(), 1000));
            for mut k in kids {
                k.join().unwrap();
            }
            // 2998 rotations by one of 64 elements: 2998 % 64 == 54.
            let mut expected = original.clone();
            expected.rotate_left(2998 % 64);
            assert_eq!(a.to_vec().unwrap(), expected, "{method}");
            a.copy_from_slice(&original).unwrap();
            assert_eq!(a.to_vec().unwrap(), original);
        }
    });
}

fn die_mid_update((a, held): (Array<u8>, Event)) {
    let mut g = a.lock().expect("lock");
    g[..2].fill(9); // half of a four-element update
    held.set();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

#[test]
fn an_array_holder_killed_mid_update_is_reported() {
    watchdog::run("an_array_holder_killed_mid_update_is_reported", || {
        for method in METHODS {
            let a = Array::from_slice(&[1u8, 1, 1, 1]).unwrap();
            let held = Event::new().unwrap();
            let mut holder = start(die_mid_update, (a.clone(), held.clone()), method);
            assert!(held.wait_timeout(LONG), "{method}: the child never took the lock");
            kill(&mut holder);
            match a.to_vec() {
                Err(LockError::OwnerDied(seen)) => assert_eq!(seen, [9, 9, 1, 1], "{method}"),
                other => panic!("{method}: expected OwnerDied, got {other:?}"),
            }
            // Repair: finish the update, then say so.
            match a.lock() {
                Err(LockError::OwnerDied(mut g)) => {
                    g.fill(9);
                    g.mark_consistent();
                }
                other => panic!("{method}: expected OwnerDied, got {:?}", other.map(drop).map_err(|e| e.map(drop))),
            }
            assert_eq!(a.to_vec().unwrap(), [9, 9, 9, 9]);
        }
    });
}

fn atomic_adds((v, n): (RawValue<u64>, u64)) {
    for _ in 0..n {
        v.as_atomic().fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn raw_value_atomics_add_up_across_processes() {
    watchdog::run("raw_value_atomics_add_up_across_processes", || {
        for method in METHODS {
            let v = RawValue::new(0u64).unwrap();
            let kids: Vec<_> = (0..4).map(|_| start(atomic_adds, (v.clone(), 10_000), method)).collect();
            for mut k in kids {
                k.join().unwrap();
            }
            assert_eq!(v.load(), 40_000, "{method}");
            v.store(3);
            assert_eq!(v.as_atomic().load(Ordering::SeqCst), 3);
        }
    });
}

/// Writes this child's stride of the raw array element by element, then returns what
/// it reads of the whole (its own stores must be there).
fn raw_stride((a, k, kids): (RawArray<f64>, usize, usize)) -> Vec<f64> {
    for i in (k..a.len()).step_by(kids) {
        a.store(i, i as f64 * 0.5);
    }
    a.to_vec()
}

#[test]
fn raw_arrays_written_in_disjoint_parts() {
    watchdog::run("raw_arrays_written_in_disjoint_parts", || {
        for method in METHODS {
            let a = RawArray::<f64>::zeroed(301).unwrap();
            let kids: Vec<_> = (0..3).map(|k| start(raw_stride, (a.clone(), k, 3), method)).collect();
            for (k, mut kid) in kids.into_iter().enumerate() {
                let seen = kid.join().unwrap();
                for i in (k..301).step_by(3) {
                    assert_eq!(seen[i], i as f64 * 0.5, "{method}: child {k} does not see its own store {i}");
                }
            }
            let all = a.to_vec();
            assert!(all.iter().enumerate().all(|(i, x)| *x == i as f64 * 0.5), "{method}: {all:?}");
            let mut middle = [0.0; 3];
            a.read(10, &mut middle);
            assert_eq!(middle, [5.0, 5.5, 6.0]);
            a.write(10, &[1.0, 2.0]);
            assert_eq!(a.load(11), 2.0);
        }
    });
}

fn count_ones(a: RawArray<u32>) -> u32 {
    a.as_atomics().iter().map(|x| x.fetch_add(1, Ordering::SeqCst)).sum()
}

#[test]
fn raw_array_atomics_are_shared() {
    watchdog::run("raw_array_atomics_are_shared", || {
        for method in METHODS {
            let a = RawArray::from_slice(&[0u32; 5]).unwrap();
            assert_eq!(run(count_ones, a.clone(), method), 0);
            assert_eq!(run(count_ones, a.clone(), method), 5);
            assert_eq!(a.to_vec(), [2; 5], "{method}");
        }
    });
}

fn send<T: serde::Serialize, U: serde::de::DeserializeOwned>(value: &T) -> Result<U, String> {
    let codec = Bincode::new();
    let mut bytes = Vec::new();
    let fds = encode_with_fds(&codec, value, &mut bytes).map_err(|e| e.to_string())?;
    decode_with_fds(&codec, &bytes, fds).map_err(|e| e.to_string())
}

#[test]
fn mismatched_array_handles_are_refused() {
    let a = Array::from_slice(&[1u16, 2, 3]).unwrap();
    let b: Array<u16> = send(&a).unwrap();
    assert_eq!(b.to_vec().unwrap(), [1, 2, 3]);
    let err = send::<_, Array<i16>>(&a).unwrap_err();
    assert!(err.contains("Array<i16>") && err.contains("another element type"), "{err}");
    let err = send::<_, RawArray<u16>>(&a).unwrap_err();
    assert!(err.contains("expected a multiproc-shared RawArray<u16>, got an Array"), "{err}");
    let raw = RawArray::from_slice(&[1u8]).unwrap();
    let err = send::<_, Array<u8>>(&raw).unwrap_err();
    assert!(err.contains("got a RawArray"), "{err}");
    let err = send::<_, RawValue<u8>>(&raw).unwrap_err();
    assert!(err.contains("got a RawArray"), "{err}");
    // Zero-length arrays are fine.
    let empty = Array::<u64>::zeroed(0).unwrap();
    assert!(empty.is_empty());
    let empty: Array<u64> = send(&empty).unwrap();
    assert_eq!(empty.to_vec().unwrap(), Vec::<u64>::new());
}

#[test]
#[should_panic(expected = "index 3 out of range for an Array of length 3")]
fn an_index_past_the_end_panics_like_a_slice() {
    let a = Array::from_slice(&[1u16, 2, 3]).unwrap();
    let _ = a.load(3);
}
