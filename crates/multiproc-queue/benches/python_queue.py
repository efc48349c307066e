"""Python multiprocessing baselines for crates/multiproc-queue/benches/queue.rs.

Same workloads, same procedure and same JSON lines as benches/python/baseline.py (so
each `batch` lifts into that file's WORKLOADS unchanged):

    {"workload": "queue_1p1c_small", "impl": "python-mp", "value": 123456.0, "unit": "msgs/s"}

Run alone: `python3 crates/multiproc-queue/benches/python_queue.py [WORKLOAD...]`.
MULTIPROC_BENCH_SECONDS sets the time per measurement (default 1). Standard library only.

Every workload: producer process(es) and consumer process(es) are started and report
ready before the clock starts; the clock runs from the "go" until the consumers have
taken every message (and, for JoinableQueue, marked it done).
"""

import json
import math
import multiprocessing
import os
import sys
import time

ROUNDS = 5
SMALL = 64
MIB = 1 << 20


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


def _consumer(q, ready, done, joinable):
    ready.put(None)
    count = 0
    while True:
        m = q.get()
        if joinable:
            q.task_done()
        if m is None:
            break
        count += 1
    done.put(count)


def one_to_one(kind, size):
    """One producer process, the parent consumes."""
    ctx = multiprocessing.get_context("fork")

    def batch(iters):
        q = getattr(ctx, kind)()
        ready, go = ctx.SimpleQueue(), ctx.SimpleQueue()
        p = ctx.Process(target=_producer, args=(q, ready, go, iters, size, 0))
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


def two_to_two(kind):
    """Two producer processes, two consumer processes."""
    ctx = multiprocessing.get_context("fork")

    def batch(iters):
        q = getattr(ctx, kind)()
        ready, go, done = ctx.SimpleQueue(), ctx.SimpleQueue(), ctx.SimpleQueue()
        half = max(iters // 2, 1)
        procs = [ctx.Process(target=_consumer, args=(q, ready, done, False)) for _ in range(2)]
        procs += [ctx.Process(target=_producer, args=(q, ready, go, half, SMALL, 1)) for _ in range(2)]
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
        assert total == 2 * half, (total, half)
        return took * iters / (2 * half)

    return batch


WORKLOADS = {
    "queue_1p1c_small": ("msgs/s", one_to_one("Queue", SMALL)),
    "simple_queue_1p1c_small": ("msgs/s", one_to_one("SimpleQueue", SMALL)),
    "joinable_queue_1p1c_small": ("msgs/s", one_to_one("JoinableQueue", SMALL)),
    "queue_bandwidth_1mib": ("GB/s", one_to_one("Queue", MIB), MIB),
    "queue_2p2c_small": ("msgs/s", two_to_two("Queue")),
}


def seconds_per_op(batch, budget):
    """Best-of-rounds seconds per operation; see benches/compare/measure.rs."""
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
    if unit == "GB/s":
        return bytes_per_op / secs / 1e9
    return 1.0 / secs


def main(argv):
    try:
        budget = float(os.environ.get("MULTIPROC_BENCH_SECONDS", "1"))
    except ValueError:
        budget = 1.0
    wanted = [a for a in argv if not a.startswith("-")]
    for name in wanted or list(WORKLOADS):
        entry = WORKLOADS.get(name)
        if entry is None:
            continue
        unit, batch, *extra = entry
        v = float(f"{value(unit, seconds_per_op(batch, budget), *extra):.3e}")
        print(json.dumps({"workload": name, "impl": "python-mp", "value": v, "unit": unit}, separators=(",", ":")),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
