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


# name -> (unit, batch[, bytes per operation for GB/s]); units as in measure.rs.
WORKLOADS = {
    "process_start_join_fork": ("ms/proc", start_join("fork")),
    "process_start_join_spawn": ("ms/proc", start_join("spawn")),
    "process_start_join_forkserver": ("ms/proc", start_join("forkserver")),
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
        secs = seconds_per_op(batch, budget)
        v = float(f"{value(unit, secs, *extra):.3e}")
        line = {"workload": name, "impl": "python-mp", "value": v, "unit": unit}
        print(json.dumps(line, separators=(",", ":")), flush=True)


# The guard matters: spawn and forkserver children import this file.
if __name__ == "__main__":
    main(sys.argv[1:])
