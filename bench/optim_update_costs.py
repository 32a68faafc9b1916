"""Optimizer ``update`` costs of whichever fastdl is importable: per call (10K, the book's net), throughput (1M/8M).

Not a pytest-benchmark suite (not collected): a script for comparing two checkouts back to back under
the same load, e.g. old vs new::

    for i in 1 2 3; do for src in /path/to/old /path/to/new; do
        PYTHONPATH=$src python bench/optim_update_costs.py overhead >> costs.jsonl; done; done

Each line is JSON: ``{"src": fastdl's path, "<case>": [CPU-time median us, wall-time min us], ...}``.
CPU time (``time.process_time``, median of 9 repeats) is what a loaded shared machine disturbs least;
for parallel calls it adds up both threads. Cases: ``10K <rule> <dtype>`` (a 2-array dict, W 99x100 + b
100, through ``update``, replayed), ``net22 <rule> <dtype>`` (the 22 arrays of the book's 784-100x5-10
batch-norm net, one flat buffer), ``1M``/``8M <rule> <dtype>`` (one array; ``throughput`` mode).
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

import fastdl
from fastdl import optim

NAMES = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]


def _time_us(opt, params: dict, grads: dict, number: int, warmup: int, repeat: int = 9) -> tuple[float, float]:
    """(CPU-time median, wall-time min) of ``opt.update(params, grads)`` in us, after ``warmup`` calls."""
    for _ in range(warmup):
        opt.update(params, grads)
    cpu, wall = [], []
    for _ in range(repeat):
        t0, w0 = time.process_time(), time.perf_counter()
        for _ in range(number):
            opt.update(params, grads)
        cpu.append((time.process_time() - t0) / number)
        wall.append((time.perf_counter() - w0) / number)
    return statistics.median(cpu) * 1e6, min(wall) * 1e6


def overhead(rng) -> dict:
    out = {}
    for dtype in ("float32", "float64"):
        for name in NAMES:
            params = {"W": rng.standard_normal((99, 100)).astype(dtype), "b": rng.standard_normal(100).astype(dtype)}
            grads = {k: (rng.standard_normal(v.shape) * 1e-3).astype(dtype) for k, v in params.items()}
            out[f"10K {name} {dtype}"] = _time_us(optim.OPTIMIZERS[name](), params, grads, 1000, 200)
    from fastdl.nets import MultiLayerNetExtend

    for dtype in ("float32", "float64"):
        np.random.seed(0)
        net = MultiLayerNetExtend(784, [100] * 5, 10, use_batchnorm=True, dtype=np.dtype(dtype))
        grads = net.gradient(rng.standard_normal((100, 784)).astype(dtype), rng.integers(0, 10, 100))
        for name in ("sgd", "adam"):
            out[f"net22 {name} {dtype}"] = _time_us(optim.OPTIMIZERS[name](lr=1e-9), net.params, grads, 300, 100)
    return out


def throughput(rng) -> dict:
    out = {}
    for n in (1 << 20, 8 << 20):
        for dtype in ("float32", "float64"):
            for name in ("sgd", "momentum", "adam"):
                params = {"W": rng.standard_normal(n).astype(dtype)}
                grads = {"W": (rng.standard_normal(n) * 1e-3).astype(dtype)}
                number = 3 if n > 1 << 20 else 10
                out[f"{n >> 20}M {name} {dtype}"] = _time_us(optim.OPTIMIZERS[name](lr=1e-6), params, grads, number, 5)
    return out


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "overhead"
    result = {"src": fastdl.__file__, **(overhead if mode == "overhead" else throughput)(np.random.default_rng(0))}
    print(json.dumps(result))
