//! Looking at processes and descriptors through `/proc`, and small pipe helpers the
//! tests use to talk to their children.
//!
//! Include with `#[path = "support/procfs.rs"] mod procfs;`.

use std::fs::File;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use multiproc_codec::Fd;

/// A process's state letter and parent pid from `/proc/PID/stat`; `None` if it is gone.
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` has ended: no longer in `/proc`, or a zombie waiting for its parent.
pub fn is_dead(pid: u32) -> bool {
    !matches!(stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Our zombie children: every process in state `Z` whose parent is this process.
pub fn our_zombies() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some(('Z', ppid)) = stat(pid) {
            if ppid == me {
                out.push(pid);
            }
        }
    }
    out
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes; returns whether
/// it held. A bounded wait for something that happens asynchronously (a signal being
/// delivered), never a speed requirement: callers fail with a message if it never holds.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A pipe as `(read end, write end)` files.
pub fn pipe() -> (File, File) {
    let (r, w) = multiproc_sys::fd::pipe().expect("pipe");
    (File::from(r), File::from(w))
}

/// A pipe whose ends are ready to be put in process arguments.
pub fn pipe_fds() -> (Fd, Fd) {
    let (r, w) = multiproc_sys::fd::pipe().expect("pipe");
    (Fd::new(r), Fd::new(w))
}

/// Turns a descriptor received as an argument into a file.
pub fn file(fd: Fd) -> File {
    File::from(fd.into_inner())
}

/// Writes `v` to a pipe, little endian.
pub fn write_u32(f: &mut File, v: u32) {
    f.write_all(&v.to_le_bytes()).expect("write to pipe");
}

/// Reads one `u32`, or `None` at end of file.
pub fn read_u32(f: &mut File) -> Option<u32> {
    let mut b = [0u8; 4];
    f.read_exact(&mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

/// Reads until end of file (every write end closed) and returns what arrived.
pub fn read_to_end(f: &mut File) -> Vec<u8> {
    let mut v = Vec::new();
    f.read_to_end(&mut v).expect("read from pipe");
    v
}

/// The descriptors this process has open.
pub fn open_fds() -> Vec<i32> {
    multiproc_sys::fd::open_fds().expect("list /proc/self/fd")
}

/// What a descriptor of this process points at (`/proc/self/fd/N`), for messages.
pub fn fd_target(fd: i32) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).map_or_else(|e| format!("<{e}>"), |p| p.display().to_string())
}

/// This process's open descriptors with what they point at, for assertion messages.
pub fn describe_fds(fds: &[i32]) -> Vec<String> {
    fds.iter().map(|&fd| format!("{fd} -> {}", fd_target(fd))).collect()
}
