//! What each proxy does: the dict, list and value APIs (with Python's semantics where
//! Python has them), proxies shared by threads, the shared-memory primitives and queues
//! handed to children under every start method, named objects, your own `Shared`
//! types, and objects being freed when nobody holds them.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::Duration;

use multiproc_manager::{
    DictProxy, GetError, JoinableQueueProxy, ListProxy, LookupError, Manager, ProxyError, PutError, QueueProxy, Shared,
    SharedProxy, ValueProxy,
};
use multiproc_process::{Process, StartMethod};
use multiproc_sync::{Barrier, Condition, Event, Lock, RLock, Semaphore};
use serde::{Deserialize, Serialize};
use watchdog::{METHODS, eventually, started, watchdog};

fn fork_manager() -> Manager {
    Manager::builder().start_method(StartMethod::Fork).start().expect("start")
}

fn bump(n: Option<u64>) -> u64 {
    n.unwrap_or(0) + 1
}

#[test]
fn dict_api() {
    watchdog("dict api", || {
        let m = fork_manager();
        let d: DictProxy<String, i64> = m.dict().expect("dict");
        assert!(d.is_empty().unwrap());
        assert_eq!(d.insert("z".into(), 1).unwrap(), None);
        assert_eq!(d.insert("a".into(), 2).unwrap(), None);
        assert_eq!(d.insert("m".into(), 3).unwrap(), None);
        // Overwriting keeps the key's place, as in Python.
        assert_eq!(d.insert("z".into(), 10).unwrap(), Some(1));
        assert_eq!(d.keys().unwrap(), ["z", "a", "m"]);
        assert_eq!(d.values().unwrap(), [10, 2, 3]);
        assert_eq!(d.items().unwrap(), [("z".into(), 10), ("a".into(), 2), ("m".into(), 3)]);
        assert_eq!(d.len().unwrap(), 3);
        assert_eq!(d.get("a").unwrap(), Some(2));
        assert_eq!(d.get("nope").unwrap(), None);
        assert_eq!(d.get_or("nope", -1).unwrap(), -1);
        assert!(d.contains_key("m").unwrap());
        assert!(!d.contains_key("nope").unwrap());
        assert_eq!(d.pop("a").unwrap(), Some(2));
        assert_eq!(d.remove("a").unwrap(), None);
        assert_eq!(d.setdefault("m".into(), 99).unwrap(), 3);
        assert_eq!(d.setdefault("n".into(), 99).unwrap(), 99);
        d.update([("x".to_owned(), 7), ("z".to_owned(), 0)]).unwrap();
        assert_eq!(d.items().unwrap(), [("z".into(), 0), ("m".into(), 3), ("n".into(), 99), ("x".into(), 7)]);
        d.clear().unwrap();
        assert_eq!(d.len().unwrap(), 0);

        // update_with on a missing key gets None; the new value is returned and stored.
        let counts: DictProxy<(u8, String), u64> = m.dict().unwrap();
        let key = (1u8, "k".to_owned());
        assert_eq!(counts.update_with(&key, bump).unwrap(), 1);
        assert_eq!(counts.update_with(&key, bump).unwrap(), 2);
        assert_eq!(counts.get(&key).unwrap(), Some(2));
        let filled = m.dict_from([(1u32, vec![1u8]), (2, vec![])]).unwrap();
        assert_eq!(filled.items().unwrap(), [(1, vec![1]), (2, vec![])]);
    });
}

