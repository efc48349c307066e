//! Handles as process arguments: all three queue types pass to children under every
//! start method; a descriptor that is not a queue, or a queue of another kind, is an
//! error value; an undecodable message is an error value and the queue goes on; and no
//! descriptor leaks.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use multiproc_codec::{Bincode, DecodeError, Fd, decode_with_fds, encode_with_fds};
use multiproc_queue::{JoinableQueue, Queue, RecvError, SimpleQueue};
use serde::{Deserialize, Serialize};
use watchdog::{METHODS, join, start, watchdog};

/// Re-encodes a value as another type through the out-of-band codec, as a process
/// argument would travel.
fn reinterpret<A: Serialize, B: for<'de> Deserialize<'de>>(a: &A) -> Result<B, DecodeError> {
    let codec = Bincode::new();
    let mut buf = Vec::new();
    let fds = encode_with_fds(&codec, a, &mut buf).expect("encode");
    decode_with_fds(&codec, &buf, fds)
}

fn simple_echo((input, output): (SimpleQueue<String>, SimpleQueue<String>)) {
    input.close();
    while let Ok(s) = input.get() {
        output.put(s.to_uppercase()).expect("put");
    }
}

fn joinable_worker(q: JoinableQueue<u32>) -> u32 {
    q.close();
    let mut sum = 0;
    for item in &q {
        sum += item.expect("decodes");
        q.task_done().expect("task_done");
    }
    sum
}

fn queue_in_a_struct(args: Args) -> usize {
    args.queues.iter().map(|q| q.put(args.tag.clone()).map(|()| 1).unwrap_or(0)).sum()
}

#[derive(Serialize, Deserialize)]
struct Args {
    tag: String,
    queues: Vec<Queue<String>>,
}

#[test]
fn every_queue_type_passes_to_children_under_every_start_method() {
    watchdog("queues as arguments", || {
        for method in METHODS {
            let (input, output) = (SimpleQueue::new().expect("queue"), SimpleQueue::new().expect("queue"));
            let mut echo = start(method, simple_echo, (input.clone(), output.clone()));
            for word in ["a", "bc", "def"] {
                input.put(word.to_owned()).expect("put");
            }
            drop(input);
            output.close();
            let got: Vec<String> = (0..3).map(|_| output.get().expect("get")).collect();
            assert_eq!(got, ["A", "BC", "DEF"], "[{method}]");
            join(method, &mut echo);
            assert!(matches!(output.get(), Err(RecvError::Closed)), "[{method}]");

            let jq: JoinableQueue<u32> = JoinableQueue::bounded(4).expect("queue");
            let mut worker = start(method, joinable_worker, jq.clone());
            for n in 1..=100 {
                jq.put(n).expect("put");
            }
            jq.join();
            assert_eq!(jq.unfinished_tasks(), 0);
            drop(jq);
            assert_eq!(join(method, &mut worker), 5050, "[{method}]");

            let queues: Vec<Queue<String>> = (0..3).map(|_| Queue::new().expect("queue")).collect();
            let args = Args { tag: method.name().to_owned(), queues: queues.clone() };
            let mut p = start(method, queue_in_a_struct, args);
            assert_eq!(join(method, &mut p), 3);
            for q in &queues {
                assert_eq!(q.get().expect("get"), method.name());
            }
        }
    });
}

#[derive(Serialize, Deserialize)]
struct FakeWire {
    segment: Fd,
    oob_tx: Fd,
    oob_rx: Fd,
    closed_rx: Fd,
    token: Option<Fd>,
}

