"""What a parallel launch costs on the threading layer in use: one Markdown row per case (us per call, medians).

Run it once per layer, on a quiet machine::

    NUMBA_THREADING_LAYER=tbb python bench/threading_layers.py
    NUMBA_THREADING_LAYER=omp python bench/threading_layers.py

Cases: an almost empty parallel region (the launch itself); the ReLU forward kernel at 1 MiB and 16 MiB per
array (float32), serial and parallel, called back to back and after a 2 ms pause (a pause lets idle workers
go to sleep: what a wake-up costs); Adam on 10^6 float32 values, serial and parallel. The design notes quote
the table (section "The threading layer"). Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import os
import statistics
import time

import numba
import numpy as np
from numba import njit, prange

import fastdl  # noqa: F401  (picks and prepares the threading layer)
from fastdl import optim, runtime
from fastdl.kernels import activations as KA


@njit(parallel=True)
def _tiny(a, nchunks):
    for c in prange(nchunks):
        a[c] += 1.0


def median_us(fn, n: int, pause: float = 0.0) -> float:
    for _ in range(max(3, n // 20)):
        fn()
    times = []
    for _ in range(n):
        if pause:
            time.sleep(pause)
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main() -> None:
    rows = []
    a = np.zeros(8)
    rows.append(("empty parallel region (2 chunks)", median_us(lambda: _tiny(a, 2), 5000), None))
    for nbytes in (2**20, 2**24):
        x = np.random.default_rng(0).standard_normal(nbytes // 4).astype(np.float32)
        out = np.empty_like(x)
        chunks = runtime.get_num_threads()
        for pause in (0.0, 0.002):
            n = 2000 if nbytes == 2**20 else 200
            serial = median_us(lambda x=x, out=out: KA._relu_out(x, out, 0, x.size), n // (4 if pause else 1), pause)
            parallel = median_us(lambda x=x, out=out, c=chunks: KA._relu_out_par(x, out, c), n // (4 if pause else 1),
                                 pause)
            label = f"ReLU forward {nbytes >> 20} MiB float32, {'after a 2 ms pause' if pause else 'back to back'}"
            rows.append((label, serial, parallel))
    params = {"W": np.random.default_rng(1).standard_normal(10**6).astype(np.float32)}
    grads = {"W": np.random.default_rng(2).standard_normal(10**6).astype(np.float32) * 1e-3}
    adam = optim.Adam(lr=1e-9)
    times = {}
    for policy, threshold in (("serial", 2**62), ("parallel", 0)):
        with runtime.parallel_threshold(threshold):
            times[policy] = median_us(lambda: adam.update(params, grads), 400)
    rows.append(("Adam update, 10^6 float32 values", times["serial"], times["parallel"]))

    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    print(f"threading layer {numba.threading_layer()}, {runtime.get_num_threads()} threads, "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}, load average {load}")
    print("| case | serial us | parallel us |")
    print("|---|---|---|")
    for label, serial, parallel in rows:
        if parallel is None:
            print(f"| {label} | - | {serial:.1f} |")
        else:
            print(f"| {label} | {serial:.1f} | {parallel:.1f} |")


if __name__ == "__main__":
    main()