#[test]
fn list_api() {
    watchdog("list api", || {
        let m = fork_manager();
        let l: ListProxy<String> = m.list().expect("list");
        assert!(l.is_empty().unwrap());
        l.push("b".into()).unwrap();
        l.append("d".into()).unwrap();
        l.extend(["e".to_owned(), "f".to_owned()]).unwrap();
        l.insert(0, "a".into()).unwrap();
        l.insert(2, "c".into()).unwrap();
        l.insert(1000, "g".into()).unwrap(); // past the end appends, as in Python
        assert_eq!(l.to_vec().unwrap(), ["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(l.len().unwrap(), 7);
        assert_eq!(l.get(3).unwrap().as_deref(), Some("d"));
        assert_eq!(l.get(7).unwrap(), None);
        l.set(3, "D".into()).unwrap();
        assert!(matches!(l.set(7, "x".into()), Err(ProxyError::IndexOutOfRange { index: 7, len: 7 })));
        assert_eq!(l.index("D").unwrap(), Some(3));
        assert_eq!(l.index("nope").unwrap(), None);
        assert!(l.contains("e").unwrap());
        assert!(l.remove("e").unwrap());
        assert!(!l.remove("e").unwrap());
        assert_eq!(l.pop().unwrap().as_deref(), Some("g"));
        assert_eq!(l.pop_at(0).unwrap(), "a");
        let e = l.pop_at(10).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        assert_eq!(l.to_vec().unwrap(), ["b", "c", "D", "f"]);
        l.clear().unwrap();
        assert_eq!(l.pop().unwrap(), None);
        let from = m.list_from(1..=3u16).unwrap();
        assert_eq!(from.to_vec().unwrap(), [1, 2, 3]);
    });
}

fn append_to_nested((lists, who): (DictProxy<String, ListProxy<u32>>, u32)) {
    let list = lists.get("shared").expect("get").expect("the nested list");
    list.push(who).expect("push through a proxy found inside a dict");
}

#[test]
fn proxies_nest_inside_shared_containers() {
    watchdog("nesting", || {
        let m = fork_manager();
        let lists: DictProxy<String, ListProxy<u32>> = m.dict().unwrap();
        let inner: ListProxy<u32> = m.list().unwrap();
        lists.insert("shared".into(), inner.clone()).unwrap();
        let mut kids: Vec<_> = (0..3)
            .map(|who| {
                started(Process::new(append_to_nested, (lists.clone(), who)).with_start_method(StartMethod::ForkServer))
            })
            .collect();
        for k in &mut kids {
            k.join().unwrap();
        }
        let mut got = inner.to_vec().unwrap();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
    });
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Namespace {
    name: String,
    done: Vec<u32>,
}

fn mark_done(mut ns: Namespace) -> Namespace {
    let next = ns.done.len() as u32;
    ns.done.push(next);
    ns
}

#[test]
fn value_api() {
    watchdog("value api", || {
        let m = fork_manager();
        let v: ValueProxy<Namespace> = m.value(Namespace { name: "n".into(), done: vec![] }).unwrap();
        assert_eq!(v.update_with(mark_done).unwrap().done, [0]);
        assert_eq!(v.update_with(mark_done).unwrap().done, [0, 1]);
        let old = v.replace(Namespace { name: "m".into(), done: vec![9] }).unwrap();
        assert_eq!(old, Namespace { name: "n".into(), done: vec![0, 1] });
        v.set(Namespace { name: "o".into(), done: vec![] }).unwrap();
        assert_eq!(v.get().unwrap().name, "o");
    });
}

#[test]
fn one_proxy_shared_by_threads() {
    watchdog("threads", || {
        let m = fork_manager();
        let d: DictProxy<String, u64> = m.dict().unwrap();
        let l: ListProxy<u32> = m.list().unwrap();
        let q: QueueProxy<u32> = m.queue().unwrap();
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let (d, l, q) = (&d, &l, &q);
                s.spawn(move || {
                    for i in 0..250 {
                        d.update_with("hits", bump).expect("update_with");
                        l.push(t * 1000 + i).expect("push");
                        q.put(i).expect("put");
                    }
                });
            }
            // A consumer blocked in get on another thread does not hold up the others.
            s.spawn(|| {
                for _ in 0..1000 {
                    q.get().expect("get");
                }
            });
        });
        assert_eq!(d.get("hits").unwrap(), Some(1000));
        assert_eq!(l.len().unwrap(), 1000);
        assert!(q.empty().unwrap());
    });
}

type Primitives = (Event, Semaphore, Barrier, Condition, RLock, ValueProxy<u32>);