#[test]
fn a_foreign_or_mismatched_handle_is_an_error_value() {
    watchdog("foreign handles", || {
        // Shaped like a queue handle, but the segment is some other shared memory.
        let foreign = multiproc_sys::shm::Segment::create("not-a-queue", 1 << 16).expect("segment");
        let (a, b) = multiproc_sys::fd::socket_pair(multiproc_sys::fd::SocketKind::SeqPacket).expect("socket");
        let (r, w) = multiproc_sys::fd::pipe().expect("pipe");
        let fake = FakeWire {
            segment: Fd::new(foreign.try_clone_fd().expect("dup")),
            oob_tx: Fd::new(a),
            oob_rx: Fd::new(b),
            closed_rx: Fd::new(r),
            token: Some(Fd::new(w)),
        };
        let err = reinterpret::<_, Queue<u32>>(&fake).expect_err("not a queue");
        assert!(err.to_string().contains("not a multiproc queue"), "{err}");

        // Not shared memory at all.
        let (r, w) = multiproc_sys::fd::pipe().expect("pipe");
        let mut fake2 = fake;
        fake2.segment = Fd::new(r);
        drop(w);
        let err = reinterpret::<_, Queue<u32>>(&fake2).expect_err("not a segment");
        assert!(err.to_string().contains("not a usable shared-memory segment"), "{err}");

        // A real queue of another kind.
        let q: Queue<u32> = Queue::new().expect("queue");
        let err = reinterpret::<_, SimpleQueue<u32>>(&q).expect_err("wrong kind");
        assert!(err.to_string().contains("expected a multiproc SimpleQueue but received a Queue"), "{err}");
        let err = reinterpret::<_, JoinableQueue<u32>>(&q).expect_err("wrong kind");
        assert!(err.to_string().contains("JoinableQueue"), "{err}");

        // A queue handle cannot be encoded outside multiproc (its descriptors would be
        // meaningless numbers).
        let mut buf = Vec::new();
        let err = multiproc_codec::Codec::encode(&Bincode::new(), &q, &mut buf).expect_err("plain encode");
        assert!(err.to_string().contains("can only be sent through multiproc"), "{err}");
    });
}

fn put_bytes_as_other_type((q, bytes): (Queue<Vec<u8>>, Vec<u8>)) {
    q.put(bytes).expect("put");
}

#[test]
fn an_undecodable_message_is_an_error_and_the_queue_goes_on() {
    watchdog("garbage message", || {
        for method in METHODS {
            let strings: Queue<String> = Queue::new().expect("queue");
            // A producer that puts bytes into what the consumer reads as a String queue
            // (another program, another version of the item type...).
            let bytes: Queue<Vec<u8>> = reinterpret(&strings).expect("same queue, other type");
            let mut p = start(method, put_bytes_as_other_type, (bytes.clone(), vec![0xFF, 0xFE, 0xFD]));
            join(method, &mut p);
            let mut p = start(method, put_bytes_as_other_type, (bytes.clone(), b"ok".to_vec()));
            join(method, &mut p);
            match strings.get() {
                Err(RecvError::Decode(e)) => assert!(e.to_string().contains("invalid"), "[{method}] {e}"),
                other => panic!("[{method}] invalid UTF-8 decoded as a String: {other:?}"),
            }
            // A valid encoding of the other type that is also a valid String: delivered.
            assert_eq!(strings.get().expect("next message"), "ok", "[{method}]");
            drop(bytes);
            strings.close();
            assert!(matches!(strings.get(), Err(RecvError::Closed)));
        }
    });
}

fn touch(q: Queue<u8>) -> u8 {
    q.put(1).expect("put");
    q.get().expect("get")
}

#[test]
fn no_descriptor_leaks() {
    watchdog("descriptor leaks", || {
        let before = multiproc_sys::fd::open_fds().expect("list fds");
        for method in METHODS {
            let q: Queue<u8> = Queue::builder().capacity(4096).build().expect("queue");
            let clones: Vec<_> = (0..5).map(|_| q.clone()).collect();
            let mut p = start(method, touch, q.clone());
            assert_eq!(join(method, &mut p), 1);
            drop(p);
            // A large message: its memfd is created, handed off and closed.
            let big: Queue<Vec<u8>> = reinterpret(&q.clone()).expect("same queue");
            let payload: Vec<u8> = (0..=255).cycle().take(10_000).collect();
            big.put(payload.clone()).expect("put");
            assert_eq!(big.get().expect("get"), payload);
            drop((q, clones, big));
        }
        let after = multiproc_sys::fd::open_fds().expect("list fds");
        assert_eq!(before, after, "descriptors were left open");
    });
}
