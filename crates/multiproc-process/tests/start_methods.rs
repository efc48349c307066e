//! The same targets give the same results under fork, spawn and forkserver: return
//! values of many types, the `Run` trait, what a child knows about itself and its parent,
//! and children starting children.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::collections::BTreeMap;
use std::fmt::Debug;

use multiproc_process::{Process, Run, StartMethod, current_process, parent_process};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use watchdog::{METHODS, started, watchdog};

fn echo<T>(x: T) -> T {
    x
}

/// Runs `echo(value)` in a child and checks the value comes back unchanged.
fn round_trip<T>(method: StartMethod, value: T)
where
    T: Serialize + DeserializeOwned + Send + Clone + PartialEq + Debug + 'static,
{
    let mut p = started(Process::new(echo::<T>, value.clone()).with_start_method(method));
    match p.join() {
        Ok(back) => assert_eq!(back, value, "[{method}] value changed on the way through a child"),
        Err(e) => panic!("[{method}] join failed for {value:?}: {e}"),
    }
    assert_eq!(p.exitcode(), Some(0), "[{method}] exit code after a normal return");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
    label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(Point, f64),
    Poly { corners: Vec<Point>, closed: bool },
    Nested(Option<Box<Shape>>),
}

fn point(i: u32) -> Point {
    Point { x: f64::from(i) * 0.5, y: -f64::from(i), label: format!("p{i}") }
}

#[test]
fn return_values_of_many_types() {
    watchdog("return_values_of_many_types", || {
        for m in METHODS {
            round_trip(m, 0u8);
            round_trip(m, -42i32);
            round_trip(m, i64::MIN);
            round_trip(m, u128::MAX);
            round_trip(m, 2.5f64);
            round_trip(m, 'λ');
            round_trip(m, true);
            round_trip(m, String::new());
            round_trip(m, "héllo wörld ✓\n\0tail".to_owned());
            round_trip(m, Vec::<u64>::new());
            round_trip(m, (0..1000u64).map(|i| i * i).collect::<Vec<_>>());
            round_trip(m, point(3));
            round_trip(m, Shape::Empty);
            round_trip(m, Shape::Circle(point(1), 2.0));
            round_trip(m, Shape::Poly { corners: (0..5).map(point).collect(), closed: true });
            round_trip(m, Shape::Nested(Some(Box::new(Shape::Nested(None)))));
            round_trip(m, Some(7u16));
            round_trip(m, None::<String>);
            round_trip(m, (1u8, "two".to_owned(), 3.0f32, ['4', '5']));
            round_trip(m, Ok::<u32, String>(5));
            round_trip(m, Err::<u32, String>("bad".into()));
            round_trip(m, BTreeMap::from([("a".to_owned(), vec![1, 2]), ("b".to_owned(), vec![])]));
            round_trip(m, ());
        }
    });
}

fn summarise(xs: Vec<i64>) -> (usize, i64, Option<i64>, String) {
    (xs.len(), xs.iter().sum(), xs.iter().copied().max(), format!("{xs:?}"))
}

fn nothing(_: u32) {}

#[test]
fn targets_compute_in_the_child() {
    watchdog("targets_compute_in_the_child", || {
        for m in METHODS {
            let mut p = started(Process::new(summarise, vec![3, -1, 10]).with_start_method(m));
            assert_eq!(p.join().unwrap(), (3, 12, Some(10), "[3, -1, 10]".to_owned()), "[{m}]");

            let mut p = started(Process::new(nothing, 1).with_start_method(m));
            assert_eq!(p.join().unwrap(), (), "[{m}] unit return");
            assert_eq!(p.exitcode(), Some(0), "[{m}]");

            // A non-capturing closure is a `fn` too.
            let mut p = started(Process::new(|s: String| s.to_uppercase(), "shout".to_owned()).with_start_method(m));
            assert_eq!(p.join().unwrap(), "SHOUT", "[{m}] closure target");
        }
    });
}

/// A Python-style `Process` subclass: data plus a `run` method.
#[derive(Serialize, Deserialize)]
struct WordCount {
    text: String,
    min_len: usize,
}

impl Run for WordCount {
    type Output = BTreeMap<String, u32>;
    fn run(self) -> Self::Output {
        let mut counts = BTreeMap::new();
        for w in self.text.split_whitespace().filter(|w| w.len() >= self.min_len) {
            *counts.entry(w.to_lowercase()).or_insert(0) += 1;
        }
        counts
    }
}

#[derive(Serialize, Deserialize)]
struct Failing;

impl Run for Failing {
    type Output = u8;
    fn run(self) -> u8 {
        watchdog::silence_panics();
        panic!("run() refused")
    }
}

