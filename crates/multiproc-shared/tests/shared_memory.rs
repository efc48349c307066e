//! `SharedMemory` between unrelated programs (the `shm_tool` example, started with
//! `std::process::Command`) and child processes under every start method: ownership
//! and cleanup (creator drop, persist, a creator killed with SIGKILL), errors for a
//! missing name, the wrong kind, a foreign, unready or truncated segment, bad sizes and
//! names, and nothing left in /dev/shm.

multiproc_process::test_init!();

#[path = "support/names.rs"]
pub mod names;
#[path = "support/procs.rs"]
pub mod procs;
#[path = "support/tool.rs"]
pub mod tool;
#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use multiproc_shared::{AccessError, CreateError, NameError, OpenError, ShareableList, SharedMemory, UnlinkError};
use names::{assert_none_left, dev_shm_path, unique};
use procs::{METHODS, run};

#[test]
fn create_open_read_write_in_one_program() {
    let name = unique("basic");
    let shm = SharedMemory::create(&name, 1000).unwrap();
    assert_eq!((shm.name(), shm.size(), shm.is_owner()), (name.as_str(), 1000, true));
    assert!(dev_shm_path(&name).exists(), "named segments live in /dev/shm under the prefix");
    let mut zeros = [1u8; 1000];
    shm.read(0, &mut zeros).unwrap();
    assert!(zeros.iter().all(|b| *b == 0), "created zero-filled");

    let other = SharedMemory::open(&format!("/{name}")).unwrap(); // a leading '/' is allowed
    assert_eq!((other.name(), other.size(), other.is_owner()), (name.as_str(), 1000, false));
    other.write(995, b"tail!").unwrap();
    let mut tail = [0u8; 5];
    shm.read(995, &mut tail).unwrap();
    assert_eq!(&tail, b"tail!");
    shm.write_value(8, &[1.5f64, 2.5]).unwrap();
    assert_eq!(other.read_value::<[f64; 2]>(8).unwrap(), [1.5, 2.5]);
    assert_eq!(other.read_value::<u16>(3).unwrap(), 0, "unaligned copies are fine");
    other.atomic::<AtomicU32>(100).unwrap().store(77, Ordering::SeqCst);
    assert_eq!(shm.read_value::<u32>(100).unwrap(), 77);

    // Bounds and alignment are checked.
    assert_eq!(shm.write(998, b"abc"), Err(AccessError::OutOfBounds { offset: 998, len: 3, size: 1000 }));
    assert!(shm.read(usize::MAX, &mut [0]).is_err());
    assert_eq!(shm.atomic::<AtomicU64>(4).unwrap_err(), AccessError::Misaligned { offset: 4, align: 8 });
    assert!(matches!(shm.atomic::<AtomicU64>(1000), Err(AccessError::OutOfBounds { .. })));
    assert!(shm.read_value::<u64>(993).is_err());

    // The documented unsafe view, used under its rule: nobody writes meanwhile.
    // SAFETY: no other thread or process writes this segment while `bytes` lives.
    let bytes = unsafe { other.as_slice() };
    assert_eq!(&bytes[995..], b"tail!");
    assert_eq!(bytes.len(), 1000);

    drop(other); // an opener never unlinks
    assert!(SharedMemory::open(&name).is_ok());
    drop(shm); // the owner does
    assert!(matches!(SharedMemory::open(&name), Err(OpenError::NotFound { .. })));
    assert_none_left("basic");
}

#[test]
fn bad_names_sizes_and_missing_names_are_errors() {
    let name = unique("errors");
    assert!(matches!(SharedMemory::open(&name), Err(OpenError::NotFound { name: n }) if n == name));
    assert!(matches!(SharedMemory::unlink_name(&name), Err(UnlinkError::NotFound { .. })));
    assert!(matches!(SharedMemory::create(&name, 0), Err(CreateError::ZeroSize)));
    assert!(matches!(SharedMemory::create(&name, usize::MAX), Err(CreateError::TooLarge { .. })));
    assert!(matches!(SharedMemory::create("", 1), Err(CreateError::Name(NameError::Empty))));
    assert!(matches!(SharedMemory::open("a/b"), Err(OpenError::Name(NameError::InvalidChar { found: '/', .. }))));
    assert!(matches!(SharedMemory::create("sp ace", 1), Err(CreateError::Name(NameError::InvalidChar { .. }))));
    assert!(matches!(SharedMemory::create(&"n".repeat(300), 1), Err(CreateError::Name(NameError::TooLong { .. }))));

    let shm = SharedMemory::create(&name, 10).unwrap();
    let err = SharedMemory::create(&name, 10).unwrap_err();
    assert!(matches!(err, CreateError::AlreadyExists { .. }));
    assert!(err.to_string().contains("unlink_name"), "the message names the cleanup: {err}");
    // The other kind of named object is refused, both ways.
    let err = ShareableList::open(&name).unwrap_err();
    assert!(matches!(err, OpenError::WrongKind { found: "SharedMemory", expected: "ShareableList", .. }), "{err}");
    let list_name = unique("errors");
    let list = ShareableList::create(&list_name, &[1.into()]).unwrap();
    let err = SharedMemory::open(&list_name).unwrap_err();
    assert!(matches!(err, OpenError::WrongKind { found: "ShareableList", .. }), "{err}");
    assert!(err.to_string().contains("ShareableList::open"), "{err}");
    drop((shm, list));
    assert_none_left("errors");
}

