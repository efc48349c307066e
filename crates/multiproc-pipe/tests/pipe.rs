//! Pipes between real processes, under every start method: typed and byte messages in
//! both directions, buffer and size limits, poll, end-of-file, closed peers, a 64 MiB
//! message, a peer killed in the middle of a message, and 10,000 messages in order.

multiproc_process::test_init!();

#[path = "support/watchdog.rs"]
pub mod watchdog;

use std::time::Duration;

use multiproc_pipe::{Connection, Pipe, RecvError, SendError};
use multiproc_process::{JoinError, Process, StartMethod};
use serde::{Deserialize, Serialize};
use watchdog::watchdog;

const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];
const LIMIT: Duration = Duration::from_secs(120);

fn start<A, R>(target: fn(A) -> R, args: A, method: StartMethod) -> Process<R>
where
    A: Serialize + serde::de::DeserializeOwned + Send + 'static,
    R: Serialize + serde::de::DeserializeOwned + 'static,
{
    // A daemon dies with the test thread, so a failing test leaves no orphan behind.
    let mut p = Process::new(target, args).with_start_method(method).with_daemon(true);
    p.start().unwrap_or_else(|e| panic!("cannot start a {method} child: {e}"));
    p
}

/// Runs `test` once per start method, each under the watchdog.
fn each_method(name: &str, test: fn(StartMethod)) {
    for method in METHODS {
        watchdog(&format!("{name} ({method})"), LIMIT, move || test(method));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Text(String),
    Numbers(Vec<i64>),
    Nested(u8, Option<Box<Msg>>),
    Stop,
}

// ---- typed messages, both directions ----

/// Speaks first, then echoes every message until `Stop`; returns how many it echoed.
fn typed_echo(conn: Connection) -> u32 {
    conn.send(&Msg::Text(format!("hello from {}", std::process::id()))).unwrap();
    let mut n = 0;
    loop {
        let m: Msg = conn.recv().unwrap();
        if m == Msg::Stop {
            return n;
        }
        conn.send(&m).unwrap();
        n += 1;
    }
}

#[test]
fn typed_round_trip_both_directions() {
    each_method("typed_round_trip_both_directions", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(typed_echo, theirs, method);
        let pid = p.pid().unwrap();
        assert_eq!(mine.recv::<Msg>().unwrap(), Msg::Text(format!("hello from {pid}")));
        let msgs = [
            Msg::Text("héllo wörld".into()),
            Msg::Numbers((-500..500).collect()),
            Msg::Nested(7, Some(Box::new(Msg::Nested(8, None)))),
            Msg::Text(String::new()),
        ];
        for m in &msgs {
            mine.send(m).unwrap();
            assert_eq!(&mine.recv::<Msg>().unwrap(), m);
        }
        mine.send(&Msg::Stop).unwrap();
        assert_eq!(p.join().unwrap(), msgs.len() as u32);
    });
}

// ---- bytes, with offset/size slices ----

/// Replies to each message with its bytes reversed, sent from the middle of a larger
/// buffer (an offset/size slice); an empty message ends it.
fn bytes_echo(conn: Connection) -> usize {
    let mut n = 0;
    loop {
        let m = conn.recv_bytes().unwrap();
        if m.is_empty() {
            return n;
        }
        let mut framed = vec![b'<'; 3];
        framed.extend(m.iter().rev());
        framed.extend_from_slice(b">>>");
        conn.send_bytes(&framed[3..3 + m.len()]).unwrap();
        n += 1;
    }
}

#[test]
fn bytes_round_trip_with_slices() {
    each_method("bytes_round_trip_with_slices", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(bytes_echo, theirs, method);
        let data: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        for (offset, size) in [(0, 1), (10, 64), (1000, 4096), (0, 100_000), (99_999, 1)] {
            mine.send_bytes(&data[offset..offset + size]).unwrap();
            let back = mine.recv_bytes().unwrap();
            let expected: Vec<u8> = data[offset..offset + size].iter().rev().copied().collect();
            assert_eq!(back, expected, "offset {offset} size {size}");
        }
        mine.send_bytes(&[]).unwrap();
        assert_eq!(p.join().unwrap(), 5);
    });
}

