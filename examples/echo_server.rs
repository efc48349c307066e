//! A TCP echo server that serves each connection in its own process, and clients that
//! check its echoes: Python's `multiprocessing.connection.Listener` / `Client` example,
//! made self-driving. It listens on 127.0.0.1 (a free port), starts the clients as
//! processes, hands every accepted connection to a new server process, checks every
//! result, shuts down and exits 0 (1 on any failure).
//!
//! Run with `cargo run --example echo_server`.

use std::time::Duration;

use multiproc::Process;
use multiproc_pipe::{Address, Client, Connection, Listener, RecvError};

const AUTHKEY: &[u8] = b"secret password";
const CLIENTS: usize = 4;

/// Serves one connection: echoes every message until the client hangs up.
fn serve(conn: Connection) -> usize {
    let mut echoed = 0;
    loop {
        match conn.recv_bytes() {
            Ok(message) => {
                conn.send_bytes(&message).expect("client vanished mid-conversation");
                echoed += 1;
            }
            Err(RecvError::Disconnected) => return echoed,
            Err(e) => panic!("serving a client: {e}"),
        }
    }
}

/// A client: connects, sends messages of several sizes, checks each echo.
fn client(args: (Address, usize)) -> Result<usize, String> {
    let (address, id) = args;
    let conn = Client::connect(&address, Some(AUTHKEY)).map_err(|e| e.to_string())?;
    let mut checked = 0;
    for size in [0usize, 1, 100, 10_000, 1 << 20] {
        let message: Vec<u8> = (0..size).map(|i| (i * 7 + id) as u8).collect();
        conn.send_bytes(&message).map_err(|e| e.to_string())?;
        let echo = conn.recv_bytes().map_err(|e| e.to_string())?;
        if echo != message {
            return Err(format!("client {id}: the echo of {size} bytes differs"));
        }
        checked += 1;
    }
    // Typed messages travel the same way (encoded, then echoed as bytes).
    conn.send(&format!("client {id} says goodbye")).map_err(|e| e.to_string())?;
    let goodbye: String = conn.recv().map_err(|e| e.to_string())?;
    println!("client {id}: {goodbye}");
    Ok(checked + 1)
}

fn main() {
    multiproc::init();
    match run() {
        Ok(()) => println!("echo server: all {CLIENTS} clients served and checked"),
        Err(e) => {
            eprintln!("echo server failed: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let listener = Listener::bind(&Address::localhost_any_port(), Some(AUTHKEY))?;
    let address = listener.address().clone();
    println!("listening on {address}");

    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        let mut p = Process::new(client, (address.clone(), id));
        p.start()?;
        clients.push(p);
    }

    // Each accepted connection goes to a process of its own (it is an argument like any
    // other: its descriptor travels to the child).
    let mut servers = Vec::new();
    for _ in 0..CLIENTS {
        let conn = listener.accept_timeout(Duration::from_secs(30))?;
        let mut server = Process::new(serve, conn);
        server.start()?;
        servers.push(server);
    }
    listener.close();

    for (id, mut p) in clients.into_iter().enumerate() {
        let checked = p.join()?.map_err(|e| format!("client {id}: {e}"))?;
        println!("client {id}: {checked} echoes checked");
    }
    for mut p in servers {
        let echoed = p.join()?;
        if echoed != 6 {
            return Err(format!("a server process echoed {echoed} messages instead of 6").into());
        }
    }
    Ok(())
}