fn use_primitives((event, sem, barrier, cond, rlock, flag): Primitives) -> u32 {
    barrier.wait_timeout(Duration::from_secs(30)).expect("barrier");
    let permit = sem.try_acquire_for(Duration::from_secs(30)).expect("a permit");
    {
        let _outer = rlock.lock().expect("rlock");
        let _inner = rlock.lock().expect("rlock again: it is re-entrant");
    }
    drop(permit);
    {
        let _g = cond.lock().expect("condition lock");
        flag.update_with(|n| n + 1).expect("update_with");
        cond.notify_all();
    }
    event.set();
    7
}

#[test]
fn primitives_pass_to_children_under_every_method() {
    for method in METHODS {
        watchdog(&format!("primitives [{method}]"), move || {
            let m = Manager::builder().start_method(method).start().expect("start");
            let event = m.event().unwrap();
            let sem = m.semaphore(1).unwrap();
            let barrier = m.barrier(3).unwrap();
            let cond = m.condition().unwrap();
            let rlock = m.rlock().unwrap();
            let flag = m.value(0u32).unwrap();
            let args = || (event.clone(), sem.clone(), barrier.clone(), cond.clone(), rlock.clone(), flag.clone());
            let mut a = started(Process::new(use_primitives, args()).with_start_method(method));
            let mut b = started(Process::new(use_primitives, args()).with_start_method(method));
            barrier.wait_timeout(Duration::from_secs(30)).expect("barrier");
            {
                let mut g = cond.lock().expect("condition lock");
                let both =
                    g.wait_for_timeout(|| flag.get().expect("get") == 2, Duration::from_secs(30)).expect("wait_for");
                assert!(both, "[{method}] the children never notified");
            }
            assert!(event.wait_timeout(Duration::from_secs(30)));
            assert_eq!((a.join().unwrap(), b.join().unwrap()), (7, 7));
            assert_eq!(sem.value(), 1);
            let bounded = m.bounded_semaphore(1).unwrap();
            assert!(bounded.release().is_err(), "a bounded semaphore refuses a release too many");
        });
    }
}

fn produce((q, n): (QueueProxy<String>, u32)) {
    for i in 0..n {
        q.put(format!("item {i}")).expect("put");
    }
}

fn consume_joinable(q: JoinableQueueProxy<u64>) -> u64 {
    let mut sum = 0;
    loop {
        let n = q.get().expect("get");
        q.task_done().expect("task_done");
        if n == 0 {
            return sum;
        }
        sum += n;
    }
}

#[test]
fn queues_between_processes_under_every_method() {
    for method in METHODS {
        watchdog(&format!("queues [{method}]"), move || {
            let m = Manager::builder().start_method(method).start().expect("start");
            let q: QueueProxy<String> = m.queue().unwrap();
            assert!(q.is_local(), "a Unix-socket manager hands out the shared-memory queue");
            let mut p = started(Process::new(produce, (q.clone(), 500)).with_start_method(method));
            for i in 0..500 {
                assert_eq!(q.get_timeout(Duration::from_secs(30)).expect("get"), format!("item {i}"));
            }
            p.join().unwrap();
            assert!(matches!(q.get_nowait(), Err(GetError::Empty)));
            assert!(matches!(q.get_timeout(Duration::from_millis(20)), Err(GetError::Empty)));

            let jq: JoinableQueueProxy<u64> = m.joinable_queue().unwrap();
            let mut c = started(Process::new(consume_joinable, jq.clone()).with_start_method(method));
            for n in (1..=100).chain([0]) {
                jq.put(n).unwrap();
            }
            jq.join().unwrap();
            assert_eq!(jq.unfinished_tasks().unwrap(), 0);
            assert_eq!(c.join().unwrap(), 5050);
            assert!(matches!(jq.task_done(), Err(ProxyError::TaskDone)));

            let bounded: QueueProxy<u8> = m.bounded_queue(2).unwrap();
            bounded.put_nowait(1).unwrap();
            bounded.put(2).unwrap();
            assert!(bounded.full().unwrap());
            assert!(matches!(bounded.put_nowait(3), Err(PutError::Full(3))));
            assert!(matches!(bounded.put_timeout(4, Duration::from_millis(20)), Err(PutError::Full(4))));
            assert_eq!(bounded.qsize().unwrap(), 2);
        });
    }
}

/// A registered type: a running total that remembers its largest step.
struct Tally {
    total: i64,
    largest: i64,
}