// ---- recv_bytes_into with a short buffer ----

/// Sends two messages, then waits for the word to exit.
fn send_two_then_wait(conn: Connection) {
    conn.send_bytes(b"0123456789abcdef").unwrap();
    conn.send_bytes(b"xy").unwrap();
    let _: String = conn.recv().unwrap();
}

#[test]
fn recv_bytes_into_too_short_keeps_the_message() {
    each_method("recv_bytes_into_too_short_keeps_the_message", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(send_two_then_wait, theirs, method);
        let mut buf = [0u8; 8];
        match mine.recv_bytes_into(&mut buf[..4]) {
            Err(RecvError::BufferTooShort { message, buffer }) => {
                assert_eq!(message, b"0123456789abcdef");
                assert_eq!(buffer, 4);
            }
            other => panic!("expected BufferTooShort, got {other:?}"),
        }
        // The offset form: receive into buf[2..].
        assert_eq!(mine.recv_bytes_into(&mut buf[2..]).unwrap(), 2);
        assert_eq!(&buf[2..4], b"xy");
        mine.send(&"done").unwrap();
        p.join().unwrap();
    });
}

// ---- recv_bytes_max, then the next message ----

fn send_big_then_small(conn: Connection) {
    conn.send_bytes(&vec![0xAB; 1 << 20]).unwrap();
    conn.send_bytes(b"small").unwrap();
    let _: String = conn.recv().unwrap();
}

#[test]
fn recv_bytes_max_then_next_message() {
    each_method("recv_bytes_max_then_next_message", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(send_big_then_small, theirs, method);
        match mine.recv_bytes_max(1000) {
            Err(RecvError::TooLarge { size, limit }) => assert_eq!((size, limit), (1 << 20, 1000)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(mine.recv_bytes_max(1000).unwrap(), b"small");
        mine.send(&"done").unwrap();
        p.join().unwrap();
    });
}

// ---- poll ----

fn answer_when_asked(conn: Connection) {
    let _: String = conn.recv().unwrap();
    conn.send(&"data").unwrap();
    let _: String = conn.recv().unwrap();
}

#[test]
fn poll_with_and_without_data() {
    each_method("poll_with_and_without_data", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(answer_when_asked, theirs, method);
        assert!(!mine.poll(Duration::ZERO).unwrap());
        assert!(!mine.poll(Duration::from_millis(20)).unwrap());
        mine.send(&"go").unwrap();
        assert!(mine.poll(None).unwrap());
        assert!(mine.poll(Duration::ZERO).unwrap(), "poll must not consume the message");
        assert_eq!(mine.recv::<String>().unwrap(), "data");
        assert!(!mine.poll(Duration::ZERO).unwrap());
        mine.send(&"done").unwrap();
        p.join().unwrap();
    });
}

// ---- end-of-file after the peer exits; sending to a closed peer ----

fn send_three_and_exit(conn: Connection) {
    for i in 0..3u32 {
        conn.send(&i).unwrap();
    }
}

#[test]
fn eof_after_the_peer_exits() {
    each_method("eof_after_the_peer_exits", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(send_three_and_exit, theirs, method);
        p.join().unwrap();
        // Everything sent before the exit is still delivered, then end-of-file.
        for i in 0..3u32 {
            assert_eq!(mine.recv::<u32>().unwrap(), i);
        }
        assert!(mine.poll(Duration::ZERO).unwrap(), "end-of-file counts as ready");
        assert!(matches!(mine.recv::<u32>(), Err(RecvError::Disconnected)));
        assert!(matches!(mine.recv_bytes(), Err(RecvError::Disconnected)));
        assert!(mine.recv_bytes().unwrap_err().to_string().contains("peer closed"));
    });
}

