//! `ShareableList` across child processes (every start method) and an unrelated program:
//! typed get/set, capacity and type errors, opening by name, a writer SIGKILLed in the
//! middle of sets, and nothing left in /dev/shm.

multiproc_process::test_init!();

#[path = "support/names.rs"]
pub mod names;
#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/tool.rs"]
pub mod tool;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::Duration;

use multiproc_shared::{CreateError, Item, ItemType, ListError, OpenError, ShareableList};
use multiproc_sync::Event;
use names::{assert_none_left, unique};
use procs::{LONG, METHODS, Rng, kill, run, start};

fn sample() -> Vec<Item> {
    vec![Item::from(-7), 2.5.into(), true.into(), "howdy".into(), b"bytes\0here".into(), i64::MAX.into()]
}

#[test]
fn typed_get_and_set_with_checks() {
    let name = unique("typed");
    let list = ShareableList::create(&name, &sample()).unwrap();
    assert_eq!(list.len(), 6);
    assert_eq!(list.to_vec().unwrap(), sample());
    assert_eq!(list.get_int(0).unwrap(), -7);
    assert_eq!(list.get_float(1).unwrap(), 2.5);
    assert!(list.get_bool(2).unwrap());
    assert_eq!(list.get_str(3).unwrap(), "howdy");
    assert_eq!(list.get_bytes(4).unwrap(), b"bytes\0here");
    assert_eq!(list.get(5).unwrap(), Item::Int(i64::MAX));
    assert_eq!(list.item_type(3), Some(ItemType::Str));
    assert_eq!((list.capacity(3), list.capacity(4), list.capacity(0)), (Some(8), Some(16), Some(0)));

    list.set(3, "8 bytes!").unwrap(); // exactly the capacity
    assert!(matches!(list.set(3, "9 bytes!!"), Err(ListError::TooLong { index: 3, len: 9, capacity: 8 })));
    assert!(matches!(
        list.set(0, "str"),
        Err(ListError::WrongType { index: 0, expected: ItemType::Str, found: ItemType::Int })
    ));
    assert!(matches!(list.set(1, 3), Err(ListError::WrongType { .. })), "an int does not go into a float slot");
    assert!(matches!(list.get_str(0), Err(ListError::WrongType { expected: ItemType::Str, .. })));
    assert!(matches!(list.get(6), Err(ListError::IndexOutOfRange { index: 6, len: 6 })));
    assert!(matches!(list.set(99, 1), Err(ListError::IndexOutOfRange { .. })));
    assert_eq!(list.get_str(3).unwrap(), "8 bytes!", "failed sets change nothing");
    list.set(3, "").unwrap();
    list.set(4, Vec::new()).unwrap();
    list.set(2, false).unwrap();
    list.set(1, f64::NAN).unwrap();
    assert!(list.get_float(1).unwrap().is_nan());
    assert_eq!(list.count(&Item::Str(String::new())).unwrap(), 1);
    assert_eq!(list.index(&Item::Bool(false)).unwrap(), Some(2));
    assert_eq!(list.index(&Item::Bool(true)).unwrap(), None);

    let roomy = ShareableList::create_with_capacity(&unique("typed"), &["a".into(), 1.into()], 100).unwrap();
    assert_eq!(roomy.capacity(0), Some(104));
    roomy.set(0, "x".repeat(104)).unwrap();
    let empty = ShareableList::create_unique(&[]).unwrap();
    assert!(empty.is_empty() && empty.to_vec().unwrap().is_empty());
    assert!(matches!(
        ShareableList::create(&unique("typed"), &[Item::Bytes(vec![0; (1 << 20) + 1])]),
        Err(CreateError::ItemTooLong { index: 0, .. })
    ));
    assert!(matches!(ShareableList::create(&name, &[]), Err(CreateError::AlreadyExists { .. })));
    drop((list, roomy, empty));
    assert_none_left("typed");
}

fn child_by_name(name: String) -> Vec<Item> {
    let list = ShareableList::open(&name).unwrap();
    assert!(!list.is_owner());
    let before = list.to_vec().unwrap();
    list.set(0, list.get_int(0).unwrap() * 2).unwrap();
    list.set(3, "child").unwrap();
    before
}

fn child_by_handle(list: ShareableList) -> bool {
    list.set(2, !list.get_bool(2).unwrap()).unwrap();
    list.is_owner()
}

