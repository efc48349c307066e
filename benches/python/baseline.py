"""Python multiprocessing baselines for `cargo bench --bench compare`.

The Rust runner starts this script with the names of the workloads to run (flags and
names this file does not know are skipped silently, so Rust-only workloads do not break
it) and reads one JSON line per result from stdout:

    {"workload": "process_start_join_fork", "impl": "python-mp", "value": 12.3, "unit": "ms/proc"}

It can also run alone: `python3 benches/python/baseline.py [WORKLOAD...]` (no names: all).

Measurement mirrors benches/compare/measure.rs: calibrate until one batch takes a
twentieth of the budget, then five rounds share the rest, and the best (lowest) mean
per operation is reported. (The Rust side alternates the rounds of multiproc and its raw
references; with one implementation per workload here, there is nothing to alternate.) MULTIPROC_BENCH_SECONDS sets the budget (default 1).

Adding a workload: write `def batch(iters) -> seconds` that performs `iters` operations
(setup before the clock starts) and add one line to WORKLOADS under the Rust side's name
and unit. Standard library only.
"""

import concurrent.futures
import json
import math
import multiprocessing
import os
import sys
import time

ROUNDS = 5


def _trivial():
    """The target of the process workloads: nothing, so only the process is measured."""


def start_join(method):
    """Start + join of a trivial target with one start method, one process at a time."""
    ctx = multiprocessing.get_context(method)

    def batch(iters):
        start = time.perf_counter()
        for _ in range(iters):
            p = ctx.Process(target=_trivial)
            p.start()
            p.join()
            if p.exitcode != 0:
                raise RuntimeError(f"{method} child exited with {p.exitcode}")
        return time.perf_counter() - start

    return batch


# Issue 4 (pipe), 5 (lock), 6 (queue) and 7 (shared value): the same jobs as
# benches/compare/{pipe,sync,queue,shared}.rs, under the fork start method as there.

SMALL = 64
MIB = 1 << 20
_fork = multiprocessing.get_context("fork")


def _echo(conn, n):
    conn.send_bytes(b"r")
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def _with_pipe_peer(peer, iters, body):
    """Starts `peer(conn, iters)` in a child on one end of a Pipe, waits until it says it
    is ready, and times `body(conn)` on the other end; then joins the child."""
    a, b = _fork.Pipe()
    p = _fork.Process(target=peer, args=(b, iters))
    p.start()
    a.recv_bytes()
    start = time.perf_counter()
    body(a)
    took = time.perf_counter() - start
    p.join()
    return took


def pipe_pingpong_small(iters):
    """64 bytes there and back through a Pipe (send_bytes / recv_bytes)."""
    msg = b"x" * SMALL

    def body(a):
        for _ in range(iters):
            a.send_bytes(msg)
            if len(a.recv_bytes()) != SMALL:
                raise RuntimeError("the echo changed the message")

    return _with_pipe_peer(_echo, iters, body)


def _sink(conn, n):
    conn.send_bytes(b"r")
    for _ in range(n):
        if len(conn.recv_bytes()) != MIB:
            raise RuntimeError("a message changed size on the way")
    conn.send_bytes(b"k")


def pipe_bandwidth_1mib(iters):
    """1 MiB messages one way through a Pipe, until the receiver acknowledges the last."""
    msg = b"x" * MIB

    def body(a):
        for _ in range(iters):
            a.send_bytes(msg)
        a.recv_bytes()

    return _with_pipe_peer(_sink, iters, body)


def lock_uncontended(iters):
    """Lock acquire + release in one process."""
    lock = _fork.Lock()
    acquire, release = lock.acquire, lock.release
    start = time.perf_counter()
    for _ in range(iters):
        acquire()
        release()
    return time.perf_counter() - start


def _lock_contender(lock, counter, barrier, n, out):
    barrier.wait()
    start = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        counter.value += 1
        lock.release()
    out.put(time.perf_counter() - start)


def _value_incrementer(value, barrier, n, out):
    barrier.wait()
    start = time.perf_counter()
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    out.put(time.perf_counter() - start)