#[test]
fn foreign_unready_and_truncated_segments_are_errors() {
    // Files made behind our back in /dev/shm, with our prefix.
    let empty = unique("foreign");
    std::fs::write(dev_shm_path(&empty), b"").unwrap();
    let err = SharedMemory::open(&empty).unwrap_err();
    assert!(matches!(err, OpenError::NotReady { .. }), "an empty object is one being created: {err}");
    assert!(err.to_string().contains("unlink_name"), "{err}");
    let zeroed = unique("foreign");
    std::fs::write(dev_shm_path(&zeroed), [0u8; 4096]).unwrap();
    assert!(matches!(SharedMemory::open(&zeroed), Err(OpenError::NotReady { .. })));
    let garbage = unique("foreign");
    std::fs::write(dev_shm_path(&garbage), b"this is not a multiproc segment at all, no no no, not at all").unwrap();
    assert!(matches!(SharedMemory::open(&garbage), Err(OpenError::Foreign { .. })));
    let tiny = unique("foreign");
    std::fs::write(dev_shm_path(&tiny), b"tiny").unwrap();
    assert!(matches!(SharedMemory::open(&tiny), Err(OpenError::Foreign { .. })));
    for n in [&empty, &zeroed, &garbage, &tiny] {
        SharedMemory::unlink_name(n).unwrap();
    }

    // Another program shrinks a segment (while nobody has it mapped).
    let name = unique("foreign");
    SharedMemory::create(&name, 8192).unwrap().persist();
    std::fs::OpenOptions::new().write(true).open(dev_shm_path(&name)).unwrap().set_len(100).unwrap();
    let err = SharedMemory::open(&name).unwrap_err();
    assert!(matches!(err, OpenError::Truncated { len: 100, expected: 8256, .. }), "{err}");
    SharedMemory::unlink_name(&name).unwrap();
    assert_none_left("foreign");
}

#[test]
fn persist_unlink_and_name_reuse() {
    let name = unique("persist");
    let shm = SharedMemory::create(&name, 64).unwrap();
    let clone = shm.clone();
    shm.persist();
    assert!(!clone.is_owner(), "persist affects every clone");
    drop((shm, clone));
    let reopened = SharedMemory::open(&name).unwrap();
    assert_eq!(reopened.size(), 64);

    // Any handle may unlink explicitly; the memory stays usable through open handles.
    reopened.write(0, b"still here").unwrap();
    reopened.unlink().unwrap();
    assert!(matches!(SharedMemory::open(&name), Err(OpenError::NotFound { .. })));
    let mut buf = [0u8; 10];
    reopened.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"still here");
    assert!(matches!(reopened.unlink(), Err(UnlinkError::NotFound { .. })));

    // An owner whose name was unlinked and reused leaves the new segment alone.
    let old = SharedMemory::create(&name, 8).unwrap();
    SharedMemory::unlink_name(&name).unwrap();
    let new = SharedMemory::create(&name, 16).unwrap();
    drop(old);
    assert_eq!(SharedMemory::open(&name).unwrap().size(), 16, "the old owner's drop must not unlink the new one");
    drop(new);
    assert_none_left("persist");
}

#[test]
fn create_unique_names_do_not_collide() {
    let a = SharedMemory::create_unique(10).unwrap();
    let b = SharedMemory::create_unique(10).unwrap();
    assert_ne!(a.name(), b.name());
    assert!(a.name().starts_with("psm-"));
    let (na, nb) = (a.name().to_owned(), b.name().to_owned());
    drop((a, b));
    assert!(!dev_shm_path(&na).exists() && !dev_shm_path(&nb).exists());
}