#[test]
fn children_open_by_name_or_receive_the_handle_under_every_method() {
    watchdog::run("children_open_by_name_or_receive_the_handle_under_every_method", || {
        for method in METHODS {
            let name = unique("children");
            let list = ShareableList::create(&name, &sample()).unwrap();
            assert_eq!(run(child_by_name, name.clone(), method), sample(), "{method}");
            assert!(!run(child_by_handle, list.clone(), method), "{method}: a child's copy must not own the name");
            assert_eq!(list.get_int(0).unwrap(), -14);
            assert_eq!(list.get_str(3).unwrap(), "child");
            assert!(!list.get_bool(2).unwrap());
            assert!(ShareableList::open(&name).is_ok(), "{method}: the name survives the children");
        }
        assert_none_left("children");
    });
}

#[test]
fn an_unrelated_program_reads_and_writes_the_list() {
    watchdog::run("an_unrelated_program_reads_and_writes_the_list", || {
        let name = unique("unrelated");
        let list = ShareableList::create_with_capacity(&name, &sample(), 32).unwrap();
        let out = tool::ok(&["list-get", &name]);
        assert!(out.contains(r#"[-7, 2.5, True, "howdy", b"bytes\0here", 9223372036854775807]"#), "{out}");
        tool::ok(&["list-set", &name, "3", "from another program"]);
        assert_eq!(list.get_str(3).unwrap(), "from another program");
        let (code, out) = tool::run(&["list-set", &name, "0", "text"]);
        assert_eq!(code, 2);
        assert!(out.contains("has type int, not str"), "{out}");
        let (code, out) = tool::run(&["list-get", &unique("unrelated")]);
        assert_eq!(code, 2);
        assert!(out.contains("no shared-memory segment named"), "{out}");
        drop(list);
        assert_none_left("unrelated");
    });
}

/// Sets items of every type in a loop, as fast as it can, until killed.
fn scribble((name, started): (String, Event)) {
    let list = ShareableList::open(&name).unwrap();
    started.set();
    let mut n: u64 = 0;
    loop {
        n += 1;
        let len = (n % 60) as usize;
        list.set(0, "y".repeat(len)).unwrap();
        list.set(1, vec![(n % 251) as u8; len]).unwrap();
        list.set(2, n as i64).unwrap();
        list.set(3, n % 2 == 0).unwrap();
    }
}

#[test]
fn a_writer_killed_mid_set_never_leaves_a_damaged_item() {
    watchdog::run("a_writer_killed_mid_set_never_leaves_a_damaged_item", || {
        let mut rng = Rng::from_clock("a_writer_killed_mid_set_never_leaves_a_damaged_item");
        let items = ["".into(), Item::Bytes(vec![]), 0.into(), false.into()];
        for method in METHODS {
            let name = unique("killed");
            let list = ShareableList::create_with_capacity(&name, &items, 64).unwrap();
            let rounds = if method == multiproc_process::StartMethod::Fork { 30 } else { 10 };
            for round in 0..rounds {
                let started = Event::new().unwrap();
                let mut writer = start(scribble, (name.clone(), started.clone()), method);
                assert!(started.wait_timeout(LONG), "{method}: the writer never started");
                std::thread::sleep(Duration::from_micros(rng.below(2_000)));
                kill(&mut writer);
                // Whatever instant the kill hit, every item reads back whole and valid.
                let got = list.to_vec().unwrap_or_else(|e| panic!("{method}, round {round}: {e}"));
                match &got[..] {
                    [Item::Str(s), Item::Bytes(b), Item::Int(_), Item::Bool(_)] => {
                        assert!(s.bytes().all(|c| c == b'y'), "{method}, round {round}: torn string {s:?}");
                        assert!(b.windows(2).all(|w| w[0] == w[1]), "{method}, round {round}: torn bytes {b:?}");
                    }
                    other => panic!("{method}, round {round}: unexpected items {other:?}"),
                }
                // Usable afterwards (with a value the next round's check accepts, in case
                // that writer is killed before its first set).
                list.set(0, "yyy").unwrap();
                assert_eq!(list.get_str(0).unwrap(), "yyy");
            }
        }
        assert_none_left("killed");
    });
}

#[test]
fn a_persisted_list_outlives_its_creator_until_unlinked() {
    watchdog::run("a_persisted_list_outlives_its_creator_until_unlinked", || {
        let name = unique("orphan");
        let creator = ShareableList::create(&name, &[1.into()]).unwrap();
        creator.persist();
        drop(creator);
        let list = ShareableList::open(&name).unwrap();
        assert_eq!(list.get_int(0).unwrap(), 1);
        assert!(matches!(ShareableList::create(&name, &[]), Err(CreateError::AlreadyExists { .. })));
        list.unlink().unwrap();
        assert!(matches!(ShareableList::open(&name), Err(OpenError::NotFound { .. })));
        assert_eq!(list.get_int(0).unwrap(), 1, "still usable after the unlink");
        assert_none_left("orphan");
    });
}
