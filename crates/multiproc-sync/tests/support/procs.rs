//! Starting test children under every start method.

use multiproc_process::{Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every start method; each cross-process test runs under all of them.
pub const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer];

/// Starts `f(args)` in a daemon child (it dies with the test thread that started it, so
/// a failed test leaves no process behind).
pub fn start<A, R>(f: fn(A) -> R, args: A, method: StartMethod) -> Process<R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    let mut p = Process::new(f, args).with_start_method(method).with_daemon(true);
    p.start().unwrap_or_else(|e| panic!("cannot start a {method} child: {e}"));
    p
}

/// Kills a child and reaps it, checking that it died of the kill.
pub fn kill<R: Serialize + DeserializeOwned + 'static>(p: &mut Process<R>) {
    p.kill().expect("kill child");
    match p.join() {
        Err(multiproc_process::JoinError::Killed { signal }) => assert_eq!(signal, libc::SIGKILL),
        Err(e) => panic!("child ended otherwise than by SIGKILL: {e}"),
        Ok(_) => panic!("child returned although it was killed"),
    }
}

/// A small pseudo-random generator (splitmix64), seeded from the clock; the seed is
/// printed so a failing run can be repeated.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock; prints the seed under the name `what`.
    pub fn from_clock(what: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        eprintln!("{what}: random seed {seed}");
        Rng(seed)
    }

    /// A pseudo-random number in `0..n` (`0..1` for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}
