"""MC dropout (Gal & Ghahramani 2016; Hands-On ML ch. 11): the batched path of ``net.predict_mc``.

``n_samples`` forward passes with dropout in training mode and batch norm in inference mode, run as
a few stacked passes: ``x`` tiled to ``k * N`` rows per chunk (``k`` samples; the chunk's widest
activation kept under :data:`CHUNK_BYTES`), so 100 samples cost a handful of forwards, not 100.

Masks. Dropout layer ``i`` (in forward order) draws from its own Generator, child ``i`` of
``np.random.SeedSequence(seed)``: its draws for samples ``0, 1, ...`` follow each other in that stream
whether they come in one stacked pass or one pass per sample, so the masks do not depend on the
chunking (tested against a loop of single passes), and every sample's mask is drawn anew.

Numbers. Each chunk is one GEMM per layer; OpenBLAS' results for a row depend on how many rows the
GEMM has (measured: rows of ``np.dot`` of N rows and of ``k * N`` rows of the same data differ in the
last bits), so stacked passes agree with single passes to rounding (float64 1e-12, float32 1e-5
relative), and to the bit when a chunk holds one sample.
"""

from __future__ import annotations

import math
import operator
import threading

import numpy as np

from . import _checks
from .functional import softmax

__all__ = ["CHUNK_BYTES", "generators", "predict_mc"]

#: budget of one stacked pass: (samples per chunk) * N * (widest layer) * itemsize stays under it (at least one
#: sample per chunk). About an L2 cache: small batches stack many samples (the Python cost of one forward is
#: shared), large ones few (each activation stays in cache; 32 MB chunks were slower than a loop at N=360).
CHUNK_BYTES = 2**20

#: predict_mc swaps the dropout layers' Generators for its own while it runs: calls run one at a time
_LOCK = threading.Lock()


def generators(rng, n: int) -> list[np.random.Generator]:
    """The ``n`` Generators of the dropout layers: children of ``SeedSequence(seed)``.

    ``seed`` is ``rng`` itself (an int), one draw ``rng.integers(2**63)`` (a Generator, which advances),
    or one draw from NumPy's global generator (``None``: reproducible after ``np.random.seed``, as the
    book's dropout masks are). ``rng`` is assumed validated.
    """
    if rng is None:
        seed = int(np.random.randint(0, 2**63 - 1, dtype=np.int64))
    elif isinstance(rng, np.random.Generator):
        seed = int(rng.integers(0, 2**63 - 1))
    else:
        seed = operator.index(rng)
    return [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(n)]


def predict_mc(net, x, n_samples: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """See :meth:`fastdl.nets.MultiLayerNetExtend.predict_mc`."""
    where = f"{type(net).__name__}.predict_mc"
    n_samples = _checks.count(n_samples, "n_samples", where)
    if rng is not None and not isinstance(rng, np.random.Generator):
        if isinstance(rng, bool) or not isinstance(rng, int | np.integer) or rng < 0:
            _checks.fail(where, "rng", "None, an integer seed >= 0 or a numpy.random.Generator",
                         _checks.describe(rng), TypeError if not isinstance(rng, int | np.integer) else ValueError)
    x = net._input(x, "predict_mc")
    if x.ndim < 2 or x.shape[0] < 1 or math.prod(x.shape[1:]) != net.input_size:
        _checks.fail(where, "x", f"a batch of shape (N, {net.input_size}) with N >= 1 (or (N, ...) with "
                     f"{net.input_size} values per sample)", f"shape {x.shape}")
    drops = [layer for layer, kind in net._forward_steps if kind == 2]
    if not drops:
        _checks.fail(where, "the network", "a network with dropout layers (MultiLayerNetExtend with "
                     "use_dropout=True or use_alpha_dropout=True)", f"{net!r} without dropout", TypeError)
    if not all(hasattr(layer, "rng") for layer in drops):
        _checks.fail(where, "backend", "one whose dropout layers take an rng Generator ('fastdl' or 'reference')",
                     _checks.describe(net.backend), TypeError)
    gens = generators(rng, len(drops))  # (validation done: from here on the call runs)
    n = x.shape[0]
    x2 = x.reshape(n, -1)
    widest = max(net.input_size, net.output_size, *net.hidden_size_list)
    chunk = max(1, min(n_samples, CHUNK_BYTES // (n * widest * net.dtype.itemsize)))
    c = net.output_size
    stack = np.empty((n_samples, n, c), dtype=net.dtype)
    with _LOCK:
        saved = [dict(layer.__dict__) for layer in drops]  # rng, mask, ...: put back afterwards
        try:
            for layer, g in zip(drops, gens):
                layer.rng = g
            for s0 in range(0, n_samples, chunk):
                k = min(chunk, n_samples - s0)
                y = net._forward(np.tile(x2, (k, 1)) if k > 1 else x2, False, True)
                stack[s0:s0 + k] = (y if net.loss_name == "mse" else softmax(y)).reshape(k, n, c)
        finally:
            for layer, state in zip(drops, saved):  # attribute by attribute: never an empty layer
                for key in [key for key in layer.__dict__ if key not in state]:
                    delattr(layer, key)
                for key, value in state.items():
                    if layer.__dict__.get(key, state) is not value:
                        setattr(layer, key, value)
    return stack.mean(axis=0), stack.std(axis=0)