#[derive(Debug, Serialize, Deserialize)]
enum TallyRequest {
    Add(i64),
    Read,
    Explode,
}

impl Shared for Tally {
    const TYPEID: &'static str = "Tally";
    type Init = i64;
    type Request = TallyRequest;
    type Response = (i64, i64);

    fn create(total: i64) -> Tally {
        Tally { total, largest: 0 }
    }

    fn handle(&mut self, request: TallyRequest) -> (i64, i64) {
        match request {
            TallyRequest::Add(n) => {
                self.total += n;
                self.largest = self.largest.max(n);
            }
            TallyRequest::Read => {}
            TallyRequest::Explode => panic!("the tally exploded"),
        }
        (self.total, self.largest)
    }
}

/// A type the server does not know.
struct Unknown;

impl Shared for Unknown {
    const TYPEID: &'static str = "Unknown";
    type Init = ();
    type Request = ();
    type Response = ();
    fn create(_: ()) -> Unknown {
        Unknown
    }
    fn handle(&mut self, _: ()) {}
}

fn add_to_tally((tally, n): (SharedProxy<Tally>, i64)) {
    tally.call(TallyRequest::Add(n)).expect("call");
}

fn find_tally_by_name(m: Manager) -> (i64, i64) {
    let tally: SharedProxy<Tally> = m.get("tally").expect("get by name");
    tally.call(TallyRequest::Read).expect("call")
}

#[test]
fn registered_types_under_every_method() {
    for method in METHODS {
        watchdog(&format!("registered types [{method}]"), move || {
            let m = Manager::builder().register::<Tally>().start_method(method).start().expect("start");
            let tally = m.create::<Tally>(100).unwrap();
            assert_eq!(tally.call(TallyRequest::Add(5)).unwrap(), (105, 5));
            let mut kids: Vec<_> = (1..=4)
                .map(|n| started(Process::new(add_to_tally, (tally.clone(), n * 10)).with_start_method(method)))
                .collect();
            for k in &mut kids {
                k.join().unwrap();
            }
            assert_eq!(tally.call(TallyRequest::Read).unwrap(), (205, 40));
            m.register("tally", &tally).unwrap();
            let mut finder = started(Process::new(find_tally_by_name, m.clone()).with_start_method(method));
            assert_eq!(finder.join().unwrap(), (205, 40));

            // A panic in the type's code is an error; the server and the object go on.
            // (The server prints the panic to its stderr, as Python's prints the traceback.)
            let boom = tally.call(TallyRequest::Explode).unwrap_err();
            assert!(matches!(&boom, ProxyError::Panicked { message } if message.contains("exploded")), "{boom}");
            assert_eq!(tally.call(TallyRequest::Read).unwrap(), (205, 40));

            let e = m.create::<Unknown>(()).unwrap_err();
            assert!(matches!(&e, ProxyError::NotRegistered { typeid } if typeid == "Unknown"), "{e}");
            assert!(e.to_string().contains("register"), "{e}");
        });
    }
}

fn lock_by_name((m, expect_locked): (Manager, bool)) -> bool {
    let lock: Lock = m.get("the lock").expect("get the lock");
    let counts: DictProxy<String, u32> = m.get("counts").expect("get the dict");
    counts.update_with("visits", |n| n.unwrap_or(0) + 1).expect("update_with");
    lock.is_locked() == expect_locked
}

fn create_through_the_manager(m: Manager) -> Vec<u32> {
    let l = m.list_from([1u32, 2, 3]).expect("a child may create objects too");
    m.register("from the child", &l).expect("register");
    l.to_vec().expect("to_vec")
}