/// Closes its end at once. Then, with SIGPIPE's default action (death) restored, sends
/// into a pipe of its own whose other end is closed: it must get an error and live.
fn close_then_send_into_closed_pipe(conn: Connection) -> String {
    conn.close();
    // SAFETY: restoring a signal's default disposition in a single-threaded child.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let (a, b) = Pipe::duplex().unwrap();
    drop(b);
    let big = vec![0u8; 1 << 20];
    match (a.send(&1u8), a.send_bytes(&big)) {
        (Err(SendError::Disconnected), Err(SendError::Disconnected)) => "survived".to_owned(),
        other => format!("unexpected: {other:?}"),
    }
}

#[test]
fn send_after_the_peer_closed() {
    each_method("send_after_the_peer_closed", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(close_then_send_into_closed_pipe, theirs, method);
        assert_eq!(p.join().unwrap(), "survived");
        let e = mine.send(&"anyone there?").unwrap_err();
        assert!(matches!(e, SendError::Disconnected), "{e:?}");
        assert!(e.to_string().contains("peer closed"), "{e}");
        assert!(matches!(mine.send_bytes(&[1, 2, 3]), Err(SendError::Disconnected)));
        assert!(matches!(mine.recv::<u8>(), Err(RecvError::Disconnected)));
    });
}

// ---- a 64 MiB message ----

fn echo_one_big(conn: Connection) -> u64 {
    let m = conn.recv_bytes().unwrap();
    conn.send_bytes(&m).unwrap();
    let v: Vec<u64> = conn.recv().unwrap();
    conn.send(&v).unwrap();
    m.len() as u64 + v.len() as u64
}

#[test]
fn message_of_64_mib_round_trips() {
    each_method("message_of_64_mib_round_trips", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(echo_one_big, theirs, method);
        let big: Vec<u8> = (0..64u32 << 20).map(|i| (i ^ (i >> 9)) as u8).collect();
        mine.send_bytes(&big).unwrap();
        assert!(mine.recv_bytes().unwrap() == big, "64 MiB came back different");
        let typed: Vec<u64> = (0..1u64 << 20).map(|i| i * 0x9E37_79B9).collect(); // a big typed message too
        mine.send(&typed).unwrap();
        assert!(mine.recv::<Vec<u64>>().unwrap() == typed, "typed message came back different");
        assert_eq!(p.join().unwrap(), (64 << 20) + (1 << 20));
    });
}

// ---- a peer killed in the middle of a message ----

/// Announces itself, then starts a 64 MiB message the parent will not read, so it is
/// blocked in the middle of it when it is killed.
fn start_a_big_message(conn: Connection) {
    conn.send(&"about to send").unwrap();
    conn.send_bytes(&vec![1u8; 64 << 20]).unwrap();
    conn.send(&"never sent").unwrap();
}

