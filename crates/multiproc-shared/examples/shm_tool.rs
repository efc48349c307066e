//! A small command-line tool over named segments: create, read, write and remove them
//! from the shell, from a program that shares nothing with the one that made them.
//! The crate's tests use it as the "unrelated program".
//!
//! ```text
//! cargo run -p multiproc-shared --example shm_tool -- create NAME SIZE TEXT [--hold]
//! cargo run -p multiproc-shared --example shm_tool -- read NAME LEN
//! cargo run -p multiproc-shared --example shm_tool -- write NAME TEXT
//! cargo run -p multiproc-shared --example shm_tool -- add NAME OFFSET TIMES
//! cargo run -p multiproc-shared --example shm_tool -- list-get NAME
//! cargo run -p multiproc-shared --example shm_tool -- list-set NAME INDEX TEXT
//! cargo run -p multiproc-shared --example shm_tool -- unlink NAME
//! ```
//!
//! `create ... --hold` prints `ready` and keeps the segment (owning it) until its
//! standard input closes, then exits normally, which unlinks it. Errors are printed on
//! stdout as `error: ...` with exit code 2, so a caller can check them.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use multiproc_shared::{ShareableList, SharedMemory};

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let arg =
        |i: usize| args.get(i).map(String::as_str).ok_or("missing argument; see the usage at the top of shm_tool.rs");
    match arg(0)? {
        "create" => {
            let shm = SharedMemory::create(arg(1)?, arg(2)?.parse()?)?;
            shm.write(0, arg(3)?.as_bytes())?;
            println!("ready");
            std::io::stdout().flush()?;
            if args.iter().any(|a| a == "--hold") {
                // Until the caller closes our stdin (or kills us).
                for line in std::io::stdin().lock().lines() {
                    line?;
                }
            } else {
                shm.persist();
            }
        }
        "read" => {
            let shm = SharedMemory::open(arg(1)?)?;
            let mut buf = vec![0u8; arg(2)?.parse()?];
            shm.read(0, &mut buf)?;
            println!("{} (size {}, owner {})", String::from_utf8_lossy(&buf), shm.size(), shm.is_owner());
        }
        "write" => {
            let shm = SharedMemory::open(arg(1)?)?;
            shm.write(0, arg(2)?.as_bytes())?;
            println!("written");
        }
        "add" => {
            let shm = SharedMemory::open(arg(1)?)?;
            let counter = shm.atomic::<AtomicU64>(arg(2)?.parse()?)?;
            let times: u64 = arg(3)?.parse()?;
            for _ in 0..times {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            println!("added {times}");
        }
        "list-get" => {
            let list = ShareableList::open(arg(1)?)?;
            let items: Vec<String> = list.to_vec()?.iter().map(ToString::to_string).collect();
            println!("[{}]", items.join(", "));
        }
        "list-set" => {
            let list = ShareableList::open(arg(1)?)?;
            list.set(arg(2)?.parse()?, arg(3)?)?;
            println!("set");
        }
        "unlink" => {
            SharedMemory::unlink_name(arg(1)?)?;
            println!("unlinked");
        }
        other => return Err(format!("unknown command {other:?}; see the usage at the top of shm_tool.rs").into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error: {e}");
            ExitCode::from(2)
        }
    }
}
