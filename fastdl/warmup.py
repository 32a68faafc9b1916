"""Warm-up: compile (or load from the on-disk cache) every kernel a training run uses, ahead of the run.

``fastdl.warmup(...)`` is :func:`warmup` (``fastdl/__init__.py`` imports it, so the name is the
function, not this module); ``fastdl warmup`` on the command line runs it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _checks, runtime
from ._jit import KERNELS

__all__ = ["WarmupStep", "warmup"]

_DTYPES = tuple(dt.name for dt in _checks.FLOAT_DTYPES)


@dataclass
class WarmupStep:
    """One warm-up step: what ran, how long, which kernel signatures it compiled or loaded."""

    dtype: str
    variant: str
    what: str
    seconds: float
    compiled: int
    loaded: int


def _kernel_counts() -> dict[str, tuple[int, int]]:
    """kernel -> (cache misses = compiled, cache hits = loaded) counted by Numba's dispatchers."""
    out = {}
    for name, d in KERNELS.items():
        stats = d.stats
        out[name] = (sum(stats.cache_misses.values()), sum(stats.cache_hits.values()))
    return out


def _work(dtype: str):
    """(label, callable) pairs exercising every layer and optimizer once on tiny data."""
    # Imported here, not at the top: ``import fastdl`` imports this module (see the module notes),
    # and the layers, optimizers and nets with their kernel modules would add to every start-up.
    from . import layers, nets, optim

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype(dtype)
    dout = rng.standard_normal((4, 6)).astype(dtype)
    t = np.array([0, 1, 2, 5])
    onehot = np.eye(6, dtype=dtype)[t]

    def run_layer(layer, *args, **kwargs):
        layer.forward(*args, **kwargs)
        return layer.backward(1 if isinstance(layer, layers.SoftmaxWithLoss | layers.IdentityWithLoss) else dout)

    work = [
        ("Affine", lambda: run_layer(layers.Affine(rng.standard_normal((6, 6)).astype(dtype),
                                                   np.zeros(6, dtype=dtype)), x)),
        ("Relu", lambda: run_layer(layers.Relu(), x)),
        ("Sigmoid", lambda: run_layer(layers.Sigmoid(), x)),
        ("BatchNormalization", lambda: (
            run_layer(bn := layers.BatchNormalization(np.ones(6, dtype=dtype), np.zeros(6, dtype=dtype)), x),
            bn.forward(x, train_flg=False))),
        ("Dropout", lambda: (run_layer(dr := layers.Dropout(0.5), x, train_flg=True),
                             dr.forward(x, train_flg=False))),
        ("AlphaDropout", lambda: run_layer(layers.AlphaDropout(0.1), x, train_flg=True)),
        ("SoftmaxWithLoss", lambda: (run_layer(layers.SoftmaxWithLoss(), x, t),
                                     run_layer(layers.SoftmaxWithLoss(), x, onehot))),
        ("IdentityWithLoss", lambda: run_layer(layers.IdentityWithLoss(), x, dout)),
    ]
    for name in optim.OPTIMIZERS:
        def update(name=name):
            opt = optim.get_optimizer(name)
            params = {"W": x.copy(), "b": x[0].copy()}
            grads = {"W": dout, "b": dout[0].copy()}
            opt.update(params, grads)
            opt.update(params, grads)
        work.append((f"optimizer {name}", update))
    for label, bn, decay, extra in (("train step", False, 0.0, {}), ("train step + batch norm", True, 0.0, {}),
                                    ("train step + weight decay", False, 0.1, {}),
                                    ("train step + L1 + alpha dropout", False, 0.0,
                                     {"l1_lambda": 0.1, "use_alpha_dropout": True, "dropout_ratio": 0.1})):
        def train_step(bn=bn, decay=decay, extra=extra):
            net = nets.MultiLayerNetExtend(6, [5, 5], 3, use_batchnorm=bn, weight_decay_lambda=decay,
                                           dtype=np.dtype(dtype), **extra)
            opt = optim.Adam()
            opt.update(net.params, net.gradient(x, t % 3))
            net.loss(x, t % 3)
            net.accuracy(x, t % 3)
        work.append((label, train_step))
    return work


def warmup(dtypes: Sequence[str] | str = _DTYPES, *, verbose: bool = False,
           file=None, parallel: bool = False) -> list[WarmupStep]:
    """Compile (or load from the on-disk cache) every kernel a training run uses.

    Runs a tiny forward and backward of every layer, two updates of every optimizer and a training
    step of the book's networks (plain, with batch norm, with weight decay), per dtype, with the
    serial kernels (``runtime.parallel_threshold`` forced to "never"), then the optimizers' updates
    with their parallel twin (one kernel serves every rule): the whole-model step of the book's
    networks (10^5 parameters and more) is above the optimizer family's crossover on the ``tbb``
    layer, so a training run uses it. With ``parallel=True`` every work item runs once more with the
    parallel twins (threshold 0), which calls above their family's crossover use. Each step records
    how long it took and how many kernel signatures Numba compiled versus loaded.

    Parameters
    ----------
    dtypes : str or sequence of str
        ``'float32'``, ``'float64'``, ``'all'`` or a sequence of them.
    verbose : bool
        Print one line per step and a summary.
    file : file-like, optional
        Where verbose output goes (default ``sys.stdout``).
    parallel : bool
        Also compile every other parallel kernel (about doubles the cold compile time).

    Returns
    -------
    list of WarmupStep

    Raises
    ------
    ValueError
        An unknown dtype (before anything runs).
    """
    if isinstance(dtypes, str):
        dtypes = _DTYPES if dtypes == "all" else (dtypes,)
    for dt in dtypes:
        if dt not in _DTYPES:
            raise ValueError(f"warmup: dtype must be one of {_DTYPES} or 'all'; got {dt!r}")
    out = file or sys.stdout
    steps: list[WarmupStep] = []
    # (variant, threshold, the work items it runs: those whose label starts so)
    variants = [("serial", 2**62, "")]
    if runtime.parallel_available():  # every parallel twin, or the optimizers' step (one kernel for every rule)
        variants.append(("parallel", 0, "" if parallel else "optimizer "))
    for dt in dtypes:
        for variant, threshold, only in variants:
            with runtime.parallel_threshold(threshold):
                for what, fn in _work(dt):
                    if not what.startswith(only):
                        continue
                    before = _kernel_counts()
                    t0 = time.perf_counter()
                    fn()
                    seconds = time.perf_counter() - t0
                    after = _kernel_counts()
                    compiled = sum(after[k][0] - before.get(k, (0, 0))[0] for k in after)
                    loaded = sum(after[k][1] - before.get(k, (0, 0))[1] for k in after)
                    step = WarmupStep(dt, variant, what, seconds, compiled, loaded)
                    steps.append(step)
                    if verbose:
                        print(f"{dt:8s} {variant:8s} {what:25s} {seconds * 1e3:8.1f} ms  "
                              f"compiled {compiled:2d}  loaded from cache {loaded:2d}", file=out)
    if verbose:
        total = sum(s.seconds for s in steps)
        print(f"total {total:.2f} s: {sum(s.compiled for s in steps)} kernel signatures compiled, "
              f"{sum(s.loaded for s in steps)} loaded from the cache ({runtime.cache_dir()})", file=out)
    return steps
