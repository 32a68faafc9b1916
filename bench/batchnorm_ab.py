"""Batch norm layer forward + backward against another tree's batch-norm kernels, alternated, one process.

Run ``python bench/batchnorm_ab.py OLD_KERNEL_FILE [--parallel]``, e.g. with ``OLD_KERNEL_FILE`` a checkout's
``fastdl/kernels/batchnorm.py`` from before the one-pass statistics (main at 75d1758). The old file is loaded
as a module beside this tree's (its ``train_forward`` storing ``xn`` and ``backward(dout, xn, gamma, std)``);
each size and dtype alternates ``old`` (those two drivers) and ``new`` (this tree's
``BatchNormalization.forward`` + ``backward``) for a few seconds and prints the best time of each and
old / new. Serial kernels unless ``--parallel`` (parallel threshold 0). Best-of rather than median: it is
meant for a shared machine, where the minimum is the least disturbed figure. Not collected by pytest.
"""

import importlib.util
import os
import sys
import time

import numpy as np

import fastdl.kernels  # noqa: F401  (the package the old module is loaded into)
from fastdl import layers, runtime


def main() -> None:
    spec = importlib.util.spec_from_file_location("fastdl.kernels._bn_old", sys.argv[1])
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old  # (before it runs: its cached kernels name their module)
    spec.loader.exec_module(old)
    runtime.set_parallel_threshold(0 if "--parallel" in sys.argv else 10**12)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); {'parallel' if '--parallel' in sys.argv else 'serial'}")
    for n, d in ((1024, 4096), (256, 1024)):
        for dt in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            x, dout = rng.standard_normal((n, d)).astype(dt), rng.standard_normal((n, d)).astype(dt)
            g, b, z = np.ones(d, dt), np.zeros(d, dt), np.zeros(d, dt)
            bn = layers.BatchNormalization(g, b)

            def run_old(x=x, dout=dout, g=g, b=b, z=z):
                _, xn, _, _, std, _, _, _ = old.train_forward(x, g, b, 1e-6, 0.9, z, z)
                return old.backward(dout, xn, g, std)

            def run_new(bn=bn, x=x, dout=dout):
                bn.forward(x, True)
                return bn.backward(dout)

            best = {"old": float("inf"), "new": float("inf")}
            for f in (run_old, run_new):
                f()
                f()
            end = time.perf_counter() + (6 if n > 500 else 3)
            while time.perf_counter() < end:
                for name, f in (("old", run_old), ("new", run_new)):
                    t0 = time.perf_counter()
                    f()
                    best[name] = min(best[name], time.perf_counter() - t0)
            print(f"{n}x{d} {np.dtype(dt).name}: old {best['old'] * 1e3:.3f} ms, new {best['new'] * 1e3:.3f} ms, "
                  f"old / new {best['old'] / best['new']:.2f}x", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at end")


if __name__ == "__main__":
    main()
