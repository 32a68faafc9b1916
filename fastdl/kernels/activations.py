"""ReLU and sigmoid, forward and backward, on flat C-contiguous arrays (one pass each).

Formulas (the book's, element by element):

* relu forward: ``out = 0 if x <= 0 else x`` (NaN is not ``<= 0``: it passes through); no mask is stored
* relu backward from the output: ``dx = 0 if out <= 0 else dout`` (``out <= 0`` exactly where ``x <= 0``, the
  book's mask: ``out`` is ``+0`` there, ``x > 0`` or NaN elsewhere)
* sigmoid forward: ``out = 1 / (1 + exp(-x))``, with NumPy's ``exp`` (see :func:`sigmoid_forward`)
* sigmoid backward: ``dx = dout * (1 - out) * out``
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from . import dispatch, numpy_map


@jit
def _relu_out(x, out, lo, hi):
    # slice first: indices from range(size) are known non-negative, so the loop vectorizes
    # (indexing with range(lo, hi) kept wraparound checks and ran ~15x slower)
    xs, os = x[lo:hi], out[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        if v <= 0:
            os[i] = 0
        else:
            os[i] = v


@jit(parallel=True)
def _relu_out_par(x, out, nchunks):
    n = x.size
    for c in prange(nchunks):
        _relu_out(x, out, c * n // nchunks, (c + 1) * n // nchunks)


@jit
def _relu_bwd_out(dout, y, dx, lo, hi):
    ds, ys, xs = dout[lo:hi], y[lo:hi], dx[lo:hi]
    for i in range(ds.size):
        if ys[i] <= 0:
            xs[i] = 0
        else:
            xs[i] = ds[i]


@jit(parallel=True)
def _relu_bwd_out_par(dout, y, dx, nchunks):
    n = dout.size
    for c in prange(nchunks):
        _relu_bwd_out(dout, y, dx, c * n // nchunks, (c + 1) * n // nchunks)


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


def _retired(*args):
    raise RuntimeError("this ReLU kernel (with a mask) was retired; a layer unpickled with it takes the current one")


def __getattr__(name: str):
    """``relu_forward``/``relu_backward``, the mask kernels' names, for pickles made before the mask-free ReLU
    (their activation record names them; the layer's ``__setstate__`` replaces the record)."""
    if name in ("relu_forward", "relu_backward"):
        return _retired
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def relu_forward_out(x: np.ndarray, out: np.ndarray) -> None:
    """Flat arrays: ``out = 0 if x <= 0 else x`` (no mask: the backward reads ``out``)."""
    n = x.size
    dispatch(_relu_out, _relu_out_par, n, n, x, out, family="stream")


def relu_backward_out(dout: np.ndarray, y: np.ndarray, dx: np.ndarray) -> None:
    """Flat arrays: ``dx = 0 if y <= 0 else dout`` with ``y`` the forward output (or its input: the same test)."""
    n = dout.size
    dispatch(_relu_bwd_out, _relu_bwd_out_par, n, n, dout, y, dx, family="stream")


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