def _two_processes(target, shared, counter, iters):
    """Two processes share `iters` operations of `target(*shared, barrier, n, out)`,
    starting together; the slower one's seconds. Checks that `counter` reached `iters`."""
    barrier, out = _fork.Barrier(2), _fork.SimpleQueue()
    halves = (iters // 2, iters - iters // 2)
    ps = [_fork.Process(target=target, args=(*shared, barrier, n, out)) for n in halves]
    for p in ps:
        p.start()
    secs = max(out.get() for _ in ps)
    for p in ps:
        p.join()
    if counter.value != iters:
        raise RuntimeError(f"lost increments: {counter.value} of {iters}")
    return secs


def lock_contended_2p(iters):
    """Two processes each lock, increment a shared counter, unlock."""
    lock, counter = _fork.Lock(), _fork.Value("q", 0, lock=False)
    return _two_processes(_lock_contender, (lock, counter), counter, iters)


def value_locked_increment_2p(iters):
    """Two processes each do `with v.get_lock(): v.value += 1` on one Value('i')."""
    value = _fork.Value("i", 0)
    return _two_processes(_value_incrementer, (value,), value, iters)


def _producer(q, ready, go, n, size, sentinels):
    msg = b"x" * size
    ready.put(None)
    go.get()
    for _ in range(n):
        q.put(msg)
    for _ in range(sentinels):
        q.put(None)
    if hasattr(q, "join"):
        q.join()


def _consumer(q, ready, done):
    ready.put(None)
    count = 0
    while q.get() is not None:
        count += 1
    done.put(count)


def queue_one_to_one(kind, size):
    """One producer process puts; the parent gets (and marks done, for JoinableQueue)."""

    def batch(iters):
        q = getattr(_fork, kind)()
        ready, go = _fork.SimpleQueue(), _fork.SimpleQueue()
        p = _fork.Process(target=_producer, args=(q, ready, go, iters, size, 0))
        p.start()
        ready.get()
        joinable = kind == "JoinableQueue"
        start = time.perf_counter()
        go.put(None)
        for _ in range(iters):
            q.get()
            if joinable:
                q.task_done()
        took = time.perf_counter() - start
        p.join()
        return took

    return batch


def queue_2p2c_small(iters):
    """Two producer processes, two consumer processes, a sentinel from each producer."""
    q = _fork.Queue()
    ready, go, done = _fork.SimpleQueue(), _fork.SimpleQueue(), _fork.SimpleQueue()
    half = max(iters // 2, 1)
    procs = [_fork.Process(target=_consumer, args=(q, ready, done)) for _ in range(2)]
    procs += [_fork.Process(target=_producer, args=(q, ready, go, half, SMALL, 1)) for _ in range(2)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    start = time.perf_counter()
    go.put(None)
    go.put(None)
    total = done.get() + done.get()
    took = time.perf_counter() - start
    for p in procs:
        p.join()
    if total != 2 * half:
        raise RuntimeError(f"the consumers got {total} of {2 * half} messages")
    return took * iters / (2 * half)


# Issue 9: Pool and ProcessPoolExecutor of cpu_count() workers (their defaults), the same
# jobs as benches/compare/pool.rs; the pool is started and warmed up before the clock.


def _add_one(x):
    return x + 1


def _pool():
    pool = multiprocessing.Pool(os.cpu_count())
    pool.map(_add_one, range(64), chunksize=1)
    return pool


def pool_map(chunksize):
    def batch(iters):
        with _pool() as pool:
            start = time.perf_counter()
            out = pool.map(_add_one, range(iters), chunksize=chunksize)
            took = time.perf_counter() - start
        if len(out) != iters:
            raise RuntimeError("map lost items")
        return took

    return batch


def pool_apply_async_rtt(iters):
    with _pool() as pool:
        start = time.perf_counter()
        for i in range(iters):
            pool.apply_async(_add_one, (i,)).get()
        return time.perf_counter() - start


def pool_imap_unordered(iters):
    with _pool() as pool:
        start = time.perf_counter()
        n = sum(1 for _ in pool.imap_unordered(_add_one, range(iters)))
        took = time.perf_counter() - start
    if n != iters:
        raise RuntimeError("imap_unordered lost items")
    return took


def executor_submit_result(iters):
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count()) as ex:
        for f in [ex.submit(_add_one, i) for i in range(64)]:
            f.result()
        start = time.perf_counter()
        futures = [ex.submit(_add_one, i) for i in range(iters)]
        for f in futures:
            f.result()
        return time.perf_counter() - start


# Python sums with its C loop (sum(range(n))), so it gets a smaller n than Rust's
# one-number-at-a-time loop; the factor compares each language with itself.
SUM_N = 10_000_000


def _sum_to(n):
    return sum(range(n))


def cpu_sum_pool(iters):
    with _pool() as pool:
        start = time.perf_counter()
        for _ in range(iters):
            pool.map(_sum_to, [SUM_N] * 4, chunksize=1)
        return time.perf_counter() - start


def cpu_sum_serial(iters):
    start = time.perf_counter()
    for _ in range(iters):
        [_sum_to(n) for n in [SUM_N] * 4]
    return time.perf_counter() - start


# Issue 8: one Manager() for the whole run, as the Rust side starts one.
_manager = None


def _the_manager():
    global _manager
    if _manager is None:
        _manager = _fork.Manager()
    return _manager


def manager_dict_setget(iters):
    d = _the_manager().dict()
    d[0] = 0
    start = time.perf_counter()
    for i in range(iters):
        d[0] = i
        if d[0] != i:
            raise RuntimeError("lost a set")
    return time.perf_counter() - start


def manager_update_with(iters):
    m = _the_manager()
    d = m.dict()
    lock = m.Lock()
    d["count"] = 0
    start = time.perf_counter()
    for _ in range(iters):
        with lock:
            d["count"] = d["count"] + 1
    took = time.perf_counter() - start
    if d["count"] != iters:
        raise RuntimeError("lost increments")
    return took


def _manager_increment(d, lock, barrier, n):
    barrier.wait()
    for _ in range(n):
        with lock:
            d["count"] = d["count"] + 1


def manager_dict_contended_2p(iters):
    m = _the_manager()
    d = m.dict()
    lock = m.Lock()
    barrier = m.Barrier(3)
    d["count"] = 0
    half = (iters + 1) // 2
    kids = [_fork.Process(target=_manager_increment, args=(d, lock, barrier, half)) for _ in range(2)]
    for k in kids:
        k.start()
    barrier.wait()
    start = time.perf_counter()
    for k in kids:
        k.join()
    took = time.perf_counter() - start
    if d["count"] != 2 * half:
        raise RuntimeError("lost increments")
    return took * iters / (2 * half)


# name -> (unit, batch[, bytes per operation for GB/s]); units as in measure.rs. A
# factor ("x") has two batches instead: (measured, baseline), reported as
# baseline time / measured time.
WORKLOADS = {
    "process_start_join_fork": ("ms/proc", start_join("fork")),
    "process_start_join_spawn": ("ms/proc", start_join("spawn")),
    "process_start_join_forkserver": ("ms/proc", start_join("forkserver")),
    "pipe_pingpong_small": ("us/rtt", pipe_pingpong_small),
    "pipe_bandwidth_1mib": ("GB/s", pipe_bandwidth_1mib, MIB),
    "lock_uncontended": ("ns/op", lock_uncontended),
    "lock_contended_2p": ("ops/s", lock_contended_2p),
    "value_locked_increment_2p": ("ops/s", value_locked_increment_2p),
    "queue_1p1c_small": ("msgs/s", queue_one_to_one("Queue", SMALL)),
    "simple_queue_1p1c_small": ("msgs/s", queue_one_to_one("SimpleQueue", SMALL)),
    "joinable_queue_1p1c_small": ("msgs/s", queue_one_to_one("JoinableQueue", SMALL)),
    "queue_2p2c_small": ("msgs/s", queue_2p2c_small),
    "queue_bandwidth_1mib": ("GB/s", queue_one_to_one("Queue", MIB), MIB),
    "pool_map_trivial": ("items/s", pool_map(None)),
    "pool_map_trivial_chunk1": ("items/s", pool_map(1)),
    "pool_apply_async_rtt": ("us/task", pool_apply_async_rtt),
    "pool_imap_unordered": ("items/s", pool_imap_unordered),
    "executor_submit_result": ("tasks/s", executor_submit_result),
    "cpu_sum_speedup": ("x", (cpu_sum_pool, cpu_sum_serial)),
    "manager_dict_setget": ("us/op", manager_dict_setget),
    "manager_dict_contended_2p": ("ops/s", manager_dict_contended_2p),
    # update_with's Python counterpart is what Python needs instead: lock + get + set.
    "manager_update_with": ("us/op", manager_update_with),
    "manager_update_with_2p": ("ops/s", manager_dict_contended_2p),
}


def seconds_per_op(batch, budget):
    """Best-of-rounds seconds per operation; see measure.rs `seconds_per_op`."""
    calibration = budget / 20.0
    iters = 1
    while True:
        took = batch(iters)
        if took >= calibration or iters >= 1 << 40:
            per_op = took / iters
            break
        factor = calibration / took * 1.2 if took > 0 else 100.0
        iters = math.ceil(iters * min(max(factor, 2.0), 100.0))
    round_time = max(budget - calibration, 0.0) / ROUNDS
    iters = max(int(round_time / per_op), 1)
    return min(batch(iters) / iters for _ in range(ROUNDS))


def value(unit, secs, bytes_per_op=None):
    """The reported value for seconds per operation; the rules of measure.rs `Unit`."""
    if unit == "GB/s":
        return bytes_per_op / secs / 1e9
    head, _, tail = unit.partition("/")
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}.get(head)
    if scale is not None:
        return secs * scale
    if tail == "s":
        return 1.0 / secs
    raise ValueError(f"unknown unit {unit!r}")


def main(argv):
    try:
        budget = float(os.environ.get("MULTIPROC_BENCH_SECONDS", "1"))
    except ValueError:
        budget = 1.0
    if not budget > 0:
        budget = 1.0
    wanted = [a for a in argv if not a.startswith("-")]
    for name in wanted or list(WORKLOADS):
        entry = WORKLOADS.get(name)
        if entry is None:
            continue
        unit, batch, *extra = entry
        if unit == "x":
            measured, baseline = batch
            v = seconds_per_op(baseline, budget) / seconds_per_op(measured, budget)
        else:
            v = value(unit, seconds_per_op(batch, budget), *extra)
        v = float(f"{v:.3e}")
        line = {"workload": name, "impl": "python-mp", "value": v, "unit": unit}
        print(json.dumps(line, separators=(",", ":")), flush=True)


# The guard matters: spawn and forkserver children import this file.
if __name__ == "__main__":
    main(sys.argv[1:])
