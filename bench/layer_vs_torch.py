"""Layer ops of the bench matrix: fastdl vs PyTorch (2 threads) in one process, interleaved.

Run ``python bench/layer_vs_torch.py [--threads N] [OP ...]`` with ops as ``NAME-DIRECTION@SIZE`` (default: the batch
norm and affine rows of issue 15: ``batchnorm-fwd-bwd`` and ``batchnorm-forward`` at 256x1024 and
1024x4096, ``affine-forward``/``affine-backward`` at 100x100 and 256x1024). Prints one Markdown row per op
and dtype: fastdl and torch in us (median, ``fastdl.benchmark.measure_group``: the implementations' blocks
rotate so that load from elsewhere hits both) and torch / fastdl (> 1: fastdl faster), and the 1-minute
load average beside the table. ``--threads 1`` runs both single-threaded (torch's intra-op threads,
fastdl's kernels and NumPy's BLAS): a ratio that a loaded machine disturbs less than the default 2 threads,
whose waits on a descheduled partner thread dominate there. torch is imported before fastdl (see
docs/design-notes.md, "OpenMP vs OpenBLAS"). Not collected by pytest (no ``test_`` prefix).
"""

import os
import sys

import torch  # noqa: F401  (before fastdl: see the docstring)
from threadpoolctl import ThreadpoolController

import fastdl
from fastdl import benchmark as B

DEFAULT = ("batchnorm-fwd-bwd@256x1024", "batchnorm-fwd-bwd@1024x4096", "batchnorm-forward@256x1024",
           "batchnorm-forward@1024x4096", "affine-forward@100x100", "affine-backward@100x100",
           "affine-forward@256x1024", "affine-backward@256x1024")


def main() -> None:
    args = sys.argv[1:]
    nthreads = 2
    if args[:1] == ["--threads"]:
        nthreads, args = int(args[1]), args[2:]
    ops = args or DEFAULT
    B.configure_torch_threads(nthreads)
    fastdl.runtime.set_num_threads(nthreads)
    ThreadpoolController().limit(limits=nthreads, user_api="blas")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at start; {nthreads} thread(s)")
    print("| op | size | dtype | fastdl us | torch us | x torch |\n|---|---|---|---|---|---|")
    for spec in ops:
        op, size = spec.split("@")
        for dtype in ("float32", "float64"):
            fns = {impl: B.make_case(op, size, dtype, impl).fn for impl in ("fastdl", "torch")}
            t = B.measure_group(fns, warmup=3, min_time=0.6, passes=3)
            print(f"| {op} | {size} | {dtype} | {t['fastdl'] * 1e6:.1f} | {t['torch'] * 1e6:.1f} | "
                  f"{t['torch'] / t['fastdl']:.2f}x |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at end")


if __name__ == "__main__":
    main()
