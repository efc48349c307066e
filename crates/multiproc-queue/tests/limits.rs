//! Limits: a bounded queue blocks and times out, `Full` and `Empty` (a failed put hands
//! the item back), the byte capacity, `max_message_size`, and a 64 MiB message through a
//! queue whose buffer is far smaller, across processes with every start method.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::{Duration, Instant};

use multiproc_codec::EncodeError;
use multiproc_queue::{
    CreateError, Queue, RecvTimeoutError, SendError, SendTimeoutError, SimpleQueue, TryRecvError, TrySendError,
};
use serde_bytes::ByteBuf;
use watchdog::{METHODS, join, start, watchdog};

fn take_one_later(q: Queue<u32>) -> u32 {
    std::thread::sleep(Duration::from_millis(100));
    q.get().expect("get")
}

#[test]
fn bounded_queue_blocks_times_out_and_hands_items_back() {
    watchdog("bounded queue", || {
        for method in METHODS {
            let q: Queue<u32> = Queue::bounded(2).expect("queue");
            assert_eq!(q.maxsize(), Some(2));
            q.put(1).expect("put");
            q.put(2).expect("put");
            assert!(q.full() && !q.empty());
            assert_eq!(q.qsize(), 2);
            match q.put_nowait(3) {
                Err(TrySendError::Full(item)) => assert_eq!(item, 3),
                other => panic!("[{method}] put_nowait on a full queue: {other:?}"),
            }
            let start_wait = Instant::now();
            match q.put_timeout(4, Duration::from_millis(50)) {
                Err(SendTimeoutError::Timeout(item)) => assert_eq!(item, 4),
                other => panic!("[{method}] put_timeout on a full queue: {other:?}"),
            }
            assert!(start_wait.elapsed() >= Duration::from_millis(50), "[{method}] gave up early");
            let late = Instant::now() + Duration::from_millis(10);
            assert!(matches!(q.send_deadline(5, late), Err(SendTimeoutError::Timeout(5))));
            // Another process makes room: the blocking put goes through.
            let mut c = start(method, take_one_later, q.clone());
            q.put(6).expect("blocking put");
            assert_eq!(join(method, &mut c), 1);
            assert_eq!((q.get().expect("get"), q.get().expect("get")), (2, 6));
            assert!(q.empty() && !q.full());
        }
    });
}

#[test]
fn empty_queue_errors_and_timeouts() {
    watchdog("empty queue", || {
        let q: Queue<u32> = Queue::new().expect("queue");
        assert!(matches!(q.get_nowait(), Err(TryRecvError::Empty)));
        assert!(matches!(q.try_recv(), Err(TryRecvError::Empty)));
        let start_wait = Instant::now();
        assert!(matches!(q.get_timeout(Duration::from_millis(30)), Err(RecvTimeoutError::Timeout)));
        assert!(start_wait.elapsed() >= Duration::from_millis(30));
        assert!(matches!(q.recv_deadline(Instant::now()), Err(RecvTimeoutError::Timeout)));
        assert_eq!(q.try_iter().count(), 0);
        q.send(7).expect("send");
        q.try_send(8).expect("try_send");
        q.send_timeout(9, Duration::from_millis(1)).expect("send_timeout");
        assert_eq!(q.recv().expect("recv"), 7);
        assert_eq!(q.recv_timeout(Duration::from_secs(5)).expect("recv_timeout"), 8);
        let rest: Vec<u32> = q.try_iter().map(|r| r.expect("decodes")).collect();
        assert_eq!(rest, [9]);
    });
}

#[test]
fn byte_capacity_bounds_an_unbounded_queue() {
    watchdog("byte capacity", || {
        let q: Queue<ByteBuf> = Queue::builder().capacity(4096).build().expect("queue");
        assert_eq!((q.capacity(), q.maxsize()), (4096, None));
        let item = ByteBuf::from(vec![7u8; 1000]);
        let mut n = 0;
        let refused = loop {
            match q.put_nowait(item.clone()) {
                Ok(()) => n += 1,
                Err(TrySendError::Full(back)) => break back,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(refused, item, "the refused item is handed back intact");
        assert_eq!(n, 4, "four 1000-byte records fit a 4 KiB ring");
        // Full for this item, not for every item: `full` means "even the smallest waits".
        assert!(!q.full());
        while q.put_nowait(ByteBuf::new()).is_ok() {}
        assert!(q.full());
        assert!(matches!(q.put_nowait(ByteBuf::new()), Err(TrySendError::Full(_))));
        assert_eq!(q.get().expect("get"), item);
        q.put_nowait(item).expect("room again");
    });
}

#[test]
fn message_size_limit_hands_the_item_back() {
    watchdog("max message size", || {
        let q: SimpleQueue<ByteBuf> = SimpleQueue::builder().max_message_size(1000).build().expect("queue");
        let big = ByteBuf::from(vec![1u8; 2000]);
        match q.put(big.clone()) {
            Err(SendError::Encode { item, error: EncodeError::TooLarge { size, limit } }) => {
                assert_eq!(item, big);
                assert_eq!(limit, 1000);
                assert!(size > 2000);
            }
            other => panic!("oversize put: {other:?}"),
        }
        assert!(q.empty(), "nothing of the refused item reached the queue");
        assert!(matches!(Queue::<u8>::bounded(0), Err(CreateError::Maxsize { .. })));
    });
}

const BIG: usize = 64 << 20;

/// 64 MiB in which every 4 KiB block differs (its number and `seed` lead it), so a
/// block delivered twice, dropped or out of place is noticed. Built with block copies:
/// byte-by-byte generation is slow in a debug build.
fn big_message(seed: u8) -> ByteBuf {
    let block: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed).collect();
    let mut v = Vec::with_capacity(BIG);
    for n in 0..(BIG / block.len()) as u64 {
        let start = v.len();
        v.extend_from_slice(&block);
        v[start..start + 8].copy_from_slice(&(n ^ u64::from(seed) << 56).to_le_bytes());
    }
    ByteBuf::from(v)
}

fn echo_big((inbox, outbox): (Queue<ByteBuf>, Queue<ByteBuf>)) -> bool {
    let got = inbox.get().expect("get 64 MiB");
    let ok = got == big_message(3);
    outbox.put(big_message(5)).expect("put 64 MiB");
    ok
}

#[test]
fn a_64_mib_message_passes_through_a_64_kib_queue() {
    watchdog("64 MiB message", || {
        for method in METHODS {
            let inbox: Queue<ByteBuf> = Queue::builder().capacity(64 << 10).build().expect("queue");
            let outbox: Queue<ByteBuf> = Queue::builder().capacity(64 << 10).build().expect("queue");
            let mut c = start(method, echo_big, (inbox.clone(), outbox.clone()));
            inbox.put(big_message(3)).expect("put 64 MiB");
            let back = outbox.get().expect("get 64 MiB");
            assert!(join(method, &mut c), "[{method}] the child received a damaged 64 MiB message");
            assert!(back == big_message(5), "[{method}] the parent received a damaged 64 MiB message");
        }
    });
}
