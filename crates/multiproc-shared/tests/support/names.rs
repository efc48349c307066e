//! Unique segment names per test, and the check that a test left nothing in /dev/shm.
//!
//! Tests of one binary run in parallel, so each checks only its own names:
//! `t-<tag>-<pid>-<n>`, i.e. `/dev/shm/multiproc.t-<tag>-<pid>-<n>`.

use std::sync::atomic::{AtomicU32, Ordering};

use multiproc_shared::NAME_PREFIX;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh name for test `tag`.
pub fn unique(tag: &str) -> String {
    format!("{}{}", stem(tag), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn stem(tag: &str) -> String {
    format!("t-{tag}-{}-", std::process::id())
}

/// The path of a name's file in /dev/shm.
pub fn dev_shm_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(format!("{NAME_PREFIX}{name}"))
}

/// Fails if any segment made under `tag` by this process is still in /dev/shm (and
/// removes it, so one failure does not leak into later runs).
pub fn assert_none_left(tag: &str) {
    let prefix = format!("{NAME_PREFIX}{}", stem(tag));
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .expect("read /dev/shm")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    for n in &left {
        let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(n));
    }
    assert!(left.is_empty(), "segments left behind in /dev/shm: {left:?}");
}
