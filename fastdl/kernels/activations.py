"""ReLU and sigmoid, forward and backward, on flat C-contiguous arrays (one pass each).

Formulas (the book's, element by element):

* relu forward: ``mask = x <= 0``; ``out = 0 if mask else x`` (NaN is not ``<= 0``: it passes through)
* relu backward: ``dx = 0 if mask else dout``
* sigmoid forward: ``out = 1 / (1 + exp(-x))``, with NumPy's ``exp`` (see :func:`sigmoid_forward`)
* sigmoid backward: ``dx = dout * (1 - out) * out``
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from . import dispatch, numpy_map


@jit
def _relu_fwd(x, out, mask, lo, hi):
    # slice first: indices from range(size) are known non-negative, so the loop vectorizes
    # (indexing with range(lo, hi) kept wraparound checks and ran ~15x slower)
    xs, os, ms = x[lo:hi], out[lo:hi], mask[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        m = v <= 0
        ms[i] = m
        if m:
            os[i] = 0
        else:
            os[i] = v


@jit(parallel=True)
def _relu_fwd_par(x, out, mask, nchunks):
    n = x.size
    for c in prange(nchunks):
        _relu_fwd(x, out, mask, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _relu_bwd(dout, mask, dx, lo, hi):
    ds, ms, xs = dout[lo:hi], mask[lo:hi], dx[lo:hi]
    for i in range(ds.size):
        if ms[i]:
            xs[i] = 0
        else:
            xs[i] = ds[i]


@jit(parallel=True)
def _relu_bwd_par(dout, mask, dx, nchunks):
    n = dout.size
    for c in prange(nchunks):
        _relu_bwd(dout, mask, dx, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _sigmoid_finish(e, one, lo, hi):
    """``e = 1 / (1 + e)`` in place, ``e`` holding ``exp(-x)``."""
    es = e[lo:hi]
    for i in range(es.size):
        es[i] = one / (one + es[i])


@jit(parallel=True)
def _sigmoid_finish_par(e, one, nchunks):
    n = e.size
    for c in prange(nchunks):
        _sigmoid_finish(e, one, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _sigmoid_bwd(dout, y, dx, one, lo, hi):
    ds, ys, xs = dout[lo:hi], y[lo:hi], dx[lo:hi]
    for i in range(ds.size):
        v = ys[i]
        xs[i] = ds[i] * (one - v) * v


@jit(parallel=True)
def _sigmoid_bwd_par(dout, y, dx, one, nchunks):
    n = dout.size
    for c in prange(nchunks):
        _sigmoid_bwd(dout, y, dx, one, c * n // nchunks, (c + 1) * n // nchunks)


def _exp_of_negative(x: np.ndarray, out: np.ndarray) -> None:
    np.negative(x, out=out)
    np.exp(out, out=out)


def relu_forward(x: np.ndarray, out: np.ndarray, mask: np.ndarray) -> None:
    """Flat arrays: write ``out`` and the boolean ``mask`` (``x <= 0``)."""
    n = x.size
    dispatch(_relu_fwd, _relu_fwd_par, n, n, x, out, mask, family="stream")


def relu_backward(dout: np.ndarray, mask: np.ndarray, dx: np.ndarray) -> None:
    """Flat arrays: ``dx = where(mask, 0, dout)``."""
    n = dout.size
    dispatch(_relu_bwd, _relu_bwd_par, n, n, dout, mask, dx, family="stream")


def sigmoid_forward(x: np.ndarray, out: np.ndarray) -> None:
    """Flat arrays: ``out = 1 / (1 + exp(-x))`` in x's dtype (``out`` may be ``x``).

    ``exp`` is NumPy's (SIMD), run in place on ``out``, then one compiled pass finishes
    ``1 / (1 + e)``: the reference's values to the bit (why, and the measurements:
    ``docs/design-notes.md``, "Activations and softmax"). The overflow of ``exp(-x)`` for very
    negative ``x`` is expected (the sigmoid is then 0) and not warned about.
    """
    n = x.size
    one = x.dtype.type(1)
    with np.errstate(over="ignore"):
        numpy_map(_exp_of_negative, x, out)
    dispatch(_sigmoid_finish, _sigmoid_finish_par, n, n, out, one, family="stream")


def sigmoid_backward(dout: np.ndarray, y: np.ndarray, dx: np.ndarray) -> None:
    """Flat arrays: ``dx = dout * (1 - y) * y`` with ``y`` the forward output."""
    n = dout.size
    one = y.dtype.type(1)
    dispatch(_sigmoid_bwd, _sigmoid_bwd_par, n, n, dout, y, dx, one, family="stream")