#[test]
fn run_trait() {
    watchdog("run_trait", || {
        for m in METHODS {
            let job = WordCount { text: "the cat and The dog and a cat".into(), min_len: 3 };
            let mut p = started(Process::from_run(job).with_start_method(m));
            let want = BTreeMap::from([("and".into(), 2), ("cat".into(), 2), ("dog".into(), 1), ("the".into(), 2)]);
            assert_eq!(p.join().unwrap(), want, "[{m}]");

            let mut p = started(Process::from_run(Failing).with_start_method(m).with_name("failing-run"));
            match p.join() {
                Err(multiproc_process::JoinError::Panicked { message }) => {
                    assert_eq!(message, "run() refused", "[{m}]")
                }
                other => panic!("[{m}] expected a panic from run(), got {other:?}"),
            }
        }
    });
}

/// What a child reports about itself.
#[derive(Debug, Serialize, Deserialize)]
struct SelfView {
    name: String,
    pid: u32,
    daemon: bool,
    identity: Vec<u32>,
    authkey: Vec<u8>,
    started_by: Option<StartMethod>,
    os_pid: u32,
}

fn whoami(_: ()) -> SelfView {
    let me = current_process();
    SelfView {
        name: me.name.clone(),
        pid: me.pid,
        daemon: me.daemon,
        identity: me.identity.clone(),
        authkey: me.authkey().to_vec(),
        started_by: me.started_by,
        os_pid: std::process::id(),
    }
}

#[test]
fn main_process_describes_itself() {
    let me = current_process();
    assert_eq!(me.name, "MainProcess");
    assert_eq!(me.pid, std::process::id());
    assert!(!me.daemon);
    assert!(me.identity.is_empty());
    assert_eq!(me.started_by, None);
    assert_eq!(me.authkey().len(), 32);
    assert_eq!(me.authkey(), multiproc_process::authkey().as_slice());
    assert!(parent_process().is_none(), "the main program has no parent process");
    // The key never appears in debug output.
    let dbg = format!("{me:?}");
    assert!(dbg.contains("<32 bytes>"), "{dbg}");
}

#[test]
fn current_process_in_child() {
    watchdog("current_process_in_child", || {
        let parent_key = multiproc_process::authkey();
        for m in METHODS {
            for daemon in [false, true] {
                let p = Process::new(whoami, ()).with_start_method(m).with_daemon(daemon);
                let default_name = p.name().to_owned();
                let n: u32 = default_name
                    .strip_prefix("Process-")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("[{m}] default name {default_name:?} is not Process-N"));
                let mut p = started(p);
                let pid = p.pid().expect("started process has a pid");
                let v = p.join().unwrap_or_else(|e| panic!("[{m}] {e}"));
                assert_eq!(v.name, default_name, "[{m}] name");
                assert_eq!(v.pid, pid, "[{m}] current_process().pid");
                assert_eq!(v.os_pid, pid, "[{m}] Process::pid is the child's real pid");
                assert_eq!(v.daemon, daemon, "[{m}] daemon flag");
                assert_eq!(v.identity, vec![n], "[{m}] identity matches the name {default_name}");
                assert_eq!(v.authkey, parent_key, "[{m}] authkey is inherited");
                assert_eq!(v.started_by, Some(m), "[{m}] started_by");
            }
            let mut p = started(Process::new(whoami, ()).with_start_method(m).with_name("custom name ✓"));
            assert_eq!(p.name(), "custom name ✓");
            assert_eq!(p.join().unwrap().name, "custom name ✓", "[{m}] custom name reaches the child");
        }
    });
}

#[derive(Debug, Serialize, Deserialize)]
struct ParentView {
    pid: u32,
    name: String,
    alive: bool,
    has_sentinel: bool,
    os_ppid: u32,
}

fn my_parent(_: ()) -> Option<ParentView> {
    let p = parent_process()?;
    Some(ParentView {
        pid: p.pid(),
        name: p.name().to_owned(),
        alive: p.is_alive(),
        has_sentinel: p.sentinel().is_some(),
        os_ppid: std::os::unix::process::parent_id(),
    })
}

#[test]
fn parent_process_in_child() {
    watchdog("parent_process_in_child", || {
        for m in METHODS {
            let mut p = started(Process::new(my_parent, ()).with_start_method(m));
            let v = p.join().unwrap().unwrap_or_else(|| panic!("[{m}] parent_process() is None in a child"));
            assert_eq!(v.pid, std::process::id(), "[{m}] parent pid");
            assert_eq!(v.os_ppid, std::process::id(), "[{m}] the OS parent is us too");
            assert_eq!(v.name, "MainProcess", "[{m}] parent name");
            assert!(v.alive, "[{m}] parent is alive while it waits");
            assert!(v.has_sentinel, "[{m}] parent sentinel");
        }
    });
}

