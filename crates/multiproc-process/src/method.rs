use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Process;

/// How a child process is created (Python's start methods).
///
/// All three run the same target with the same arguments, so a program switches with one
/// line. They differ in what the child starts from:
///
/// | method | child starts as | cost | safe with threads in the parent |
/// |---|---|---|---|
/// | [`Fork`](StartMethod::Fork) | a copy of the parent at `start` | lowest | no: locks held by other threads stay held in the child |
/// | [`Spawn`](StartMethod::Spawn) | a fresh run of this binary | highest (exec) | yes |
/// | [`ForkServer`](StartMethod::ForkServer) | a copy of a small single-threaded server (a fresh exec of this binary, started by `init()`) | low | yes |
///
/// `ForkServer` is the default, as in Python 3.14. Spawn and ForkServer need
/// [`crate::init`] at the top of `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum StartMethod {
    /// `fork()`: the child is a copy of the parent.
    Fork,
    /// `fork()` + `exec()` of this binary; the child receives the target and arguments.
    Spawn,
    /// A small single-threaded server (an exec of this binary started by `init()`, or on
    /// first use in a child process) forks each child on request, as a child of the
    /// process that asked.
    #[default]
    ForkServer,
}

impl StartMethod {
    /// Python's name for the method: `"fork"`, `"spawn"` or `"forkserver"`.
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            StartMethod::Fork => 1,
            StartMethod::Spawn => 2,
            StartMethod::ForkServer => 3,
        }
    }

    fn from_u8(v: u8) -> Option<StartMethod> {
        match v {
            1 => Some(StartMethod::Fork),
            2 => Some(StartMethod::Spawn),
            3 => Some(StartMethod::ForkServer),
            _ => None,
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for StartMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::ForkServer),
            other => Err(format!("unknown start method {other:?} (expected fork, spawn or forkserver)")),
        }
    }
}

static GLOBAL_METHOD: AtomicU8 = AtomicU8::new(0);

/// Error from [`set_start_method`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the start method has already been set to {current}; use get_context({requested:?}) for a different one")]
pub struct ContextError {
    /// The method in force.
    pub current: StartMethod,
    /// The method asked for.
    pub requested: StartMethod,
}

/// Sets the process-wide default start method (Python's `set_start_method`).
///
/// Like Python, it may be set once; setting it again to a different method is an error
/// (use [`get_context`] to use another method for some processes).
pub fn set_start_method(method: StartMethod) -> Result<(), ContextError> {
    match GLOBAL_METHOD.compare_exchange(0, method.to_u8(), Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(cur) => {
            let current = StartMethod::from_u8(cur).unwrap_or_default();
            if current == method { Ok(()) } else { Err(ContextError { current, requested: method }) }
        }
    }
}

/// The process-wide default start method (forkserver unless set).
pub fn get_start_method() -> StartMethod {
    StartMethod::from_u8(GLOBAL_METHOD.load(Ordering::Acquire)).unwrap_or_default()
}

/// Every start method this platform supports (all three on Linux).
pub fn get_all_start_methods() -> [StartMethod; 3] {
    [StartMethod::ForkServer, StartMethod::Spawn, StartMethod::Fork]
}

/// A start method to create processes with, independent of the global default
/// (Python's `get_context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// Returns a context for `method` (Python's `multiprocessing.get_context`).
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// The context's start method.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// A new, not yet started process that will use this context's start method.
    pub fn process<A, R>(&self, target: fn(A) -> R, args: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Process::new(target, args).with_start_method(self.method)
    }
}
