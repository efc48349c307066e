//! Is the peer running our executable?
//!
//! `update_with` sends a function as its offset inside the executable (an [`FnRef`]);
//! the server may only call it if the client runs the very same executable. Two ways to
//! know:
//!
//! - **Unix sockets**: the kernel tells the server the peer's pid (`SO_PEERCRED`), and
//!   `/proc/PID/exe` of both processes must be the same file (device and inode). The
//!   check runs while the client waits for the greeting, and the connection is then seen
//!   to be still open, so the pid was still the peer's when it was looked at (a pid is
//!   not reused while its process's sockets are open).
//! - **TCP**: the client sends a fingerprint of its executable, compared with the
//!   server's own: the GNU build id the linker wrote into it (a hash of the linked
//!   program, the same for a stripped copy of the same build), or, for an executable
//!   without one, the SHA-256 of the whole file. Anything else is refused.
//!
//! This protects against mistakes, not against a malicious client: whoever holds the
//! authkey can make the server run code of the server's choosing anyway, as with
//! Python's managers (which unpickle whatever they receive).
//!
//! [`FnRef`]: multiproc_process::FnRef

use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;
use std::time::Duration;

use multiproc_pipe::Connection;
use sha2::{Digest, Sha256};

/// Whether the process at the other end of a Unix-socket connection runs this
/// executable. `false` for TCP connections and whenever in doubt.
pub(crate) fn peer_runs_this_binary(conn: &Connection) -> bool {
    if !conn.can_pass_fds() {
        return false;
    }
    let Ok(cred) = nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials) else {
        return false;
    };
    let ours = std::fs::metadata("/proc/self/exe");
    let theirs = std::fs::metadata(format!("/proc/{}/exe", cred.pid()));
    let same = match (ours, theirs) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    // Still connected (the peer is waiting for the greeting and sends nothing): the
    // pid was the peer's when we looked.
    same && matches!(conn.poll(Duration::ZERO), Ok(false))
}

/// This process's executable's fingerprint, computed once: its GNU build id if it has
/// one, else the SHA-256 of the file (slower: the whole file is read).
pub(crate) fn fingerprint() -> Result<&'static [u8], String> {
    static FINGERPRINT: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    FINGERPRINT
        .get_or_init(|| {
            let exe =
                std::fs::read("/proc/self/exe").map_err(|e| format!("cannot read this program's executable: {e}"))?;
            Ok(match gnu_build_id(&exe) {
                Some(id) => [b"gnu-build-id:".as_slice(), id].concat(),
                None => [b"sha256:".as_slice(), &Sha256::digest(&exe)].concat(),
            })
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// The GNU build id note of a 64-bit little-endian ELF file, if it has one. Every
/// offset and length is checked: a file of any other shape gives `None`.
fn gnu_build_id(elf: &[u8]) -> Option<&[u8]> {
    const PT_NOTE: u32 = 4;
    const NT_GNU_BUILD_ID: u32 = 3;
    let bytes = |at: usize, len: usize| elf.get(at..at.checked_add(len)?);
    let u16_at = |at| bytes(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at| bytes(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |at| bytes(at, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    // "\x7fELF", 64-bit, little-endian.
    if bytes(0, 6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(ph)? != PT_NOTE {
            continue;
        }
        let offset = usize::try_from(u64_at(ph + 8)?).ok()?;
        let size = usize::try_from(u64_at(ph + 32)?).ok()?;
        let notes = bytes(offset, size)?;
        let mut at = 0;
        while at + 12 <= notes.len() {
            let field =
                |k: usize| notes.get(at + 4 * k..at + 4 * k + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let (namesz, descsz, kind) = (field(0)? as usize, field(1)? as usize, field(2)?);
            let name_at = at + 12;
            let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
            let next = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
            if kind == NT_GNU_BUILD_ID && notes.get(name_at..name_at + namesz)? == b"GNU\0" {
                return notes.get(desc_at..desc_at + descsz).filter(|id| !id.is_empty());
            }
            at = next;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_the_build_id_when_there_is_one() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let f = fingerprint().unwrap();
        assert_eq!(f, fingerprint().unwrap());
        match gnu_build_id(&exe) {
            Some(id) => assert_eq!(f, [b"gnu-build-id:".as_slice(), id].concat()),
            None => assert_eq!(f, [b"sha256:".as_slice(), &Sha256::digest(&exe)].concat()),
        }
    }

    #[test]
    fn build_ids_are_read_from_notes_and_garbage_is_none() {
        // A minimal ELF: header, one PT_NOTE program header, one build-id note.
        let mut elf = vec![0u8; 0x40];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes()); // e_phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&4u32.to_le_bytes());
        ph[8..16].copy_from_slice(&(0x40u64 + 56).to_le_bytes());
        let mut note = Vec::new();
        for v in [4u32, 5, 3] {
            note.extend_from_slice(&v.to_le_bytes());
        }
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        ph[32..40].copy_from_slice(&(note.len() as u64).to_le_bytes());
        elf.extend_from_slice(&ph);
        elf.extend_from_slice(&note);
        assert_eq!(gnu_build_id(&elf), Some(&[1u8, 2, 3, 4, 5][..]));
        for cut in 0..elf.len() {
            assert_ne!(gnu_build_id(&elf[..cut]), Some(&[1u8, 2, 3, 4, 5][..]));
        }
        assert_eq!(gnu_build_id(b"not an elf file at all"), None);
        let mut huge = elf.clone();
        huge[0x38..0x3a].copy_from_slice(&u16::MAX.to_le_bytes());
        let _ = gnu_build_id(&huge); // must not panic
    }

    #[test]
    fn a_pipe_peer_in_this_process_runs_this_binary() {
        let (a, _b) = multiproc_pipe::Pipe::duplex().unwrap();
        assert!(peer_runs_this_binary(&a));
    }
}
