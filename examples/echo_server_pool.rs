//! A TCP echo server whose connections are served by a pool of worker processes
//! (instead of one new process per connection). Self-driving: it starts the server on
//! 127.0.0.1 (a free port), runs several clients, checks every echo, shuts down and
//! exits 0.
//!
//! Each accepted socket travels to a worker as a task argument: its descriptor is sent
//! out of band (SCM_RIGHTS), so the worker serves the very same connection.
//!
//! Run with `cargo run --example echo_server_pool`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use multiproc::Pool;
use multiproc::codec::Fd;

const CLIENTS: usize = 6;
const LINES: usize = 20;

/// Serves one connection in a worker process: echoes lines until the client closes.
/// Returns (worker pid, lines echoed).
fn serve(conn: Fd) -> (u32, usize) {
    let stream = TcpStream::from(conn.into_inner());
    let mut writer = stream.try_clone().expect("clone the socket");
    let mut lines = 0;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if writeln!(writer, "{line}").is_err() {
            break;
        }
        lines += 1;
    }
    (std::process::id(), lines)
}

fn client(addr: std::net::SocketAddr, id: usize) -> std::io::Result<usize> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut echoed = 0;
    for i in 0..LINES {
        let msg = format!("client {id} line {i}");
        writeln!(writer, "{msg}")?;
        let mut back = String::new();
        reader.read_line(&mut back)?;
        assert_eq!(back.trim_end(), msg, "wrong echo");
        echoed += 1;
    }
    Ok(echoed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    multiproc::init();
    let pool = Pool::new(3)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    println!("echo server on {addr} with {} worker processes {:?}", pool.processes(), pool.worker_pids());

    let clients: Vec<_> = (0..CLIENTS).map(|id| std::thread::spawn(move || client(addr, id))).collect();
    // Accept exactly the clients we started, handing each connection to the pool.
    let mut served = Vec::new();
    for _ in 0..CLIENTS {
        let (stream, peer) = listener.accept()?;
        println!("accepted {peer}");
        served.push(pool.apply_async(serve, Fd::new(OwnedFd::from(stream))));
    }
    for c in clients {
        let echoed = c.join().map_err(|_| "a client thread panicked")??;
        assert_eq!(echoed, LINES);
    }
    let mut total = 0;
    for r in served {
        let (pid, lines) = r.get()?;
        println!("worker {pid} echoed {lines} lines");
        assert_ne!(pid, std::process::id());
        total += lines;
    }
    assert_eq!(total, CLIENTS * LINES);
    pool.close();
    pool.join()?;
    println!("echo server finished: {total} lines echoed to {CLIENTS} clients");
    Ok(())
}
