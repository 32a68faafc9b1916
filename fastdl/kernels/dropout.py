"""Dropout in the book's (not inverted) form, and alpha dropout, on flat C-contiguous arrays.

* training forward: ``mask = r > ratio``; ``out = x * mask`` with ``r`` uniform draws in [0, 1)
* backward: ``dx = dout * mask``
* evaluation forward: ``out = x * (1 - ratio)``

Alpha dropout (:class:`fastdl.layers.AlphaDropout`): ``mask = r >= rate``; ``out = a * x + b`` where kept and
the constant ``c = a * alpha_p + b`` where dropped (one pass); backward ``dx = (dout * a) * mask``.

``x * mask`` is written as ``x`` where the mask is set and ``x * 0`` elsewhere, so signed zeros and
NaN from ``inf * 0`` come out exactly as NumPy's multiplication by a boolean array gives them.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from . import dispatch


@jit
def _fwd(x, r, ratio, zero, out, mask, lo, hi):
    # sliced views: non-negative indices let the loop vectorize (see activations._relu_out)
    xs, rs, os, ms = x[lo:hi], r[lo:hi], out[lo:hi], mask[lo:hi]
    for i in range(xs.size):
        m = rs[i] > ratio
        ms[i] = m
        v = xs[i]
        os[i] = v if m else v * zero


@jit(parallel=True)
def _fwd_par(x, r, ratio, zero, out, mask, nchunks):
    n = x.size
    for k in prange(nchunks):
        _fwd(x, r, ratio, zero, out, mask, k * n // nchunks, (k + 1) * n // nchunks)


@jit
def _apply(dout, mask, zero, dx, lo, hi):
    ds, ms, xs = dout[lo:hi], mask[lo:hi], dx[lo:hi]
    for i in range(ds.size):
        v = ds[i]
        xs[i] = v if ms[i] else v * zero


@jit(parallel=True)
def _apply_par(dout, mask, zero, dx, nchunks):
    n = dout.size
    for k in prange(nchunks):
        _apply(dout, mask, zero, dx, k * n // nchunks, (k + 1) * n // nchunks)


@jit
def _scale(x, s, out, lo, hi):
    xs, os = x[lo:hi], out[lo:hi]
    for i in range(xs.size):
        os[i] = xs[i] * s


@jit(parallel=True)
def _scale_par(x, s, out, nchunks):
    n = x.size
    for k in prange(nchunks):
        _scale(x, s, out, k * n // nchunks, (k + 1) * n // nchunks)


def forward(x: np.ndarray, r: np.ndarray, ratio, out: np.ndarray, mask: np.ndarray) -> None:
    """Flat arrays: ``mask = r > ratio`` (``ratio`` already a scalar of r's dtype); ``out = x * mask``."""
    n = x.size
    zero = x.dtype.type(0)
    dispatch(_fwd, _fwd_par, n, n, x, r, ratio, zero, out, mask, family="stream")


def apply_mask(dout: np.ndarray, mask: np.ndarray, dx: np.ndarray) -> None:
    """Flat arrays: ``dx = dout * mask``."""
    n = dout.size
    zero = dout.dtype.type(0)
    dispatch(_apply, _apply_par, n, n, dout, mask, zero, dx, family="stream")


def scale(x: np.ndarray, s, out: np.ndarray) -> None:
    """Flat arrays: ``out = x * s`` (``s`` already a scalar of x's dtype)."""
    n = x.size
    dispatch(_scale, _scale_par, n, n, x, s, out, family="stream")


# -- alpha dropout (Klambauer et al. 2017; Keras' AlphaDropout) ------------------------------------------
@jit
def _alpha_fwd(x, r, rate, a, b, c, out, mask, lo, hi):
    # kept (r >= rate): a * x + b; dropped: c = a * alpha_p + b (computed by the caller in the dtype)
    xs, rs, os, ms = x[lo:hi], r[lo:hi], out[lo:hi], mask[lo:hi]
    for i in range(xs.size):
        m = rs[i] >= rate
        ms[i] = m
        os[i] = a * xs[i] + b if m else c


@jit(parallel=True)
def _alpha_fwd_par(x, r, rate, a, b, c, out, mask, nchunks):
    n = x.size
    for k in prange(nchunks):
        _alpha_fwd(x, r, rate, a, b, c, out, mask, k * n // nchunks, (k + 1) * n // nchunks)


@jit
def _alpha_bwd(dout, mask, a, zero, dx, lo, hi):
    # (dout * a) * mask: a dropped unit's gradient is 0 (NaN for a non-finite dout, as autograd gives)
    ds, ms, xs = dout[lo:hi], mask[lo:hi], dx[lo:hi]
    for i in range(ds.size):
        g = ds[i] * a
        xs[i] = g if ms[i] else g * zero


@jit(parallel=True)
def _alpha_bwd_par(dout, mask, a, zero, dx, nchunks):
    n = dout.size
    for k in prange(nchunks):
        _alpha_bwd(dout, mask, a, zero, dx, k * n // nchunks, (k + 1) * n // nchunks)


def alpha_forward(x: np.ndarray, r: np.ndarray, rate, a, b, c, out: np.ndarray, mask: np.ndarray) -> None:
    """Flat arrays, one pass: ``mask = r >= rate``; ``out = a * x + b`` where kept, ``c`` where dropped.

    ``rate`` is a scalar of r's dtype; ``a``, ``b``, ``c`` scalars of x's dtype (``out`` may be ``x``).
    """
    n = x.size
    dispatch(_alpha_fwd, _alpha_fwd_par, n, n, x, r, rate, a, b, c, out, mask, family="stream")


def alpha_backward(dout: np.ndarray, mask: np.ndarray, a, dx: np.ndarray) -> None:
    """Flat arrays: ``dx = (dout * a) * mask`` (``dx`` may be ``dout``)."""
    n = dout.size
    zero = dout.dtype.type(0)
    dispatch(_alpha_bwd, _alpha_bwd_par, n, n, dout, mask, a, zero, dx, family="stream")
