//! Python's `multiprocessing.Queue`, `SimpleQueue` and `JoinableQueue` for Rust: typed
//! multi-producer, multi-consumer queues between processes, in shared memory.
//!
//! | Python | here |
//! |---|---|
//! | `multiprocessing.Queue` | [`Queue`] |
//! | `multiprocessing.SimpleQueue` | [`SimpleQueue`] |
//! | `multiprocessing.JoinableQueue` | [`JoinableQueue`] |
//! | `queue.Full`, `queue.Empty` | [`TrySendError::Full`] (hands the item back), [`TryRecvError::Empty`]; the `*_timeout` forms have `Timeout` |
//! | `ValueError` from too many `task_done()` | [`TaskDoneError`] |
//!
//! Items are any serde type (encoded with bincode by `multiproc-codec`; for byte buffers
//! use `serde_bytes` so they are copied whole rather than element by element). Handles
//! are `Clone`, `Send + Sync` and `Serialize + Deserialize`: pass them to child processes
//! as arguments under every start method (fork, spawn, forkserver); their descriptors
//! travel out of band. Items themselves cannot carry handles (a queue, a pipe end): as
//! in Python, hand those to a process as arguments; putting one fails with an `Encode`
//! error that gives it back.
//!
//! # How it works
//! A queue is one sealed memfd segment (nothing in `/dev/shm`, nothing left behind by a
//! crash) holding a header, two robust process-shared mutexes (one for producers, one
//! for consumers), and a ring of length-prefixed records, 4 MiB by default.
//!
//! - **put** encodes the item, takes the producer lock, waits for room, copies the record
//!   at the tail, and *publishes* it with one atomic store of the new tail (message count
//!   and byte position packed in one word). It returns once the item is in shared
//!   memory: there is no feeder thread, so a producer can exit or be joined right away
//!   and nothing is lost (the traps of CPython's gh-73983 and of its "joining processes
//!   that use queues" warning do not exist here).
//! - **get** takes the consumer lock, copies the record at the head out, stores the new
//!   head, unlocks, and decodes outside the lock.
//! - **waiting** spins for up to ~20 µs ([`multiproc_sys::spin`]) and then sleeps on a
//!   futex; a waker only makes the wake system call if someone sleeps.
//! - **large messages** (encoded size over half the ring) go into a memfd of their own,
//!   whose descriptor is handed to consumers through a `SOCK_SEQPACKET` socket; so a
//!   64 MiB item passes through a 4 KiB queue. Memory stays bounded by the
//!   configuration, not by the number of items in flight: the ring holds at most
//!   `capacity` bytes, and large messages at most `capacity` bytes together, or a single
//!   one of up to `max_message_size` bytes when it is the only one outstanding (see
//!   [`Builder`]).
//!
//! # When a process dies
//! - **A producer killed at any instruction of a put** (SIGKILL, crash): a message is
//!   visible only after the single store that publishes it, so the partial message is
//!   never delivered and every complete one is. The next producer is told by the robust
//!   lock that its holder died, and overwrites the unpublished bytes. A large message
//!   whose descriptor was sent but not published stays in the hand-off socket until a
//!   later large message makes consumers skip it.
//! - **A consumer killed during a get**: killed *before* it stored the new head, the
//!   message is still at the head and the next consumer gets it (for large messages
//!   too: the descriptor is only peeked until the head is committed). Killed *after*
//!   that store (while copying a large message out or decoding it, or before `get`
//!   returned), that one message is lost with it; every other message stays. Either way
//!   the queue stays usable for the other consumers.
//! - **A consumer killed between `get` and `task_done`** of a [`JoinableQueue`]: its
//!   task stays unfinished; [`JoinableQueue::join_timeout`] returns and says how many,
//!   and the caller marks them done on its behalf (see
//!   [`JoinableQueue`](JoinableQueue#when-a-consumer-dies)).
//! - **A process killed while asleep in a wait** costs at most one needless wake.
//!
//! # When a queue is closed
//! Unlike Python's, a get here does not block forever on a queue nobody can put into
//! any more. The exact rule:
//!
//! > A get (and iteration) returns [`RecvError::Closed`] when the queue is empty and no
//! > handle that may put exists any more: every handle, in every process, has been
//! > dropped or [`close`](Queue::close)d, or its process has ended (a SIGKILL counts).
//!
//! Every handle that may put owns a copy of the write end of a pipe (its *token*);
//! consumers watch the read end, which the kernel reports hung up once no copy exists
//! anywhere, so even a process killed without running any code stops holding the queue
//! open. Closing or dropping a handle wakes sleeping consumers at once; a token released
//! by a killed process is noticed within 100 ms.
//!
//! The handle you get through counts: a consumer that will never put calls
//! [`close`](Queue::close) on its own handle first (gets still work after `close`; only
//! puts are refused). Likewise the parent that created the queue closes or drops its
//! handle once it has handed clones to the producers, as with a crossbeam `Sender`.
//!
//! With the **fork** start method a child inherits a copy of *every* descriptor of its
//! parent, including the tokens of handles it was never given. The child keeps only the
//! tokens of the handles in its arguments (exactly as if they had been sent to a spawned
//! child) and neutralises the others before the target runs
//! ([`multiproc_sys::clofork`]). Consequence: a handle a fork child reaches *other* than
//! through its arguments (a global, a copy of a parent's local) may still put, but does
//! not hold the queue open. Spawn and forkserver children only ever receive the handles
//! in their arguments.
//!
//! # Example
//! ```
//! use multiproc_process::{Process, StartMethod};
//! use multiproc_queue::Queue;
//!
//! fn square_all(jobs: (Queue<u64>, Queue<u64>)) {
//!     let (input, output) = jobs;
//!     input.close(); // this worker only takes from `input`
//!     for n in &input {
//!         let n = n.expect("a u64");
//!         output.put(n * n).expect("put");
//!     }
//! }
//!
//! let (input, output) = (Queue::new()?, Queue::new()?);
//! let mut worker = Process::new(square_all, (input.clone(), output.clone()))
//!     .with_start_method(StartMethod::Fork);
//! worker.start()?;
//! output.close(); // the parent only takes from `output`
//! for n in 1..=4 {
//!     input.put(n)?;
//! }
//! drop(input); // no more jobs: the worker's loop ends
//! let squares: Vec<u64> = output.iter().collect::<Result<_, _>>()?;
//! worker.join()?;
//! assert_eq!(squares, [1, 4, 9, 16]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod error;
mod handle;
mod iter;
mod joinable;
mod layout;
mod queue;
mod ring;
mod simple;
mod wait;

pub use builder::{Builder, DEFAULT_CAPACITY};
pub use error::{
    CreateError, JoinTimeoutError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TaskDoneError,
    TryRecvError, TrySendError,
};
pub use iter::{Iter, TryIter};
pub use joinable::JoinableQueue;
pub use queue::Queue;
pub use simple::SimpleQueue;
