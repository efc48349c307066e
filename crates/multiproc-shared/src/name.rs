//! Names of named segments: what users write, and the POSIX object it becomes.
//!
//! A name such as `"frames"` (or `"/frames"`: one leading slash is ignored, as Python
//! users write either) is the POSIX shared-memory object `/multiproc.frames`, which Linux
//! shows as `/dev/shm/multiproc.frames`. The prefix keeps our segments apart from other
//! programs' and makes them easy to find (and clean up) by hand.

use crate::error::NameError;

/// The prefix of every named segment's file in `/dev/shm`: the segment named `"frames"`
/// is `/dev/shm/multiproc.frames`.
pub const NAME_PREFIX: &str = "multiproc.";

/// The longest name accepted, in bytes (without the leading `/`).
pub const MAX_NAME_LEN: usize = 200;

/// Checks a user's name; returns it without its leading `/`.
pub(crate) fn validate(name: &str) -> Result<&str, NameError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return Err(NameError::Empty);
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { name: name.to_owned(), len: bare.len() });
    }
    if let Some(found) = bare.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(NameError::InvalidChar { name: name.to_owned(), found });
    }
    Ok(bare)
}

/// The POSIX object name for a validated name.
pub(crate) fn os_name(bare: &str) -> String {
    format!("/{NAME_PREFIX}{bare}")
}

/// A fresh random name, as Python makes for `SharedMemory(create=True)` without a name.
pub(crate) fn random_name() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness (never seen on Linux), fall back on the pid and the clock: the
    // caller retries on a collision anyway.
    if getrandom::fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        bytes = (t ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    format!("psm-{:016x}", u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_mapped() {
        assert_eq!(validate("frames").unwrap(), "frames");
        assert_eq!(validate("/frames.v2_a-b").unwrap(), "frames.v2_a-b");
        assert_eq!(os_name("frames"), "/multiproc.frames");
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(validate("/"), Err(NameError::Empty));
        assert!(matches!(validate("a/b"), Err(NameError::InvalidChar { found: '/', .. })));
        assert!(matches!(validate("//a"), Err(NameError::InvalidChar { found: '/', .. })));
        assert!(matches!(validate("a b"), Err(NameError::InvalidChar { found: ' ', .. })));
        assert!(matches!(validate("caf\u{e9}"), Err(NameError::InvalidChar { .. })));
        assert!(matches!(validate(&"x".repeat(MAX_NAME_LEN + 1)), Err(NameError::TooLong { .. })));
        assert!(validate(&"x".repeat(MAX_NAME_LEN)).is_ok());
        assert_ne!(random_name(), random_name());
        assert!(validate(&random_name()).is_ok());
    }
}
