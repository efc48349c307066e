"""Python's multiprocessing.Manager() doing the jobs of benches/manager.rs.

Started by the Rust bench with the names of the workloads to run (unknown names are
skipped), or alone: `python3 benches/python_manager.py [WORKLOAD...]`. Prints one JSON
line per result, like benches/python/baseline.py, with the same measurement procedure
(calibrate to a twentieth of the budget, five rounds, best round) and the same
MULTIPROC_BENCH_SECONDS budget. Standard library only.

`manager_update_with` and `manager_update_with_2p` are what Python needs for the same
increment: lock + get + set + unlock (it has no read-modify-write on the server).
"""

import json
import math
import multiprocessing
import os
import sys
import time

ROUNDS = 5
_fork = multiprocessing.get_context("fork")
_manager = None


def manager():
    global _manager
    if _manager is None:
        _manager = _fork.Manager()
    return _manager


def manager_dict_setget(iters):
    d = manager().dict()
    d[0] = 0
    start = time.perf_counter()
    for i in range(iters):
        d[0] = i
        if d[0] != i:
            raise RuntimeError("lost a set")
    return time.perf_counter() - start


def manager_update_with(iters):
    m = manager()
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


def _increment(d, lock, barrier, n):
    barrier.wait()
    for _ in range(n):
        with lock:
            d["count"] = d["count"] + 1


def manager_dict_contended_2p(iters):
    m = manager()
    d = m.dict()
    lock = m.Lock()
    barrier = m.Barrier(3)
    d["count"] = 0
    half = (iters + 1) // 2
    kids = [_fork.Process(target=_increment, args=(d, lock, barrier, half)) for _ in range(2)]
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


WORKLOADS = {
    "manager_dict_setget": ("us/op", manager_dict_setget),
    "manager_dict_contended_2p": ("ops/s", manager_dict_contended_2p),
    "manager_update_with": ("us/op", manager_update_with),
    # The same job as the contended one: Python has no lock-free increment.
    "manager_update_with_2p": ("ops/s", manager_dict_contended_2p),
}


def seconds_per_op(batch, budget):
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


def main(argv):
    try:
        budget = float(os.environ.get("MULTIPROC_BENCH_SECONDS", "1"))
    except ValueError:
        budget = 1.0
    names = [a for a in argv if a in WORKLOADS] or list(WORKLOADS)
    for name in names:
        unit, batch = WORKLOADS[name]
        secs = seconds_per_op(batch, budget)
        value = secs * 1e6 if unit == "us/op" else 1.0 / secs
        print(json.dumps({"workload": name, "impl": "python-mp", "value": value, "unit": unit}), flush=True)
    if _manager is not None:
        _manager.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