#[test]
fn named_objects_under_every_method() {
    for method in METHODS {
        watchdog(&format!("names [{method}]"), move || {
            let m = Manager::builder().start_method(method).start().expect("start");
            let lock = m.lock().unwrap();
            let counts: DictProxy<String, u32> = m.dict().unwrap();
            m.register("the lock", &lock).unwrap();
            m.register("counts", &counts).unwrap();
            assert!(matches!(m.register("counts", &counts), Err(LookupError::AlreadyRegistered { .. })));
            let held = lock.lock().unwrap();
            let mut child = started(Process::new(lock_by_name, (m.clone(), true)).with_start_method(method));
            assert!(child.join().unwrap(), "[{method}] the child's Lock is the same lock");
            drop(held);
            assert_eq!(counts.get("visits").unwrap(), Some(1));

            let mut creator = started(Process::new(create_through_the_manager, m.clone()).with_start_method(method));
            assert_eq!(creator.join().unwrap(), [1, 2, 3]);
            // The child exited, but the name keeps its list alive.
            let l: ListProxy<u32> = m.get("from the child").unwrap();
            assert_eq!(l.to_vec().unwrap(), [1, 2, 3]);

            assert_eq!(m.names().unwrap(), ["counts", "from the child", "the lock"]);
            m.unregister("the lock").unwrap();
            assert!(matches!(m.get::<Lock>("the lock"), Err(LookupError::NotFound { .. })));
            assert!(matches!(m.unregister("the lock"), Err(LookupError::NotFound { .. })));
            let e = m.get::<Event>("counts").unwrap_err();
            assert!(matches!(e, LookupError::TypeMismatch { .. }), "{e}");
            // A proxy is registered with the manager that holds its object, not another.
            let other = Manager::builder().start_method(method).start().expect("start");
            let e = other.register("counts", &counts).unwrap_err();
            assert!(e.to_string().contains("register it there"), "{e}");
        });
    }
}

fn create_and_leave(m: Manager) -> u64 {
    let d: DictProxy<u8, u8> = m.dict().expect("dict");
    d.insert(1, 1).expect("insert");
    let _q: QueueProxy<u8> = m.queue().expect("queue");
    m.stats().expect("stats").objects
}

#[test]
fn objects_are_freed_when_nobody_holds_them() {
    watchdog("freeing", || {
        let m = fork_manager();
        let base = m.stats().unwrap().objects;
        let d: DictProxy<u8, u8> = m.dict().unwrap();
        let copy = d.clone();
        let l: ListProxy<u8> = m.list().unwrap();
        assert_eq!(m.stats().unwrap().objects, base + 2);
        drop(d);
        assert_eq!(m.stats().unwrap().objects, base + 2, "a clone still holds the dict");
        drop((copy, l));
        assert!(eventually(Duration::from_secs(10), || m.stats().unwrap().objects == base), "dropped proxies release");

        // A child's objects go when it exits, without it dropping anything.
        let mut child = started(Process::new(create_and_leave, m.clone()).with_start_method(StartMethod::ForkServer));
        assert_eq!(child.join().unwrap(), base + 2);
        assert!(eventually(Duration::from_secs(10), || m.stats().unwrap().objects == base), "the child's objects");

        // A proxy that was sent to another process stays alive while this one runs.
        let sent: ValueProxy<u8> = m.value(5).unwrap();
        let mut reader = started(Process::new(read_value, sent.clone()).with_start_method(StartMethod::ForkServer));
        drop(sent);
        assert_eq!(reader.join().unwrap(), 5);
        assert_eq!(m.stats().unwrap().objects, base + 1);
    });
}

#[test]
fn handles_and_proxies_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Manager>();
    check::<DictProxy<std::rc::Rc<u8>, std::cell::Cell<u8>>>();
    check::<ListProxy<std::rc::Rc<u8>>>();
    check::<ValueProxy<std::rc::Rc<u8>>>();
    check::<QueueProxy<std::rc::Rc<u8>>>();
    check::<JoinableQueueProxy<std::rc::Rc<u8>>>();
    check::<SharedProxy<Tally>>();
}

fn start_in_a_thread() -> Manager {
    std::thread::spawn(|| Manager::start().expect("start")).join().expect("the starting thread")
}

#[test]
fn a_manager_outlives_the_thread_that_started_it() {
    watchdog("starting thread", || {
        let m = start_in_a_thread();
        // Daemon children die with the thread that started them; the server does not.
        std::thread::sleep(Duration::from_millis(100));
        let v = m.value(1u8).expect("the server still runs");
        assert_eq!(v.get().unwrap(), 1);
    });
}

fn read_value(v: ValueProxy<u8>) -> u8 {
    v.get().expect("the value is still there")
}
