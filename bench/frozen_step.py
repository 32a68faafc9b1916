"""What freezing the lower layers saves: one training step (gradient + Adam) with 0..k frozen blocks.

Run ``python bench/frozen_step.py [BATCH]`` (default 100). The book's 784-100x5-10 net with batch norm
(``MultiLayerNetExtend(784, [100] * 5, 10, use_batchnorm=True)``), float64 and float32, on the fused
path: ``net.gradient(x, t)`` and ``Adam.update(net.trainable_params, grads)`` with the lowest ``k``
blocks frozen (``net.freeze(k)``). A frozen block runs its forward only (batch norm in inference mode):
no ``dW`` GEMM, no ``dx`` GEMM below the lowest trainable block, no backward epilogue, and the optimizer
steps only the trainable tail of the flat buffer. Prints a Markdown table of medians
(``fastdl.benchmark.measure``: warm-up first, median of samples) and the ratio to ``k = 0``, with the
machine and thread count. Not collected by pytest (no ``test_`` prefix).
"""

import os
import platform
import sys

import numpy as np

from fastdl import benchmark as B
from fastdl import nets, optim, runtime


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def make_step(k: int, dtype, batch: int):
    np.random.seed(0)
    net = nets.MultiLayerNetExtend(784, [100] * 5, 10, use_batchnorm=True, dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 784)).astype(dtype)
    t = rng.integers(0, 10, batch)
    net.gradient(x, t)  # (batch statistics into the running ones before freezing)
    if k:
        net.freeze(k)
    opt = optim.Adam(lr=1e-4)

    def step():
        opt.update(net.trainable_params, net.gradient(x, t))

    return step


def main() -> None:
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(f"machine: {_cpu()}, {os.cpu_count()} cpus, numba threads {runtime.get_num_threads()}, batch {batch}, "
          f"best of {rounds} interleaved rounds of medians\n")
    cases = {(k, dt): make_step(k, dt, batch) for k in range(6) for dt in (np.float64, np.float32)}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):  # interleaved, so a busy moment on a shared machine hits every case alike
        for key, fn in cases.items():
            best[key] = min(best[key], B.measure(fn, warmup=3, min_time=0.2))
    print("| frozen blocks | float64 step us | vs k=0 | float32 step us | vs k=0 |\n|---|---|---|---|---|")
    for k in range(6):
        row = [f"| {k} |"]
        for dt in (np.float64, np.float32):
            row.append(f" {best[k, dt] * 1e6:.0f} | {best[k, dt] / best[0, dt]:.2f} |")
        print("".join(row), flush=True)


if __name__ == "__main__":
    main()
