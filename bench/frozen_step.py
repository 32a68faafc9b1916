"""What freezing the lower layers saves: one training step (gradient + Adam) with 0..k frozen blocks.

Run ``python bench/frozen_step.py [BATCH] [ROUNDS] [--cpu]`` (default 100, 5). ``--cpu``: one thread
(OpenBLAS and Numba) and CPU time of this process (``time.process_time``) instead of wall time, for a
machine shared with other busy processes, where wall times mean little. The book's 784-100x5-10 net with batch norm
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
import time

CPU = "--cpu" in sys.argv
if CPU:  # before NumPy and Numba load
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["NUMBA_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

from fastdl import benchmark as B  # noqa: E402
from fastdl import nets, optim, runtime  # noqa: E402


def cpu_measure(fn, samples: int = 9, sample_time: float = 0.02) -> float:
    """Median CPU seconds per call of ``fn`` (``time.process_time``), after 3 untimed calls."""
    for _ in range(3):
        fn()
    t0 = time.process_time()
    fn()
    n = max(1, int(sample_time / max(time.process_time() - t0, 1e-6)))
    times = []
    for _ in range(samples):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        times.append((time.process_time() - t0) / n)
    return float(np.median(times))


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
    args = [a for a in sys.argv[1:] if a != "--cpu"]
    batch = int(args[0]) if args else 100
    rounds = int(args[1]) if len(args) > 1 else 5
    print(f"machine: {_cpu()}, {os.cpu_count()} cpus, numba threads {runtime.get_num_threads()}, batch {batch}, "
          f"best of {rounds} interleaved rounds of medians, {'CPU time, 1 thread' if CPU else 'wall time'}\n")
    cases = {(k, dt): make_step(k, dt, batch) for k in range(6) for dt in (np.float64, np.float32)}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):  # interleaved, so a busy moment on a shared machine hits every case alike
        for key, fn in cases.items():
            t = cpu_measure(fn) if CPU else B.measure(fn, warmup=3, min_time=0.2)
            best[key] = min(best[key], t)
    print("| frozen blocks | float64 step us | vs k=0 | float32 step us | vs k=0 |\n|---|---|---|---|---|")
    for k in range(6):
        row = [f"| {k} |"]
        for dt in (np.float64, np.float32):
            row.append(f" {best[k, dt] * 1e6:.0f} | {best[k, dt] / best[0, dt]:.2f} |")
        print("".join(row), flush=True)


if __name__ == "__main__":
    main()
