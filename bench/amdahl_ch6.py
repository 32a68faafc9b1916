"""Amdahl bounds of the book's chapter-6 scripts: how much of a training step is GEMM, and what that allows.

Run ``python bench/amdahl_ch6.py`` (``--dtype float32`` for the float32 figures; default float64, the book's
weights). For each chapter-6 script's network, batch and optimizer it times, in one process, interleaved
(``fastdl.benchmark.measure_group``):

* ``reference``: the book's NumPy layers (``fastdl.reference``, ``backend="reference"``);
* ``layers``: the book's network code over fastdl's layers (``fastdl.nets`` with its fused step turned off:
  what a reader gets by changing the layers' import);
* ``fused``: ``fastdl.nets`` as shipped (the fused training step);

and the GEMM share of the reference and layer-path steps: every ``np.dot`` of the step clocked, the
share taken step by step and its median given (:func:`gemm_share`). With ``g`` the reference's share, a
step whose non-GEMM part runs ``S`` times faster takes ``g + (1 - g) / S`` of the time (Amdahl), so
fastdl can be at most ``1 / g`` times faster than the book's NumPy with the same BLAS (the table's bound,
beside the measured speed-ups). The GEMM share of fastdl's fused step comes from the profiler
(``fastdl.profiler.profile_step``, the ``gemm`` phase; no figure where the network has no fused step,
e.g. with dropout): ``1 / g`` of it bounds what any further work outside the GEMMs can give. Prints a
Markdown table and the 1-minute load average. BLAS threads: as the process has them (OpenBLAS's default;
``OPENBLAS_NUM_THREADS=1`` for one). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from fastdl import benchmark as B
from fastdl import nets, optim, profiler, reference

#: script -> (network class, hidden widths, batch, optimizer, extra network arguments); the book's ch06/*.py
SCRIPTS = {
    "optimizer_compare_mnist (Adam)": ("MultiLayerNet", [100] * 4, 128, "adam", {}),
    "weight_init_compare": ("MultiLayerNet", [100] * 4, 128, "sgd", {}),
    "batch_norm_test": ("MultiLayerNetExtend", [100] * 5, 100, "sgd", {"use_batchnorm": True}),
    "overfit_weight_decay": ("MultiLayerNet", [100] * 6, 100, "sgd", {"weight_decay_lambda": 0.1}),
    "overfit_dropout": ("MultiLayerNetExtend", [100] * 6, 100, "sgd", {"use_dropout": True, "dropout_ration": 0.2}),
    "hyperparameter_optimization": ("MultiLayerNet", [100] * 6, 100, "sgd", {"weight_decay_lambda": 1e-5}),
}


def _step(kind: str, cls: str, hidden: list, n: int, opt_name: str, kw: dict, dtype, x, t):
    np.random.seed(0)
    backend = "reference" if kind == "reference" else "fastdl"
    net = getattr(nets, cls)(784, hidden, 10, dtype=dtype, backend=backend, **kw)
    if kind == "layers":
        net._fused = None  # (the layer-by-layer path: the book's network code over fastdl's layers)
    opt = (getattr(reference, {"adam": "Adam", "sgd": "SGD"}[opt_name])(lr=0.01) if kind == "reference"
           else optim.get_optimizer(opt_name, lr=0.01))

    def step():
        opt.update(net.params, net.gradient(x, t))

    return step


def gemm_share(step, repeat: int) -> tuple[float, float]:
    """(median seconds per step, median GEMM share of a step) with every ``np.dot`` of the step clocked.

    ``numpy.dot`` is replaced by a clocked wrapper for the duration (the book's layers and fastdl's layer
    path call it through the module); the share is taken step by step, so a burst of load from elsewhere
    moves both parts of one ratio.
    """
    real_dot, clock = np.dot, time.perf_counter
    spent = [0.0]

    def dot(*args, **kwargs):
        t0 = clock()
        try:
            return real_dot(*args, **kwargs)
        finally:
            spent[0] += clock() - t0

    np.dot = dot
    try:
        for _ in range(3):
            step()
        totals, shares = [], []
        for _ in range(repeat):
            spent[0] = 0.0
            t0 = clock()
            step()
            total = clock() - t0
            totals.append(total)
            shares.append(spent[0] / total)
    finally:
        np.dot = real_dot
    return statistics.median(totals), statistics.median(shares)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    ap.add_argument("--min-time", type=float, default=0.6)
    ap.add_argument("--repeat", type=int, default=200, help="steps of each GEMM-share measurement")
    args = ap.parse_args()
    dtype = np.dtype(args.dtype)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at start; {dtype}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print("\n| script (net, batch, optimizer) | reference ms | layers ms | fused ms | GEMM share of reference | "
          "bound 1/g | measured layers / fused | GEMM share of layers / fused (profiler) | fused: bound 1/g |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, (cls, hidden, n, opt_name, kw) in SCRIPTS.items():
        x = rng.random((n, 784)).astype(dtype)
        t = rng.integers(0, 10, n)
        fns = {kind: _step(kind, cls, hidden, n, opt_name, kw, dtype, x, t)
               for kind in ("reference", "layers", "fused")}
        tm = B.measure_group(fns, warmup=3, min_time=args.min_time, passes=3)
        ref, lay, fus = tm["reference"], tm["layers"], tm["fused"]
        _, g = gemm_share(fns["reference"], args.repeat)
        _, g_lay = gemm_share(fns["layers"], args.repeat)
        np.random.seed(0)
        net = getattr(nets, cls)(784, hidden, 10, dtype=dtype, **kw)
        prof = profiler.profile_step(net, x, t, optim.get_optimizer(opt_name, lr=0.01), repeat=args.repeat)
        gf = prof.share("gemm") if prof.fused else float("nan")
        desc = f"{cls} 784-{len(hidden)}x100-10{' BN' if kw.get('use_batchnorm') else ''}, b{n}, {opt_name}"
        print(f"| {name} ({desc}) | {ref * 1e3:.2f} | {lay * 1e3:.2f} | {fus * 1e3:.2f} | {g:.0%} | {1 / g:.2f}x | "
              f"{ref / lay:.2f}x / {ref / fus:.2f}x | {g_lay:.0%} / {gf:.0%} | {1 / gf:.2f}x |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} (1 min) at end")


if __name__ == "__main__":
    main()
