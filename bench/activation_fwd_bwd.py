"""Forward + backward of every registered activation: fastdl vs the NumPy reference vs PyTorch (2 threads).

Run ``python bench/activation_fwd_bwd.py [SIZE]`` (SIZE one of 100x100, 256x1024, 1024x4096; default 256x1024).
Prints one Markdown row per activation and dtype: fastdl's forward + backward time in us and the speed-up
over the reference and over torch (> 1: fastdl faster). Each call is timed by ``fastdl.benchmark.measure``
(warm-up first, median of samples). torch runs in this process, imported before fastdl so that fastdl's
``GOMP_SPINCOUNT`` does not slow it (see docs/design-notes.md); ``fastdl bench`` times torch in a process of
its own instead. Not collected by pytest (no ``test_`` prefix).
"""

import sys

import torch  # noqa: F401  (first: see the docstring)

from fastdl import activations
from fastdl import benchmark as B


def main() -> None:
    size = sys.argv[1] if len(sys.argv) > 1 else "256x1024"
    B.configure_torch_threads(2)
    print("| activation | dtype | fastdl fwd+bwd us | x reference | x torch |\n|---|---|---|---|---|")
    for name in activations.names():
        for dtype in ("float32", "float64"):
            t = {}
            for impl in ("fastdl", "reference", "torch"):
                t[impl] = sum(B.measure(B.make_case(f"{name}-{d}", size, dtype, impl).fn, warmup=3, min_time=0.3)
                              for d in ("forward", "backward"))
            print(f"| {name} | {dtype} | {t['fastdl'] * 1e6:.0f} | {t['reference'] / t['fastdl']:.1f}x | "
                  f"{t['torch'] / t['fastdl']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
