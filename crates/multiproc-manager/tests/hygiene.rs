//! Managers leave nothing behind, under every start method: dropping the last handle
//! shuts the server down and reaps it (proxies then say `ServerGone`), no zombie
//! remains, no file appears in /tmp or /dev/shm, and no descriptor stays open.
//!
//! One test in its own binary, so that no other test's processes and files blur the
//! picture.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::collections::BTreeSet;
use std::time::Duration;

use multiproc_manager::{DictProxy, Manager, QueueProxy};
use multiproc_pipe::Address;
use multiproc_process::{Process, StartMethod};
use watchdog::{METHODS, eventually, is_dead, our_zombies, started, watchdog};

/// The entries of `dir` that this test could have made: multiproc names carry the pid
/// of the process that chose them (other programs on the machine may come and go).
fn listing(dir: &str) -> BTreeSet<String> {
    let mine = format!("-{}-", std::process::id());
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.contains(&mine))
                .collect()
        })
        .unwrap_or_default()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn work((d, q): (DictProxy<u32, u32>, QueueProxy<u32>)) {
    for i in 0..100 {
        d.update_with(&(i % 3), |n| n.unwrap_or(0) + 1).expect("update_with");
        q.put(i).expect("put");
    }
}

/// A manager used by two children, then dropped; returns the server's pid.
fn one_round(method: StartMethod, address: Option<Address>) -> u32 {
    let mut b = Manager::builder().start_method(method);
    if let Some(a) = address {
        b = b.address(a);
    }
    let manager = b.start().expect("start");
    let pid = manager.server_pid().expect("server pid");
    let d: DictProxy<u32, u32> = manager.dict().unwrap();
    let q: QueueProxy<u32> = manager.queue().unwrap();
    let mut kids: Vec<_> =
        (0..2).map(|_| started(Process::new(work, (d.clone(), q.clone())).with_start_method(method))).collect();
    for k in &mut kids {
        k.join().unwrap();
    }
    assert_eq!(d.values().unwrap().iter().sum::<u32>(), 200);
    assert_eq!(q.qsize().unwrap(), 200);
    let clone = manager.clone();
    drop(manager);
    assert!(d.len().is_ok(), "a clone of the handle keeps the server");
    drop(clone);
    // The last handle is gone: so is the server, reaped.
    assert!(is_dead(pid));
    let e = d.len().unwrap_err();
    assert!(e.is_server_gone(), "{e}");
    pid
}

#[test]
fn managers_leave_nothing_behind() {
    watchdog("hygiene", || {
        // Warm up what is created once per process (the fork server, the codec).
        one_round(StartMethod::ForkServer, None);
        let tmp = listing("/tmp");
        let shm = listing("/dev/shm");
        let fds = open_fds();
        for method in METHODS {
            for address in [None, Some(Address::unique_unix()), Some(Address::localhost_any_port())] {
                let pid = one_round(method, address.clone());
                assert!(our_zombies().is_empty(), "[{method}] zombies: {:?}", our_zombies());
                assert!(is_dead(pid));
                if let Some(Address::Unix(path)) = address {
                    assert!(!path.exists(), "[{method}] {} was left behind", path.display());
                }
            }
        }
        assert_eq!(listing("/tmp").difference(&tmp).collect::<Vec<_>>(), Vec::<&String>::new(), "new files in /tmp");
        assert_eq!(
            listing("/dev/shm").difference(&shm).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "new files in /dev/shm"
        );
        assert!(
            eventually(Duration::from_secs(10), || open_fds() == fds),
            "descriptors left open: {} before, {} after",
            fds,
            open_fds()
        );
    });
}
