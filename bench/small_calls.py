"""Python cost of a cached layer call: the layer's ``forward``/``backward`` minus its bare compiled kernel.

    python bench/small_calls.py            # 1x1 and 100x100, float64, best of 9 blocks per figure

A 1x1 input makes the kernel's own work negligible, so ``layer - kernel`` is what the layer adds in
Python (validation, allocation, flattening, the serial/parallel dispatch). The 100x100 rows set it
beside the kernel's time and PyTorch's ``torch.relu`` (2 threads, imported first) on the same input.
Prints Markdown rows and the load average (the figures move with other processes on the cores).
"""

from __future__ import annotations

import os
import timeit

try:  # torch first: fastdl's GOMP_SPINCOUNT would slow a torch imported after it
    import torch
except ImportError:  # pragma: no cover
    torch = None
import numpy as np

from fastdl import layers
from fastdl.kernels.activations import _relu_bwd_out, _relu_out


def best_us(fn, number: int = 20000, repeat: int = 9) -> float:
    """Best mean over ``repeat`` blocks of ``number`` calls, in microseconds."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def rows(shape: tuple[int, int]) -> list[tuple[str, float, float]]:
    """(call, layer us, bare kernel us) for Relu forward/backward on ``shape`` (float64)."""
    x = np.random.default_rng(0).standard_normal(shape)
    relu = layers.Relu()
    relu.forward(x)
    relu.backward(x)
    out, dx = np.empty_like(x), np.empty_like(x)
    xf, of, df = x.ravel(), out.ravel(), dx.ravel()
    n = x.size
    return [
        ("Relu.forward", best_us(lambda: relu.forward(x)), best_us(lambda: _relu_out(xf, of, 0, n))),
        ("Relu.backward", best_us(lambda: relu.backward(x)), best_us(lambda: _relu_bwd_out(xf, of, df, 0, n))),
    ]


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("| call | shape | layer us | kernel us | Python us |")
    print("|---|---|---|---|---|")
    for shape in ((1, 1), (100, 100)):
        for name, layer_us, kernel_us in rows(shape):
            print(f"| {name} | {shape[0]}x{shape[1]} | {layer_us:.2f} | {kernel_us:.2f} | {layer_us - kernel_us:.2f} |")
    if torch is not None:
        torch.set_num_threads(2)
        xt = torch.from_numpy(np.random.default_rng(0).standard_normal((100, 100)))
        print(f"| torch.relu | 100x100 | {best_us(lambda: torch.relu(xt)):.2f} | | |")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