#[test]
fn peer_killed_mid_message_gives_truncated() {
    each_method("peer_killed_mid_message_gives_truncated", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(start_a_big_message, theirs, method);
        assert_eq!(mine.recv::<String>().unwrap(), "about to send");
        // Wait for the first bytes of the big message: the child is now inside it.
        assert!(mine.poll(None).unwrap());
        p.kill().unwrap();
        assert!(matches!(p.join(), Err(JoinError::Killed { signal: 9 })));
        match mine.recv_bytes() {
            Err(RecvError::Truncated { received, expected }) => {
                assert_eq!(expected, 16 + (64 << 20));
                assert!(received > 16 && received < expected, "received {received}");
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        let e = RecvError::Truncated { received: 1, expected: 2 }.to_string();
        assert!(e.contains("middle of a message"), "{e}");
        assert!(matches!(mine.recv_bytes(), Err(RecvError::Disconnected)));
    });
}

// ---- 10,000 small messages in order, both ways ----

fn count_and_reply(conn: Connection) -> u32 {
    for i in 0..10_000u32 {
        let got: u32 = conn.recv().unwrap();
        assert_eq!(got, i, "message out of order");
    }
    for i in 0..10_000u32 {
        if i % 2 == 0 {
            conn.send(&i).unwrap();
        } else {
            conn.send_bytes(&i.to_le_bytes()).unwrap();
        }
    }
    let _: String = conn.recv().unwrap();
    10_000
}

#[test]
fn ten_thousand_small_messages_in_order() {
    each_method("ten_thousand_small_messages_in_order", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let mut p = start(count_and_reply, theirs, method);
        for i in 0..10_000u32 {
            mine.send(&i).unwrap();
        }
        for i in 0..10_000u32 {
            let got = if i % 2 == 0 {
                mine.recv::<u32>().unwrap()
            } else {
                u32::from_le_bytes(mine.recv_bytes().unwrap().try_into().unwrap())
            };
            assert_eq!(got, i);
        }
        mine.send(&"done").unwrap();
        assert_eq!(p.join().unwrap(), 10_000);
    });
}

// ---- simplex pipes and passing both kinds of end ----

fn write_lines(w: Connection) -> bool {
    for line in ["one", "two", "three"] {
        w.send(&line).unwrap();
    }
    matches!(w.recv::<String>(), Err(RecvError::NotReadable))
}

#[test]
fn simplex_pipe_to_a_child() {
    each_method("simplex_pipe_to_a_child", |method| {
        let (r, w) = Pipe::simplex().unwrap();
        let mut p = start(write_lines, w, method);
        for line in ["one", "two", "three"] {
            assert_eq!(r.recv::<String>().unwrap(), line);
        }
        assert!(p.join().unwrap(), "the sending end must refuse to receive");
        assert!(matches!(r.recv::<String>(), Err(RecvError::Disconnected)));
    });
}

/// Receives a second connection inside a message and talks over it.
fn use_a_connection_sent_to_me(conn: Connection) -> String {
    let other: Connection = conn.recv().unwrap();
    let text: String = other.recv().unwrap();
    other.send(&format!("{text}, got it")).unwrap();
    text
}

#[test]
fn a_connection_sent_over_a_connection() {
    each_method("a_connection_sent_over_a_connection", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        let (x, y) = Pipe::duplex().unwrap();
        let mut p = start(use_a_connection_sent_to_me, theirs, method);
        y.send(&"hello over the second pipe").unwrap();
        mine.send(&x).unwrap();
        drop(x);
        assert_eq!(y.recv::<String>().unwrap(), "hello over the second pipe, got it");
        assert_eq!(p.join().unwrap(), "hello over the second pipe");
    });
}

// ---- a child keeps only the connections it was given ----

/// Counts messages until the parent closes its end.
fn count_until_eof(conn: Connection) -> u32 {
    let mut n = 0;
    loop {
        match conn.recv::<u32>() {
            Ok(_) => n += 1,
            Err(RecvError::Disconnected) => return n,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_child_keeps_only_the_connections_it_was_given() {
    each_method("a_child_keeps_only_the_connections_it_was_given", |method| {
        let (mine, theirs) = Pipe::duplex().unwrap();
        // Another pipe, open while the child starts but not given to it.
        let (other, other_peer) = Pipe::duplex().unwrap();
        let mut p = start(count_until_eof, theirs, method);
        // The child holds no copy of `other_peer`: dropping ours is end-of-file.
        drop(other_peer);
        assert!(matches!(other.recv::<u32>(), Err(RecvError::Disconnected)));
        // Nor of `mine`: closing it ends the child's loop (under fork too).
        for i in 0..3u32 {
            mine.send(&i).unwrap();
        }
        mine.close();
        assert_eq!(p.join().unwrap(), 3);
    });
}