#[test]
fn an_unrelated_program_opens_what_we_created() {
    watchdog::run("an_unrelated_program_opens_what_we_created", || {
        let name = unique("unrelated");
        let shm = SharedMemory::create(&name, 4096).unwrap();
        shm.write(0, b"hello from the creator").unwrap();
        let out = tool::ok(&["read", &name, "22"]);
        assert!(out.contains("hello from the creator (size 4096, owner false)"), "{out}");

        tool::ok(&["write", &name, "HELLO"]);
        let mut buf = [0u8; 22];
        shm.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"HELLO from the creator");

        // Three programs add to one atomic counter in the segment at once.
        let path = tool::path();
        let peers: Vec<_> = (0..2)
            .map(|_| {
                std::process::Command::new(&path)
                    .args(["add", &name, "64", "20000"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let counter = shm.atomic::<AtomicU64>(64).unwrap();
        for _ in 0..20_000 {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        for mut p in peers {
            assert!(p.wait().unwrap().success());
        }
        assert_eq!(counter.load(Ordering::SeqCst), 60_000);

        // What the other program sees after we are done: our drop unlinks.
        drop(shm);
        let (code, out) = tool::run(&["read", &name, "5"]);
        assert_eq!(code, 2);
        assert!(out.contains("no shared-memory segment named"), "{out}");
        assert_none_left("unrelated");
    });
}

#[test]
fn we_open_what_an_unrelated_program_created() {
    watchdog::run("we_open_what_an_unrelated_program_created", || {
        let name = unique("theirs");
        let holder = tool::Holder::start(&["create", &name, "512", "made elsewhere", "--hold"]);
        let shm = SharedMemory::open(&name).unwrap();
        assert_eq!((shm.size(), shm.is_owner()), (512, false));
        let mut buf = [0u8; 14];
        shm.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"made elsewhere");
        drop(shm); // ours never unlinks
        assert!(SharedMemory::open(&name).is_ok());

        let reopened = SharedMemory::open(&name).unwrap();
        assert_eq!(holder.finish(), 0);
        // The creator exited normally, so it unlinked the name; our mapping lives on.
        assert!(matches!(SharedMemory::open(&name), Err(OpenError::NotFound { .. })));
        reopened.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"made elsewhere");
        assert_none_left("theirs");
    });
}

#[test]
fn a_creator_killed_with_sigkill_leaves_the_segment_until_unlink_name() {
    watchdog::run("a_creator_killed_with_sigkill_leaves_the_segment_until_unlink_name", || {
        let name = unique("killed");
        let mut holder = tool::Holder::start(&["create", &name, "100", "last words", "--hold"]);
        holder.kill();

        // The documented outcome: the segment outlives its killed creator ...
        let shm = SharedMemory::open(&name).unwrap();
        let mut buf = [0u8; 10];
        shm.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"last words");
        let err = SharedMemory::create(&name, 100).unwrap_err();
        assert!(matches!(err, CreateError::AlreadyExists { .. }), "{err}");
        // ... until someone cleans up, here from yet another program.
        assert!(tool::ok(&["unlink", &name]).contains("unlinked"));
        assert!(matches!(SharedMemory::open(&name), Err(OpenError::NotFound { .. })));
        shm.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"last words", "an open handle outlives the unlink");
        // The name is free again.
        drop(SharedMemory::create(&name, 100).unwrap());
        assert_none_left("killed");
    });
}

fn child_writes(shm: SharedMemory) -> (bool, usize) {
    shm.write(0, b"child was here").unwrap();
    shm.atomic::<AtomicU64>(64).unwrap().fetch_add(1, Ordering::SeqCst);
    (shm.is_owner(), shm.size())
}

fn child_opens(name: String) -> u64 {
    let shm = SharedMemory::open(&name).unwrap();
    shm.atomic::<AtomicU64>(64).unwrap().fetch_add(10, Ordering::SeqCst)
}

#[test]
fn children_get_handles_as_arguments_or_open_by_name_under_every_method() {
    watchdog::run("children_get_handles_as_arguments_or_open_by_name_under_every_method", || {
        for method in METHODS {
            let name = unique("children");
            let shm = SharedMemory::create(&name, 128).unwrap();
            // A handle passed as an argument maps the same segment and does not own it,
            // not even a fork child's copy of the creator's handle: the name survives.
            assert_eq!(run(child_writes, shm.clone(), method), (false, 128), "{method}");
            assert!(SharedMemory::open(&name).is_ok(), "{method}: a child unlinked the name");
            assert_eq!(run(child_opens, name.clone(), method), 1, "{method}");
            let mut buf = [0u8; 14];
            shm.read(0, &mut buf).unwrap();
            assert_eq!(&buf, b"child was here");
            assert_eq!(shm.read_value::<u64>(64).unwrap(), 11);
            drop(shm);
            assert!(matches!(SharedMemory::open(&name), Err(OpenError::NotFound { .. })), "{method}");
        }
        assert_none_left("children");
    });
}
