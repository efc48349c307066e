//! The ticket office: ten buyer processes share one JSON file of unsold tickets, and
//! each checks for a ticket and buys it. The check and the purchase must happen under
//! one `Lock`, or two buyers read the same ticket as free and both buy it.
//!
//! ```text
//! cargo run --example ticket_lock             # with the lock: no ticket sold twice
//! cargo run --example ticket_lock -- --no-lock  # without: watch it oversell
//! ```
//!
//! Exits with 0 when no ticket was sold twice, or when `--no-lock` was asked for (it then
//! says whether it oversold); 1 if the lock failed to prevent an oversell.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Duration;

use multiproc::Process;
use multiproc_sync::{Lock, LockError};
use serde::{Deserialize, Serialize};

const BUYERS: u32 = 10;
const TICKETS: u32 = 6;

/// What the office's file holds.
#[derive(Serialize, Deserialize)]
struct Office {
    remaining: Vec<String>,
}

fn read_office(path: &Path) -> Result<Office, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a ticket file: {e}", path.display()))
}

/// Replaces the file in one step (write a temporary, rename it over), so a buyer never
/// reads half a file, lock or no lock.
fn write_office(path: &Path, office: &Office) -> Result<(), String> {
    let text = serde_json::to_string_pretty(office).map_err(|e| e.to_string())?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

/// One buyer: check for a free ticket and buy it; with `lock`, under the lock.
/// Returns the ticket bought, if any.
fn buy((lock, file, buyer): (Option<Lock>, PathBuf, u32)) -> Result<Option<String>, String> {
    let _guard = match &lock {
        None => None,
        Some(lock) => match lock.lock() {
            Ok(guard) => Some(guard),
            // A buyer died mid-purchase; the file is still whole (each write replaces
            // it in one step), so carry on.
            Err(LockError::OwnerDied(guard)) => {
                guard.mark_consistent();
                Some(guard)
            }
            Err(e) => return Err(format!("buyer {buyer}: {e}")),
        },
    };
    let mut office = read_office(&file)?;
    let Some(ticket) = office.remaining.first().cloned() else { return Ok(None) };
    // Paying takes a moment; without the lock another buyer sees the same ticket free.
    std::thread::sleep(Duration::from_millis(20));
    office.remaining.retain(|t| *t != ticket);
    write_office(&file, &office)?;
    Ok(Some(ticket))
}

fn main() -> Result<(), Box<dyn Error>> {
    multiproc::init();
    let use_lock = !std::env::args().any(|a| a == "--no-lock");

    let dir = std::env::temp_dir().join(format!("multiproc-ticket-office-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir, use_lock);
    std::fs::remove_dir_all(&dir)?;
    let oversold = result?;

    match (oversold, use_lock) {
        (false, _) => println!("no ticket was sold twice"),
        (true, false) => println!("OVERSOLD: without the lock, buyers bought the same ticket (run without --no-lock)"),
        (true, true) => {
            println!("OVERSOLD even with the lock: this is a bug");
            std::process::exit(1);
        }
    }
    Ok(())
}

/// Runs the sale in `dir`; returns whether some ticket was sold twice.
fn run(dir: &Path, use_lock: bool) -> Result<bool, Box<dyn Error>> {
    let file = dir.join("tickets.json");
    write_office(&file, &Office { remaining: (1..=TICKETS).map(|n| format!("seat-{n}")).collect() })?;
    let lock = if use_lock { Some(Lock::new()?) } else { None };
    println!(
        "{BUYERS} buyers, {TICKETS} tickets, {}",
        if use_lock { "buying under a Lock" } else { "buying WITHOUT a lock" }
    );

    let mut buyers = Vec::new();
    for buyer in 1..=BUYERS {
        let mut p = Process::new(buy, (lock.clone(), file.clone(), buyer));
        p.start()?;
        buyers.push((buyer, p));
    }
    let mut sold: HashMap<String, Vec<u32>> = HashMap::new();
    for (buyer, mut p) in buyers {
        match p.join()? {
            Ok(Some(ticket)) => {
                println!("buyer {buyer:2} bought {ticket}");
                sold.entry(ticket).or_default().push(buyer);
            }
            Ok(None) => println!("buyer {buyer:2} found the office sold out"),
            Err(e) => return Err(e.into()),
        }
    }
    let mut twice: Vec<_> = sold.iter().filter(|(_, b)| b.len() > 1).collect();
    twice.sort();
    for (ticket, buyers) in &twice {
        println!("{ticket} was sold {} times (to buyers {buyers:?})", buyers.len());
    }
    Ok(!twice.is_empty())
}