/// What a grandchild reports, plus what its parent saw.
#[derive(Debug, Serialize, Deserialize)]
struct Family {
    child: SelfView,
    grandchild: SelfView,
    grandchild_parent: Option<ParentView>,
    grandchild_pid: u32,
}

fn grandchild_view(_: ()) -> (SelfView, Option<ParentView>) {
    (whoami(()), my_parent(()))
}

fn start_grandchild(method: StartMethod) -> Family {
    let mut p = Process::new(grandchild_view, ()).with_start_method(method);
    p.start().expect("grandchild start");
    let grandchild_pid = p.pid().expect("pid");
    let (grandchild, grandchild_parent) = p.join().expect("grandchild join");
    Family { child: whoami(()), grandchild, grandchild_parent, grandchild_pid }
}

#[test]
fn children_start_children() {
    watchdog("children_start_children", || {
        let key = multiproc_process::authkey();
        for outer in METHODS {
            for inner in METHODS {
                let mut p = started(Process::new(start_grandchild, inner).with_start_method(outer));
                let child_pid = p.pid().unwrap();
                let f = p.join().unwrap_or_else(|e| panic!("[{outer} -> {inner}] {e}"));
                let tag = format!("[{outer} -> {inner}]");
                assert_eq!(f.child.started_by, Some(outer), "{tag}");
                assert_eq!(f.grandchild.started_by, Some(inner), "{tag}");
                let n = &f.child.identity;
                assert_eq!(f.grandchild.identity, [n[0], 1], "{tag} nested identity");
                assert_eq!(f.grandchild.name, format!("{}:1", f.child.name), "{tag} nested name");
                assert_eq!(f.grandchild.pid, f.grandchild_pid, "{tag}");
                assert_eq!(f.grandchild.authkey, key, "{tag} authkey reaches grandchildren");
                let gp = f.grandchild_parent.unwrap_or_else(|| panic!("{tag} grandchild has no parent_process()"));
                assert_eq!(gp.pid, child_pid, "{tag} grandchild's parent pid");
                assert_eq!(gp.os_ppid, child_pid, "{tag} grandchild's OS parent");
                assert_eq!(gp.name, f.child.name, "{tag} grandchild's parent name");
                assert!(gp.alive, "{tag}");
            }
        }
    });
}

#[test]
fn process_accessors() {
    let p = Process::new(echo::<u8>, 1).with_name("acc").with_daemon(true).with_start_method(StartMethod::Spawn);
    assert_eq!(p.name(), "acc");
    assert!(p.daemon());
    assert_eq!(p.start_method(), StartMethod::Spawn);
    assert_eq!(p.pid(), None);
    assert_eq!(p.exitcode(), None);
    assert!(p.sentinel().is_none());
    let dbg = format!("{p:?}");
    assert!(dbg.contains("acc") && dbg.contains("Spawn"), "{dbg}");
    assert!(multiproc_process::cpu_count() >= 1);
    assert!(multiproc_process::fork_server_pid().is_some(), "test_init! starts a fork server");
}

/// Writes to a pipe nobody reads and reports what happened.
fn write_to_closed_pipe(_: ()) -> String {
    use std::io::Write;
    let (r, w) = multiproc_sys::fd::pipe().expect("pipe");
    drop(r);
    match std::fs::File::from(w).write_all(b"x") {
        Ok(()) => "written".to_owned(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// Known bug, reported on issue 3: Rust's `main` ignores SIGPIPE, so writing to a
/// closed pipe is an `Err(BrokenPipe)`; fork and spawn children inherit that. But
/// `test_init!` runs `init()` from `.init_array`, before the runtime sets it, so the fork
/// server (and every forkserver child) keeps the default action and is killed by
/// SIGPIPE instead (exit code -13). A program calling `init()` first thing in `main` is
/// not affected. Fixing it needs a `multiproc-sys` function to ignore SIGPIPE in `init()`.
#[test]
fn writing_to_a_closed_pipe_is_an_error_under_every_method() {
    watchdog("writing_to_a_closed_pipe_is_an_error_under_every_method", || {
        for m in METHODS {
            let mut p = started(Process::new(write_to_closed_pipe, ()).with_start_method(m));
            match p.join() {
                Ok(kind) => assert_eq!(kind, "BrokenPipe", "[{m}]"),
                Err(e) => panic!("[{m}] the child did not get an error but ended with: {e}"),
            }
        }
    });
}
