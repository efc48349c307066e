//! The process-wide start method (`set_start_method`, `get_start_method`), contexts
//! (`get_context`), and the process-wide authkey (`set_authkey`).
//!
//! Both are global to the test binary, so this file holds a single test that changes
//! them in a fixed order.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use multiproc_process::{
    ContextError, Process, StartMethod, authkey, current_process, get_all_start_methods, get_context, get_start_method,
    set_authkey, set_start_method,
};
use watchdog::{METHODS, started, watchdog};

/// How the child was started, and what it sees as the default method.
fn methods_seen(_: ()) -> (Option<StartMethod>, StartMethod) {
    (current_process().started_by, get_start_method())
}

fn key_seen(_: ()) -> Vec<u8> {
    current_process().authkey().to_vec()
}

#[test]
fn start_method_context_and_authkey() {
    watchdog("start_method_context_and_authkey", || {
        // Defaults: forkserver, as in Python 3.14.
        assert_eq!(get_start_method(), StartMethod::ForkServer);
        assert_eq!(StartMethod::default(), StartMethod::ForkServer);
        let all = get_all_start_methods();
        for m in METHODS {
            assert!(all.contains(&m), "{m} missing from get_all_start_methods()");
        }
        let mut p = started(Process::new(methods_seen, ()));
        assert_eq!(p.start_method(), StartMethod::ForkServer);
        assert_eq!(p.join().unwrap(), (Some(StartMethod::ForkServer), StartMethod::ForkServer));

        // Set once; setting the same method again is fine, another one is an error.
        set_start_method(StartMethod::Spawn).unwrap();
        assert_eq!(get_start_method(), StartMethod::Spawn);
        set_start_method(StartMethod::Spawn).unwrap();
        let err = set_start_method(StartMethod::Fork).unwrap_err();
        assert_eq!(err, ContextError { current: StartMethod::Spawn, requested: StartMethod::Fork });
        assert!(err.to_string().contains("get_context"), "the error names the way out: {err}");
        assert_eq!(get_start_method(), StartMethod::Spawn, "a refused set changes nothing");

        // New processes use it; a process's own choice still wins.
        let mut p = started(Process::new(methods_seen, ()));
        assert_eq!(p.start_method(), StartMethod::Spawn);
        assert_eq!(p.join().unwrap(), (Some(StartMethod::Spawn), StartMethod::Spawn));
        let p = Process::new(methods_seen, ()).with_start_method(StartMethod::Fork);
        assert_eq!(p.start_method(), StartMethod::Fork);

        // A context picks a method for its processes, whatever the default. Every child
        // sees the parent's default method as its own.
        for m in METHODS {
            let ctx = get_context(m);
            assert_eq!(ctx.start_method(), m);
            let mut p = started(ctx.process(methods_seen, ()));
            assert_eq!(p.start_method(), m, "[{m}]");
            assert_eq!(p.join().unwrap(), (Some(m), StartMethod::Spawn), "[{m}] child's view");
        }

        // Names round-trip like Python's strings.
        for m in METHODS {
            assert_eq!(m.name().parse::<StartMethod>(), Ok(m));
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(StartMethod::ForkServer.name(), "forkserver");
        let bad = "threads".parse::<StartMethod>().unwrap_err();
        assert!(bad.contains("threads") && bad.contains("forkserver"), "{bad}");

        // A new authkey is inherited by children started afterwards, under every method.
        let old = authkey();
        let new: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5c).collect();
        assert_ne!(old, new);
        set_authkey(&new);
        assert_eq!(authkey(), new);
        assert_eq!(current_process().authkey(), new.as_slice());
        for m in METHODS {
            let mut p = started(Process::new(key_seen, ()).with_start_method(m));
            assert_eq!(p.join().unwrap(), new, "[{m}] child did not inherit the new authkey");
        }
    });
}
