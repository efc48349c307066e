//! The `multiprocessing.Pipe` walk-through: `send`/`recv` of typed values,
//! `send_bytes` with an offset and a size (a slice), `recv_bytes_into` (and its
//! too-short buffer), `poll`, a child process on the other end, and `close`.
//!
//! Run with `cargo run --example pipe`.

use std::time::Duration;

use multiproc::Process;
use multiproc_pipe::{Connection, Pipe, RecvError};

/// The child: doubles every number it gets, until it is sent `None`.
fn doubler(conn: Connection) -> u32 {
    let mut handled = 0;
    while let Some(n) = conn.recv::<Option<i64>>().expect("the parent hung up early") {
        conn.send(&(n * 2)).expect("the parent hung up early");
        handled += 1;
    }
    handled
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();

    // Python: a, b = Pipe()
    let (a, b) = Pipe::duplex()?;

    // a.send([1, 'hello', None]); b.recv()
    a.send(&(1, "hello", None::<i32>))?;
    let value: (i32, String, Option<i32>) = b.recv()?;
    println!("b received {value:?}");
    assert_eq!(value, (1, "hello".to_owned(), None));

    // b.send_bytes(b'thank you'); a.recv_bytes()
    b.send_bytes(b"thank you")?;
    let bytes = a.recv_bytes()?;
    println!("a received {:?}", String::from_utf8_lossy(&bytes));
    assert_eq!(bytes, b"thank you");

    // send_bytes(buf, offset, size) is a slice: send 5 ints starting at index 2.
    let ints: Vec<u8> = (0..10i32).flat_map(i32::to_le_bytes).collect();
    let (offset, size) = (2 * 4, 5 * 4);
    a.send_bytes(&ints[offset..offset + size])?;

    // recv_bytes_into(buffer, offset): into a 10-int buffer, from its 3rd int on.
    let mut buffer = [0u8; 10 * 4];
    let count = b.recv_bytes_into(&mut buffer[3 * 4..])?;
    assert_eq!(count, size);
    let received: Vec<i32> =
        buffer.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4-byte chunk"))).collect();
    println!("recv_bytes_into got {count} bytes: {received:?}");
    assert_eq!(received, [0, 0, 0, 2, 3, 4, 5, 6, 0, 0]);

    // A buffer that is too short: the error carries the whole message (Python's BufferTooShort).
    a.send_bytes(b"a message longer than eight bytes")?;
    match b.recv_bytes_into(&mut [0u8; 8]) {
        Err(RecvError::BufferTooShort { message, .. }) => {
            println!("buffer too short; the message is in the error: {:?}", String::from_utf8_lossy(&message))
        }
        other => panic!("expected BufferTooShort, got {other:?}"),
    }

    // poll: is there anything to receive?
    assert!(!b.poll(Duration::ZERO)?);
    a.send(&"ready?")?;
    assert!(b.poll(Duration::from_secs(5))?);
    println!("poll saw a message: {:?}", b.recv::<String>()?);

    // The other end in a child process.
    let (parent_end, child_end) = Pipe::duplex()?;
    let mut child = Process::new(doubler, child_end);
    child.start()?;
    for n in [1i64, 20, 300] {
        parent_end.send(&Some(n))?;
        let doubled: i64 = parent_end.recv()?;
        println!("child doubled {n} to {doubled}");
        assert_eq!(doubled, n * 2);
    }
    parent_end.send(&None::<i64>)?;
    println!("child handled {} messages", child.join()?);

    // close: the other end then sees end-of-file (Python's EOFError).
    a.close();
    match b.recv::<String>() {
        Err(RecvError::Disconnected) => println!("after a.close(), b.recv() says: {}", RecvError::Disconnected),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    Ok(())
}
